"""Stories of one output's delivery core: build it, feed inputs at explicit times, check outputs.

No IO and no sleeping: a "receiver" here is a function from an `Attempt` to an answer, and the
clock is a float that the test moves.
"""

from __future__ import annotations

import json

import pytest
from core_support import (
    API_KEY,
    H1,
    H3,
    LICENSE_KEY,
    URL,
    Answer,
    Receiver,
    delivered_seqs,
    delivery,
    of_type,
    quic_down,
    records,
    reply,
    run,
    stored,
)

from kk_shipper.core import (
    Attempt,
    BatchSplit,
    ContractMismatchDetected,
    Http3ProbeFailed,
    OutputPaused,
    OutputResumed,
    ProtocolChanged,
    RecordsDeadLettered,
    RecordsDelivered,
    RecordsRejectedByReceiver,
    RetryScheduled,
)
from kk_shipper.core.request_builder import idempotency_key
from kk_shipper.types import RecordRun, TransportError

# -- batching ----------------------------------------------------------------------------


def test_a_full_batch_goes_at_once_over_http3_and_is_delivered() -> None:
    core = delivery()
    core.offer(records(0, 4), now=0.0)
    [attempt] = core.next_attempts(now=0.0)
    assert (attempt.protocol, attempt.seqs, attempt.number, attempt.is_probe) == (
        H3,
        (0, 1, 2, 3),
        1,
        False,
    )
    headers = dict(attempt.request.headers)
    assert headers["idempotency-key"] == attempt.idempotency_key
    assert headers["x-batch-size"] == "4"
    assert headers["authorization"] == f"Bearer {LICENSE_KEY}"
    assert [r["id"] for r in json.loads(attempt.request.body)["logs"]] == [
        "rec-0",
        "rec-1",
        "rec-2",
        "rec-3",
    ]
    core.attempt_answered(attempt, stored(attempt), now=0.2)
    [delivered] = core.take_effects()
    assert isinstance(delivered, RecordsDelivered)
    assert (delivered.seqs, delivered.record_ids, delivered.protocol) == (
        (0, 1, 2, 3),
        ("rec-0", "rec-1", "rec-2", "rec-3"),
        H3,
    )
    assert delivered.attempt_number == 1
    assert core.is_idle
    assert core.take_effects() == []


def test_a_partial_batch_waits_for_the_flush_interval_of_its_oldest_record() -> None:
    core = delivery()
    core.offer(records(0, 2, queued_at=100.0), now=100.0)
    assert core.next_attempts(now=100.0) == []
    assert core.next_deadline() == 105.0
    assert core.next_attempts(now=104.9) == []
    [attempt] = core.next_attempts(now=105.0)
    assert attempt.seqs == (0, 1)


# The app passes two clocks: ``now`` is monotonic (every deadline is on it), ``wall_now`` is
# unix time (what a record's queued_at means). Monotonic times here are small, wall times
# are near WALL.
WALL = 1_800_000_000.0


def test_a_backward_wall_step_after_the_offer_does_not_hold_back_a_partial_batch() -> None:
    core = delivery()  # flush interval 5 s
    core.offer(records(0, 2, queued_at=WALL), now=10.0, wall_now=WALL)
    assert core.next_deadline() == 15.0
    # The wall clock steps back an hour; the monotonic clock goes on. Nothing the core is
    # told afterwards is on the wall clock, and the deadline stands.
    core.offer(records(2, 1, queued_at=WALL - 3600 + 2), now=12.0, wall_now=WALL - 3600 + 2)
    assert core.next_deadline() == 15.0
    assert core.next_attempts(now=14.9) == []
    [attempt] = core.next_attempts(now=15.0)
    assert attempt.seqs == (0, 1, 2)


def test_records_stored_before_a_backward_wall_step_wait_no_longer_than_the_interval() -> None:
    core = delivery()
    # Stored at WALL, offered after the wall clock stepped back an hour: they look as if
    # they were stored in the future; they count as stored at the offer.
    core.offer(records(0, 2, queued_at=WALL), now=50.0, wall_now=WALL - 3600)
    assert core.next_deadline() == 55.0
    [attempt] = core.next_attempts(now=55.0)
    assert attempt.seqs == (0, 1)


