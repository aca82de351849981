"""Value types shared by the shipper's core, storage and transports (pure, no IO)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, NamedTuple
from typing import Protocol as TypingProtocol

__all__ = [
    "HttpRequest",
    "HttpResponse",
    "Kind",
    "Protocol",
    "QueuedRecord",
    "TlsSettings",
    "Transport",
    "TransportError",
]

Kind = Literal["logs", "metrics"]
"""An output: logs and metrics are delivered independently."""


class Protocol(StrEnum):
    """The HTTP version a request went over."""

    H3 = "http/3"
    H1 = "http/1.1"


class QueuedRecord(NamedTuple):
    """One record as the durable queue holds it.

    A named tuple rather than a frozen dataclass: the queue makes one per record read, and
    a tuple is built in a fifth of the time (``_make`` from columns, no ``__init__``).
    """

    seq: int
    """Position in its output's queue; strictly increasing in arrival order."""
    record_id: str
    """The record's deterministic id (dedup key)."""
    body: bytes
    """The record's JSON object, exactly as it goes into a request body."""
    queued_at: float
    """Unix time at which it was durably stored."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request to a receiver, independent of the protocol that will carry it."""

    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    method: str = "POST"

    def __repr__(self) -> str:
        # Headers carry the license key and API key: never show them.
        return f"HttpRequest({self.method} {self.url}, {len(self.body)} bytes)"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A receiver's answer."""

    status: int
    headers: Mapping[str, str]
    """Header names in lower case."""
    body: bytes
    protocol: Protocol


class TransportError(Exception):
    """The request did not get an HTTP response (no status code to act on).

    ``reason`` is a short stable code for metrics and logs, e.g. ``handshake_timeout``,
    ``path_lost``, ``connection_lost``, ``tls_verify_failed``, ``connect_failed``,
    ``request_timeout``.
    A transport error over HTTP/3 is the only reason to fall back to HTTP/1.1.
    """

    def __init__(self, reason: str, detail: str, *, protocol: Protocol) -> None:
        super().__init__(f"{protocol} transport error ({reason}): {detail}")
        self.reason = reason
        self.detail = detail
        self.protocol = protocol


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """How the shipper verifies receivers and, optionally, authenticates itself."""

    ca_file: str | None = None
    """CA bundle for verifying the receiver; None = the system trust store."""
    cert_file: str | None = None
    """Client certificate for mutual TLS (with ``key_file``)."""
    key_file: str | None = None
    insecure_skip_verify: bool = False
    """Skip certificate verification. Only by explicit operator choice; logged and exported."""


class Transport(TypingProtocol):
    """One protocol's client. Implementations translate every lower-level failure into
    `TransportError`; an HTTP status, whatever it is, is a normal `HttpResponse`."""

    protocol: Protocol

    async def send(self, request: HttpRequest, *, timeout: float) -> HttpResponse: ...

    async def check(self, url: str) -> None:
        """Reach the receiver without sending a request (connect, handshake); raise
        `TransportError` when that fails. Used while an output is down."""
        ...

    async def aclose(self) -> None: ...
