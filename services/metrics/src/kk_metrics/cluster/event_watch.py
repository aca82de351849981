"""IO adapters for the events: a list+watch thread while leading, and the forwarder that
commits what it finds to the metrics spool as log batches.

`EventWatch.run` (a thread): start from the Lease's checkpoint when there is one (watch
from its resourceVersion), else list every event and watch from the list. Each event goes
through `EventTracker` (each occurrence once, see `kk_metrics.cluster.events`) and is handed
to ``emit`` with the resourceVersion it moves the stream to, even when it makes no record,
so the checkpoint follows the stream. A 410 (history compacted) lists again: straight after
a checkpoint, only events not older than its time are sent; later the tracker knows what
was sent. Other failures back off (0.5 s doubling to 30 s) and resume from the same place.

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
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from kk_common.jsonlog import log_event
from kk_metrics.cluster.api import ObjectLists, error_reason
from kk_metrics.cluster.events import Checkpoint, EventRecord, EventTracker, event_batch
from kk_metrics.cluster.leader import LeaderElector
from kk_metrics.errors import ScrapeError
from kk_metrics.spool import ScrapeSpool, SpooledBatch

__all__ = ["EventForwarder", "EventWatch"]

_log = logging.getLogger("kk.metrics")

Emit = Callable[[EventRecord | None, str, float | None], None]
"""(record or None, resourceVersion reached, the event's time or None)."""

SPOOL_SOURCE = "k8s_events"
BACKOFF_MAX_S = 30.0


class _Expired(Exception):
    """410: the resourceVersion is older than the API server's history."""


class EventWatch:
    """List+watch of the cluster's events (one thread, while leading)."""

    def __init__(
        self,
        api: client.ApiClient,
        lists: ObjectLists,
        tracker: EventTracker,
        *,
        watch_timeout_s: int = 300,
        connect_timeout_s: float = 10.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        # events.k8s.io/v1, the current Event API; it serves the core/v1 events too.
        self._list_events = client.EventsV1Api(api).list_event_for_all_namespaces
        self.lists = lists
        self.tracker = tracker
        self.watch_timeout_s = watch_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._wall = wall
        self._lock = threading.Lock()
        self._watch: watch.Watch | None = None
        self.errors: dict[str, int] = {}
        self.last_error = ""

    def run(self, stop: threading.Event, start: Checkpoint | None, emit: Emit) -> None:
        """Until ``stop``: emit every event's newest occurrence once (blocking)."""
        rv = start.resource_version if start else ""
        since = start.time_s if start else None
        failures = 0
        while not stop.is_set():
            try:
                if not rv:
                    rv = self._list(emit, since)
                rv = self._watch_from(rv, stop, emit)
                since, failures = None, 0
            except _Expired:
                rv = ""  # list again; ``since`` still applies until one watch went well
                continue
            except Exception as exc:
                # The thread must outlive anything the client raises (a stream cut by
                # interrupt() ends in urllib3's ProtocolError): count it, back off, resume.
                if stop.is_set():
                    break
                reason = exc.reason if isinstance(exc, ScrapeError) else error_reason(exc)
                if failures == 0:
                    log_event(
                        _log, logging.WARNING, "events_watch_failed", reason=reason, error=str(exc)
                    )
                self.errors[str(reason)] = self.errors.get(str(reason), 0) + 1
                self.last_error = str(exc)[:300]
                failures += 1
                stop.wait(min(BACKOFF_MAX_S, 0.5 * 2 ** (failures - 1)))

    def interrupt(self) -> None:
        """Close the open watch stream so that ``run`` sees ``stop`` at once."""
        with self._lock:
            if self._watch is not None:
                self._watch.stop()

    def _list(self, emit: Emit, since: float | None) -> str:
        version = ""
        for version, page in self.lists.versioned_pages("events"):
            for event in page:
                self._handle("ADDED", event, version, emit, since)
        emit(None, version, None)
        return version

    def _handle(
        self, kind: str, event: dict[str, Any], rv: str, emit: Emit, since: float | None
    ) -> None:
        if kind == "DELETED":
            self.tracker.forget(event)
            emit(None, rv, None)
            return
        record = self.tracker.record_for(event, self._wall(), since_s=since)
        emit(record, rv, record.time_s if record else None)

    def _watch_from(self, rv: str, stop: threading.Event, emit: Emit) -> str:
        w = watch.Watch(return_type="object")
        with self._lock:
            self._watch = w
        try:
            for item in w.stream(
                self._list_events,
                resource_version=rv,
                allow_watch_bookmarks=True,
                timeout_seconds=self.watch_timeout_s,
                _request_timeout=(self.connect_timeout_s, self.watch_timeout_s + 15),
            ):
                if stop.is_set():
                    break
                kind = str(item.get("type", ""))
                raw = item.get("raw_object") or item.get("object") or {}
                if kind == "ERROR":
                    if raw.get("code") == 410:
                        raise _Expired(str(raw.get("message", "")))
                    raise ValueError(f"watch error: {raw.get('message', raw)}")
                rv = str((raw.get("metadata") or {}).get("resourceVersion") or rv)
                if kind == "BOOKMARK":
                    emit(None, rv, None)
                elif kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._handle(kind, raw, rv, emit, None)
        except ApiException as exc:
            if exc.status == 410:
                raise _Expired(str(exc.reason)) from exc
            raise
        finally:
            with self._lock:
                self._watch = None
        return rv


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
