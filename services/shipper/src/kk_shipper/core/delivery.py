"""The delivery state machine of one output (logs or metrics): sans-IO, driven by the app.

Theory of operation
-------------------
`OutputDelivery` holds the records the app has offered and decides, for each of them, what
request carries it, over which protocol, when, and what became of it. It never does IO: it
reads no clock, draws randomness only from the injected `random.Random`, and sends nothing;
the app sends what it is told to send and reports back.

Time. Every input carries ``now``, in seconds on a clock that never steps (the app passes
``time.monotonic()``): every deadline the core computes and returns (flush, backoff, pause,
probe, outage checks and summaries) is on that clock, so a step of the wall clock never
lengthens or shortens a wait. Wall time (unix seconds) comes in only where it means
something, as ``wall_now``: `offer` (a record's ``queued_at`` is the wall time it was
stored; the core keeps how long it has waited, so records that waited across a restart go
at once) and `attempt_answered` (an HTTP-date ``Retry-After``). Without ``wall_now`` the
two clocks are taken to be one (tests that drive a single fake clock). Like h11 and
aioquic, it is driven by three kinds of inputs and the caller pulls three kinds of outputs:

Inputs (verbs)
    - `OutputDelivery.offer`: new records from the durable queue, in ``seq`` order, each once
      (as `RecordRun` s, the form the queue stores them in);
    - `OutputDelivery.attempt_answered` / `OutputDelivery.attempt_failed`: the result of
      sending an `Attempt` (an HTTP response of any status, or a `TransportError`);
    - `OutputDelivery.check_passed` / `OutputDelivery.check_failed`: the result of a
      `ReachabilityCheck` (while the output is down);
    - time passing: the app calls `OutputDelivery.next_attempts` again at `next_deadline`.
    Plus `OutputDelivery.stop_accepting` for a graceful stop.

Outputs (nouns)
    - `OutputDelivery.next_attempts`: the requests to send now;
    - `OutputDelivery.next_checks`: the reachability checks to run now;
    - `OutputDelivery.take_effects`: past-tense events for the app (records to remove from the
      queue or dead-letter, protocol changes, pauses, counters to bump);
    - `OutputDelivery.next_deadline`: when to call `next_attempts` again if nothing else
      happens; plus `OutputDelivery.status` for health and metrics.

The app's loop, after *every* input (and when the deadline passes)::

    for attempt in delivery.next_attempts(now):      # respects max_in_flight, pauses, backoff
        spawn(send(transports[attempt.protocol], attempt))   # -> attempt_answered / _failed
    for check in delivery.next_checks(now):          # only while the receiver is unreachable
        spawn(check(transports[check.protocol], check))      # -> check_passed / _failed
    for effect in delivery.take_effects():           # RecordsDelivered -> delete from queue,
        handle(effect)                               # RecordsDeadLettered -> dead-letter it
    rearm_timer(delivery.next_deadline())            # None: wait for an input
    while delivery.room() > 0: offer more from the queue

Records and batches
-------------------
Offered records wait in *pending* until a batch closes (batching.py: batch_size, bytes, or
the flush interval of the oldest record; at once after `stop_accepting`). A closed batch is
encoded once (request_builder.py) and keeps its body and ``Idempotency-Key`` for life: every
retry and the fallback protocol send the same bytes under the same key.

Records travel as runs (`RecordRun`: consecutive records of one stored batch, their ids and
bodies as the queue keeps them, joined), from the queue through batches, attempts and
effects back to the queue, which completes them by seq range. A run is split only where the
records must part: at a batch boundary, a 413 or poison-isolation halving, single mode. So
the work per request does not grow with its records beyond the copies of their bytes; a
record becomes a value of its own (`Attempt.records`, ``RecordsDeadLettered.record_ids``)
only when someone asks for it. A batch that must
wait (backoff, pause) sits in a time-ordered *waiting* heap; a due waiting batch goes before
new pending records. A waiting batch never blocks other batches: while it waits, others are
sent up to ``max_in_flight`` (order across batches is not kept; receivers dedup by id).

Live before catch-up. Catch-up records may fill the hold only up to one request short of
its limit (`room` with ``catch_up``), so live records always find room. A run read from a
catch-up batch (``RecordRun.catch_up``: records a
producer read from a backlog) is pending behind every live run: a live run offered later
goes in front of the catch-up ones, so each request is filled from the live lane first and
topped up with catch-up records, and a request has all its room for catch-up whenever
nothing live waits. Within a lane, records are offered and sent in seq order. A batch closes
by age when the oldest record of either lane has waited the flush interval.
A record leaves the machine only through `RecordsDelivered` or `RecordsDeadLettered`; until
then it is *held* (pending, waiting or in flight), and the app keeps it in its queue.

Answers (outcomes.py holds the status table; receiver-api.md "Responses")
-------------------------------------------------------------------------
- 2xx ``processed``: delivered; ``batch size - processed`` is reported as rejected.
- 2xx single-record reply to a batch: contract mismatch; the batch is kept and the output
  pauses (below), so records are never dropped; ``ContractMismatchDetected`` says to use
  ``mode: single``.
- 400/404: dead-lettered with the reason, counted as rejected. No retry, no protocol change.
- 401/403: the batch is kept, the output pauses. Nothing is dead-lettered.
- 413: split in halves, sent at once; a single record is dead-lettered (``too_large``).
- 408/429/503, other 5xx, and transport errors over HTTP/1.1: retried after a full-jitter
  exponential backoff whose exponent is the output's failures since its last delivery; a
  ``Retry-After`` wins over the backoff, capped (backoff.py).
- 500/502/504 also count towards *poison isolation*: after ``attempts_before_split`` such
  failures a batch is split in halves (which wait out the backoff), so the records that do
  not cause the error get through; a single record that fails ``record_retry_budget`` times
  is dead-lettered (``receiver_error``).
  Both steps need evidence that the receiver works for other records, which is what tells a
  poison record from a receiver that is down: a half splits again only if something was
  delivered after it was made, and a record is dead-lettered only if something was delivered
  after its lineage's failures began. So an outage splits each batch once at most, never
  dead-letters anything, and only backs off.

Pauses (401/403, contract mismatch)
-----------------------------------
Retrying these fast cannot help and would be a retry storm. The output stops sending for
``pause_s`` (doubling per repeat, capped at ``max_pause_s``, no jitter); when the pause ends,
exactly one request goes out as a trial, and the output stays at one request in flight until
a 2xx ends the pause (``OutputResumed``). Answers to requests that were already in flight
when the pause began do not lengthen it.

Protocols
---------
The output starts on HTTP/3 when `OutputSettings.http3_enabled` (``type: http3`` and an
``https://`` URL), else it is HTTP/1.1 for life. Only a `TransportError` on an HTTP/3 attempt
can change protocol: the same batch goes out again at once over HTTP/1.1 (same key), and new
batches follow it there while the question is open: QUIC blocked, or the receiver down? An
HTTP/1.1 *answer* settles it as QUIC blocked: the output switches to HTTP/1.1
(``ProtocolChanged``) and schedules a probe at ``+probe_interval_s``. An HTTP/1.1 transport
error settles it as receiver down (below): HTTP/3 stays the protocol. While on HTTP/1.1, the
first batch sent after the probe time goes over HTTP/3 as a probe (one at a time). Any HTTP
response to the probe, whatever its status, proves the transport and switches the output
back; a transport error re-sends that batch over HTTP/1.1 at once and schedules the next
probe. A status code never changes protocol. HTTP/3 failures of attempts begun while the
output was down are no evidence about QUIC (their handshake may predate the receiver's
return) and change nothing.

Outages (outage.py has the why)
-------------------------------
The output is *down* from a transport error over HTTP/1.1 (the receiver unreachable), or a
second failed answer (5xx, 429, 408) with no delivery in between, until the next delivery:
``OutputDown`` once, ``OutputStillDown`` every ``outage_summary_interval_s``,
``OutputRecovered`` at the end. While down: one request in flight at a time; re-sends share
the output's backoff (exponent: failures since the last delivery, whichever batch); and
while the receiver is unreachable no payload goes at all except after a passed
`ReachabilityCheck` (`next_checks`, every ``check_interval_s``, one per protocol), which
releases one held batch as the trial. Its delivery ends the outage and releases the rest.
Backoff grows per output to ``max_backoff_s``; checks keep the return-to-delivery time near
``check_interval_s`` regardless.

Misuse (answering an attempt that is not in flight, offering a record twice or out of
order, offering after `stop_accepting`) raises `ValueError`: it is a bug in the caller.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

from ..types import HttpRequest, HttpResponse, Protocol, QueuedRecord, RecordRun, TransportError
from . import batching
from .backoff import pause_duration, retry_delay
from .outage import (
    Outage,
    OutputDown,
    OutputRecovered,
    OutputStillDown,
    ReachabilityCheck,
    fix_for,
)
from .outcomes import (
    PARTIALLY_PROCESSED,
    AuthFailed,
    ContractMismatch,
    Delivered,
    Rejected,
    Retry,
    Split,
    classify,
)
from .request_builder import EncodedBatch, Envelope, build_request, encode_batch
from .settings import OutputSettings

__all__ = [
    "Attempt",
    "BatchSplit",
    "ContractMismatchDetected",
    "DeliveryStatus",
    "Effect",
    "Http3ProbeFailed",
    "OutputDelivery",
    "OutputDown",
    "OutputPaused",
    "OutputRecovered",
    "OutputResumed",
    "OutputStillDown",
    "ProtocolChanged",
    "ReachabilityCheck",
    "RecordsDeadLettered",
    "RecordsDelivered",
    "RecordsRejectedByReceiver",
    "RetryScheduled",
]

SINGLE_MODE_SUGGESTION = "the receiver accepts only one record per request: set mode: single"


# -- outputs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class Attempt:
    """One request to send now, over `protocol`, and to report back exactly once."""

    attempt_id: int
    """Unique within this `OutputDelivery`."""
    protocol: Protocol
    request: HttpRequest
    """Headers include the credentials: never log them (``repr`` hides them)."""
    runs: tuple[RecordRun, ...]
    """The records this attempt carries, in seq order."""
    record_count: int
    idempotency_key: str
    number: int
    """1 for a batch's first send; counts every send of the batch, across protocols."""
    is_probe: bool
    """An HTTP/3 probe sent while the output is on the HTTP/1.1 fallback."""
    sent_at: float

    @property
    def seqs(self) -> tuple[int, ...]:
        """The queue positions of the records this attempt carries."""
        return _seqs(self.runs)

    @property
    def records(self) -> tuple[QueuedRecord, ...]:
        """The records one by one (made on each call: for tests and diagnostics)."""
        return tuple(record for run in self.runs for record in run.records())

    def __repr__(self) -> str:
        probe = ", probe" if self.is_probe else ""
        return (
            f"Attempt(#{self.attempt_id} {self.protocol} {self.record_count} records, "
            f"key={self.idempotency_key}, try {self.number}{probe})"
        )


