"""HTTP/3 transport: one long-lived QUIC connection (aioquic) carrying concurrent requests.

Connection lifecycle
--------------------
``H3Transport`` holds at most one QUIC connection to the receiver. Nothing happens at
construction; the first :meth:`H3Transport.send` starts the handshake, and every later send
reuses the connection, each request on its own bidirectional stream (RFC 9114 section 4.1),
at most ``max_streams`` at once. The connection is replaced only after it has died: the
receiver closed it, it idled out (``idle_timeout``), its socket failed, or a request timed
out without the receiver acknowledging it (the path is dead). The next send after
that starts a new handshake. Concurrent sends that find no connection share one handshake.

Why the deadlines and wake-ups exist
------------------------------------
The transport follows the shape of aioquic's ``examples/http3_client.py`` (a
``QuicConnectionProtocol`` subclass owning an ``H3Connection``, one future per stream), which
is written for a one-shot command-line tool and has gaps that matter to a long-running agent:

* ``aioquic.asyncio.connect()`` waits for the handshake without a deadline. aioquic uses an
  unconnected UDP socket and ignores ICMP, so a blocked UDP port or a firewall DROP looks
  exactly like a slow server: the attempt ends only at the idle timeout (60 s by default).
  Here the address lookup and handshake share one ``handshake_timeout``, reported as
  ``handshake_timeout`` so the delivery logic can fall back to HTTP/1.1 at once.
* The example's request futures are only ever resolved by a complete response. When the
  connection terminates (``ConnectionTerminated``) or the socket goes away
  (``connection_lost``), they wait forever. Here every pending request, and every caller
  still waiting for a stream slot, is woken with ``connection_lost`` as soon as the
  connection dies. Each request also has its own deadline (slot + send + whole response).
* A path that goes dark after the handshake (UDP dropped, the receiver killed) looks to QUIC
  like silence, noticed only at the idle timeout, so every request until then would wait for
  its full request timeout. Here a watchdog runs while requests are in flight: when nothing
  has been heard from the receiver for a quarter of ``path_timeout`` it sends a QUIC PING
  (which a live peer acknowledges within its ack delay, even while it is still working on a
  request), and when nothing has been heard for ``path_timeout`` the connection is abandoned
  and every waiting request fails with ``path_lost`` at once, so the caller can resend over
  HTTP/1.1 within seconds. (A request that times out without the receiver having
  acknowledged it also drops the connection.)
* A failed handshake surfaces as ``ConnectionError()`` with no message; the actual reason
  (e.g. "unable to get local issuer certificate") is only in the ``ConnectionTerminated``
  event, so the protocol records that event and the transport reports it as
  ``tls_verify_failed`` or ``handshake_failed``.
* Futures failed after their waiter is gone print "Future exception was never retrieved"; the
  code below marks such exceptions as retrieved and cancels aioquic's own handshake waiter
  when it abandons an attempt.
* ``connect()`` always opens an AF_INET6 dual-stack socket, which fails on nodes with IPv6
  disabled; this transport opens a socket of the resolved address's own family.

Every failure leaves this module as :class:`~kk_shipper.types.TransportError` with one of the
reasons in :data:`REASONS`. Messages never include request headers: they carry the license key.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import ErrorCode, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamReset
from aioquic.quic.packet import QuicErrorCode
from aioquic.tls import AlertDescription

from ..types import (
    MAX_RESPONSE_BODY_BYTES,
    HttpRequest,
    HttpResponse,
    Protocol,
    TlsSettings,
    TransportError,
)
from .tls import quic_configuration

__all__ = ["REASONS", "H3Transport"]

REASONS: Final = (
    "handshake_timeout",
    "path_lost",
    "tls_verify_failed",
    "handshake_failed",
    "connect_failed",
    "connection_lost",
    "stream_reset",
    "request_timeout",
    "protocol_error",
    "closed",
)
"""Every ``TransportError.reason`` this transport raises."""

# TLS alerts that mean "a certificate did not verify", on either side (RFC 8446 section 6.2).
_CERTIFICATE_ALERTS: Final = frozenset(
    {
        AlertDescription.bad_certificate,
        AlertDescription.unsupported_certificate,
        AlertDescription.certificate_revoked,
        AlertDescription.certificate_expired,
        AlertDescription.certificate_unknown,
        AlertDescription.unknown_ca,
        AlertDescription.certificate_required,
    }
)

# RFC 9114 section 4.2: connection-specific fields make an HTTP/3 request malformed, and
# content-length / host are derived from the request itself.
_DROPPED_HEADERS: Final = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}
    | {"host", "content-length"}
)

_H3 = Protocol.H3


def _error(reason: str, detail: str) -> TransportError:
    return TransportError(reason, detail, protocol=_H3)


def _describe_close(event: ConnectionTerminated) -> tuple[str, str]:
    """``(reason, detail)`` for a connection that ended during the handshake."""
    code = event.error_code
    phrase = event.reason_phrase or "no reason given"
    # A TLS alert travels as a transport close (frame_type set) with CRYPTO_ERROR + alert
    # (RFC 9001 section 4.8); application closes (H3 codes, same numeric range) have none.
    if event.frame_type is not None and 0x100 <= code <= 0x1FF:
        alert = code - QuicErrorCode.CRYPTO_ERROR
        try:
            name = AlertDescription(alert).name
        except ValueError:
            name = str(alert)
        detail = f"{phrase} (TLS alert {name}, QUIC error {code:#x})"
        if alert in _CERTIFICATE_ALERTS:
            return "tls_verify_failed", detail
        return "handshake_failed", detail
    return "handshake_failed", f"{phrase} (QUIC error {code:#x})"


@dataclass
class _PendingStream:
    """One request's response as it arrives."""

    future: asyncio.Future[tuple[int, dict[str, str], bytes]]
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    headers_done: bool = False


