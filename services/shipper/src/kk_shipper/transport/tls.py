"""One place that turns :class:`~kk_shipper.types.TlsSettings` into client TLS configuration.

Both transports verify the receiver by default: HTTP/1.1 through an :class:`ssl.SSLContext`
(handed to httpx as ``verify=``), HTTP/3 through aioquic's :class:`QuicConfiguration`, which
has its own TLS 1.3 stack and does not use :mod:`ssl` for the handshake. Verification is
skipped only when the operator sets ``insecure_skip_verify`` (the upstream Go agent hard-wired
``InsecureSkipVerify: true``; we do the opposite), and :func:`verification_skipped` lets the
application warn about it and export it as a metric.
"""

from __future__ import annotations

import os
import ssl

from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration

from ..types import TlsSettings

__all__ = ["quic_configuration", "ssl_context", "system_ca_locations", "verification_skipped"]


def verification_skipped(tls: TlsSettings) -> bool:
    """True when the receiver's certificate is not verified (the operator asked for it)."""
    return tls.insecure_skip_verify


def ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """A client :class:`ssl.SSLContext` for HTTP/1.1 over TLS.

    Trusts ``tls.ca_file`` when set, else the system trust store; presents the client
    certificate for mutual TLS when ``cert_file`` is set.

    Raises:
        OSError / ssl.SSLError: a configured file is missing or unreadable (a config error,
            reported at startup rather than on the first request).
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
    if tls.insecure_skip_verify:
        # check_hostname must go first: CERT_NONE is refused while it is on.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    # HTTP/1.1 only: never advertise h2 to a client that cannot speak it.
    context.set_alpn_protocols(["http/1.1"])
    return context


def system_ca_locations() -> tuple[str | None, str | None]:
    """The system trust store as ``(cafile, capath)``, as OpenSSL would find it.

    aioquic falls back to *certifi*'s bundle when given no CA at all, which is not what an
    operator who added a CA to the node's store expects; so the H3 transport passes these.
    """
    paths = ssl.get_default_verify_paths()
    cafile = paths.cafile if paths.cafile and os.path.isfile(paths.cafile) else None
    capath = paths.capath if paths.capath and os.path.isdir(paths.capath) else None
    return cafile, capath


def quic_configuration(
    tls: TlsSettings, server_name: str, *, idle_timeout: float = 30.0
) -> QuicConfiguration:
    """A client :class:`QuicConfiguration` for HTTP/3 (ALPN ``h3``).

    Args:
        tls: What to trust and which client certificate to present.
        server_name: The name sent as SNI and checked against the certificate (a DNS name or
            an IP address literal).
        idle_timeout: Seconds without traffic before the QUIC connection is dropped.

    Raises:
        OSError / ssl.SSLError / ValueError: a configured file is missing or unreadable.
    """
    configuration = QuicConfiguration(
        is_client=True,
        alpn_protocols=H3_ALPN,
        server_name=server_name,
        idle_timeout=idle_timeout,
    )
    if tls.insecure_skip_verify:
        # aioquic skips both the chain and the hostname check under CERT_NONE.
        configuration.verify_mode = ssl.CERT_NONE
    elif tls.ca_file:
        # aioquic only records the path and reads it during the handshake; open it now so a
        # bad path is a startup error, not a confusing handshake failure.
        with open(tls.ca_file, "rb"):
            pass
        configuration.load_verify_locations(cafile=tls.ca_file)
    else:
        configuration.cafile, configuration.capath = system_ca_locations()
    if tls.cert_file:
        configuration.load_cert_chain(tls.cert_file, tls.key_file)
    return configuration
