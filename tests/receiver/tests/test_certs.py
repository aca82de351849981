"""The receiver's CA and server certificate."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from kk_receiver.certs import ensure_certificates


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


class TestCertificates:
    def test_server_certificate_is_issued_by_ca_for_loopback(self, tmp_path: Path) -> None:
        """EC P-256, SANs localhost/127.0.0.1/::1, serverAuth, signed by the CA."""
        files = ensure_certificates(tmp_path)
        ca, server = load(files.ca_cert), load(files.server_cert)
        server.verify_directly_issued_by(ca)
        public_key = server.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        assert public_key.curve.name == "secp256r1"
        san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["localhost"]
        assert san.get_values_for_type(x509.IPAddress) == [
            ipaddress.ip_address("127.0.0.1"),
            ipaddress.ip_address("::1"),
        ]
        eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert files.server_key.stat().st_mode & 0o077 == 0
        assert files.ca_key.stat().st_mode & 0o077 == 0

    def test_certificates_are_reused_on_restart(self, tmp_path: Path) -> None:
        """A second start keeps the same CA and server certificate."""
        first = ensure_certificates(tmp_path)
        before = (first.ca_cert.read_bytes(), first.server_cert.read_bytes())
        second = ensure_certificates(tmp_path)
        assert (second.ca_cert.read_bytes(), second.server_cert.read_bytes()) == before

    def test_new_host_reissues_server_cert_with_same_ca(self, tmp_path: Path) -> None:
        """An extra SAN (a compose service name) gets a new server cert from the same CA."""
        first = ensure_certificates(tmp_path)
        ca_before, server_before = first.ca_cert.read_bytes(), first.server_cert.read_bytes()
        files = ensure_certificates(tmp_path, ["killkrill-log-receiver"])
        assert files.ca_cert.read_bytes() == ca_before
        assert files.server_cert.read_bytes() != server_before
        san = (
            load(files.server_cert)
            .extensions.get_extension_for_class(x509.SubjectAlternativeName)
            .value
        )
        assert "killkrill-log-receiver" in san.get_values_for_type(x509.DNSName)
        load(files.server_cert).verify_directly_issued_by(load(files.ca_cert))
