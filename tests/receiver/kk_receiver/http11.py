"""HTTP/1.1 adapter: h11 over asyncio streams, plain or TLS.

Not uvicorn: fault injection needs full control of the connection, e.g. dropping it after the
request was read and before any byte of the response (``CloseConnection``). Keep-alive,
``Content-Length`` and chunked bodies are h11's job; this module only moves bytes and turns
h11 events into a :class:`~kk_receiver.messages.Request`.
"""

from __future__ import annotations

import asyncio
import http
import logging
import socket
import ssl
from collections.abc import Callable

import h11

from .messages import HTTP11, Action, CloseConnection, Request, Respond

log = logging.getLogger(__name__)

Dispatch = Callable[[Request], Action]
_READ_SIZE = 64 * 1024
_MAX_HEADER_BYTES = 64 * 1024


class Http11Server:
    """Serves :class:`Request`s to ``dispatch`` over HTTP/1.1 on one listening socket.

    Args:
        dispatch: Turns a complete request into an action (the core plus a clock).
        max_body_bytes: Bodies are kept up to this size + 1 byte; the rest is read and dropped,
            so the connection stays usable and the core can answer 413.
        ssl_context: A server-side TLS context, or None for plain HTTP.
        extra_headers: Added to every response (e.g. ``alt-svc`` advertising HTTP/3).
        idle_timeout_s: A connection with no complete request for this long is closed.
    """

    def __init__(
        self,
        dispatch: Dispatch,
        max_body_bytes: int,
        ssl_context: ssl.SSLContext | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
        idle_timeout_s: float = 60.0,
    ) -> None:
        self._dispatch = dispatch
        self._max_body_bytes = max_body_bytes
        self._ssl_context = ssl_context
        self._extra_headers = [(k.encode(), v.encode()) for k, v in extra_headers]
        self._idle_timeout_s = idle_timeout_s
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self, sock: socket.socket) -> None:
        """Start serving on an already bound TCP socket."""
        tls_options = (
            {}
            if self._ssl_context is None
            else {"ssl": self._ssl_context, "ssl_handshake_timeout": 10.0}
        )
        self._server = await asyncio.start_server(self._serve_connection, sock=sock, **tls_options)

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections):
            writer.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._connections.add(writer)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEADER_BYTES)
        try:
            while True:
                request = await self._read_request(conn, reader, writer)
                if request is None:
                    return
                action = self._dispatch_safely(request)
                if action.delay_s > 0:
                    await asyncio.sleep(action.delay_s)
                if isinstance(action, CloseConnection):
                    # Abort (RST), not a graceful close: the client must see a dropped
                    # connection, never a response.
                    writer.transport.abort()
                    return
                await self._send_response(conn, writer, action)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            await self._answer_protocol_error(conn, writer, exc)
        except (TimeoutError, ConnectionError, ssl.SSLError, h11.LocalProtocolError):
            pass  # the peer went away, idled out or broke TLS: nothing to answer
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Request | None:
        method = target = ""
        headers: dict[str, str] = {}
        body = bytearray()
        keep = self._max_body_bytes + 1
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:
                    writer.write(conn.send(h11.InformationalResponse(status_code=100)))
                async with asyncio.timeout(self._idle_timeout_s):
                    data = await reader.read(_READ_SIZE)
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                method = event.method.decode("ascii")
                target = event.target.decode("ascii")
                for name, value in event.headers:
                    key = name.decode("ascii")
                    text = value.decode("latin-1")
                    # RFC 9110 section 5.3: repeated fields combine with commas.
                    headers[key] = f"{headers[key]}, {text}" if key in headers else text
            elif isinstance(event, h11.Data):
                if len(body) < keep:
                    body += event.data[: keep - len(body)]
            elif isinstance(event, h11.EndOfMessage):
                return Request(
                    method=method,
                    target=target,
                    headers=headers,
                    body=bytes(body),
                    protocol=HTTP11,
                    tls=self._ssl_context is not None,
                )
            elif isinstance(event, h11.ConnectionClosed):
                return None
            else:  # PAUSED cannot happen before we answer; anything else is a bug in h11 use
                raise h11.LocalProtocolError(f"unexpected event {event!r}")

    def _dispatch_safely(self, request: Request) -> Action:
        try:
            return self._dispatch(request)
        except Exception:
            log.exception("request handler failed", extra={"fields": {"path": request.target}})
            return Respond(
                status=500,
                headers=(("content-type", "application/json"),),
                body=b'{"status":"error","error":"receiver bug"}',
            )

    async def _send_response(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, response: Respond
    ) -> None:
        headers = [(k.encode(), v.encode("latin-1")) for k, v in response.headers]
        headers += self._extra_headers
        headers += [
            (b"content-length", str(len(response.body)).encode()),
            (b"server", b"killkrill-reference-receiver"),
        ]
        writer.write(
            conn.send(
                h11.Response(
                    status_code=response.status, headers=headers, reason=_reason(response.status)
                )
            )
        )
        writer.write(conn.send(h11.Data(data=response.body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()

    async def _answer_protocol_error(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, exc: h11.RemoteProtocolError
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = b'{"status":"error","error":"malformed HTTP/1.1 request"}'
        try:
            writer.write(
                conn.send(
                    h11.Response(
                        status_code=exc.error_status_hint,
                        headers=[
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"),
                        ],
                        reason=_reason(exc.error_status_hint),
                    )
                )
            )
            writer.write(conn.send(h11.Data(data=body)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
        except (ConnectionError, h11.LocalProtocolError):
            pass


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""