def _seqs(runs: Sequence[RecordRun]) -> tuple[int, ...]:
    return tuple(seq for run in runs for seq in run.seqs)


class _CarriesRuns:
    """Per-record views of an effect's ``runs``, made only when asked for."""

    __slots__ = ()
    runs: tuple[RecordRun, ...]

    @property
    def seqs(self) -> tuple[int, ...]:
        return _seqs(self.runs)

    @property
    def record_ids(self) -> tuple[str, ...]:
        return tuple(record_id for run in self.runs for record_id in run.ids.split("\n"))


def _halves(
    runs: tuple[RecordRun, ...], count: int
) -> tuple[tuple[RecordRun, ...], tuple[RecordRun, ...]]:
    """The first ``count`` records of ``runs`` and the rest (the run at the cut is split)."""
    head: list[RecordRun] = []
    for index, run in enumerate(runs):
        if count >= run.count:
            head.append(run)
            count -= run.count
            continue
        if not count:
            return tuple(head), runs[index:]
        first, rest = run.split(count)
        return (*head, first), (rest, *runs[index + 1 :])
    return tuple(head), ()


@dataclass(frozen=True, slots=True)
class RecordsDelivered(_CarriesRuns):
    """The receiver stored these records: remove them from the queue (by ``run.seqs``)."""

    runs: tuple[RecordRun, ...]
    protocol: Protocol
    attempt_number: int