def test_records_that_waited_across_a_restart_go_at_once() -> None:
    core = delivery()
    # A new process: its monotonic clock starts near 0; the records were stored a minute
    # of wall time ago, by the process before.
    core.offer(records(0, 2, queued_at=WALL - 60), now=0.5, wall_now=WALL)
    assert core.next_deadline() is not None and core.next_deadline() <= 0.5
    [attempt] = core.next_attempts(now=0.5)
    assert attempt.seqs == (0, 1)


def test_a_record_partly_waited_goes_when_its_interval_ends_on_the_core_clock() -> None:
    core = delivery()
    core.offer(records(0, 1, queued_at=WALL - 2), now=100.0, wall_now=WALL)
    assert core.next_deadline() == 103.0
    # A forward wall step changes nothing either.
    assert core.next_attempts(now=102.9) == []
    assert len(core.next_attempts(now=103.0)) == 1


def test_an_http_date_retry_after_is_read_against_wall_time() -> None:
    core = delivery(batch_size=1)
    core.offer(records(0, 1, queued_at=WALL), now=10.0, wall_now=WALL)
    [attempt] = core.next_attempts(now=10.0)
    # WALL is 2027-01-15 08:00:00 UTC; the receiver asks for 30 s more.
    answer = reply(503, **{"retry-after": "Fri, 15 Jan 2027 08:00:30 GMT"})
    core.attempt_answered(attempt, answer, 20.0, wall_now=WALL)
    assert core.next_deadline() == pytest.approx(50.0)


def test_a_batch_closes_at_the_byte_limit() -> None:
    core = delivery(batch_size=1000, max_request_bytes=1024)
    core.offer(records(0, 20, queued_at=0.0), now=0.0)
    attempts = core.next_attempts(now=0.0)
    assert len(attempts) == 2
    assert all(len(a.request.body) <= 1024 for a in attempts)
    assert sum(len(a.records) for a in attempts) < 20  # the rest waits for a free slot
    assert attempts[1].seqs[0] == attempts[0].seqs[-1] + 1


def test_stop_accepting_flushes_partial_batches_at_once_and_refuses_offers() -> None:
    core = delivery()
    core.offer(records(0, 1, queued_at=100.0), now=100.0)
    assert core.next_attempts(now=100.0) == []
    core.stop_accepting()
    [attempt] = core.next_attempts(now=100.0)
    assert attempt.seqs == (0,)
    assert core.room() == 0
    with pytest.raises(ValueError, match="stop_accepting"):
        core.offer(records(1, 1), now=100.0)


def test_room_bounds_what_the_app_keeps_offered() -> None:
    core = delivery(batch_size=4, max_in_flight=2)
    assert core.room() == 16
    core.offer(records(0, 10), now=0.0)
    assert (core.room(), core.wants_more()) == (6, True)
    core.offer(records(10, 6), now=0.0)
    assert (core.room(), core.wants_more()) == (0, False)
    core.next_attempts(now=0.0)  # in flight is still held
    assert core.records_held == 16


def test_offering_a_record_twice_or_out_of_order_is_a_caller_bug() -> None:
    core = delivery()
    core.offer(records(5, 1), now=0.0)
    with pytest.raises(ValueError, match="seq order"):
        core.offer(records(5, 1), now=0.0)
    with pytest.raises(ValueError, match="seq order"):
        core.offer(records(3, 1), now=0.0)


def test_offering_runs_that_overlap_is_a_caller_bug() -> None:
    core = delivery()
    [run_of_four] = RecordRun.of(records(0, 4))
    core.offer([run_of_four], now=0.0)
    with pytest.raises(ValueError, match="seq order"):
        core.offer(RecordRun.of(records(3, 2)), now=0.0)


# -- stored batches (runs) ---------------------------------------------------------------


def stored_batches(*sizes: int, queued_at: float = 0.0) -> list[RecordRun]:
    """Runs as the queue reads them: one per stored batch, seqs following on."""
    runs, first = [], 0
    for size in sizes:
        [one] = RecordRun.of(records(first, size, queued_at=queued_at))
        runs.append(one)
        first += size
    return runs


