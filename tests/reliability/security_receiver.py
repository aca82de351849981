"""The reference receiver serving a certificate of the test's choosing (expired, issued for
another host) while its CA stays the one clients trust.

`CertificateReceiver.serve` writes the choice into the receiver's data directory and
restarts it on the same ports; the receiver process is this file run as a script, which
replaces kk_receiver's certificate choice with that file's and runs kk_receiver as usual.
It imports nothing from the tests, so it runs as a script.
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kk_receiver.testing import ReceiverProcess

__all__ = ["CertificateReceiver", "issue_server_certificate"]


def issue_server_certificate(
    tls_dir: Path, name: str, hosts: list[str], *, issued: datetime.datetime
) -> tuple[Path, Path]:
    """A server certificate signed by the receiver's own CA (in ``tls_dir``) for ``hosts``,
    valid for 397 days from ``issued``: (certificate, key) files named ``name``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from kk_receiver.certs import _issue_server  # the receiver's own issuing code, reused

    ca_cert = x509.load_pem_x509_certificate((tls_dir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((tls_dir / "ca.key").read_bytes(), None)
    cert, key = _issue_server(ca_cert, ca_key, hosts, issued)  # type: ignore[arg-type]
    cert_path, key_path = tls_dir.parent / f"{name}.crt", tls_dir.parent / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


_OVERRIDE = "served-certificate.json"


class CertificateReceiver(ReceiverProcess):
    """The reference receiver, serving (after `serve`) a given certificate and key instead
    of the one it issues itself; its CA stays the one clients trust."""

    def serve(self, certificate: tuple[Path, Path] | None) -> None:
        """Restart on the same ports serving ``certificate`` (None: its own again)."""
        override = self.data_dir / _OVERRIDE
        if certificate is None:
            override.unlink(missing_ok=True)
        else:
            override.write_text(
                json.dumps({"cert": str(certificate[0]), "key": str(certificate[1])})
            )
        self.restart()

    def _command(self) -> list[str]:
        command = super()._command()
        module = command.index("kk_receiver")
        return [sys.executable, __file__, *command[module + 1 :]]


def _main() -> int:
    """Run kk_receiver with its certificate choice replaced by the override file's."""
    import kk_receiver.app as receiver_app
    from kk_receiver.__main__ import main
    from kk_receiver.certs import TlsFiles, ensure_certificates

    def chosen(directory: Path, hosts: Iterable[str] = (), now: Any = None) -> TlsFiles:
        files = ensure_certificates(directory, hosts, now)
        override = directory.parent / _OVERRIDE
        if not override.exists():
            return files
        served = json.loads(override.read_text())
        return TlsFiles(files.ca_cert, files.ca_key, Path(served["cert"]), Path(served["key"]))

    receiver_app.ensure_certificates = chosen  # type: ignore[assignment]
    return main()


if __name__ == "__main__":
    sys.exit(_main())