@dataclass(frozen=True, slots=True)
class RecordsRejectedByReceiver:
    """The receiver refused ``count`` records (400/404, or ``processed`` below the batch size).

    A counter, not a queue action: the records themselves are reported by `RecordsDelivered`
    (partial ``processed``) or `RecordsDeadLettered` (400/404).
    """

    count: int
    status: int
    detail: str


@dataclass(frozen=True, slots=True)
class RecordsDeadLettered(_CarriesRuns):
    """These records will never be delivered: move them to the dead letter store.

    ``reason`` is a stable code: ``bad_request``, ``unknown_source``, ``http_<status>``
    (other 4xx), ``too_large`` (413 for a single record), ``receiver_error`` (poison),
    ``partially_processed`` (a record a 2xx kept leaving out of ``processed``).
    """

    runs: tuple[RecordRun, ...]
    reason: str
    status: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class BatchSplit:
    """A batch was split into two halves (413, or poison isolation after repeated 5xx)."""

    seqs: tuple[int, ...]
    halves: tuple[int, int]
    """Record counts of the two halves."""
    reason: str
    at: float
    """When the halves will be sent."""


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """A batch failed transiently and will be sent again at ``at``."""

    attempt_id: int
    attempt_number: int
    record_count: int
    idempotency_key: str
    at: float
    reason: str
    """``http_<status>`` or ``transport_<reason>``."""
    status: int | None


@dataclass(frozen=True, slots=True)
class ProtocolChanged:
    """The output switched protocol (only ever because of an HTTP/3 transport error or probe)."""

    old: Protocol
    new: Protocol
    reason: str


@dataclass(frozen=True, slots=True)
class Http3ProbeFailed:
    """An HTTP/3 probe got a transport error; the output stays on HTTP/1.1."""

    reason: str
    next_probe_at: float


@dataclass(frozen=True, slots=True)
class OutputPaused:
    """The output sends nothing until ``until`` (then one trial request at a time).

    ``reason``: ``auth_failed`` (401/403) or ``contract_mismatch``. The records are kept.
    """

    reason: str
    status: int
    until: float
    detail: str


@dataclass(frozen=True, slots=True)
class OutputResumed:
    """A 2xx ended a pause."""

    reason: str
    """The reason of the pause that ended."""


@dataclass(frozen=True, slots=True)
class ContractMismatchDetected:
    """A batch got a single-record reply: the receiver speaks only ``mode: single``."""

    detail: str
    suggestion: str = SINGLE_MODE_SUGGESTION


Effect = (
    RecordsDelivered
    | RecordsRejectedByReceiver
    | RecordsDeadLettered
    | BatchSplit
    | RetryScheduled
    | ProtocolChanged
    | Http3ProbeFailed
    | OutputPaused
    | OutputResumed
    | ContractMismatchDetected
    | OutputDown
    | OutputStillDown
    | OutputRecovered
)


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """A read-only snapshot for health and metrics."""

    protocol: Protocol
    http3_enabled: bool
    in_flight: int
    records_held: int
    retries_total: int
    fallbacks_by_reason: MappingProxyType[str, int]
    """HTTP/3 transport errors that sent a batch over HTTP/1.1, by `TransportError.reason`."""
    paused_reason: str | None
    """``auth_failed`` or ``contract_mismatch`` until a 2xx; None when sending normally."""
    paused_until: float | None
    down_since: float | None
    """When the output went down (see `OutputDown`); None while it delivers."""
    down_cause: str | None
    next_probe_at: float | None
    last_error: str | None
    accepting: bool


# -- internal state ------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Batch:
    """A closed batch: its records and encoded request payload, and how it has fared."""

    runs: tuple[RecordRun, ...]
    count: int
    """Records in ``runs``."""
    encoded: EncodedBatch
    sends: int = 0
    isolating_failures: int = 0
    """5xx answers that may come from a poison record (reset for each split half)."""
    failing_since: int | None = None
    """The answer tick of this lineage's first isolating failure (kept across splits)."""
    split_tick: int | None = None
    """The answer tick at which this batch was made by a split (None: an original batch)."""
    h1_next: bool = False
    """The last attempt was an HTTP/3 transport failure: the next send is HTTP/1.1."""
    h3_failure: str | None = None
    """Why its last HTTP/3 attempt failed (a transport reason); None once sent over HTTP/3."""


