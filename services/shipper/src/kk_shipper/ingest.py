"""Ingest: record batches from producers into the durable queue, acknowledged once stored.

A batch is acknowledged (`AckStatus.STORED`) only after the queue's transaction has
committed, so a producer that commits its file offsets on the ack never loses a record.
When the queue is full (or locked by another process) the batch is not acknowledged: it is
held in memory (`HeldBatches`) and stored as soon as deliveries make room, and only then
acknowledged. The producer's window stays full meanwhile, which is what pauses its reading,
and opens within a fraction of a second of the space returning. Batches that arrive while
others are held queue up behind them, so producers are served in order. Records the queue
stored before (their positions are covered, see ``storage/coverage.py``) are dropped there
and counted; the batch is still acknowledged, since the records are safe.

Records arrive encoded (`EncodedRecords`) and are stored as the bytes they came in: ingest
never parses or re-encodes a record. What a batch stored is handed to ``on_stored`` as the
queue's runs, so delivery that is caught up takes them from memory instead of reading them
back (and decompressing them) from the file.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from kk_common.envelope import Ack, AckStatus
from kk_common.ipc import BatchReceiver, IncomingBatch
from kk_common.jsonlog import log_event
from kk_shipper.core.held_batches import HeldBatches
from kk_shipper.storage import AppendResult, DurableQueue, QueueBusy, QueueFull
from kk_shipper.telemetry import ShipperMetrics
from kk_shipper.types import Kind, RecordRun

__all__ = ["Ingest", "StorageThread"]

_log = logging.getLogger("kk.shipper.ingest")
T = TypeVar("T")


class StorageThread:
    """Runs every durable-queue call on one dedicated thread.

    SQLite commits wait for fsync; on the event loop that would stall deliveries. One
    thread keeps the calls ordered and the connection single-threaded.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kk-queue")

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(function, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class Ingest:
    """Stores producers' batches and acknowledges them; holds them while the queue is full.

    Each output (stream) has its own hold: when the logs output's share of the queue is
    full, metrics batches are still stored at once.
    """

    def __init__(
        self,
        receiver: BatchReceiver,
        queue: DurableQueue,
        storage: StorageThread,
        *,
        enabled: Collection[Kind],
        on_stored: Callable[[Kind, tuple[RecordRun, ...]], None],
        metrics: ShipperMetrics,
        clock: Callable[[], float],
        monotonic: Callable[[], float] = time.monotonic,
        new_hold: Callable[[], HeldBatches[IncomingBatch]] = HeldBatches,
    ) -> None:
        self._receiver = receiver
        self._queue = queue
        self._storage = storage
        self._enabled = frozenset(enabled)
        self._on_stored = on_stored
        self._metrics = metrics
        self._clock = clock
        """Wall time, for the queue (``queued_at``)."""
        self._monotonic = monotonic
        """For the holds' retry times: a step of the wall clock moves no retry."""
        self.held: dict[Kind, HeldBatches[IncomingBatch]] = {kind: new_hold() for kind in enabled}
        self.blocked: dict[Kind, str] = {}
        """Outputs whose batches are held, with why ("max_bytes", "disk_full", "busy", ...)."""

    @property
    def queue_full(self) -> bool:
        """Whether some producer's batches are waiting for room in the queue."""
        return bool(self.blocked)

    def _next_retry(self) -> float | None:
        times = [t for hold in self.held.values() if (t := hold.retry_at()) is not None]
        return min(times, default=None)

    async def run(self) -> None:
        """Receive, store and acknowledge batches until cancelled."""
        receiving: asyncio.Future[IncomingBatch] | None = None
        try:
            while True:
                if receiving is None:
                    receiving = asyncio.ensure_future(self._receiver.receive())
                retry_at = self._next_retry()
                timeout = None if retry_at is None else max(0.0, retry_at - self._monotonic())
                await asyncio.wait({receiving}, timeout=timeout)
                if receiving.done():
                    incoming, receiving = receiving.result(), None
                    await self.store(incoming)
                await self.store_held()
        finally:
            if receiving is not None:
                receiving.cancel()

    async def store(self, incoming: IncomingBatch) -> None:
        """Store and acknowledge ``incoming``, or hold it while the queue cannot take it."""
        kind: Kind = incoming.batch.stream
        if kind not in self._enabled:
            self._refuse(incoming, f"the {kind} output is disabled in the shipper's configuration")
            return
        if self.held[kind]:
            # Others wait already: queue up behind them (or refresh a re-sent one).
            self._hold(kind, incoming)
            return
        try:
            stored = await self._append(incoming)
        except (QueueFull, QueueBusy) as blocked:
            self._blocked(kind, blocked)
            self._hold(kind, incoming)
            return
        self._stored(incoming, stored)

    async def store_held(self) -> None:
        """For each output whose retry time has come, store its held batches, oldest first,
        until one does not fit or none is left."""
        for kind, hold in self.held.items():
            retry_at = hold.retry_at()
            if retry_at is None or retry_at > self._monotonic():
                continue
            while (incoming := hold.first()) is not None:
                try:
                    stored = await self._append(incoming)
                except (QueueFull, QueueBusy) as blocked:
                    hold.still_blocked(self._monotonic())
                    self._blocked(kind, blocked)
                    break
                hold.stored_first()
                self._stored(incoming, stored)

    async def _append(self, incoming: IncomingBatch) -> AppendResult:
        batch = incoming.batch
        return await self._storage.call(self._queue.append, batch.stream, batch, now=self._clock())

    def _hold(self, kind: Kind, incoming: IncomingBatch) -> None:
        batch = incoming.batch
        key = (batch.producer, batch.batch_id)
        if not self.held[kind].hold(key, incoming, len(batch.bodies), self._monotonic()):
            # Over the memory bound: not acknowledged and not kept; the producer re-sends.
            self._metrics.inc("killkrill_agent_ingest_refused_total", reason="hold_full")

    def _blocked(self, kind: Kind, error: QueueFull | QueueBusy) -> None:
        reason = error.reason if isinstance(error, QueueFull) else "busy"
        self._metrics.inc("killkrill_agent_ingest_refused_total", reason=reason)
        if self.blocked.get(kind) == reason:
            return  # log transitions, not every refused batch
        self.blocked[kind] = reason
        if isinstance(error, QueueFull):
            log_event(
                _log,
                logging.WARNING,
                "queue_full",
                output=kind,
                reason=reason,
                used_bytes=error.used_bytes,
                max_bytes=error.max_bytes,
                detail="batches are held unacknowledged until deliveries free space",
            )
        else:
            log_event(
                _log,
                logging.WARNING,
                "queue_busy",
                output=kind,
                error=str(error),
                detail="another process holds the queue's write lock; batches are held and retried",
            )

    def _stored(self, incoming: IncomingBatch, stored: AppendResult) -> None:
        batch = incoming.batch
        duplicates = stored.duplicates
        kind: Kind = batch.stream
        if kind in self.blocked and not self.held[kind]:
            log_event(
                _log,
                logging.INFO,
                "queue_accepting_again",
                output=kind,
                after=self.blocked.pop(kind),
            )
        self._metrics.inc("killkrill_agent_records_received_total", len(batch), type=kind)
        if duplicates:
            self._metrics.inc("killkrill_agent_duplicates_dropped_total", duplicates, type=kind)
        self._receiver.acknowledge(
            incoming,
            Ack(batch_id=batch.batch_id, status=AckStatus.STORED, duplicates=duplicates),
        )
        self._on_stored(kind, stored.runs)

    def _refuse(self, incoming: IncomingBatch, reason: str) -> None:
        self._metrics.inc("killkrill_agent_ingest_refused_total", reason="output_disabled")
        log_event(
            _log,
            logging.ERROR,
            "batch_rejected",
            batch_id=incoming.batch.batch_id,
            producer=incoming.batch.producer,
            reason=reason,
        )
        self._receiver.acknowledge(
            incoming,
            Ack(batch_id=incoming.batch.batch_id, status=AckStatus.REJECTED, reason=reason),
        )