def test_stored_batches_go_out_whole_and_only_the_one_at_a_batch_boundary_is_cut() -> None:
    """Three stored batches of 3 records with batch_size 4: requests carry 4, 4 and 1
    records, every record once, in order, with the bytes and key that joining the records
    one by one would give."""
    core = delivery(max_in_flight=3)
    core.offer(stored_batches(3, 3, 3), now=0.0)
    core.stop_accepting()
    attempts = core.next_attempts(now=0.0)
    assert [a.seqs for a in attempts] == [(0, 1, 2, 3), (4, 5, 6, 7), (8,)]
    for attempt in attempts:
        ids = [f"rec-{seq}" for seq in attempt.seqs]
        assert [r["id"] for r in json.loads(attempt.request.body)["logs"]] == ids
        expected = b",".join(r.body for r in records(attempt.seqs[0], len(ids)))
        assert expected in attempt.request.body
        assert attempt.idempotency_key == idempotency_key(RecordRun.of(attempt.records))
        core.attempt_answered(attempt, stored(attempt), now=0.1)
    delivered = of_type(core.take_effects(), RecordsDelivered)
    # What the queue completes: ranges that cover each record exactly once.
    ranges = [list(r.seqs) for effect in delivered for r in effect.runs]
    assert ranges == [[0, 1, 2], [3], [4, 5], [6, 7], [8]]
    assert core.is_idle


def test_a_413_halves_a_batch_across_stored_batch_boundaries() -> None:
    core = delivery(batch_size=6)
    core.offer(stored_batches(1, 4, 1), now=0.0)

    def receiver(attempt: Attempt, now: float) -> Answer:
        return reply(413) if attempt.record_count > 3 else stored(attempt)

    sent = run(core, receiver, start=0.0, until=10.0)
    assert [a.seqs for a in sent] == [(0, 1, 2, 3, 4, 5), (0, 1, 2), (3, 4, 5)]
    assert delivered_seqs(core.take_effects()) == [0, 1, 2, 3, 4, 5]


def test_answering_an_attempt_twice_is_a_caller_bug() -> None:
    core = delivery()
    core.offer(records(0, 4), now=0.0)
    [attempt] = core.next_attempts(now=0.0)
    core.attempt_answered(attempt, stored(attempt), now=1.0)
    with pytest.raises(ValueError, match="not in flight"):
        core.attempt_answered(attempt, stored(attempt), now=1.0)


# -- the responses table -----------------------------------------------------------------


def test_fewer_processed_than_sent_keeps_the_batch_and_narrows_down_the_refused_record() -> None:
    """The receiver keeps three of four records and does not say which: nothing is deleted;
    the batch goes again, is split after repeats, and only the record it keeps refusing is
    dead-lettered (the stored ones are repeats the receiver drops by id)."""
    core = delivery()
    core.offer(records(0, 4), now=0.0)
    now, refused = 0.0, 2
    while True:
        attempts = core.next_attempts(now=now)
        for attempt in attempts:
            seqs = [r.seq for r in attempt.records]
            kept = len(seqs) - (refused in seqs)
            answer = {"status": "success", "processed": kept}
            core.attempt_answered(attempt, reply(200, answer, attempt.protocol), now=now)
        if core.is_idle:
            break
        deadline = core.next_deadline()
        assert deadline is not None
        now = max(now + 0.001, deadline)
        assert now < 3600, "did not converge"
    effects = core.take_effects()
    [dead] = of_type(effects, RecordsDeadLettered)
    assert dead.seqs == (refused,)
    assert (dead.reason, dead.status) == ("partially_processed", 200)
    assert set(delivered_seqs(effects)) == {0, 1, 3}