class _H3ClientProtocol(QuicConnectionProtocol):
    """One QUIC connection: turns H3 events into completed response futures.

    Differs from aioquic's example client in that it fails every pending future when the
    connection ends, keeps the termination event for error reporting, and can be abandoned
    without waiting for the closing period.
    """

    def __init__(self, quic: QuicConnection, *, path_timeout: float, **kwargs: Any) -> None:
        super().__init__(quic, **kwargs)
        self._h3 = H3Connection(quic)
        self._streams: dict[int, _PendingStream] = {}
        self.termination: ConnectionTerminated | None = None
        self.lost: TransportError | None = None
        """Set once the connection is unusable; the error pending requests got."""
        self._socket_closed = False
        self._path_timeout = path_timeout
        self._ping_interval = path_timeout / 4
        self._last_heard = self._loop.time()
        self._watch_started = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self._heard_waiters: list[asyncio.Future[None]] = []
        self._ping_ids = itertools.count(1)

    # aioquic hooks

    def quic_event_received(self, event: QuicEvent) -> None:
        """Route QUIC events through the H3 layer; fail everything on termination."""
        if isinstance(event, ConnectionTerminated):
            self.termination = event
            phrase = event.reason_phrase or "no reason given"
            self._fail_all(
                _error(
                    "connection_lost",
                    f"QUIC connection closed: {phrase} (error {event.error_code:#x})",
                )
            )
            # aioquic's connect() closes the socket when its context exits; this connection
            # outlives any one call, so it closes the socket itself once QUIC is done.
            if self._transport is not None:
                self._transport.close()
            return
        if isinstance(event, StreamReset):
            pending = self._streams.pop(event.stream_id, None)
            if pending is not None and not pending.future.done():
                pending.future.set_exception(
                    _error(
                        "stream_reset", f"receiver reset the stream (error {event.error_code:#x})"
                    )
                )
        for h3_event in self._h3.handle_event(event):
            self._h3_event_received(h3_event)

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        """Anything from the receiver proves the path works (see the watchdog)."""
        self._last_heard = self._loop.time()
        waiters, self._heard_waiters = self._heard_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        super().datagram_received(data, addr)

    def connection_lost(self, exc: Exception | None) -> None:
        """The UDP socket closed (by us or by an OS error): nothing more can arrive."""
        self._socket_closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._stop_watchdog()
        detail = f"UDP socket closed: {exc}" if exc else "UDP socket closed"
        self._fail_all(_error("connection_lost", detail))
        self._closed.set()

    def transmit(self) -> None:
        """Send pending datagrams, unless the socket is gone (a late timer would log noise)."""
        if not self._socket_closed:
            super().transmit()

    # requests

    @property
    def usable(self) -> bool:
        """True while new requests can go on this connection."""
        return self.lost is None and self._connected

    def start_request(
        self,
        method: str,
        authority: str,
        path: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
    ) -> tuple[int, asyncio.Future[tuple[int, dict[str, str], bytes]]]:
        """Open a stream, send the whole request, and return the stream id and its future.

        Raises:
            TransportError: the connection is gone, or aioquic refused the request.
        """
        if self.lost is not None:
            raise _error(self.lost.reason, self.lost.detail)
        try:
            fields = [
                (b":method", method.encode("ascii")),
                (b":scheme", b"https"),
                (b":authority", authority.encode("ascii")),
                (b":path", path.encode("ascii")),
            ]
            for name, value in headers:
                key = name.strip().lower()
                if key not in _DROPPED_HEADERS:
                    fields.append((key.encode("ascii"), value.encode("latin-1")))
        except UnicodeError as exc:
            # Say which part failed, never the value (it may be a credential).
            raise _error("protocol_error", "a header or the target is not encodable") from exc
        fields.append((b"content-length", str(len(body)).encode("ascii")))
        stream_id = self._quic.get_next_available_stream_id()
        future: asyncio.Future[tuple[int, dict[str, str], bytes]] = self._loop.create_future()
        self._streams[stream_id] = _PendingStream(future)
        try:
            self._h3.send_headers(stream_id, fields, end_stream=not body)
            if body:
                self._h3.send_data(stream_id, body, end_stream=True)
        except Exception as exc:
            # aioquic's H3 layer raises its own exception types (FrameUnexpected, ...) for
            # states it cannot send in; the seam turns them into a TransportError.
            self._streams.pop(stream_id, None)
            raise _error("protocol_error", f"cannot send request: {type(exc).__name__}") from exc
        self.transmit()
        self._start_watchdog()
        return stream_id, future

    async def alive(self) -> bool:
        """Whether the receiver answers on this connection: heard from lately, or a PING
        is acknowledged (anything heard counts) within ``path_timeout``."""
        if self.lost is not None:
            return False
        if self._loop.time() - self._last_heard < self._ping_interval:
            return True
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._heard_waiters.append(waiter)
        self._ping()
        try:
            async with asyncio.timeout(self._path_timeout):
                await waiter
        except TimeoutError:
            return False
        return self.lost is None

    def request_delivered(self, stream_id: int) -> bool:
        """True when the receiver acknowledged every byte of the request, FIN included.

        aioquic has no public API for this, so it reads ``QuicConnection._streams`` (checked
        against aioquic 1.7); if that ever changes it answers True, the cautious default.
        """
        streams = getattr(self._quic, "_streams", None)
        stream = streams.get(stream_id) if isinstance(streams, dict) else None
        sender = getattr(stream, "sender", None)
        return sender is None or bool(getattr(sender, "is_finished", True))

    def cancel_request(self, stream_id: int) -> None:
        """Forget a request whose caller gave up, and tell the receiver (RFC 9114 4.1.1)."""
        pending = self._streams.pop(stream_id, None)
        if pending is None or self.lost is not None:
            return
        with contextlib.suppress(Exception):  # best effort: the stream may already be done
            self._quic.reset_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
            self._quic.stop_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
            self.transmit()

    def abandon(self, reason: str, detail: str) -> None:
        """Close now: send CONNECTION_CLOSE once, skip the closing period, close the socket.

        Used after a failed handshake and on a dead path, where waiting 3 PTOs for the peer
        helps nobody.
        """
        self._fail_all(_error(reason, detail))
        self._stop_watchdog()
        if self._connected_waiter is not None:
            # aioquic would later set ConnectionError on it with nobody awaiting it.
            self._connected_waiter.cancel()
            self._connected_waiter = None
        if not self._socket_closed and self._transport is not None:
            with contextlib.suppress(Exception):
                self._quic.close(error_code=ErrorCode.H3_NO_ERROR, reason_phrase="client abandon")
                self.transmit()
            self._transport.close()

    # internals

    def _start_watchdog(self) -> None:
        if self._watchdog is None and self.lost is None:
            self._watch_started = self._loop.time()
            self._watchdog = self._loop.call_later(self._ping_interval, self._watch)

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _watch(self) -> None:
        """While requests wait: PING when the receiver has been quiet, abandon the
        connection when it has been quiet for ``path_timeout``."""
        self._watchdog = None
        if self.lost is not None or self._socket_closed or not self._streams:
            return
        silent_for = self._loop.time() - max(self._last_heard, self._watch_started)
        if silent_for >= self._path_timeout:
            self.abandon(
                "path_lost",
                f"nothing heard from the receiver for {silent_for:.1f}s while "
                f"{len(self._streams)} request(s) waited (QUIC PINGs unanswered)",
            )
            return
        if silent_for >= self._ping_interval:
            self._ping()
        self._watchdog = self._loop.call_later(self._ping_interval, self._watch)

    def _ping(self) -> None:
        if self.lost is None and not self._socket_closed:
            # The id only matters to aioquic's own ping() waiters; any datagram heard counts.
            self._quic.send_ping(next(self._ping_ids))
            self.transmit()

    def _h3_event_received(self, event: H3Event) -> None:
        if not isinstance(event, HeadersReceived | DataReceived):
            return
        pending = self._streams.get(event.stream_id)
        if pending is None:
            return
        if isinstance(event, HeadersReceived):
            if not pending.headers_done:
                pending.headers.extend(event.headers)
                pending.headers_done = True
            # else: trailers (RFC 9114 section 4.1), which carry nothing we use
        else:
            pending.body.extend(event.data)
            if len(pending.body) > MAX_RESPONSE_BODY_BYTES:
                self._refuse_body(event.stream_id, pending)
                return
        if event.stream_ended:
            del self._streams[event.stream_id]
            if not pending.future.done():
                pending.future.set_result(_parse_response(pending))

    def _refuse_body(self, stream_id: int, pending: _PendingStream) -> None:
        """An answer past `MAX_RESPONSE_BODY_BYTES`: fail its request and ask the receiver to
        stop sending (STOP_SENDING); what still arrives on the stream is dropped."""
        del self._streams[stream_id]
        with contextlib.suppress(Exception):  # the stream may already be finished
            self._quic.stop_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
        if not pending.future.done():
            pending.future.set_exception(
                _error(
                    "protocol_error",
                    f"the answer's body goes on past {MAX_RESPONSE_BODY_BYTES:,} bytes "
                    "(a receiver answers with a short JSON object): not read",
                )
            )

    def _fail_all(self, error: TransportError) -> None:
        if self.lost is None:
            self.lost = error
        streams, self._streams = self._streams, {}
        for pending in streams.values():
            if not pending.future.done():
                # One exception object per waiter: tracebacks are attached per raise.
                pending.future.set_exception(_error(self.lost.reason, self.lost.detail))


