"""HTTP/1.1 transport: an httpx keep-alive pool, with failures translated at the seam.

This is the fallback when QUIC is unavailable, and the only transport for ``http://``
receivers. httpx's per-phase timeouts (connect/read/write/pool) do not bound a request as a
whole, so ``send`` puts one overall deadline around it; only the connect phase also has its
own, shorter limit (``connect_timeout``) so an unreachable receiver fails fast as
``connect_failed``. Proxies and certificate settings from the environment are ignored
(``trust_env=False``): the shipper's configuration is the only source of settings.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Final
from urllib.parse import urlsplit

import httpx

from ..types import (
    MAX_RESPONSE_BODY_BYTES,
    HttpRequest,
    HttpResponse,
    Protocol,
    TlsSettings,
    TransportError,
)
from .tls import ssl_context

__all__ = ["REASONS", "H1Transport"]

REASONS: Final = (
    "connect_failed",
    "tls_verify_failed",
    "handshake_failed",
    "request_timeout",
    "connection_lost",
    "protocol_error",
    "closed",
)
"""Every ``TransportError.reason`` this transport raises."""

_H1 = Protocol.H1


def _error(reason: str, detail: str) -> TransportError:
    return TransportError(reason, detail, protocol=_H1)


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ssl error somewhere under an httpx exception, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _where(url: str) -> str:
    """``scheme://host:port/path`` for messages: no query and no userinfo."""
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if parts.port is not None:
            netloc += f":{parts.port}"
    except ValueError:
        return "(invalid URL)"
    return f"{parts.scheme}://{netloc}{parts.path}"


