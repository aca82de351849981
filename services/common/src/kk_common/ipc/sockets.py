"""asyncio adapters over ZeroMQ for the envelope (the only IO in ``kk_common.ipc``).

Socket choices and why:

* Batches go DEALER (producer, connects) -> ROUTER (shipper, binds). The DEALER sets
  ``ZMQ_IMMEDIATE`` so nothing queues towards a shipper that is not connected, and
  sends without blocking: an unsent batch stays in `PendingBatches` and goes out on
  reconnect or at its re-send deadline. Backpressure is the pending window, never a
  blocked socket.
* Telemetry goes PUB (connects) -> SUB (health, binds). PUB drops when nobody listens;
  that is acceptable only because telemetry is replaced by the next sample.
* Bound socket files are mode 0660: the pod's containers may run as different users but
  share a group (the pod's ``fsGroup``, which also owns the ``emptyDir`` they live in, so
  new files get its group), and nobody else on the node may connect: a foreign process
  could otherwise inject records under the license key, or answer ``stored`` for data no
  shipper has. Binding replaces a socket file only when nothing listens on it (left by a
  killed predecessor); a live listener, or a path that is not a socket, is refused with
  `IpcEndpointInUse` rather than silently taken over.
* Every receiving socket has a maximum message size, so a peer cannot make it allocate
  without bound: acks and telemetry are small; record batches are bounded by
  `MAX_BATCH_MESSAGE_BYTES`.
* The telemetry publisher reconnects with backoff (0.5 s doubling to 10 s): without a
  health container it would otherwise retry its connect ten times a second forever.

Errors reading a message are counted in ``refused`` (by reason) and logged; they never
end a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from kk_common.envelope import (
    Ack,
    AckStatus,
    EncodedRecords,
    EnvelopeError,
    RecordBatch,
    Telemetry,
    decode,
    encode,
    from_record_batch,
)
from kk_common.ipc.paths import IpcEndpointInUse
from kk_common.ipc.pending import PendingBatch, PendingBatches
from kk_common.jsonlog import log_event
from kk_common.redact import Redactor

__all__ = [
    "BatchReceiver",
    "BatchSender",
    "IncomingBatch",
    "TelemetryPublisher",
    "TelemetrySubscriber",
]

_log = logging.getLogger("kk.ipc")

AckHandler = Callable[[Ack, PendingBatch], None]


def _socket_path(endpoint: str) -> str:
    if not endpoint.startswith("ipc://"):
        raise ValueError(f"expected an ipc:// endpoint, got {endpoint!r}")
    return endpoint[len("ipc://") :]


SOCKET_FILE_MODE = 0o660
"""Owner and group (the pod's fsGroup): the pod's containers, nobody else on the node."""

MAX_ACK_MESSAGE_BYTES = 64 * 1024
MAX_TELEMETRY_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_BATCH_MESSAGE_BYTES = 256 * 1024 * 1024
"""Largest record batch frame the shipper reads. A bigger message closes the sender's
connection (ZeroMQ's rule), so producers must stay far below it; the logs service's batches
are bounded by ``batch_max_records`` and the receiver's message limit."""


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file nobody listens on; refuse anything else that is at ``path``."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise IpcEndpointInUse(
            f"IPC path {path!r} exists and is not a socket; refusing to replace it "
            "(check agent.ipc_dir / KILLKRILL_IPC_DIR)"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        # Left by a killed predecessor: binding over it would fail or, worse, leave
        # peers connected to nothing.
        os.unlink(path)
        return
    except OSError as exc:
        raise IpcEndpointInUse(f"IPC socket {path!r} cannot be checked: {exc}") from exc
    finally:
        probe.close()
    raise IpcEndpointInUse(
        f"another process is listening on IPC socket {path!r} (a second shipper or health "
        "container on the same agent.ipc_dir?); refusing to take it over"
    )


def _bind_shared(sock: zmq.Socket, endpoint: str) -> None:
    """Bind ``sock`` at ``endpoint`` for the pod's containers (see the module doc).

    On failure ``sock`` is closed: an open socket would keep its context from terminating.
    """
    path = _socket_path(endpoint)
    try:
        _clear_stale_socket(path)
        sock.bind(endpoint)
        os.chmod(path, SOCKET_FILE_MODE)
    except BaseException:
        sock.close(linger=0)
        raise


def _send_nowait(sock: zmq.asyncio.Socket, frames: list[bytes]) -> bool:
    """Send without waiting; False when ZeroMQ would have to block (zmq.Again).

    pyzmq's asyncio sockets report a NOBLOCK failure through the returned future,
    which is already complete, instead of raising.
    """
    future = sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
    if future.done() and future.exception() is not None:
        if isinstance(future.exception(), zmq.Again):
            return False
        future.result()  # anything else is a real error: raise it
    return True


def _count_refused(refused: Counter[str], exc: EnvelopeError, endpoint: str) -> None:
    refused[exc.reason] += 1
    log_event(
        _log,
        logging.ERROR,
        "ipc_message_refused",
        reason=exc.reason,
        error=str(exc),
        endpoint=endpoint,
        refused_total=refused[exc.reason],
    )


class BatchSender:
    """A producer's end: sends `RecordBatch`es and keeps them until acknowledged.

    Run `run` as a task; call `send` for each batch. `send` waits while the pending
    window is full, which is how a slow or full shipper slows the producer down.
    ``on_ack`` is called for every first ``stored`` acknowledgement of a batch, with the
    kept batch (its ``context`` is what the producer passed to `send`). ``on_refused`` is
    called when the shipper answers that it will not store a batch; the batch stays kept
    (see `PendingBatches.refused`).
    """

    def __init__(
        self,
        context: zmq.asyncio.Context,
        endpoint: str,
        *,
        pending: PendingBatches,
        on_ack: AckHandler,
        on_refused: AckHandler | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._endpoint = endpoint
        self._pending = pending
        self._on_ack = on_ack
        self._on_refused = on_refused
        self._clock = clock
        self._room = asyncio.Event()
        self._room.set()
        self._work = asyncio.Event()
        self.refused: Counter[str] = Counter()
        self.resent = 0
        self.connected = False
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_ACK_MESSAGE_BYTES)
        # EVENT_CONNECTED comes before the ZMTP handshake; with IMMEDIATE the pipe only
        # accepts messages once the handshake has succeeded, so that is the moment to
        # re-send.
        self._monitor = sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
        )
        sock.connect(endpoint)
        self._sock = sock

    @property
    def pending(self) -> PendingBatches:
        return self._pending

    async def send(self, batch: RecordBatch | EncodedRecords, context: Any = None) -> None:
        """Send ``batch``, waiting first while the pending window is full."""
        while not self._pending.has_room():
            self._room.clear()
            await self._room.wait()
        frames = encode(batch)
        self._pending.sent(
            batch.batch_id,
            frames,
            records=len(batch),
            now=self._clock(),
            context=context,
        )
        # When not connected (IMMEDIATE) or the pipe is full the batch is not sent
        # now; it stays pending and goes out on reconnect or at its deadline.
        _send_nowait(self._sock, frames)
        self._work.set()

    def _resend(self, batches: list[PendingBatch]) -> None:
        for batch in batches:
            if _send_nowait(self._sock, batch.frames):
                self.resent += 1

    def _handle_reply(self, frames: list[bytes]) -> None:
        try:
            message = decode(frames)
        except EnvelopeError as exc:
            _count_refused(self.refused, exc, self._endpoint)
            return
        if not isinstance(message, Ack):
            _count_refused(
                self.refused, EnvelopeError(f"expected an ack, got {message.type}"), self._endpoint
            )
            return
        if message.status is not AckStatus.STORED:
            refused = self._pending.refused(message, self._clock())
            if refused is not None and self._on_refused is not None:
                self._on_refused(message, refused)
            return
        kept = self._pending.acknowledged(message)
        if kept is not None:
            self._on_ack(message, kept)
            self._room.set()

    def _handle_monitor(self, frames: list[bytes]) -> None:
        event = parse_monitor_message(frames)["event"]
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.connected = True
            self._resend(self._pending.reconnected(self._clock()))
            log_event(_log, logging.INFO, "ipc_connected", endpoint=self._endpoint)
        elif event == zmq.EVENT_DISCONNECTED:
            self.connected = False
            log_event(_log, logging.WARNING, "ipc_disconnected", endpoint=self._endpoint)

    async def run(self) -> None:
        """Receive acknowledgements and re-send what is due, until cancelled."""
        poller = zmq.asyncio.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        while True:
            deadline = self._pending.next_deadline()
            timeout_ms = None if deadline is None else max(0.0, deadline - self._clock()) * 1000
            # A new batch may set a deadline earlier than the one we sleep towards.
            self._work.clear()
            poll = asyncio.ensure_future(poller.poll(timeout_ms))
            woken = asyncio.ensure_future(self._work.wait())
            try:
                await asyncio.wait({poll, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
            if not poll.done():
                poll.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poll
                continue
            for sock, _ in poll.result():
                if sock is self._sock:
                    self._handle_reply(await self._sock.recv_multipart())
                else:
                    self._handle_monitor(await self._monitor.recv_multipart())
            self._resend(self._pending.due(self._clock()))

    def close(self) -> None:
        """Close the sockets; pending batches stay in `pending` for the caller."""
        with contextlib.suppress(zmq.ZMQError):
            self._sock.disable_monitor()
        self._monitor.close(linger=0)
        self._sock.close(linger=0)


@dataclass(frozen=True, slots=True)
class IncomingBatch:
    """A batch as the shipper received it, with the peer to acknowledge.

    A v1 `RecordBatch` from a previous producer arrives already converted
    (`from_record_batch`), so the shipper handles one form.
    """

    peer: bytes
    batch: EncodedRecords


class BatchReceiver:
    """The shipper's end: receives `RecordBatch`es and sends `Ack`s back."""

    def __init__(self, context: zmq.asyncio.Context, endpoint: str) -> None:
        self._endpoint = endpoint
        self.refused: Counter[str] = Counter()
        sock = context.socket(zmq.ROUTER)
        # Acks still queued at shutdown get a moment to leave; a lost ack only costs a
        # re-send, which the shipper answers again.
        sock.setsockopt(zmq.LINGER, 1000)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_BATCH_MESSAGE_BYTES)
        _bind_shared(sock, endpoint)
        self._sock = sock

    async def receive(self) -> IncomingBatch:
        """The next readable batch; unreadable messages are counted and skipped."""
        while True:
            peer, *frames = await self._sock.recv_multipart()
            try:
                message = decode(frames)
            except EnvelopeError as exc:
                _count_refused(self.refused, exc, self._endpoint)
                continue
            if isinstance(message, EncodedRecords):
                return IncomingBatch(peer=peer, batch=message)
            if isinstance(message, RecordBatch):
                return IncomingBatch(peer=peer, batch=from_record_batch(message))
            _count_refused(
                self.refused, EnvelopeError(f"expected records, got {message.type}"), self._endpoint
            )

    def acknowledge(self, incoming: IncomingBatch, ack: Ack) -> None:
        """Send ``ack`` to the producer of ``incoming`` (dropped if it went away)."""
        if not _send_nowait(self._sock, [incoming.peer, *encode(ack)]):
            log_event(_log, logging.WARNING, "ipc_ack_not_sent", batch_id=ack.batch_id)

    def close(self) -> None:
        self._sock.close()


class TelemetryPublisher:
    """Publishes `Telemetry` to the health container; drops when nobody listens.

    ``secrets`` (the license and API keys) are redacted, in every form, from the status
    detail and problems before they leave: those carry error texts from libraries and
    receivers, and the health container shows them on ``/ready`` and ``/status``.
    """

    def __init__(
        self, context: zmq.asyncio.Context, endpoint: str, *, secrets: Iterable[str] = ()
    ) -> None:
        self._redact = Redactor(secrets)
        sock = context.socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 100)
        sock.setsockopt(zmq.RECONNECT_IVL, 500)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 10_000)
        sock.connect(endpoint)
        self._sock = sock
        self.dropped = 0

    def publish(self, telemetry: Telemetry) -> None:
        if self._redact:
            status = telemetry.status
            telemetry = replace(
                telemetry,
                status=replace(
                    status,
                    detail=self._redact(status.detail),
                    problems=tuple(self._redact(problem) for problem in status.problems),
                ),
            )
        if not _send_nowait(self._sock, encode(telemetry)):
            self.dropped += 1

    def close(self) -> None:
        self._sock.close(linger=0)


class TelemetrySubscriber:
    """The health container's end of the telemetry channel."""

    def __init__(self, context: zmq.asyncio.Context, endpoint: str) -> None:
        self._endpoint = endpoint
        self.refused: Counter[str] = Counter()
        sock = context.socket(zmq.SUB)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_TELEMETRY_MESSAGE_BYTES)
        _bind_shared(sock, endpoint)
        self._sock = sock

    async def receive(self) -> Telemetry:
        """The next readable telemetry message; others are counted and skipped."""
        while True:
            frames = await self._sock.recv_multipart()
            try:
                message = decode(frames)
            except EnvelopeError as exc:
                _count_refused(self.refused, exc, self._endpoint)
                continue
            if isinstance(message, Telemetry):
                return message
            _count_refused(
                self.refused,
                EnvelopeError(f"expected telemetry, got {message.type}"),
                self._endpoint,
            )

    def close(self) -> None:
        self._sock.close()
