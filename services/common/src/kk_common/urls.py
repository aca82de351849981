"""The one helper that builds receiver endpoint URLs.

The configured receiver URLs are base URLs (``https://killkrill-log-receiver:8443``). When
a URL has no path (empty or ``/``) the endpoint path is appended; when it has a path it is
used exactly as given, query string included. Every service builds its URLs here, so the
rule lives in one place (like OTel's ``composeSignalURL``), and nothing rewrites hosts or
ports by string surgery.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit, urlunsplit

__all__ = ["ENDPOINT_PATHS", "EndpointKind", "carries_http3", "endpoint_url"]

EndpointKind = Literal["logs", "metrics"]

ENDPOINT_PATHS: dict[EndpointKind, str] = {
    "logs": "/api/v1/logs",
    "metrics": "/api/v1/metrics",
}
"""The documented batch ingest path of each receiver (receiver-api.md, Endpoints)."""


def endpoint_url(base_url: str, kind: EndpointKind) -> str:
    """The URL to POST ``kind`` batches to, given the configured receiver URL.

    >>> endpoint_url("https://receiver:8443", "logs")
    'https://receiver:8443/api/v1/logs'
    >>> endpoint_url("https://receiver:8443/ingest?tenant=a", "logs")
    'https://receiver:8443/ingest?tenant=a'
    """
    if kind not in ENDPOINT_PATHS:
        raise ValueError(f"unknown endpoint kind {kind!r}; expected 'logs' or 'metrics'")
    parts = urlsplit(base_url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {base_url!r}")
    if parts.path in ("", "/"):
        parts = parts._replace(path=ENDPOINT_PATHS[kind])
    return urlunsplit(parts)


def carries_http3(url: str) -> bool:
    """Whether HTTP/3 can be tried for ``url``: only ``https://``, because QUIC needs TLS."""
    return urlsplit(url).scheme.lower() == "https"