@pytest.mark.parametrize(("status", "reason"), [(400, "bad_request"), (404, "unknown_source")])
def test_400_and_404_dead_letter_without_retry_or_protocol_change(status: int, reason: str) -> None:
    core = delivery()
    core.offer(records(0, 4), now=0.0)
    [attempt] = core.next_attempts(now=0.0)
    core.attempt_answered(attempt, reply(status, {"status": "error", "error": "nope"}), now=1.0)
    dead, rejected = core.take_effects()
    assert isinstance(dead, RecordsDeadLettered)
    assert (dead.seqs, dead.record_ids, dead.reason, dead.status, dead.detail) == (
        (0, 1, 2, 3),
        ("rec-0", "rec-1", "rec-2", "rec-3"),
        reason,
        status,
        "nope",
    )
    assert rejected == RecordsRejectedByReceiver(4, status, "nope")
    assert core.is_idle
    assert core.next_deadline() is None
    assert core.next_attempts(now=10_000.0) == []
    assert core.protocol is H3


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_retry_the_same_batch_after_a_jittered_backoff(status: int) -> None:
    core = delivery()
    core.offer(records(0, 4), now=0.0)
    [first] = core.next_attempts(now=0.0)
    core.attempt_answered(first, reply(status), now=1.0)
    [scheduled] = core.take_effects()
    assert isinstance(scheduled, RetryScheduled)
    assert (scheduled.reason, scheduled.status, scheduled.record_count) == (
        f"http_{status}",
        status,
        4,
    )
    assert 1.0 <= scheduled.at <= 2.0  # full jitter in [0, initial_backoff_s]
    assert core.next_deadline() == scheduled.at
    if scheduled.at > 1.0:
        assert core.next_attempts(now=1.0) == []
    [second] = core.next_attempts(now=scheduled.at)
    assert (second.seqs, second.idempotency_key, second.number) == (
        first.seqs,
        first.idempotency_key,
        2,
    )
    assert second.request.body == first.request.body
    assert second.protocol is H3  # a status never changes protocol
    assert core.status().retries_total == 1


