"""One output's delivery loop: the asyncio driver of `OutputDelivery`.

The loop reads queued records (in seq order within each lane, each once) while the core has
room, the live lane before the catch-up lane (storage/queue.py, "Lanes"; a batch ingest has
just stored is taken from memory when the loop has read everything before it),
starts the attempts the core asks for on the transport of their protocol, feeds every answer
or transport error back, and carries out the core's effects: delivered records leave the
durable queue, dead-lettered ones move to the dead-letter store, the rest become metrics,
log lines and health problems. It sleeps until the core's next deadline, new records, or
an answer. Logs and metrics each have their own loop, so one never waits for the other.

Two clocks: the core's inputs and deadlines are on the monotonic clock (a step of the wall
clock moves no wait); the queue's times (``queued_at``, ages) and an HTTP-date
``Retry-After`` are wall time, passed to the core as ``wall_now`` where it needs them.

While the output is down it also runs the core's reachability checks (a connect and
handshake per protocol, no payload; core/outage.py says why).

Log lines are written for an operator during an outage: one ``output_down`` line (cause,
detail, and the fix where there is one), one ``output_still_down`` summary per
``shipper.outage_summary_interval`` (queued records and bytes, oldest record age, next
attempt), one ``output_recovered`` line (downtime). Each failed request and each scheduled
retry is a debug line only; the counters in telemetry count them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from kk_common.jsonlog import TRACE, log_event
from kk_shipper.core import (
    Attempt,
    BatchSplit,
    ContractMismatchDetected,
    Http3ProbeFailed,
    OutputDelivery,
    OutputDown,
    OutputPaused,
    OutputRecovered,
    OutputResumed,
    OutputStillDown,
    ProtocolChanged,
    ReachabilityCheck,
    RecordsDeadLettered,
    RecordsDelivered,
    RecordsRejectedByReceiver,
    RetryScheduled,
)
from kk_shipper.core.outage import fix_for
from kk_shipper.ingest import StorageThread
from kk_shipper.storage import DurableQueue, QueueBusy, QueueFull
from kk_shipper.telemetry import DURATION_BUCKETS, SIZE_BUCKETS, ShipperMetrics
from kk_shipper.types import Kind, Protocol, RecordRun, Transport, TransportError

__all__ = ["OutputPipeline"]

_log = logging.getLogger("kk.shipper.delivery")
T = TypeVar("T")

LANES = (False, True)
"""The queue's lanes by ``catch_up``, in the order they are read: live first."""

QUEUE_RETRY_FIRST_S = 0.1
QUEUE_RETRY_MAX_S = 5.0
"""Waits between tries of a queue write that another process's lock or a full disk refused."""