@dataclass(slots=True)
class _Pause:
    reason: str
    until: float
    first_attempt_id: int
    """Attempts with a lower id were sent before the pause and do not lengthen it."""


class OutputDelivery:
    """The delivery state machine of one output; see the module docstring."""

    def __init__(self, settings: OutputSettings, *, rng: random.Random) -> None:
        self._settings = settings
        self._rng = rng
        self._envelope = Envelope.for_settings(settings)
        self._pending: deque[RecordRun] = deque()
        self._pending_count = 0
        self._waiting: list[tuple[float, int, _Batch]] = []
        self._order = itertools.count()
        self._in_flight: dict[int, tuple[Attempt, _Batch]] = {}
        self._next_attempt_id = 1
        self._last_seq: dict[bool, int] = {}
        """The last seq offered, per lane (key: ``catch_up``)."""
        self._accepting = True
        self._effects: list[Effect] = []
        self._protocol = Protocol.H3 if settings.http3_enabled else Protocol.H1
        self._probe_at: float | None = None
        self._probe_in_flight = False
        self._pause: _Pause | None = None
        self._pause_streak = 0
        self._tick = 0
        self._last_delivery_tick = -1
        self._retries_total = 0
        self._fallbacks: Counter[str] = Counter()
        self._last_error: str | None = None
        self._streak = 0
        """Transient failures since the last delivery: the output's backoff exponent."""
        self._quic_suspect: str | None = None
        """An HTTP/3 transport error whose HTTP/1.1 resend has not answered yet: QUIC
        blocked (HTTP/1.1 will work) or the receiver down (it will not)."""
        self._outage: Outage | None = None
        self._outage_ended_at = float("-inf")
        self._checks: dict[int, ReachabilityCheck] = {}
        self._next_check_id = 1

    # -- inputs ----------------------------------------------------------------------------

    def offer(
        self,
        records: Sequence[RecordRun] | Sequence[QueuedRecord],
        now: float,
        *,
        wall_now: float | None = None,
    ) -> None:
        """Hand over new records from the queue, in ``seq`` order within each lane
        (`RecordRun.catch_up`), each exactly once: runs as `DurableQueue.read_runs` gives
        them, or single `QueuedRecord` s (made into live runs). A live run goes in front of
        the catch-up runs pending (module docstring).

        Batching goes by how long each record has waited since ``queued_at`` (wall time) at
        ``wall_now``, carried over to the core's clock at ``now``: inside the core a run's
        ``queued_at`` is on that clock. A ``queued_at`` after ``wall_now`` (the wall clock
        stepped back since it was stored) counts as stored now, so a record never waits
        more than the flush interval. Offering beyond `room` is allowed (nothing is ever
        dropped), only unwise.
        """
        if not self._accepting:
            raise ValueError("offer() after stop_accepting()")
        runs = [r for r in records if isinstance(r, RecordRun)]
        if len(runs) != len(records):
            runs = RecordRun.of(r for r in records if isinstance(r, QueuedRecord))
        wall = now if wall_now is None else wall_now
        for offered in runs:
            run = offered._replace(queued_at=now - max(0.0, wall - offered.queued_at))
            last = self._last_seq.get(run.catch_up)
            if last is not None and run.first_seq <= last:
                raise ValueError(
                    f"record seq {run.first_seq} offered after seq {last}: "
                    "records must be offered once, in seq order (per lane)"
                )
            if run.count <= 0:
                raise ValueError(f"a run of {run.count} records offered at {run.first_seq}")
            self._last_seq[run.catch_up] = run.first_seq + run.count - 1
            self._enqueue(run)
            self._pending_count += run.count

    def _enqueue(self, run: RecordRun) -> None:
        """Put ``run`` at the end of its lane in pending: live runs before catch-up ones."""
        pending = self._pending
        if run.catch_up or not pending or not pending[-1].catch_up:
            pending.append(run)
            return
        # Catch-up runs wait: the live run goes after the live ones, which are few (the
        # live lane carries what is written as it is written).
        at = next(index for index, queued in enumerate(pending) if queued.catch_up)
        pending.insert(at, run)

    def attempt_answered(
        self,
        attempt: Attempt,
        response: HttpResponse,
        now: float,
        *,
        wall_now: float | None = None,
    ) -> None:
        """Report the HTTP response (any status) to ``attempt`` (``wall_now`` resolves an
        HTTP-date ``Retry-After``)."""
        batch = self._finish(attempt)
        if attempt.is_probe and self._protocol is Protocol.H1:
            # Any response over HTTP/3 proves the transport works; the status is judged below
            # like any other (a status never changes protocol).
            self._switch(Protocol.H3, "http/3 probe answered")
            self._probe_at = None
        outcome = classify(
            response,
            batch_size=batch.count,
            mode=self._settings.mode,
            now=now if wall_now is None else wall_now,
        )
        if isinstance(outcome, Delivered):
            self._delivered(batch, attempt, outcome, response.status, now)
        elif isinstance(outcome, Retry):
            detail = f"HTTP {outcome.status}" + (f": {outcome.detail}" if outcome.detail else "")
            self._retry(batch, attempt, outcome, now, cause=outcome.reason, detail=detail)
        elif isinstance(outcome, Split):
            self._split_too_large(batch, outcome.status, now)
        elif isinstance(outcome, Rejected):
            self._last_error = f"{outcome.reason} (HTTP {outcome.status}): {outcome.detail}"
            self._dead_letter(batch, outcome.reason, outcome.status, outcome.detail)
            rejected = RecordsRejectedByReceiver(batch.count, outcome.status, outcome.detail)
            self._emit(rejected)
        elif isinstance(outcome, AuthFailed):
            self._last_error = f"credentials refused (HTTP {outcome.status}): {outcome.detail}"
            self._hold(batch, now)
            self._pause_output("auth_failed", outcome.status, outcome.detail, attempt, now)
        elif isinstance(outcome, ContractMismatch):
            self._last_error = f"contract mismatch: {outcome.detail}"
            self._hold(batch, now)
            self._emit(ContractMismatchDetected(outcome.detail))
            self._pause_output("contract_mismatch", response.status, outcome.detail, attempt, now)
        if self._outage is not None and self.is_idle:
            # The failures were the records' own (dead-lettered poison, 400s): nothing is
            # left to fail, and the receiver answers. The output is idle, not down.
            self._end_outage(attempt.protocol, now)

    def attempt_failed(self, attempt: Attempt, error: TransportError, now: float) -> None:
        """Report that ``attempt`` got no HTTP response (`TransportError`)."""
        batch = self._finish(attempt)
        self._last_error = f"{attempt.protocol} transport error: {error.reason}"
        if attempt.protocol is Protocol.H3:
            # receiver-api.md: QUIC unavailable -> the same batch over HTTP/1.1 at once.
            self._fallbacks[error.reason] += 1
            batch.h1_next = True
            # An attempt begun while the receiver was down says nothing about QUIC: its
            # handshake may have started before the receiver was back (QUIC retransmits its
            # first packets slowly), so an HTTP/1.1 success after it does not mean blocked.
            telling = self._outage is None and attempt.sent_at >= self._outage_ended_at
            batch.h3_failure = error.reason if telling else None
            self._hold(batch, now)
            if attempt.is_probe:
                self._probe_at = now + self._settings.probe_interval_s
                self._emit(Http3ProbeFailed(error.reason, self._probe_at))
            elif self._protocol is Protocol.H3 and telling:
                # QUIC blocked, or the receiver down? The HTTP/1.1 resend tells (see
                # _delivered and below); until then new batches go over HTTP/1.1 too.
                self._quic_suspect = self._quic_suspect or error.reason
            return
        # Over HTTP/1.1 too: the receiver is down, not QUIC blocked; HTTP/3 stays preferred.
        self._quic_suspect = None
        retry = Retry(reason=f"transport_{error.reason}")
        self._retry(batch, attempt, retry, now, cause=error.reason, detail=error.detail)

    def check_passed(self, check: ReachabilityCheck, now: float) -> None:
        """Report that ``check`` reached the receiver.

        Checks say *when* to try again, not *which protocol*: a failed HTTP/3 check may have
        begun its handshake before the receiver was back (and QUIC retransmits its first
        packets slowly), so it proves nothing about the path. The trial goes over the
        protocol in use; if that is HTTP/3 and QUIC is in fact blocked, the trial's own
        transport error sends it over HTTP/1.1 and `_delivered` draws the conclusion, as
        for any batch. Only a passed HTTP/3 check changes protocol (back to HTTP/3).
        """
        outage = self._finish_check(check)
        if outage is None:
            return
        outage.round[check.protocol] = True
        if check.protocol is Protocol.H3:
            if self._protocol is Protocol.H1:
                # QUIC works again: this check did what a probe does.
                self._switch(Protocol.H3, "http/3 reachable again")
                self._probe_at = None
            self._release_trial(outage, now)
        elif self._protocol is Protocol.H1 or outage.round.get(Protocol.H3) is not None:
            self._release_trial(outage, now)
        # else: the HTTP/3 check is still out; a trial over HTTP/3 now would only share
        # its (possibly stale) handshake. Its answer releases the trial.

    def check_failed(self, check: ReachabilityCheck, error: TransportError, now: float) -> None:
        """Report that ``check`` did not reach the receiver."""
        outage = self._finish_check(check)
        if outage is None:
            return
        outage.round[check.protocol] = False
        if check.protocol is Protocol.H1:
            # Every output has HTTP/1.1: its error says best why the receiver is unreachable.
            outage.cause, outage.detail = error.reason, error.detail
        elif outage.round.get(Protocol.H1):
            self._release_trial(outage, now)  # HTTP/1.1 reached it (see check_passed)
            return
        if all(result is False for result in outage.round.values()):
            outage.end_round(check.started_at + self._settings.retry.check_interval_s)

    def stop_accepting(self) -> None:
        """Graceful stop: no more offers; records already offered are batched at once,
        without waiting for the flush interval. The app sends what `next_attempts` returns
        for as long as its drain budget allows; whatever is not delivered stays queued."""
        self._accepting = False

    # -- outputs ---------------------------------------------------------------------------

    def next_attempts(self, now: float) -> list[Attempt]:
        """The requests to send now (possibly none), within ``max_in_flight``, pauses and
        backoff times. Each must be reported back by `attempt_answered` or `attempt_failed`."""
        self._summarize_outage(now)
        attempts: list[Attempt] = []
        while self._capacity(now) > 0:
            batch = self._next_ready_batch(now)
            if batch is None:
                break
            attempts.append(self._start(batch, now))
        return attempts

    def next_checks(self, now: float) -> list[ReachabilityCheck]:
        """The reachability checks to run now (possibly none): while the receiver is
        unreachable, one per protocol every ``check_interval_s``. Each must be reported back
        by `check_passed` or `check_failed`."""
        outage = self._outage
        if (
            outage is None
            or not outage.unreachable
            or outage.next_check_at is None
            or now < outage.next_check_at
        ):
            return []
        protocols = [Protocol.H3, Protocol.H1] if self._settings.http3_enabled else [Protocol.H1]
        checks = []
        for protocol in protocols:
            url = self._settings.url if protocol is Protocol.H3 else self._settings.h1_url
            check = ReachabilityCheck(self._next_check_id, protocol, url, now)
            self._next_check_id += 1
            self._checks[check.check_id] = check
            checks.append(check)
        outage.start_round({check.protocol: check.check_id for check in checks})
        return checks

    def take_effects(self) -> list[Effect]:
        """The events since the last call, oldest first."""
        effects, self._effects = self._effects, []
        return effects

    def next_deadline(self) -> float | None:
        """When to call `next_attempts` and `next_checks` again if no input arrives first;
        None: wait for one.

        May be in the past right after `offer` (call `next_attempts` now). Never in the past
        right after `next_attempts` and `next_checks`, so a timer re-armed from it cannot spin.
        """
        candidates: list[float] = []
        outage = self._outage
        if outage is not None:
            candidates.append(outage.next_summary_at)
            if outage.unreachable and outage.next_check_at is not None:
                candidates.append(outage.next_check_at)
        work = self._work_deadline()
        if work is not None:
            candidates.append(work)
        return min(candidates, default=None)

    def _work_deadline(self) -> float | None:
        if self._pause is not None:
            # Paused, or in the one-at-a-time trial: an answer (an input) must come first.
            if self._in_flight or not self._holds_unsent():
                return None
            return max(self._pause.until, self._earliest_work() or self._pause.until)
        if len(self._in_flight) >= self._limit():
            return None
        return self._earliest_work()

    def room(self, *, catch_up: bool = False) -> int:
        """How many more records the app should offer now (0 after `stop_accepting`), of
        the live lane or, with ``catch_up``, of the catch-up lane.

        Bounded at `OutputSettings.hold_limit` records held, so a receiver outage keeps the
        backlog on disk, not in memory. Catch-up records may fill it only up to
        `OutputSettings.live_reserve` short of that: a live record stored while a backlog
        keeps the hold full still finds room at once, and goes in the next request.
        """
        if not self._accepting:
            return 0
        limit = self._settings.hold_limit
        if catch_up:
            limit -= self._settings.live_reserve
        return max(0, limit - self.records_held)

    def wants_more(self) -> bool:
        """Whether `room` is positive."""
        return self.room() > 0

    # -- read-only state -------------------------------------------------------------------

    @property
    def settings(self) -> OutputSettings:
        """The settings this output runs with."""
        return self._settings

    @property
    def protocol(self) -> Protocol:
        """The protocol new batches go over (probes aside)."""
        return self._protocol

    @property
    def in_flight(self) -> int:
        """Attempts sent and not yet reported back."""
        return len(self._in_flight)

    @property
    def records_held(self) -> int:
        """Records offered and neither delivered nor dead-lettered."""
        waiting = sum(batch.count for _, _, batch in self._waiting)
        flying = sum(batch.count for _, batch in self._in_flight.values())
        return self._pending_count + waiting + flying

    @property
    def is_idle(self) -> bool:
        """Nothing held: every offered record was delivered or dead-lettered."""
        return not (self._pending or self._waiting or self._in_flight)

    def status(self) -> DeliveryStatus:
        """A snapshot for health and metrics."""
        return DeliveryStatus(
            protocol=self._protocol,
            http3_enabled=self._settings.http3_enabled,
            in_flight=len(self._in_flight),
            records_held=self.records_held,
            retries_total=self._retries_total,
            fallbacks_by_reason=MappingProxyType(dict(self._fallbacks)),
            paused_reason=None if self._pause is None else self._pause.reason,
            paused_until=None if self._pause is None else self._pause.until,
            down_since=None if self._outage is None else self._outage.since,
            down_cause=None if self._outage is None else self._outage.cause,
            next_probe_at=self._probe_at,
            last_error=self._last_error,
            accepting=self._accepting,
        )

    # -- sending ---------------------------------------------------------------------------

    def _capacity(self, now: float) -> int:
        if self._pause is not None:
            if now < self._pause.until:
                return 0
            return 1 - min(1, len(self._in_flight))  # the trial: one request at a time
        return max(0, self._limit() - len(self._in_flight))

    def _limit(self) -> int:
        """Requests in flight at most: one while the output is down (no storm against a
        receiver that fails), else ``max_in_flight``."""
        return 1 if self._outage is not None else self._settings.max_in_flight

    def _next_waiting_due(self) -> float | None:
        """When the first held batch may go. While the output is down, held batches share
        one retry time, so the output's backoff bounds its request rate whatever the number
        of batches held; while the receiver is unreachable, only a passed reachability check
        lets one go (a payload retry would race the check's handshake and learn nothing
        more). An HTTP/1.1 resend after an HTTP/3 transport error still goes at once (it
        completes the attempt that failed)."""
        if not self._waiting:
            return None
        at, _, batch = self._waiting[0]
        if self._outage is None or batch.h1_next:
            return at
        if self._outage.unreachable:
            return None
        return max(at, self._outage.retry_at)

    def _batches_pending(self) -> bool:
        """Whether new batches may be made from pending records now. While the output is
        down, the held batches go first: new ones would only fail alike."""
        return self._outage is None or not (self._waiting or self._in_flight)

    def _next_ready_batch(self, now: float) -> _Batch | None:
        due = self._next_waiting_due()
        if due is not None and due <= now:
            return heapq.heappop(self._waiting)[2]
        if not self._batches_pending():
            return None
        if batching.batch_due(
            self._pending,
            self._settings,
            self._envelope.overhead,
            now,
            flush_all=not self._accepting,
        ):
            runs = batching.take_batch(self._pending, self._settings, self._envelope.overhead)
            batch = self._new_batch(tuple(runs))
            self._pending_count -= batch.count
            return batch
        return None

    def _new_batch(self, runs: tuple[RecordRun, ...]) -> _Batch:
        count = sum(run.count for run in runs)
        return _Batch(runs, count, encode_batch(runs, self._settings, self._envelope))

    def _start(self, batch: _Batch, now: float) -> Attempt:
        protocol, is_probe = self._choose_protocol(batch, now)
        batch.sends += 1
        batch.h1_next = False
        if protocol is Protocol.H3:
            batch.h3_failure = None
        attempt = Attempt(
            attempt_id=self._next_attempt_id,
            protocol=protocol,
            request=build_request(batch.encoded, batch.count, self._settings, protocol),
            runs=batch.runs,
            record_count=batch.count,
            idempotency_key=batch.encoded.idempotency_key,
            number=batch.sends,
            is_probe=is_probe,
            sent_at=now,
        )
        self._next_attempt_id += 1
        self._in_flight[attempt.attempt_id] = (attempt, batch)
        self._probe_in_flight |= is_probe
        return attempt

    def _choose_protocol(self, batch: _Batch, now: float) -> tuple[Protocol, bool]:
        if not self._settings.http3_enabled or batch.h1_next:
            return Protocol.H1, False
        if self._protocol is Protocol.H3:
            return (Protocol.H1 if self._quic_suspect else Protocol.H3), False
        if self._probe_at is not None and now >= self._probe_at and not self._probe_in_flight:
            return Protocol.H3, True
        return Protocol.H1, False

    # -- answers ---------------------------------------------------------------------------

    def _finish(self, attempt: Attempt) -> _Batch:
        entry = self._in_flight.pop(attempt.attempt_id, None)
        if entry is None or entry[0] is not attempt:
            raise ValueError(f"{attempt!r} is not in flight (answered twice, or not ours)")
        if attempt.is_probe:
            self._probe_in_flight = False
        self._tick += 1
        return entry[1]

    def _delivered(
        self, batch: _Batch, attempt: Attempt, outcome: Delivered, status: int, now: float
    ) -> None:
        self._last_delivery_tick = self._tick
        if attempt.protocol is Protocol.H1:
            quic_failure = batch.h3_failure or self._quic_suspect
            if quic_failure is not None and self._protocol is Protocol.H3:
                # HTTP/3 failed at transport level and HTTP/1.1 works: QUIC is blocked.
                self._switch(Protocol.H1, quic_failure)
                self._probe_at = now + self._settings.probe_interval_s
            self._quic_suspect = None
        self._streak = 0
        self._emit(
            RecordsDelivered(
                runs=batch.runs,
                protocol=attempt.protocol,
                attempt_number=attempt.number,
            )
        )
        if outcome.rejected:
            detail = f"receiver processed {outcome.processed} of {batch.count} records"
            self._last_error = detail
            self._emit(RecordsRejectedByReceiver(outcome.rejected, status, detail))
        self._pause_streak = 0
        if self._pause is not None:
            self._emit(OutputResumed(self._pause.reason))
            self._pause = None
        self._end_outage(attempt.protocol, now)

    def _retry(
        self,
        batch: _Batch,
        attempt: Attempt,
        outcome: Retry,
        now: float,
        *,
        cause: str,
        detail: str,
    ) -> None:
        if outcome.status is not None:
            self._last_error = f"HTTP {outcome.status} ({outcome.reason})"
        self._streak += 1
        self._note_failure(cause, detail, unreachable=outcome.status is None, now=now)
        if outcome.isolate:
            batch.isolating_failures += 1
            if batch.failing_since is None:
                batch.failing_since = self._tick
            if self._isolate(batch, outcome, now):
                return
        at = now + self._backoff(outcome)
        if self._outage is not None:
            self._outage.retry_at = at
        self._hold(batch, at)
        self._retries_total += 1
        self._emit(
            RetryScheduled(
                attempt_id=attempt.attempt_id,
                attempt_number=attempt.number,
                record_count=batch.count,
                idempotency_key=batch.encoded.idempotency_key,
                at=at,
                reason=outcome.reason,
                status=outcome.status,
            )
        )

    def _isolate(self, batch: _Batch, outcome: Retry, now: float) -> bool:
        """Poison isolation; True when the batch was split or dead-lettered."""
        retry = self._settings.retry
        if batch.count > 1:
            if batch.isolating_failures < retry.attempts_before_split:
                return False
            if batch.split_tick is not None and self._last_delivery_tick <= batch.split_tick:
                # Both halves of the last split kept failing and nothing else got through:
                # that looks like an outage, not a poison record. Splitting further would only
                # multiply the requests (a retry storm); wait for a delivery to say otherwise.
                return False
            at = now + self._backoff(outcome)
            if self._outage is not None:
                self._outage.retry_at = at
            self._split(batch, f"isolate_{outcome.reason}", at)
            return True
        since = batch.failing_since
        isolated = since is not None and self._last_delivery_tick > since
        if batch.isolating_failures >= retry.record_retry_budget and isolated:
            detail = (
                f"HTTP {outcome.status} on {batch.isolating_failures} attempts of this record "
                "alone while other records were delivered"
            )
            # A 2xx that kept not counting the record says so; any other failure is the
            # receiver erroring on it.
            reason = "receiver_error" if outcome.reason != PARTIALLY_PROCESSED else outcome.reason
            self._dead_letter(batch, reason, outcome.status, detail)
            return True
        return False

    def _split_too_large(self, batch: _Batch, status: int, now: float) -> None:
        if batch.count == 1:
            detail = "the receiver refuses this record alone as too large (413)"
            self._last_error = detail
            self._dead_letter(batch, "too_large", status, detail)
            return
        self._split(batch, "too_large", now)

    def _split(self, batch: _Batch, reason: str, at: float) -> None:
        halves = [self._new_batch(runs) for runs in _halves(batch.runs, batch.count // 2)]
        for half in halves:
            half.failing_since = batch.failing_since
            half.split_tick = self._tick
            self._hold(half, at)
        self._emit(
            BatchSplit(
                seqs=_seqs(batch.runs),
                halves=(halves[0].count, halves[1].count),
                reason=reason,
                at=at,
            )
        )

    def _dead_letter(self, batch: _Batch, reason: str, status: int | None, detail: str) -> None:
        self._emit(
            RecordsDeadLettered(
                runs=batch.runs,
                reason=reason,
                status=status,
                detail=detail,
            )
        )

    def _pause_output(
        self, reason: str, status: int, detail: str, attempt: Attempt, now: float
    ) -> None:
        if self._pause is not None and attempt.attempt_id < self._pause.first_attempt_id:
            return  # sent before this pause began: nothing new, and no longer pause
        self._pause_streak += 1
        until = now + pause_duration(self._pause_streak, self._settings.retry)
        self._pause = _Pause(reason, until, self._next_attempt_id)
        self._emit(OutputPaused(reason, status, until, detail))

    # -- outages ---------------------------------------------------------------------------

    def _backoff(self, outcome: Retry) -> float:
        """The wait before a retry: the output's backoff, which grows with every failure
        since the last delivery (whichever batch failed), or the receiver's Retry-After."""
        return retry_delay(self._streak - 1, outcome.after_s, self._settings.retry, self._rng)

    def _note_failure(self, cause: str, detail: str, *, unreachable: bool, now: float) -> None:
        """Start or extend the outage. A transport error over the last protocol left means
        the receiver cannot be reached: down at once. One HTTP failure between deliveries
        is a blip (retried, logged at debug); two in a row are an outage."""
        retry = self._settings.retry
        if self._outage is not None:
            self._outage.failed_again(
                cause,
                detail,
                unreachable=unreachable,
                now=now,
                check_interval=retry.check_interval_s,
                check_cap=retry.max_backoff_s,
            )
            return
        if not unreachable and self._streak < 2:
            return
        self._outage = Outage(
            since=now,
            cause=cause,
            detail=detail,
            unreachable=unreachable,
            next_summary_at=now + self._settings.outage_summary_interval_s,
            failures=self._streak,
            next_check_at=now if unreachable else None,
        )
        self._emit(OutputDown(cause, detail, fix_for(cause), now, checking=unreachable))

    def _end_outage(self, protocol: Protocol, now: float) -> None:
        outage, self._outage = self._outage, None
        if outage is None:
            return
        self._outage_ended_at = now
        self._emit(
            OutputRecovered(
                cause=outage.cause,
                since=outage.since,
                down_for_s=now - outage.since,
                failures=outage.failures,
                protocol=protocol,
            )
        )
        # The receiver takes data again: everything held goes now, not at its backoff.
        self._waiting = [(min(at, now), order, held) for at, order, held in self._waiting]
        heapq.heapify(self._waiting)

    def _summarize_outage(self, now: float) -> None:
        outage = self._outage
        if outage is None or now < outage.next_summary_at:
            return
        outage.next_summary_at = now + self._settings.outage_summary_interval_s
        self._emit(
            OutputStillDown(
                cause=outage.cause,
                detail=outage.detail,
                fix=fix_for(outage.cause),
                since=outage.since,
                failures=outage.failures,
                records_held=self.records_held,
                next_retry_at=self._next_waiting_due(),
                # A round of checks may be running right now: then the next try is now.
                next_check_at=(outage.next_check_at or now) if outage.unreachable else None,
            )
        )

    def _finish_check(self, check: ReachabilityCheck) -> Outage | None:
        """Take ``check`` off the books; the outage it belongs to, or None when it is stale
        (the outage ended, or a later round began)."""
        if self._checks.pop(check.check_id, None) is not check:
            raise ValueError(f"{check!r} is not in flight (answered twice, or not ours)")
        outage = self._outage
        if outage is None or check.check_id not in outage.round_checks:
            return None
        return outage

    def _release_trial(self, outage: Outage, now: float) -> None:
        """A check passed: the next held batch goes now, as the trial (one at a time)."""
        outage.release_trial()
        outage.retry_at = now
        if self._waiting:
            _, order, batch = heapq.heappop(self._waiting)
            heapq.heappush(self._waiting, (now, order, batch))

    # -- helpers ---------------------------------------------------------------------------

    def _hold(self, batch: _Batch, at: float) -> None:
        heapq.heappush(self._waiting, (at, next(self._order), batch))

    def _switch(self, new: Protocol, reason: str) -> None:
        old, self._protocol = self._protocol, new
        self._emit(ProtocolChanged(old, new, reason))

    def _holds_unsent(self) -> bool:
        return bool(self._waiting or self._pending)

    def _earliest_work(self) -> float | None:
        candidates: list[float] = []
        due = self._next_waiting_due()
        if due is not None:
            candidates.append(due)
        if self._pending and self._batches_pending():
            if not self._accepting or batching.batch_due(
                self._pending, self._settings, self._envelope.overhead, float("-inf")
            ):
                candidates.append(self._pending[0].queued_at)
            else:
                deadline = batching.next_flush_deadline(self._pending, self._settings)
                if deadline is not None:
                    candidates.append(deadline)
        return min(candidates, default=None)

    def _emit(self, effect: Effect) -> None:
        self._effects.append(effect)