def test_backoff_grows_exponentially_within_its_cap() -> None:
    core = delivery()
    core.offer(records(0, 4), now=0.0)
    now = 0.0
    ceilings = []
    for _ in range(9):
        [attempt] = core.next_attempts(now)
        core.attempt_answered(attempt, reply(503), now)
        [scheduled] = of_type(core.take_effects(), RetryScheduled)
        ceilings.append(scheduled.at - now)
        now = scheduled.at
    limits = [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert all(0 <= wait <= limit for wait, limit in zip(ceilings, limits, strict=True))
    assert not of_type(core.take_effects(), RecordsDeadLettered)


def test_retry_after_in_seconds_wins_over_the_backoff() -> None:
    core = delivery()
    core.offer(records(0, 4), now=0.0)
    [attempt] = core.next_attempts(now=0.0)
    core.attempt_answered(attempt, reply(503, None, **{"retry-after": "120"}), now=10.0)
    [scheduled] = core.take_effects()
    assert scheduled.at == 130.0
    assert core.next_attempts(now=129.9) == []
    assert len(core.next_attempts(now=130.0)) == 1


def test_retry_after_as_an_http_date_is_honoured() -> None:
    now = 1_764_151_200.0  # Wed, 26 Nov 2025 10:00:00 GMT
    core = delivery()
    core.offer(records(0, 4, queued_at=now), now=now)
    [attempt] = core.next_attempts(now=now)
    answer = reply(429, None, **{"retry-after": "Wed, 26 Nov 2025 10:00:45 GMT"})
    core.attempt_answered(attempt, answer, now=now)
    [scheduled] = core.take_effects()
    assert scheduled.at == now + 45


def test_a_huge_retry_after_is_capped() -> None:
    core = delivery()
    core.offer(records(0, 4), now=0.0)
    [attempt] = core.next_attempts(now=0.0)
    core.attempt_answered(attempt, reply(503, None, **{"retry-after": "999999"}), now=0.0)
    [scheduled] = core.take_effects()
    assert scheduled.at == 300.0  # max_retry_after_s


def test_413_splits_down_to_single_records_and_dead_letters_only_the_one_still_too_large() -> None:
    core = delivery()
    core.offer(records(0, 4), now=0.0)

    def receiver(attempt: Attempt, now: float) -> Answer:
        if len(attempt.records) > 1 or attempt.seqs == (2,):
            return reply(413)
        return stored(attempt)

    sent = run(core, receiver, start=0.0, until=10.0)
    effects = core.take_effects()
    assert delivered_seqs(effects) == [0, 1, 3]
    [dead] = of_type(effects, RecordsDeadLettered)
    assert (dead.seqs, dead.reason, dead.status) == ((2,), "too_large", 413)
    assert [s.halves for s in of_type(effects, BatchSplit)] == [(2, 2), (1, 1), (1, 1)]
    # Every split half has a key of its own; every request was sent at once (no backoff).
    assert len({a.idempotency_key for a in sent}) == len(sent) == 7
    assert all(a.sent_at == 0.0 for a in sent)
    assert core.is_idle


def test_401_pauses_the_output_without_a_retry_storm_and_never_dead_letters() -> None:
    core = delivery()
    core.offer(records(0, 8), now=0.0)
    sent = run(
        core,
        lambda attempt, now: reply(401, {"error": "invalid license key"}),
        start=0.0,
        until=600.0,
    )
    effects = core.take_effects()
    # Two batches at t=0 (both refused), then one trial per pause: 60, 120, 240 s.
    assert [a.sent_at for a in sent] == [0.0, 0.0, 60.0, 180.0, 420.0]
    assert [p.until for p in of_type(effects, OutputPaused)] == [60.0, 180.0, 420.0, 720.0]
    assert {p.reason for p in of_type(effects, OutputPaused)} == {"auth_failed"}
    assert not of_type(effects, RecordsDeadLettered)
    assert not of_type(effects, RecordsDelivered)
    assert core.records_held == 8
    status = core.status()
    assert (status.paused_reason, status.paused_until) == ("auth_failed", 720.0)
    assert LICENSE_KEY not in (status.last_error or "")

    # The key is fixed: the next trial succeeds, the pause ends and the rest follows at once.
    sent = run(core, lambda attempt, now: stored(attempt), start=600.0, until=800.0)
    assert [a.sent_at for a in sent] == [720.0, 720.0]
    effects = core.take_effects()
    assert of_type(effects, OutputResumed) == [OutputResumed("auth_failed")]
    assert delivered_seqs(effects) == list(range(8))
    assert core.status().paused_reason is None


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_never_change_protocol(status: int) -> None:
    core = delivery()
    core.offer(records(0, 4), now=0.0)
    run(core, lambda attempt, now: reply(status), start=0.0, until=1000.0)
    assert not of_type(core.take_effects(), ProtocolChanged)
    assert core.protocol is H3


def test_a_single_record_reply_to_a_batch_is_a_visible_contract_mismatch() -> None:
    core = delivery()
    core.offer(records(0, 4), now=0.0)
    [attempt] = core.next_attempts(now=0.0)
    core.attempt_answered(attempt, reply(200, {"status": "accepted", "log_id": "4b1c"}), now=1.0)
    effects = core.take_effects()
    [mismatch] = of_type(effects, ContractMismatchDetected)
    assert "mode: single" in mismatch.suggestion
    [paused] = of_type(effects, OutputPaused)
    assert (paused.reason, paused.until) == ("contract_mismatch", 61.0)
    assert not of_type(effects, RecordsDelivered) and not of_type(effects, RecordsDeadLettered)
    assert core.records_held == 4
    assert core.status().paused_reason == "contract_mismatch"
    assert core.next_attempts(now=60.0) == []
    [again] = core.next_attempts(now=61.0)  # re-tried slowly, never dropped
    assert (again.seqs, again.idempotency_key) == (attempt.seqs, attempt.idempotency_key)


# -- protocols ---------------------------------------------------------------------------


def test_an_http3_transport_error_sends_the_same_batch_over_http11_at_once() -> None:
    core = delivery()
    core.offer(records(0, 4), now=0.0)
    [first] = core.next_attempts(now=0.0)
    core.attempt_failed(first, quic_down(), now=1.0)
    # QUIC blocked, or the receiver down? Only the HTTP/1.1 answer can tell.
    assert core.take_effects() == []
    [second] = core.next_attempts(now=1.0)
    assert (second.protocol, second.seqs, second.idempotency_key) == (
        H1,
        first.seqs,
        first.idempotency_key,
    )
    assert second.request.body == first.request.body
    assert dict(second.request.headers)["idempotency-key"] == first.idempotency_key
    core.attempt_answered(second, stored(second), now=1.2)
    assert of_type(core.take_effects(), ProtocolChanged) == [
        ProtocolChanged(H3, H1, "handshake_timeout")
    ]
    status = core.status()
    assert (status.protocol, status.next_probe_at) == (H1, 301.2)
    assert dict(status.fallbacks_by_reason) == {"handshake_timeout": 1}


def test_http3_is_probed_on_a_timer_and_a_probe_answer_switches_back() -> None:
    core = delivery()
    core.offer(records(0, 4), now=0.0)
    [first] = core.next_attempts(now=0.0)
    core.attempt_failed(first, quic_down(), now=0.0)
    [resent] = core.next_attempts(now=0.0)
    core.attempt_answered(resent, stored(resent), now=0.1)
    core.take_effects()

    core.offer(records(4, 4, queued_at=100.0), now=100.0)
    [before_probe_time] = core.next_attempts(now=100.0)
    assert (before_probe_time.protocol, before_probe_time.is_probe) == (H1, False)
    core.attempt_answered(before_probe_time, stored(before_probe_time), now=100.1)

    core.offer(records(8, 8, queued_at=300.1), now=300.1)
    probe, other = core.next_attempts(now=300.1)
    assert (probe.protocol, probe.is_probe) == (H3, True)
    assert (other.protocol, other.is_probe) == (H1, False)  # one probe at a time
    core.attempt_answered(probe, stored(probe), now=300.2)
    assert of_type(core.take_effects(), ProtocolChanged) == [
        ProtocolChanged(H1, H3, "http/3 probe answered")
    ]
    assert core.protocol is H3
    assert core.status().next_probe_at is None


def test_a_failed_probe_resends_over_http11_at_once_and_schedules_the_next_probe() -> None:
    core = delivery()
    core.offer(records(0, 4), now=0.0)
    [first] = core.next_attempts(now=0.0)
    core.attempt_failed(first, quic_down(), now=0.0)
    [resent] = core.next_attempts(now=0.0)
    core.attempt_answered(resent, stored(resent), now=0.0)
    core.take_effects()

    core.offer(records(4, 4, queued_at=310.0), now=310.0)
    [probe] = core.next_attempts(now=310.0)
    assert probe.is_probe and probe.protocol is H3
    core.attempt_failed(probe, quic_down("connect_failed"), now=311.0)
    assert core.take_effects() == [Http3ProbeFailed("connect_failed", 611.0)]
    [fallback] = core.next_attempts(now=311.0)
    assert (fallback.protocol, fallback.is_probe) == (H1, False)
    assert (fallback.seqs, fallback.idempotency_key) == (probe.seqs, probe.idempotency_key)
    assert core.protocol is H1
    assert dict(core.status().fallbacks_by_reason) == {"handshake_timeout": 1, "connect_failed": 1}


def test_any_http_status_to_a_probe_proves_http3_and_is_then_judged_normally() -> None:
    core = delivery()
    core.offer(records(0, 4), now=0.0)
    [first] = core.next_attempts(now=0.0)
    core.attempt_failed(first, quic_down(), now=0.0)
    [resent] = core.next_attempts(now=0.0)
    core.attempt_answered(resent, stored(resent), now=0.0)
    core.offer(records(4, 4, queued_at=400.0), now=400.0)
    [probe] = core.next_attempts(now=400.0)
    core.attempt_answered(probe, reply(503, protocol=H3), now=400.0)
    effects = core.take_effects()
    assert of_type(effects, ProtocolChanged)[-1] == ProtocolChanged(H1, H3, "http/3 probe answered")
    [scheduled] = of_type(effects, RetryScheduled)
    [retry] = core.next_attempts(now=scheduled.at)
    assert (retry.protocol, retry.idempotency_key) == (H3, probe.idempotency_key)


def test_only_a_probe_switches_back_not_a_late_answer_to_an_earlier_http3_request() -> None:
    """Requests already in flight on a QUIC connection can still finish after UDP broke for
    new ones; switching back on them would flap. Only a probe decides."""
    core = delivery()
    core.offer(records(0, 8), now=0.0)
    first, second = core.next_attempts(now=0.0)
    core.attempt_failed(first, quic_down(), now=1.0)
    core.attempt_answered(second, stored(second), now=1.5)
    assert delivered_seqs(core.take_effects()) == [4, 5, 6, 7]
    [resent] = core.next_attempts(now=1.5)
    assert resent.protocol is H1
    core.attempt_answered(resent, stored(resent), now=1.6)
    assert of_type(core.take_effects(), ProtocolChanged) == [
        ProtocolChanged(H3, H1, "handshake_timeout")
    ]
    assert core.protocol is H1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 413, 429, 500, 502, 503, 504])
