"""The values that cross the boundary between the network adapters and :class:`ReceiverCore`.

An adapter turns whatever arrived (an h11 request, an HTTP/3 stream) into a :class:`Request`,
hands it to the core together with the current time, and carries out the returned action:
:class:`Respond` or :class:`CloseConnection`. Neither side knows the other's internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

Protocol = Literal["http/3", "http/1.1"]
"""How a request arrived. Plain HTTP and HTTP over TLS are both ``http/1.1`` (see ``tls``)."""

HTTP3: Final = "http/3"
HTTP11: Final = "http/1.1"
PROTOCOLS: Final[tuple[Protocol, ...]] = (HTTP3, HTTP11)


@dataclass(frozen=True)
class Request:
    """One complete HTTP request, as the core sees it.

    Attributes:
        method: The request method, upper case (``POST``).
        target: The request target: path plus optional query (``/api/v1/records?kind=logs``).
        headers: Header fields with lower-cased names. Repeated fields are joined with ``", "``
            by the adapter, as RFC 9110 section 5.3 allows.
        body: The body as received (still content-encoded). An adapter stores at most
            ``max_body_bytes + 1`` bytes, so that the core can tell "too large" from "at the limit".
        protocol: ``"http/3"`` or ``"http/1.1"``.
        tls: Whether the request came over TLS (always true for HTTP/3).
    """

    method: str
    target: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    protocol: Protocol = HTTP11
    tls: bool = False


@dataclass(frozen=True)
class Respond:
    """Send this response, after waiting ``delay_s`` seconds (fault injection)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    delay_s: float = 0.0

    def header(self, name: str) -> str | None:
        """Return the first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


@dataclass(frozen=True)
class CloseConnection:
    """Drop the connection without answering, after waiting ``delay_s`` seconds.

    For HTTP/1.1 the adapter closes the TCP connection; for HTTP/3 it closes the whole QUIC
    connection, so the client sees a transport error rather than an HTTP status.
    """

    delay_s: float = 0.0


Action = Respond | CloseConnection
"""What an adapter must do with a request."""
