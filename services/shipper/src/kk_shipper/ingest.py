"""Ingest: record batches from producers into the durable queue, acknowledged once stored.

A batch is acknowledged (`AckStatus.STORED`) only after the queue's transaction has
committed, so a producer that commits its file offsets on the ack never loses a record.
When the queue is full the batch is not acknowledged at all: the producer keeps it, re-sends
it later, and its own window fills up, which is what slows it down. Records the queue stored
before (their positions are covered, see ``storage/coverage.py``) are dropped there and
counted; the batch is still acknowledged, since the records are safe.

Records arrive encoded (`EncodedRecords`) and are stored as the bytes they came in: ingest
never parses or re-encodes a record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from kk_common.envelope import Ack, AckStatus
from kk_common.ipc import BatchReceiver, IncomingBatch
from kk_common.jsonlog import log_event
from kk_shipper.storage import DurableQueue, QueueFull
from kk_shipper.telemetry import ShipperMetrics
from kk_shipper.types import Kind

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
    """Stores producers' batches and acknowledges them."""

    def __init__(
        self,
        receiver: BatchReceiver,
        queue: DurableQueue,
        storage: StorageThread,
        *,
        enabled: Collection[Kind],
        on_stored: Callable[[Kind], None],
        metrics: ShipperMetrics,
        clock: Callable[[], float],
    ) -> None:
        self._receiver = receiver
        self._queue = queue
        self._storage = storage
        self._enabled = frozenset(enabled)
        self._on_stored = on_stored
        self._metrics = metrics
        self._clock = clock
        self.queue_full = False

    async def run(self) -> None:
        """Receive and store batches until cancelled."""
        while True:
            incoming = await self._receiver.receive()
            await self.store(incoming)

    async def store(self, incoming: IncomingBatch) -> None:
        batch = incoming.batch
        kind: Kind = batch.stream
        if kind not in self._enabled:
            self._refuse(incoming, f"the {kind} output is disabled in the shipper's configuration")
            return
        try:
            result = await self._storage.call(self._queue.append, kind, batch, now=self._clock())
        except QueueFull as full:
            # No ack: the producer keeps the batch and re-sends it; its window fills and
            # it stops reading. Log the transition, not every refused batch.
            self._metrics.inc("killkrill_agent_ingest_refused_total", reason=full.reason)
            if not self.queue_full:
                log_event(
                    _log,
                    logging.WARNING,
                    "queue_full",
                    reason=full.reason,
                    used_bytes=full.used_bytes,
                    max_bytes=full.max_bytes,
                    detail="producers are not acknowledged until deliveries free space",
                )
            self.queue_full = True
            return
        if self.queue_full:
            log_event(_log, logging.INFO, "queue_accepting_again")
        self.queue_full = False
        if result.duplicates:
            self._metrics.inc(
                "killkrill_agent_duplicates_dropped_total", result.duplicates, type=kind
            )
        self._receiver.acknowledge(
            incoming,
            Ack(batch_id=batch.batch_id, status=AckStatus.STORED, duplicates=result.duplicates),
        )
        self._on_stored(kind)

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