def test_a_status_code_never_changes_protocol(status: int) -> None:
    core = delivery()
    core.offer(records(0, 4), now=0.0)
    run(
        core, lambda attempt, now: reply(status, protocol=attempt.protocol), start=0.0, until=3600.0
    )
    effects = core.take_effects()
    assert not of_type(effects, ProtocolChanged)
    assert core.protocol is H3


@pytest.mark.parametrize(
    ("output_type", "url"),
    [("http3", "http://recv:8080/api/v1/logs"), ("http", URL)],
)
def test_http11_only_outputs_never_try_http3(output_type: str, url: str) -> None:
    core = delivery(output_type=output_type, url=url)
    assert core.protocol is H1
    assert not core.status().http3_enabled
    core.offer(records(0, 4), now=0.0)

    def receiver(attempt: Attempt, now: float) -> Answer:
        if now < 1000:
            return TransportError("connect_failed", "refused", protocol=H1)
        return stored(attempt)

    sent = run(core, receiver, start=0.0, until=5000.0)
    assert {a.protocol for a in sent} == {H1}
    assert not any(a.is_probe for a in sent)
    effects = core.take_effects()
    assert not of_type(effects, ProtocolChanged)
    assert delivered_seqs(effects) == [0, 1, 2, 3]


def test_an_http11_transport_error_is_retried_with_backoff_not_at_once() -> None:
    core = delivery(output_type="http")
    core.offer(records(0, 4), now=0.0)
    [attempt] = core.next_attempts(now=0.0)
    core.attempt_failed(attempt, TransportError("connect_failed", "refused", protocol=H1), now=5.0)
    [scheduled] = of_type(core.take_effects(), RetryScheduled)
    assert isinstance(scheduled, RetryScheduled)
    assert scheduled.reason == "transport_connect_failed"
    assert 5.0 <= scheduled.at <= 6.0
    assert "connect_failed" in (core.status().last_error or "")