def _parse_response(pending: _PendingStream) -> tuple[int, dict[str, str], bytes]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in pending.headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    status = headers.pop(":status", "")
    for pseudo in [name for name in headers if name.startswith(":")]:
        del headers[pseudo]
    return (int(status) if status.isdigit() else 0), headers, bytes(pending.body)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a finished future's exception as seen (its waiters may all have gone)."""
    if not future.cancelled():
        future.exception()


class H3Transport:
    """HTTP/3 client for one receiver: a lazily opened, reused QUIC connection.

    Args:
        url_host: Host to connect to (DNS name or IP address).
        port: UDP port.
        server_name: Name for SNI and certificate verification.
        tls: Trust and client-certificate settings.
        handshake_timeout: Deadline for address lookup + QUIC/TLS handshake, in seconds.
        max_streams: Requests in flight at once on the connection; more callers wait.
        idle_timeout: Seconds of silence after which QUIC drops the connection.
        path_timeout: Seconds of silence, while requests wait, after which the path is
            declared lost (``path_lost``); see the module docstring.

    Raises:
        OSError / ssl.SSLError: a TLS file in ``tls`` cannot be read (at construction).
    """

    protocol = Protocol.H3

    def __init__(
        self,
        url_host: str,
        port: int,
        *,
        server_name: str,
        tls: TlsSettings,
        handshake_timeout: float,
        max_streams: int,
        idle_timeout: float = 30.0,
        path_timeout: float = 1.0,
    ) -> None:
        if max_streams < 1:
            raise ValueError("max_streams must be at least 1")
        if path_timeout <= 0:
            raise ValueError("path_timeout must be positive")
        self._path_timeout = path_timeout
        self._host = url_host
        self._port = port
        self._handshake_timeout = handshake_timeout
        self._max_streams = max_streams
        self._configuration = quic_configuration(tls, server_name, idle_timeout=idle_timeout)
        self._slots = asyncio.Semaphore(max_streams)
        self._connection: _H3ClientProtocol | None = None
        self._connecting: asyncio.Task[_H3ClientProtocol] | None = None
        self._closed = False
        self.handshakes = 0
        """Completed QUIC handshakes (connections opened) over this transport's life."""
        self.in_flight = 0
        """Requests currently holding a stream slot."""
        self.peak_in_flight = 0
        """The most requests that were ever in flight at once."""

    async def send(self, request: HttpRequest, *, timeout: float) -> HttpResponse:
        """Send ``request`` and return the complete response.

        A handshake, when one is needed, is bounded by ``handshake_timeout``; after it,
        ``timeout`` bounds waiting for a stream slot, sending and receiving the whole response.

        Raises:
            TransportError: no complete response (see :data:`REASONS`).
        """
        if self._closed:
            raise _error("closed", "transport is closed")
        authority, path = _target(request.url)
        connection = await self._connected()
        stream_id: int | None = None
        future: asyncio.Future[tuple[int, dict[str, str], bytes]] | None = None
        holding_slot = False
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
                holding_slot = True
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                stream_id, future = connection.start_request(
                    request.method, authority, path, request.headers, request.body
                )
                status, headers, body = await future
        except TimeoutError as exc:
            raise self._timed_out(connection, stream_id, timeout) from exc
        finally:
            if holding_slot:
                self.in_flight -= 1
                self._slots.release()
            if future is not None:
                if future.done():
                    _retrieve(future)
                elif stream_id is not None:
                    connection.cancel_request(stream_id)
        if status == 0:
            raise _error("protocol_error", "response without a valid :status")
        return HttpResponse(status=status, headers=headers, body=body, protocol=_H3)

    async def check(self, url: str) -> None:
        """Whether the receiver can be reached over QUIC now, without sending a request: a
        handshake when there is no connection (bounded by ``handshake_timeout``), else a
        PING on the live one (bounded by ``path_timeout``). ``url`` is not used: this
        transport talks to one host and port.

        Raises:
            TransportError: not reachable (see :data:`REASONS`).
        """
        del url
        if self._closed:
            raise _error("closed", "transport is closed")
        connection = await self._connected()
        if await connection.alive():
            return
        if connection is self._connection:
            self._connection = None
        detail = f"no answer to a QUIC PING within {self._path_timeout:g}s"
        connection.abandon("path_lost", detail)
        raise _error("path_lost", f"{self._host}:{self._port}: {detail}")

    async def aclose(self) -> None:
        """Close the connection; pending requests fail with ``closed``. Idempotent."""
        self._closed = True
        connecting, self._connecting = self._connecting, None
        if connecting is not None and not connecting.done():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.abandon("closed", "transport is closed")

    # internals

    async def _connected(self) -> _H3ClientProtocol:
        """The live connection, opening one (shared by concurrent callers) when needed."""
        connection = self._connection
        if connection is not None and connection.usable:
            return connection
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.create_task(self._connect())
            # Each caller awaits through shield(); if they all give up, nobody would read
            # the task's exception.
            self._connecting.add_done_callback(_retrieve)
        attempt = self._connecting
        try:
            return await asyncio.shield(attempt)
        except TransportError as exc:
            # Concurrent callers share the attempt's outcome; each gets its own exception.
            raise _error(exc.reason, exc.detail) from exc.__cause__
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if attempt.cancelled() and current is not None and not current.cancelling():
                # aclose() cancelled the shared attempt; this caller was not cancelled.
                raise _error("closed", "transport closed during the handshake") from None
            raise

    async def _connect(self) -> _H3ClientProtocol:
        loop = asyncio.get_running_loop()
        target = f"{self._host}:{self._port}"
        protocol: _H3ClientProtocol | None = None
        resolved = False
        try:
            async with asyncio.timeout(self._handshake_timeout):
                infos = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_DGRAM)
                resolved = True
                family, _, _, _, address = infos[0]
                sock = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    # An ephemeral client port on any local address, as connect() does.
                    wildcard = ("::", 0, 0, 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)  # noqa: S104
                    sock.bind(wildcard)
                    connection = QuicConnection(configuration=self._configuration)
                    _, protocol = await loop.create_datagram_endpoint(
                        lambda: _H3ClientProtocol(connection, path_timeout=self._path_timeout),
                        sock=sock,
                    )
                except BaseException:
                    sock.close()
                    raise
                protocol.connect(address)
                await protocol.wait_connected()
        except TimeoutError as exc:
            if protocol is not None:
                protocol.abandon("handshake_timeout", "handshake abandoned")
            why = "UDP blocked or nothing listening" if resolved else "name lookup did not finish"
            raise _error(
                "handshake_timeout",
                f"no QUIC handshake with {target} within {self._handshake_timeout:g}s ({why})",
            ) from exc
        except socket.gaierror as exc:
            raise _error("connect_failed", f"cannot resolve {self._host}: {exc.strerror}") from exc
        except ConnectionError as exc:
            # aioquic's bare ConnectionError(): the reason is in the termination event.
            if protocol is None:
                raise _error("connect_failed", f"{target}: {exc!r}") from exc
            termination = protocol.termination
            reason, detail = (
                _describe_close(termination)
                if termination is not None
                else ("handshake_failed", "connection closed during the handshake")
            )
            protocol.abandon(reason, detail)
            raise _error(reason, f"{target}: {detail}") from exc
        except (OSError, ValueError) as exc:
            if protocol is not None:
                protocol.abandon("connect_failed", str(exc))
            raise _error("connect_failed", f"{target}: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            if protocol is not None:
                protocol.abandon("connect_failed", "connection attempt cancelled")
            raise
        self._connection = protocol
        self.handshakes += 1
        return protocol

    def _timed_out(
        self,
        connection: _H3ClientProtocol,
        stream_id: int | None,
        timeout: float,
    ) -> TransportError:
        if stream_id is None:
            return _error(
                "request_timeout",
                f"no stream slot free within {timeout:g}s ({self._max_streams} in flight)",
            )
        if not connection.request_delivered(stream_id) and connection is self._connection:
            # The receiver did not even acknowledge the request: the path is dead (or too
            # slow to be useful), and QUIC would only notice at the idle timeout, failing
            # every request until then. Drop the connection so the next send handshakes
            # afresh, and fails fast with handshake_timeout if UDP is blocked. (A slow
            # answer to a delivered request, by contrast, keeps the connection.)
            connection.abandon("connection_lost", "request not acknowledged; path dead")
            self._connection = None
            return _error(
                "request_timeout",
                f"no response within {timeout:g}s and the request was never acknowledged; "
                "connection dropped",
            )
        return _error("request_timeout", f"no complete response within {timeout:g}s")


def _target(url: str) -> tuple[str, str]:
    """``(authority, path)`` for a request URL (RFC 9114 section 4.3.1)."""
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when out of range
    except ValueError as exc:
        raise _error("protocol_error", "request URL is invalid") from exc
    if parts.scheme != "https" or not parts.hostname:
        raise _error("protocol_error", "HTTP/3 needs an https:// request URL with a host")
    host = parts.hostname
    authority = f"[{host}]" if ":" in host else host
    if port is not None:
        authority += f":{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return authority, path