class OutputPipeline:
    """Delivers one output's queued records; see the module docstring."""

    def __init__(
        self,
        kind: Kind,
        delivery: OutputDelivery,
        queue: DurableQueue,
        storage: StorageThread,
        transports: Mapping[Protocol, Transport],
        *,
        request_timeout_s: float,
        metrics: ShipperMetrics,
        clock: Callable[[], float],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kind = kind
        self.delivery = delivery
        self._queue = queue
        self._storage = storage
        self._transports = transports
        self._request_timeout_s = request_timeout_s
        self._metrics = metrics
        self._clock = clock
        """Wall time: what the queue records and compares (``queued_at``, ages)."""
        self._monotonic = monotonic
        """The core's clock: every deadline it returns is on it (a wall step moves none)."""
        self._wake = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()
        self._checking: set[asyncio.Task[None]] = set()
        self._last_offered_seq = dict.fromkeys(LANES, 0)
        """Per lane: the seq after which the next read of that lane starts."""
        self._queue_may_have_more = dict.fromkeys(LANES, True)
        self._last_known_seq = 0
        """The highest seq this loop has seen, stored (`records_stored`) or read, any lane."""
        self._reading = False
        """A read of the queue is under way (records stored meanwhile are read by it or the
        next one, never offered by `records_stored`)."""
        self._stored_while_reading = dict.fromkeys(LANES, False)
        self.problems: dict[str, str] = {}
        """Operator-facing problems by key, shown by health until they clear."""

    async def _queue_call(self, what: str, function: Callable[..., T], *args: Any, **kw: Any) -> T:
        """``function`` on the storage thread, waited out while the queue is busy or full.

        Another process holding the write lock (``killkrill-shipper replay``, an operator's
        sqlite3 shell) or a full disk is a condition to wait out, not a reason to stop: the
        records stay queued, the wait is logged once and shown in health, and the call is
        tried again with a growing delay until it succeeds.
        """
        delay, since = QUEUE_RETRY_FIRST_S, None
        while True:
            try:
                result = await self._storage.call(function, *args, **kw)
            except (QueueBusy, QueueFull) as error:
                if since is None:
                    since = time.monotonic()
                    log_event(
                        _log,
                        logging.WARNING,
                        "queue_write_waiting",
                        output=self.kind,
                        operation=what,
                        error=str(error),
                        detail="the queue is locked by another process or its disk is full; "
                        "retrying",
                    )
                self.problems["queue_write"] = f"{self.kind}: queue {what} waiting: {error}"
                await asyncio.sleep(delay)
                delay = min(delay * 2, QUEUE_RETRY_MAX_S)
                continue
            if since is not None:
                self.problems.pop("queue_write", None)
                log_event(
                    _log,
                    logging.INFO,
                    "queue_write_resumed",
                    output=self.kind,
                    operation=what,
                    waited_s=round(time.monotonic() - since, 1),
                )
            return result

    def records_stored(self, runs: Sequence[RecordRun] = ()) -> None:
        """New records are in the queue (called by ingest, with the runs it stored).

        When this loop has offered everything of their lane stored before them (and seen
        every seq before them: a seq it never saw, say a replayed dead letter, may be of
        their lane), is not reading, and the core has room, the runs are offered as they
        are: reading them back would only cost a hop to the storage thread, a read and a
        decompression of what is already in memory. Otherwise the next step reads them
        from the queue, in order.
        """
        if not runs:
            self._wake.set()
            return
        lane = runs[0].catch_up  # one stored batch: one lane
        last_seq = runs[-1].first_seq + runs[-1].count - 1
        caught_up = (
            not self._queue_may_have_more[lane]
            and not self._reading
            and runs[0].first_seq == self._last_known_seq + 1
            and sum(run.count for run in runs) <= self.delivery.room(catch_up=lane)
        )
        self._last_known_seq = max(self._last_known_seq, last_seq)
        if caught_up:
            self._last_offered_seq[lane] = last_seq
            self.delivery.offer(runs, self._monotonic(), wall_now=self._clock())
        else:
            self._queue_may_have_more[lane] = True
            if self._reading:
                self._stored_while_reading[lane] = True
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._sending)

    async def run(self) -> None:
        """Deliver until cancelled."""
        while True:
            self._wake.clear()
            await self.step()
            deadline = self.delivery.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def step(self) -> None:
        """Offer queued records, start due attempts, apply effects."""
        await self._offer_queued()
        now = self._monotonic()
        for attempt in self.delivery.next_attempts(now):
            task = asyncio.create_task(self._send(attempt))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        for check in self.delivery.next_checks(now):
            task = asyncio.create_task(self._check(check))
            self._checking.add(task)
            task.add_done_callback(self._checking.discard)
        await self._apply_effects()

    async def _offer_queued(self) -> None:
        """Read while the core has room: the live lane first, then the catch-up lane (whose
        room stops one request short of the live lane's: `OutputDelivery.room`)."""
        while True:
            lane = next(
                (
                    lane
                    for lane in LANES
                    if self._queue_may_have_more[lane] and self.delivery.room(catch_up=lane) > 0
                ),
                None,
            )
            if lane is None:
                return
            room = self.delivery.room(catch_up=lane)
            self._reading, self._stored_while_reading[lane] = True, False
            try:
                runs = await self._queue_call(
                    "read",
                    self._queue.read_runs,
                    self.kind,
                    after_seq=self._last_offered_seq[lane],
                    limit=room,
                    whole_rows=True,
                    catch_up=lane,
                )
            finally:
                self._reading = False
            if runs:
                self._last_offered_seq[lane] = runs[-1].seqs[-1]
                self._last_known_seq = max(self._last_known_seq, runs[-1].seqs[-1])
                self.delivery.offer(runs, self._monotonic(), wall_now=self._clock())
            if sum(run.count for run in runs) < room and not self._stored_while_reading[lane]:
                self._queue_may_have_more[lane] = False

    async def _send(self, attempt: Attempt) -> None:
        transport = self._transports[attempt.protocol]
        started = time.monotonic()
        try:
            response = await transport.send(attempt.request, timeout=self._request_timeout_s)
        except TransportError as error:
            self._record_transport_error(attempt, error)
            self.delivery.attempt_failed(attempt, error, self._monotonic())
        else:
            elapsed = time.monotonic() - started
            labels = {"type": self.kind, "protocol": str(attempt.protocol)}
            self._metrics.observe(
                "killkrill_agent_send_duration_seconds", elapsed, DURATION_BUCKETS, **labels
            )
            status = "success" if 200 <= response.status < 300 else f"http_{response.status}"
            self._metrics.inc(
                "killkrill_agent_sent_bytes_total",
                len(attempt.request.body),
                type=self.kind,
                status=status,
            )
            self.delivery.attempt_answered(
                attempt, response, self._monotonic(), wall_now=self._clock()
            )
        self._wake.set()

    async def _check(self, check: ReachabilityCheck) -> None:
        try:
            await self._transports[check.protocol].check(check.url)
        except TransportError as error:
            log_event(
                _log,
                logging.DEBUG,
                "reachability_check_failed",
                output=self.kind,
                protocol=str(check.protocol),
                reason=error.reason,
                detail=error.detail,
            )
            self.delivery.check_failed(check, error, self._monotonic())
        else:
            log_event(
                _log,
                logging.DEBUG,
                "reachability_check_passed",
                output=self.kind,
                protocol=str(check.protocol),
            )
            self.delivery.check_passed(check, self._monotonic())
        self._wake.set()

    def _record_transport_error(self, attempt: Attempt, error: TransportError) -> None:
        self._metrics.inc(
            "killkrill_agent_sent_bytes_total",
            len(attempt.request.body),
            type=self.kind,
            status="transport_error",
        )
        # One line per failed request is a flood during an outage: output_down says it once.
        log_event(
            _log,
            logging.DEBUG,
            "transport_error",
            output=self.kind,
            protocol=str(attempt.protocol),
            reason=error.reason,
            detail=error.detail,
            records=attempt.record_count,
            probe=attempt.is_probe,
        )
        key = f"transport_{attempt.protocol}"
        self.problems[key] = f"{self.kind} over {attempt.protocol}: {error.reason}: {error.detail}"

    async def _apply_effects(self) -> None:
        for effect in self.delivery.take_effects():
            await self._apply(effect)

    async def _apply(self, effect: object) -> None:
        kind = self.kind
        match effect:
            case RecordsDelivered(runs=runs, protocol=protocol):
                seqs = [run.seqs for run in runs]
                count = sum(run.count for run in runs)
                await self._queue_call(
                    "complete", self._queue.complete, kind, seqs, now=self._clock()
                )
                self._metrics.inc(
                    "killkrill_agent_sent_messages_total", count, type=kind, status="success"
                )
                self._metrics.observe("killkrill_agent_batch_size", count, SIZE_BUCKETS, type=kind)
                for key in [k for k in self.problems if not k.startswith("dead_letter")]:
                    del self.problems[key]
                log_event(
                    _log,
                    TRACE,
                    "records_delivered",
                    output=kind,
                    records=count,
                    protocol=str(protocol),
                )
            case RecordsDeadLettered(runs=runs, reason=reason, status=status, detail=detail):
                moved = await self._queue_call(
                    "dead-letter",
                    self._queue.dead_letter,
                    kind,
                    [run.seqs for run in runs],
                    reason=reason,
                    now=self._clock(),
                )
                self._metrics.inc(
                    "killkrill_agent_dead_letters_total", moved, type=kind, reason=reason
                )
                self._metrics.inc(
                    "killkrill_agent_sent_messages_total", moved, type=kind, status="dead_letter"
                )
                self.problems["dead_letter"] = (
                    f"{kind}: records dead-lettered ({reason}); list them with "
                    "`killkrill-shipper dead-letters`, replay with `killkrill-shipper replay`"
                )
                log_event(
                    _log,
                    logging.ERROR,
                    "records_dead_lettered",
                    output=kind,
                    records=moved,
                    reason=reason,
                    status=status,
                    detail=detail,
                )
            case RecordsRejectedByReceiver(count=count, status=status, detail=detail):
                self._metrics.inc(
                    "killkrill_agent_rejected_total", count, type=kind, reason=f"http_{status}"
                )
                log_event(
                    _log,
                    logging.ERROR,
                    "records_rejected_by_receiver",
                    output=kind,
                    records=count,
                    status=status,
                    detail=detail,
                )
            case RetryScheduled(reason=reason, at=at, record_count=count, status=status):
                self._metrics.inc("killkrill_agent_retries_total", type=kind, reason=reason)
                log_event(
                    _log,
                    logging.DEBUG,
                    "retry_scheduled",
                    output=kind,
                    reason=reason,
                    status=status,
                    records=count,
                    in_s=round(at - self._monotonic(), 3),
                )
            case ProtocolChanged(old=old, new=new, reason=reason):
                if new is Protocol.H1:
                    self._metrics.inc(
                        "killkrill_agent_protocol_fallbacks_total", type=kind, reason=reason
                    )
                else:
                    self.problems.pop(f"transport_{Protocol.H3}", None)
                log_event(
                    _log,
                    logging.WARNING if new is Protocol.H1 else logging.INFO,
                    "protocol_changed",
                    output=kind,
                    old=str(old),
                    new=str(new),
                    reason=reason,
                )
            case Http3ProbeFailed(reason=reason, next_probe_at=at):
                log_event(
                    _log,
                    logging.INFO,
                    "http3_probe_failed",
                    output=kind,
                    reason=reason,
                    next_probe_in_s=round(at - self._monotonic(), 1),
                )
            case OutputPaused(reason=reason, status=status, until=until, detail=detail):
                self.problems["paused"] = f"{kind} output paused: {reason} ({detail})"
                log_event(
                    _log,
                    logging.ERROR,
                    "output_paused",
                    output=kind,
                    reason=reason,
                    status=status,
                    detail=detail,
                    fix=fix_for(f"http_{status}"),
                    for_s=round(until - self._monotonic(), 1),
                )
            case OutputResumed(reason=reason):
                self.problems.pop("paused", None)
                log_event(_log, logging.INFO, "output_resumed", output=kind, reason=reason)
            case ContractMismatchDetected(detail=detail, suggestion=suggestion):
                self.problems["contract"] = f"{kind}: {detail}; {suggestion}"
                log_event(
                    _log,
                    logging.ERROR,
                    "receiver_contract_mismatch",
                    output=kind,
                    detail=detail,
                    suggestion=suggestion,
                )
            case OutputDown(cause=cause, detail=detail, fix=fix, checking=checking):
                check_every = self.delivery.settings.retry.check_interval_s if checking else None
                fix_text = f"; fix: {fix}" if fix else ""
                self.problems["down"] = f"{kind} output down: {cause} ({detail}){fix_text}"
                log_event(
                    _log,
                    logging.ERROR if fix else logging.WARNING,
                    "output_down",
                    output=kind,
                    cause=cause,
                    detail=detail,
                    fix=fix,
                    protocol=str(self.delivery.protocol),
                    checking_every_s=check_every,
                )
            case OutputStillDown():
                await self._log_still_down(effect)
            case OutputRecovered(cause=cause, down_for_s=down_for, failures=failures):
                self.problems.pop("down", None)
                log_event(
                    _log,
                    logging.INFO,
                    "output_recovered",
                    output=kind,
                    cause=cause,
                    down_for_s=round(down_for, 1),
                    failed_attempts=failures,
                    protocol=str(effect.protocol),
                )
            case BatchSplit(seqs=seqs, reason=reason):
                log_event(
                    _log, logging.INFO, "batch_split", output=kind, records=len(seqs), reason=reason
                )

    async def _log_still_down(self, summary: OutputStillDown) -> None:
        stats = (await self._queue_call("stats", self._queue.stats, now=self._clock())).kinds[
            self.kind
        ]
        now = self._monotonic()  # the summary's times are the core's

        def seconds_until(at: float | None) -> float | None:
            return None if at is None else round(max(0.0, at - now), 1)

        next_at = min(
            (at for at in (summary.next_retry_at, summary.next_check_at) if at is not None),
            default=None,
        )
        oldest = stats.oldest_age_s
        log_event(
            _log,
            logging.WARNING,
            "output_still_down",
            output=self.kind,
            cause=summary.cause,
            detail=summary.detail,
            fix=summary.fix,
            down_for_s=round(now - summary.since, 1),
            failed_attempts=summary.failures,
            queued_records=stats.queued_records,
            queued_bytes=stats.queued_bytes,
            oldest_record_age_s=None if oldest is None else round(oldest, 1),
            next_attempt_in_s=seconds_until(next_at),
            next_retry_in_s=seconds_until(summary.next_retry_at),
        )

    async def drain(self, budget_s: float) -> None:
        """Stop taking new records; send what is held and finish in-flight requests within
        ``budget_s``. Whatever is not delivered by then stays in the durable queue for the
        next start (where it is re-sent and deduplicated by id)."""
        self.delivery.stop_accepting()
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline:
            self._wake.clear()
            await self.step()
            if self.delivery.is_idle and not self._sending:
                break
            next_at = self.delivery.next_deadline()
            wait = deadline - time.monotonic()
            if next_at is not None:
                wait = min(wait, max(0.0, next_at - self._monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, wait))
        for task in [*self._sending, *self._checking]:
            task.cancel()
        await asyncio.gather(*self._sending, *self._checking, return_exceptions=True)
        await self._apply_effects()