def test_the_fallback_url_carries_http11() -> None:
    fallback = "http://recv-tcp:8080/api/v1/logs"
    core = delivery(fallback_url=fallback)
    core.offer(records(0, 4), now=0.0)
    [first] = core.next_attempts(now=0.0)
    assert first.request.url == URL
    core.attempt_failed(first, quic_down(), now=0.0)
    [second] = core.next_attempts(now=0.0)
    assert second.request.url == fallback


# -- poison records, outages, concurrency ------------------------------------------------


def poison(bad_seq: int) -> Receiver:
    """A receiver that answers 500 to any request carrying ``bad_seq``, however often."""

    def receiver(attempt: Attempt, now: float) -> Answer:
        if bad_seq in attempt.seqs:
            return reply(500, {"status": "error", "error": "internal error"}, attempt.protocol)
        return stored(attempt)

    return receiver


def test_a_poison_record_is_isolated_and_every_other_record_arrives() -> None:
    core = delivery(batch_size=8)
    core.offer(records(0, 8), now=0.0)
    run(core, poison(5), start=0.0, until=24 * 3600.0)
    effects = core.take_effects()
    assert delivered_seqs(effects) == [0, 1, 2, 3, 4, 6, 7]  # each exactly once
    [dead] = of_type(effects, RecordsDeadLettered)
    assert (dead.seqs, dead.reason, dead.status) == ((5,), "receiver_error", 500)
    assert [s.halves for s in of_type(effects, BatchSplit)] == [(4, 4), (2, 2), (1, 1)]
    assert core.is_idle


