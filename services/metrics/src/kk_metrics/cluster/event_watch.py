"""IO adapters for the events: a list+watch thread while leading, and the forwarder that
commits what it finds to the metrics spool as log batches.

`EventWatch.run` (a thread) is the pod watch's list+watch loop (`kk_common.k8s.watcher.
ListWatch`: paged list, watch with bookmarks, 410 -> list again, backoff with jitter,
errors counted by reason) over ``events.k8s.io/v1`` events. It starts from the Lease's
checkpoint when there is one (watch from its resourceVersion), else lists every event and
watches from the list. Each event goes through `EventTracker` (each occurrence once, see
`kk_metrics.cluster.events`) and is handed to ``emit`` with the resourceVersion it moves
the stream to, even when it makes no record, so the checkpoint follows the stream. A list
straight after a checkpoint (its resourceVersion was compacted away: 410) sends only events
not older than the checkpoint's time; once the watch has delivered, the tracker knows what
was sent.

`EventForwarder.run` (the event loop): while this agent leads, keeps one `EventWatch`
thread; when leadership ends it stops it and drops what was not committed (the next leader
replays it from the checkpoint). Every ``flush_interval`` it commits what was emitted to
the spool as one batch (stream ``logs``), hands the batch to the service's outbox, and only
then advances the checkpoint that the next Lease renew carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client

from kk_common.jsonlog import log_event
from kk_common.k8s.events import Added, Bookmarked, Deleted, Modified, Relisted
from kk_common.k8s.watcher import ListWatch, SourceStatus, WatchSettings
from kk_metrics.cluster.events import Checkpoint, EventRecord, EventTracker, event_batch
from kk_metrics.cluster.leader import LeaderElector
from kk_metrics.spool import ScrapeSpool, SpooledBatch

__all__ = ["EventForwarder", "EventWatch"]

_log = logging.getLogger("kk.metrics")

Emit = Callable[[EventRecord | None, str, float | None], None]
"""(record or None, resourceVersion reached, the event's time or None)."""

SPOOL_SOURCE = "k8s_events"


def _event(raw: Any) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise TypeError("an event that is not a JSON object")
    return raw


def _version(event: Mapping[str, Any]) -> str:
    return str((event.get("metadata") or {}).get("resourceVersion") or "")


def _no_emit(record: EventRecord | None, rv: str, time_s: float | None) -> None:
    return None


class EventWatch:
    """List+watch of the cluster's events (one thread, while leading)."""

    def __init__(
        self,
        api: client.ApiClient,
        tracker: EventTracker,
        *,
        settings: WatchSettings | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.tracker = tracker
        self._wall = wall
        self._emit: Emit = _no_emit
        self._since: float | None = None
        # events.k8s.io/v1, the current Event API; it serves the core/v1 events too.
        self.loop: ListWatch[Mapping[str, Any]] = ListWatch(
            "events",
            client.EventsV1Api(api).list_event_for_all_namespaces,
            _event,
            self._apply,
            settings=settings,
        )

    def run(self, stop: threading.Event, start: Checkpoint | None, emit: Emit) -> None:
        """Until ``stop``: emit every event's newest occurrence once (blocking)."""
        self._emit = emit
        self._since = start.time_s if start else None
        self.loop.run(stop, resume_from=start.resource_version if start else "")

    def interrupt(self) -> None:
        """Close the open watch stream so that ``run`` sees ``stop`` at once."""
        self.loop.interrupt()

    def status(self) -> SourceStatus:
        """The watch's counters (errors by reason, the last error, failures in a row)."""
        return self.loop.status()

    def _apply(self, change: Any, now: float) -> None:
        emit = self._emit
        if isinstance(change, Relisted):
            # A list is one point in history: every item moves the stream to the list's version.
            for event in change.objs:
                self._record(event, change.resource_version, self._since)
            emit(None, change.resource_version, None)
            return
        self._since = None  # the watch delivers: from here the tracker knows what was sent
        if isinstance(change, Bookmarked):
            emit(None, change.resource_version, None)
        elif isinstance(change, Deleted):
            self.tracker.forget(change.obj)
            emit(None, _version(change.obj), None)
        elif isinstance(change, Added | Modified):
            self._record(change.obj, _version(change.obj), None)

    def _record(self, event: Mapping[str, Any], rv: str, since: float | None) -> None:
        record = self.tracker.record_for(event, self._wall(), since_s=since)
        self._emit(record, rv, record.time_s if record else None)


class EventForwarder:
    """Runs `EventWatch` while leading and commits its records; see the module docstring."""

    def __init__(
        self,
        events: EventWatch,
        elector: LeaderElector,
        *,
        producer: str,
        flush_interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.events = events
        self.elector = elector
        self.producer = producer
        self.flush_interval_s = flush_interval_s
        self._clock = clock
        self._pending: list[tuple[EventRecord | None, str, float | None]] = []
        self._pending_lock = threading.Lock()
        self.checkpoint: Checkpoint | None = None
        self._thread: threading.Thread | None = None
        self._thread_stop = threading.Event()
        self.records_committed = 0
        self._last_ms = 0

    def current_checkpoint(self) -> str:
        """For the Lease (`LeaderElector.checkpoint`)."""
        return self.checkpoint.encode() if self.checkpoint else ""

    def _emit(self, record: EventRecord | None, rv: str, time_s: float | None) -> None:
        with self._pending_lock:
            self._pending.append((record, rv, time_s))

    async def run(
        self,
        stop: asyncio.Event,
        spool: ScrapeSpool,
        deliver: Callable[[list[SpooledBatch]], None],
    ) -> None:
        """Follow leadership and commit events until ``stop``."""
        try:
            while not stop.is_set():
                self._follow_leadership()
                await self.flush(spool, deliver)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.flush_interval_s)
        finally:
            await asyncio.to_thread(self._stop_watch)

    def _follow_leadership(self) -> None:
        leading = self.elector.is_leader()
        if leading and self._thread is None:
            start = Checkpoint.decode(self.elector.election.observed_checkpoint)
            self.checkpoint = start
            self._thread_stop = threading.Event()
            self._thread = threading.Thread(
                target=self.events.run,
                args=(self._thread_stop, start, self._emit),
                name="kk-events",
                daemon=True,
            )
            self._thread.start()
            log_event(
                _log,
                logging.INFO,
                "events_watch_started",
                from_checkpoint=start.encode() if start else "",
            )
        elif not leading and self._thread is not None:
            self._stop_watch()
            log_event(_log, logging.INFO, "events_watch_stopped")

    def _stop_watch(self) -> None:
        if self._thread is None:
            return
        self._thread_stop.set()
        self.events.interrupt()
        self._thread.join(10)
        self._thread = None
        with self._pending_lock:
            self._pending.clear()  # not committed: the next leader replays it

    async def flush(
        self, spool: ScrapeSpool, deliver: Callable[[list[SpooledBatch]], None]
    ) -> None:
        """Commit what was emitted as one batch, then move the checkpoint past it."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        if not pending or not self.elector.is_leader():
            return
        records = [record for record, _, _ in pending if record is not None]
        rv = next((rv for _, rv, _ in reversed(pending) if rv), "")
        newest = max((t for _, _, t in pending if t is not None), default=None)
        if records:
            ms = max(round(self._clock() * 1000), self._last_ms + 1)
            self._last_ms = ms
            batch = event_batch(
                records, producer=self.producer, batch_id=f"{self.producer}:events@{ms}"
            )
            writer = spool.begin(SPOOL_SOURCE, ms)
            try:
                await asyncio.to_thread(writer.write, batch)
                committed = await asyncio.to_thread(writer.commit)
            except OSError as exc:
                writer.abort()
                log_event(_log, logging.ERROR, "events_not_committed", error=str(exc))
                with self._pending_lock:  # tried again at the next flush
                    self._pending[:0] = pending
                return
            self.records_committed += len(records)
            deliver(committed)
        if rv:
            previous = self.checkpoint.time_s if self.checkpoint else 0.0
            self.checkpoint = Checkpoint(rv, max(previous, newest or 0.0))
