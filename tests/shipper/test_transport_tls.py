"""tls.py: TlsSettings -> ssl.SSLContext / QuicConfiguration, and insecure mode end to end."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import transport_support as support

from kk_receiver.certs import ensure_certificates
from kk_receiver.testing import ReceiverProcess
from kk_shipper.transport import (
    H1Transport,
    H3Transport,
    quic_configuration,
    ssl_context,
    verification_skipped,
)
from kk_shipper.types import TlsSettings


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A throwaway CA plus a certificate/key pair it issued (usable as a client identity)."""
    files = ensure_certificates(tmp_path)
    yield {
        "ca": str(files.ca_cert),
        "cert": str(files.server_cert),
        "key": str(files.server_key),
    }


class TestSslContext:
    def test_verifies_by_default(self) -> None:
        """No settings: certificates and host names are checked against the system store."""
        context = ssl_context(TlsSettings())
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True
        assert verification_skipped(TlsSettings()) is False

    def test_trusts_the_configured_ca_only(self, pki: dict[str, str]) -> None:
        """ca_file is loaded into the context."""
        context = ssl_context(TlsSettings(ca_file=pki["ca"]))
        assert len(context.get_ca_certs()) == 1
        assert context.verify_mode == ssl.CERT_REQUIRED

    def test_insecure_only_when_asked(self) -> None:
        """insecure_skip_verify turns off both the chain and the host name check."""
        settings = TlsSettings(insecure_skip_verify=True)
        context = ssl_context(settings)
        assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)
        assert verification_skipped(settings) is True

    def test_missing_files_fail_at_construction(self, tmp_path: Path) -> None:
        """A bad path is an error when the transport is built, not on the first request."""
        missing = str(tmp_path / "nope.pem")
        with pytest.raises(OSError):
            ssl_context(TlsSettings(ca_file=missing))
        with pytest.raises(OSError):
            quic_configuration(TlsSettings(ca_file=missing), "rx")
        with pytest.raises(OSError):
            H1Transport(
                tls=TlsSettings(cert_file=missing, key_file=missing), pool_size=1, connect_timeout=1
            )

    def test_client_certificate_is_loaded_for_mtls(self, pki: dict[str, str]) -> None:
        """cert_file/key_file become the client identity in both configurations."""
        settings = TlsSettings(ca_file=pki["ca"], cert_file=pki["cert"], key_file=pki["key"])
        ssl_context(settings)  # raises if the pair does not match
        configuration = quic_configuration(settings, "rx.example")
        assert configuration.certificate is not None
        assert configuration.private_key is not None
        mismatched = ensure_certificates(Path(pki["ca"]).parent / "other")
        with pytest.raises(ssl.SSLError):
            ssl_context(TlsSettings(cert_file=pki["cert"], key_file=str(mismatched.server_key)))


class TestQuicConfiguration:
    def test_verifies_by_default_with_the_system_store(self) -> None:
        """No CA configured: the system store, not aioquic's certifi fallback."""
        configuration = quic_configuration(TlsSettings(), "rx.example", idle_timeout=12)
        assert configuration.verify_mode in (None, ssl.CERT_REQUIRED)
        paths = ssl.get_default_verify_paths()
        assert (configuration.cafile or configuration.capath) in (paths.cafile, paths.capath)
        assert configuration.server_name == "rx.example"
        assert configuration.alpn_protocols == ["h3"]
        assert configuration.idle_timeout == 12

    def test_insecure_only_when_asked(self, pki: dict[str, str]) -> None:
        """insecure_skip_verify sets CERT_NONE; a CA file alone does not."""
        assert quic_configuration(TlsSettings(insecure_skip_verify=True), "rx").verify_mode == (
            ssl.CERT_NONE
        )
        with_ca = quic_configuration(TlsSettings(ca_file=pki["ca"]), "rx")
        assert with_ca.verify_mode != ssl.CERT_NONE
        assert with_ca.cafile == pki["ca"]


def test_insecure_mode_reaches_an_untrusted_receiver_over_both_protocols() -> None:
    """With insecure_skip_verify (and only then) both transports talk to an unknown CA."""
    insecure = TlsSettings(insecure_skip_verify=True)
    with ReceiverProcess(license_key=support.LICENSE_KEY) as receiver:

        async def story() -> tuple[int, int]:
            h3 = H3Transport(
                "127.0.0.1",
                int(receiver.h3_port or 0),
                server_name="127.0.0.1",
                tls=insecure,
                handshake_timeout=3,
                max_streams=2,
            )
            h1 = H1Transport(tls=insecure, pool_size=1, connect_timeout=2)
            try:
                over_h3, over_h1 = await asyncio.gather(
                    h3.send(support.logs_request(receiver.h3_url, support.new_ids(1)), timeout=5),
                    h1.send(
                        support.logs_request(receiver.https_url, support.new_ids(1)), timeout=5
                    ),
                )
            finally:
                await h3.aclose()
                await h1.aclose()
            return over_h3.status, over_h1.status

        assert support.run(story()) == (200, 200)