def test_a_poison_record_does_not_block_records_offered_later() -> None:
    core = delivery(batch_size=1)
    core.offer(records(0, 1), now=0.0)
    core.offer(records(1, 3), now=0.0)
    run(core, poison(0), start=0.0, until=30.0)
    assert delivered_seqs(core.take_effects()) == [1, 2, 3]


def test_an_outage_never_dead_letters() -> None:
    """Everything fails alike: no record is singled out, however long it lasts."""
    core = delivery(batch_size=8)
    core.offer(records(0, 8), now=0.0)
    sent = run(core, lambda attempt, now: reply(500), start=0.0, until=2 * 3600.0)
    effects = core.take_effects()
    assert not of_type(effects, RecordsDeadLettered)
    assert core.records_held == 8
    # Split once at most (both halves failing looks like an outage), then only backed off:
    # two batches retrying every 30 s on average is about 480 requests in two hours.
    assert [split.halves for split in of_type(effects, BatchSplit)] == [(4, 4)]
    assert len(sent) < 600


def test_max_in_flight_is_respected() -> None:
    core = delivery(batch_size=4, max_in_flight=2)
    core.offer(records(0, 20), now=0.0)
    first = core.next_attempts(now=0.0)
    assert len(first) == 2 and core.in_flight == 2
    assert core.next_attempts(now=0.0) == []
    assert core.next_deadline() is None  # nothing to do until an answer comes
    core.attempt_answered(first[0], stored(first[0]), now=1.0)
    [third] = core.next_attempts(now=1.0)
    assert third.seqs == (8, 9, 10, 11)
    assert core.in_flight == 2


def test_a_batch_in_backoff_does_not_hold_up_other_batches() -> None:
    core = delivery(batch_size=4, max_in_flight=2)
    core.offer(records(0, 4), now=0.0)
    [slow] = core.next_attempts(now=0.0)
    core.attempt_answered(slow, reply(503, None, **{"retry-after": "60"}), now=0.0)
    core.offer(records(4, 4, queued_at=1.0), now=1.0)
    [other] = core.next_attempts(now=1.0)
    assert other.seqs == (4, 5, 6, 7)
    core.attempt_answered(other, stored(other), now=1.0)
    assert delivered_seqs(core.take_effects()) == [4, 5, 6, 7]
    assert core.next_deadline() == 60.0
    [retry] = core.next_attempts(now=60.0)
    assert retry.seqs == (0, 1, 2, 3)


# -- single mode -------------------------------------------------------------------------


def test_single_mode_sends_one_uncompressed_request_per_record() -> None:
    core = delivery(mode="single", compression="gzip", max_in_flight=2)
    offered = records(0, 3)
    core.offer(offered, now=0.0)
    attempts = core.next_attempts(now=0.0)
    assert len(attempts) == 2  # bounded in flight
    for attempt, record in zip(attempts, offered, strict=False):
        assert attempt.records == (record,)
        assert attempt.request.body == record.body
        headers = dict(attempt.request.headers)
        assert "content-encoding" not in headers
        assert headers["x-batch-size"] == "1"
        core.attempt_answered(attempt, reply(200, {"status": "accepted", "log_id": "x"}), now=0.1)
    [last] = core.next_attempts(now=0.1)
    assert last.records == (offered[2],)
    effects = core.take_effects()
    assert delivered_seqs(effects) == [0, 1]
    assert not of_type(effects, ContractMismatchDetected)


# -- secrets -----------------------------------------------------------------------------


def test_the_keys_never_appear_in_attempts_effects_or_status() -> None:
    core = delivery()
    core.offer(records(0, 8), now=0.0)
    answers = iter([reply(401), quic_down(), reply(400), stored])
    shown: list[str] = []

    def receiver(attempt: Attempt, now: float) -> Answer:
        shown.append(repr(attempt) + str(attempt))
        answer = next(answers, stored)
        return answer(attempt) if callable(answer) else answer

    run(core, receiver, start=0.0, until=3600.0)
    shown += [repr(e) + str(e) for e in core.take_effects()]
    shown.append(repr(core.status()))
    text = "\n".join(shown)
    assert "Attempt(#1" in text and "RecordsDeadLettered" in text
    assert LICENSE_KEY not in text
    assert API_KEY not in text
