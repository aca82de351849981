"""HTTP/3 adapter: an aioquic QUIC server with H3Connection, without ASGI.

Shaped like aioquic's ``examples/http3_server.py``: one :class:`H3ReceiverProtocol` per QUIC
connection turns H3 events into :class:`~kk_receiver.messages.Request`s and writes the answers.
TLS is part of QUIC (RFC 9001), so there is no plain variant; ALPN is ``h3`` (RFC 9114
section 3.1). A :class:`~kk_receiver.messages.CloseConnection` closes the whole QUIC connection
with H3_INTERNAL_ERROR, which a client sees as a transport error, not an HTTP status.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.h3.connection import H3_ALPN, ErrorCode, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, ProtocolNegotiated, QuicEvent, StreamReset

from .messages import HTTP3, Action, CloseConnection, Request, Respond

log = logging.getLogger(__name__)

Dispatch = Callable[[Request], Action]


@dataclass
class _PendingRequest:
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)


class H3ReceiverProtocol(QuicConnectionProtocol):
    """One QUIC connection: collects request streams and answers them via ``dispatch``."""

    def __init__(self, *args: Any, dispatch: Dispatch, max_body_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._dispatch = dispatch
        self._keep_bytes = max_body_bytes + 1
        self._h3: H3Connection | None = None
        self._pending: dict[int, _PendingRequest] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._terminated = False

    def quic_event_received(self, event: QuicEvent) -> None:
        """Feed QUIC events to the H3 layer; see aioquic's QuicConnectionProtocol."""
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self._h3 = H3Connection(self._quic)
        elif isinstance(event, ConnectionTerminated):
            self._terminated = True
            self._pending.clear()
        elif isinstance(event, StreamReset):
            self._pending.pop(event.stream_id, None)
        if self._h3 is not None:
            for h3_event in self._h3.handle_event(event):
                self._h3_event_received(h3_event)

    def _h3_event_received(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            pending = self._pending.get(event.stream_id)
            if pending is None:
                pending = self._pending[event.stream_id] = _PendingRequest()
                for name, value in event.headers:
                    key = name.decode("ascii").lower()
                    text = value.decode("latin-1")
                    pending.headers[key] = (
                        f"{pending.headers[key]}, {text}" if key in pending.headers else text
                    )
            # else: a trailer section (RFC 9114 section 4.1), which carries nothing we use
        elif isinstance(event, DataReceived):
            pending = self._pending.get(event.stream_id)
            if pending is None:
                return
            if len(pending.body) < self._keep_bytes:
                pending.body += event.data[: self._keep_bytes - len(pending.body)]
        else:
            return
        if event.stream_ended:
            self._request_complete(event.stream_id)

    def _request_complete(self, stream_id: int) -> None:
        pending = self._pending.pop(stream_id, None)
        if pending is None:
            return
        headers = pending.headers
        method = headers.pop(":method", "")
        target = headers.pop(":path", "")
        for pseudo in [name for name in headers if name.startswith(":")]:
            del headers[pseudo]
        if not method or not target:
            # RFC 9114 section 4.3.1: :method and :path are mandatory in a request.
            self._send(stream_id, Respond(status=400, body=b'{"status":"error"}'))
            return
        request = Request(
            method=method,
            target=target,
            headers=headers,
            body=bytes(pending.body),
            protocol=HTTP3,
            tls=True,
        )
        task = asyncio.create_task(self._answer(stream_id, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, stream_id: int, request: Request) -> None:
        try:
            action = self._dispatch(request)
        except Exception:
            log.exception("request handler failed", extra={"fields": {"path": request.target}})
            action = Respond(
                status=500,
                headers=(("content-type", "application/json"),),
                body=b'{"status":"error","error":"receiver bug"}',
            )
        if action.delay_s > 0:
            await asyncio.sleep(action.delay_s)
        if self._terminated:
            return
        if isinstance(action, CloseConnection):
            self.close(
                error_code=ErrorCode.H3_INTERNAL_ERROR,
                reason_phrase="fault injection: connection dropped",
            )
            return
        self._send(stream_id, action)

    def _send(self, stream_id: int, response: Respond) -> None:
        assert self._h3 is not None
        headers = [(b":status", str(response.status).encode())]
        headers += [(k.lower().encode(), v.encode("latin-1")) for k, v in response.headers]
        headers += [
            (b"content-length", str(len(response.body)).encode()),
            (b"server", b"killkrill-reference-receiver"),
        ]
        self._h3.send_headers(stream_id, headers)
        self._h3.send_data(stream_id, response.body, end_stream=True)
        self.transmit()


class H3Server:
    """The HTTP/3 listener: an aioquic :class:`QuicServer` on an already bound UDP socket.

    Args:
        dispatch: Turns a complete request into an action (the core plus a clock).
        max_body_bytes: Bodies are kept up to this size + 1 byte, the rest is dropped.
        cert_file: The server certificate (PEM).
        key_file: Its private key (PEM).
    """

    def __init__(
        self, dispatch: Dispatch, max_body_bytes: int, cert_file: Path, key_file: Path
    ) -> None:
        self._configuration = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
        self._configuration.load_cert_chain(cert_file, key_file)
        self._create_protocol = functools.partial(
            H3ReceiverProtocol, dispatch=dispatch, max_body_bytes=max_body_bytes
        )
        self._server: QuicServer | None = None

    async def start(self, sock: socket.socket) -> None:
        """Start serving on ``sock`` (a bound UDP socket)."""
        loop = asyncio.get_running_loop()
        _, self._server = await loop.create_datagram_endpoint(
            lambda: QuicServer(
                configuration=self._configuration, create_protocol=self._create_protocol
            ),
            sock=sock,
        )

    def close(self) -> None:
        """Close every QUIC connection and stop listening."""
        if self._server is not None:
            self._server.close()