async def _read_body(response: httpx.Response, url: str) -> bytes:
    """The answer's (decoded) body, refused past `MAX_RESPONSE_BODY_BYTES`: leaving the
    stream unread closes the connection, so the rest is never received."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BODY_BYTES:
        raise _too_large(url, f"declares {int(declared):,} bytes")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_RESPONSE_BODY_BYTES:
            raise _too_large(url, "goes on")
    return bytes(body)


def _too_large(url: str, how: str) -> TransportError:
    return _error(
        "protocol_error",
        f"{_where(url)}: the answer's body {how} past {MAX_RESPONSE_BODY_BYTES:,} bytes "
        "(a receiver answers with a short JSON object): not read",
    )


def _check_url(url: str) -> None:
    """Reject what httpx would fail on with a non-httpx exception (e.g. OverflowError for
    port 99999 from the socket layer)."""
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when out of range
    except ValueError as exc:
        raise _error("protocol_error", f"{_where(url)}: invalid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise _error("protocol_error", f"{_where(url)}: not an http(s) URL with a host")


def _translate(exc: httpx.HTTPError, url: str, timeout: float) -> TransportError:
    """Map an httpx exception to a TransportError (never mentioning request headers)."""
    target = _where(url)
    if isinstance(exc, httpx.ConnectTimeout):
        return _error("connect_failed", f"{target}: TCP/TLS connect timed out")
    if isinstance(exc, httpx.ConnectError):
        cause = _ssl_cause(exc)
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _error(
                "tls_verify_failed",
                f"{target}: {cause.verify_message or cause.reason or cause}",
            )
        if cause is not None:
            return _error("handshake_failed", f"{target}: {cause.reason or cause}")
        return _error("connect_failed", f"{target}: {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return _error("request_timeout", f"{target}: no complete response within {timeout:g}s")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return _error("connection_lost", f"{target}: {type(exc).__name__}: {exc}")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return _error("protocol_error", f"{target}: {exc}")
    return _error("connection_lost", f"{target}: {type(exc).__name__}: {exc}")


class H1Transport:
    """HTTP/1.1 client (plain or TLS) with a keep-alive pool.

    Args:
        tls: Trust and client-certificate settings (used for ``https://`` URLs).
        pool_size: Connections kept open, and the most requests in flight at once.
        connect_timeout: Limit on TCP connect + TLS handshake, in seconds.

    Raises:
        OSError / ssl.SSLError: a TLS file in ``tls`` cannot be read (at construction).
    """

    protocol = Protocol.H1

    def __init__(self, *, tls: TlsSettings, pool_size: int, connect_timeout: float) -> None:
        self._connect_timeout = connect_timeout
        self._ssl_context = ssl_context(tls)
        self._client = httpx.AsyncClient(
            http1=True,
            http2=False,
            verify=self._ssl_context,
            limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size),
            # The overall deadline is send()'s timeout; see the module docstring.
            timeout=httpx.Timeout(None, connect=connect_timeout),
            trust_env=False,
            follow_redirects=False,
        )
        self._closed = False

    async def send(self, request: HttpRequest, *, timeout: float) -> HttpResponse:
        """Send ``request`` and return the complete response.

        ``timeout`` bounds the whole exchange: waiting for a pooled connection, connecting,
        sending and reading the whole body.

        Raises:
            TransportError: no complete response (see :data:`REASONS`).
        """
        if self._closed:
            raise _error("closed", "transport is closed")
        _check_url(request.url)
        # Per-request Timeout: connect keeps its own (shorter) limit; every other phase
        # uses the overall deadline, which httpx turns into ReadTimeout etc.
        connect = min(self._connect_timeout, timeout)
        phases = httpx.Timeout(timeout, connect=connect)
        try:
            async with (
                asyncio.timeout(timeout),
                self._client.stream(
                    request.method,
                    request.url,
                    headers=list(request.headers),
                    content=request.body,
                    timeout=phases,
                ) as response,
            ):
                body = await _read_body(response, request.url)
        except TimeoutError as exc:
            target = _where(request.url)
            raise _error(
                "request_timeout", f"{target}: no complete response within {timeout:g}s"
            ) from exc
        except httpx.HTTPError as exc:
            raise _translate(exc, request.url, timeout) from exc
        except (httpx.InvalidURL, UnicodeError) as exc:
            # Not HTTPError subclasses: a malformed URL, or a header httpx cannot encode
            # (the message names neither header values nor their names).
            raise _error("protocol_error", f"{_where(request.url)}: {type(exc).__name__}") from exc
        return HttpResponse(
            status=response.status_code,
            headers={name.lower(): value for name, value in response.headers.items()},
            body=body,
            protocol=_H1,
        )

    async def check(self, url: str) -> None:
        """Whether ``url``'s host can be reached now, without sending a request: a TCP
        connect plus, for ``https://``, a TLS handshake verified as a request's would be,
        bounded by ``connect_timeout``. The connection is dropped at once.

        Raises:
            TransportError: not reachable (``connect_failed``, ``tls_verify_failed``,
                ``handshake_failed``, ``protocol_error`` for a bad URL, ``closed``).
        """
        if self._closed:
            raise _error("closed", "transport is closed")
        _check_url(url)
        parts = urlsplit(url)
        host = parts.hostname or ""
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        target = _where(url)
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=self._ssl_context if secure else None,
                    server_hostname=host if secure else None,
                )
        except TimeoutError as exc:
            detail = f"{target}: no TCP/TLS connection within {self._connect_timeout:g}s"
            raise _error("connect_failed", detail) from exc
        except ssl.SSLCertVerificationError as exc:
            detail = f"{target}: {exc.verify_message or exc.reason or exc}"
            raise _error("tls_verify_failed", detail) from exc
        except ssl.SSLError as exc:
            raise _error("handshake_failed", f"{target}: {exc.reason or exc}") from exc
        except OSError as exc:
            raise _error("connect_failed", f"{target}: {exc.strerror or exc}") from exc
        writer.transport.abort()  # nothing to say; no need to wait for a TLS goodbye

    async def aclose(self) -> None:
        """Close every pooled connection. Idempotent."""
        self._closed = True
        await self._client.aclose()
