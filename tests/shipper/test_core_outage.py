"""Stories of an output that loses its receiver: QUIC path lost, receiver down, receiver back.

Same rules as test_core_delivery: the core is fed inputs at explicit times, a "receiver" is a
function from an attempt (or a reachability check) to an answer, and nothing sleeps.
"""

from __future__ import annotations

import pytest
from core_support import (
    H1,
    H3,
    Answer,
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
    OutputDelivery,
    OutputDown,
    OutputRecovered,
    OutputStillDown,
    ProtocolChanged,
    ReachabilityCheck,
    RetryScheduled,
)
from kk_shipper.types import Protocol, TransportError


def refused(protocol: Protocol = H1) -> TransportError:
    return TransportError("connect_failed", "connection refused", protocol=protocol)


class Receiver:
    """A receiver that is down in ``[down_from, back_at)`` on both transports; QUIC is
    blocked from ``udp_blocked_from`` on. Records every attempt and check it saw."""

    def __init__(
        self,
        *,
        down_from: float = float("inf"),
        back_at: float = float("inf"),
        udp_blocked_from: float = float("inf"),
    ) -> None:
        self.down_from, self.back_at = down_from, back_at
        self.udp_blocked_from = udp_blocked_from
        self.attempts: list[Attempt] = []
        self.checks: list[ReachabilityCheck] = []

    def down(self, now: float) -> bool:
        return self.down_from <= now < self.back_at

    def quic_blocked(self, now: float) -> bool:
        return now >= self.udp_blocked_from

    def answer(self, attempt: Attempt, now: float) -> Answer:
        self.attempts.append(attempt)
        if attempt.protocol is H3 and (self.down(now) or self.quic_blocked(now)):
            return quic_down("handshake_timeout")
        if self.down(now):
            return refused()
        return stored(attempt)

    def reachable(self, check: ReachabilityCheck, now: float) -> TransportError | None:
        self.checks.append(check)
        if check.protocol is H3 and (self.down(now) or self.quic_blocked(now)):
            return quic_down("handshake_timeout")
        return refused() if self.down(now) else None


def drive(core: OutputDelivery, receiver: Receiver, *, start: float, until: float) -> list[Attempt]:
    return run(core, receiver.answer, start=start, until=until, reachable=receiver.reachable)


def down_on_both_transports_at_one_second() -> OutputDelivery:
    """One batch: HTTP/3 fails at 1 s, its HTTP/1.1 resend is refused: the output is down."""
    core = delivery(batch_size=4)
    core.offer(records(0, 4), now=0.0)
    [attempt] = core.next_attempts(now=0.0)
    core.attempt_failed(attempt, quic_down(), now=1.0)
    [resent] = core.next_attempts(now=1.0)
    core.attempt_failed(resent, refused(), now=1.0)
    return core


# -- QUIC lost, TCP works ----------------------------------------------------------------


def test_a_lost_quic_path_moves_in_flight_batches_to_http11_and_pins_it_until_a_probe() -> None:
    core = delivery(batch_size=4, max_in_flight=2)
    core.offer(records(0, 8), now=0.0)
    first, second = core.next_attempts(now=0.0)
    # The transport's liveness watchdog noticed the silence (transport/h3.py): both fail.
    core.attempt_failed(first, quic_down("path_lost"), now=1.0)
    core.attempt_failed(second, quic_down("path_lost"), now=1.0)
    resent = core.next_attempts(now=1.0)
    assert [(a.protocol, a.idempotency_key) for a in resent] == [
        (H1, first.idempotency_key),
        (H1, second.idempotency_key),
    ]
    for attempt in resent:
        core.attempt_answered(attempt, stored(attempt), now=1.1)
    effects = core.take_effects()
    assert of_type(effects, ProtocolChanged) == [ProtocolChanged(H3, H1, "path_lost")]
    assert delivered_seqs(effects) == list(range(8))
    assert not of_type(effects, OutputDown)  # QUIC blocked is not an outage
    assert (core.protocol, core.status().next_probe_at) == (H1, 301.1)


def test_new_batches_go_over_http11_while_the_http11_resend_is_out() -> None:
    core = delivery(batch_size=4, max_in_flight=4)
    core.offer(records(0, 4), now=0.0)
    [first] = core.next_attempts(now=0.0)
    core.attempt_failed(first, quic_down("path_lost"), now=1.0)
    core.offer(records(4, 4, queued_at=1.0), now=1.0)
    resent, fresh = core.next_attempts(now=1.0)
    assert (resent.protocol, fresh.protocol) == (H1, H1)
    assert core.protocol is H3  # not decided yet: QUIC blocked, or receiver down?


# -- the receiver down on both transports -------------------------------------------------


def test_a_receiver_down_on_both_transports_is_an_outage_not_a_quic_fallback() -> None:
    core = delivery(batch_size=4)
    core.offer(records(0, 4), now=0.0)
    [attempt] = core.next_attempts(now=0.0)
    core.attempt_failed(attempt, quic_down("path_lost"), now=1.0)
    [resent] = core.next_attempts(now=1.0)
    core.attempt_failed(resent, refused(), now=1.0)
    effects = core.take_effects()
    [down] = of_type(effects, OutputDown)
    assert (down.cause, down.since, down.checking, down.fix) == ("connect_failed", 1.0, True, None)
    assert not of_type(effects, ProtocolChanged)
    assert core.protocol is H3  # not pinned to HTTP/1.1
    status = core.status()
    assert (status.down_since, status.down_cause, status.next_probe_at) == (
        1.0,
        "connect_failed",
        None,
    )
    # Reachability checks start at once, one per protocol, without payload.
    checks = core.next_checks(now=1.0)
    assert [(c.protocol, c.url) for c in checks] == [
        (H3, "https://recv:8443/api/v1/logs"),
        (H1, "https://recv:8443/api/v1/logs"),
    ]
    assert core.next_checks(now=1.0) == []  # one round at a time


def test_delivery_resumes_on_http3_within_a_check_interval_of_the_receivers_return() -> None:
    receiver = Receiver(down_from=0.5, back_at=30.25)
    core = delivery(batch_size=4)
    core.offer(records(0, 4), now=0.0)
    drive(core, receiver, start=0.0, until=0.4)
    core.offer(records(4, 4, queued_at=1.0), now=1.0)
    drive(core, receiver, start=1.0, until=40.0)
    effects = core.take_effects()

    assert delivered_seqs(effects) == list(range(8))
    [down] = of_type(effects, OutputDown)
    [recovered] = of_type(effects, OutputRecovered)
    assert down.since == 1.0
    # Checks run every second: the receiver is back at 30.25, the check at 31.0 finds it.
    assert (recovered.since, recovered.down_for_s, recovered.protocol) == (1.0, 30.0, H3)
    assert not of_type(effects, ProtocolChanged)
    assert core.protocol is H3 and core.status().down_since is None
    # No payload while the receiver is unreachable: the checks say when to try again.
    assert not [a for a in receiver.attempts if 1.0 < a.sent_at < 30.25]
    assert len({c.started_at for c in receiver.checks}) == 31  # one round a second, 1..31 s


def test_a_receiver_back_with_udp_blocked_resumes_over_http11() -> None:
    receiver = Receiver(down_from=0.5, back_at=10.5, udp_blocked_from=0.5)
    core = delivery(batch_size=4)
    core.offer(records(0, 4, queued_at=1.0), now=1.0)
    drive(core, receiver, start=1.0, until=20.0)
    effects = core.take_effects()
    assert delivered_seqs(effects) == [0, 1, 2, 3]
    [recovered] = of_type(effects, OutputRecovered)
    assert (recovered.down_for_s, recovered.protocol) == (10.0, H1)
    # Attempts begun during the outage prove nothing about QUIC (see the stale-check
    # stories); the next batch finds out, and that is the switch to HTTP/1.1.
    assert core.protocol is H3
    core.offer(records(4, 4, queued_at=30.0), now=30.0)
    drive(core, receiver, start=30.0, until=40.0)
    effects = core.take_effects()
    assert delivered_seqs(effects) == [4, 5, 6, 7]
    assert of_type(effects, ProtocolChanged) == [ProtocolChanged(H3, H1, "handshake_timeout")]
    assert core.status().next_probe_at == 330.0


def test_an_output_on_the_http11_fallback_switches_back_when_a_check_finds_quic_working() -> None:
    receiver = Receiver(udp_blocked_from=0.0)
    core = delivery(batch_size=4)
    core.offer(records(0, 4), now=0.0)
    drive(core, receiver, start=0.0, until=1.0)
    assert core.protocol is H1
    # The receiver goes down for 5 s; UDP is open again by the time it returns.
    receiver.down_from, receiver.back_at, receiver.udp_blocked_from = 10.0, 15.0, float("inf")
    core.offer(records(4, 4, queued_at=10.0), now=10.0)
    drive(core, receiver, start=10.0, until=30.0)
    effects = core.take_effects()
    assert delivered_seqs(effects) == list(range(8))
    assert of_type(effects, ProtocolChanged)[-1] == ProtocolChanged(
        H1, H3, "http/3 reachable again"
    )
    assert of_type(effects, OutputRecovered)[0].protocol is H3


def test_a_sixty_second_outage_is_one_down_one_summary_and_one_recovery() -> None:
    receiver = Receiver(down_from=0.0, back_at=75.5)
    core = delivery(batch_size=4, output_type="http")
    core.offer(records(0, 12), now=0.0)
    drive(core, receiver, start=0.0, until=100.0)
    effects = core.take_effects()
    said = [e for e in effects if isinstance(e, OutputDown | OutputStillDown | OutputRecovered)]
    assert [type(e).__name__ for e in said] == ["OutputDown", "OutputStillDown", "OutputRecovered"]
    summary = said[1]
    assert isinstance(summary, OutputStillDown)
    assert (summary.since, summary.cause, summary.records_held) == (0.0, "connect_failed", 12)
    assert summary.next_check_at is not None and summary.next_check_at <= 61.0
    assert summary.next_retry_at is None  # unreachable: only a passed check releases one
    assert summary.failures == len(of_type(effects, RetryScheduled))
    assert said[2].down_for_s == 76.0
    assert delivered_seqs(effects) == list(range(12))


def test_retries_during_an_outage_back_off_per_output_up_to_the_cap() -> None:
    """The receiver answers 503 for half an hour, three batches held: one request at a
    time, each wait drawn below a ceiling that doubles up to max_backoff (60 s), whichever
    batch it was."""
    core = delivery(batch_size=4, output_type="http")
    core.offer(records(0, 12), now=0.0)
    sent = run(
        core,
        lambda attempt, now: (
            reply(503, protocol=attempt.protocol) if now < 1800 else stored(attempt)
        ),
        start=0.0,
        until=1900.0,
    )
    scheduled = of_type(core.take_effects(), RetryScheduled)
    waits = [s.at - a.sent_at for s, a in zip(scheduled, sent, strict=False)]
    ceilings = [min(60.0, 2.0**n) for n in range(len(waits))]
    assert all(0 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    # Full jitter below a 60 s cap: one request per 30 s on average, whatever the number of
    # batches held (a timer per batch would make it one per 10 s here).
    assert len([a for a in sent if a.sent_at < 1800]) < 1800 / 30 * 1.5
    assert max(a.sent_at for a in sent) < 1800 + 60 + 1  # all sent at once after recovery


def test_a_receiver_that_accepts_connections_but_fails_requests_gets_ever_rarer_trials() -> None:
    """Checks pass (TCP and TLS work) but every request dies: each failed trial doubles the
    wait before the next check, so this is no retry storm."""
    core = delivery(batch_size=4, output_type="http")
    core.offer(records(0, 4), now=0.0)
    lost = TransportError("connection_lost", "reset by peer", protocol=H1)
    sent = run(core, lambda attempt, now: lost, start=0.0, until=1200.0)
    # A trial after checks 2, 4, 8, ... 60 s apart, plus retries at the backoff (<= 60 s):
    # at most three requests a minute, against one a second if every check released one.
    assert len([a for a in sent if a.sent_at >= 600.0]) <= 3 * 600 / 60


# -- an HTTP outage: the receiver answers, but not with success ----------------------------


def test_one_failed_answer_between_deliveries_is_a_blip_not_an_outage() -> None:
    core = delivery(batch_size=4)
    core.offer(records(0, 4), now=0.0)
    [attempt] = core.next_attempts(now=0.0)
    core.attempt_answered(attempt, reply(503), now=0.1)
    effects = core.take_effects()
    assert of_type(effects, RetryScheduled) and not of_type(effects, OutputDown)


def test_repeated_5xx_is_an_outage_without_reachability_checks() -> None:
    core = delivery(batch_size=4)
    core.offer(records(0, 4), now=0.0)
    answers = iter([reply(503), reply(503, {"error": "disk full"})])
    sent = run(core, lambda attempt, now: next(answers, stored(attempt)), start=0.0, until=60.0)
    effects = core.take_effects()
    [down] = of_type(effects, OutputDown)
    assert (down.cause, down.detail, down.checking) == ("http_503", "HTTP 503: disk full", False)
    [recovered] = of_type(effects, OutputRecovered)
    assert recovered.failures == 2 and len(sent) == 3


def test_an_unknown_issuer_says_to_set_tls_ca_file() -> None:
    core = delivery(batch_size=4, output_type="http")
    core.offer(records(0, 4), now=0.0)
    [attempt] = core.next_attempts(now=0.0)
    error = TransportError(
        "tls_verify_failed", "unable to get local issuer certificate", protocol=H1
    )
    core.attempt_failed(attempt, error, now=0.2)
    [down] = of_type(core.take_effects(), OutputDown)
    assert down.cause == "tls_verify_failed"
    assert down.fix is not None and "tls.ca_file" in down.fix


# -- misuse and stale answers ------------------------------------------------------------


def test_check_answers_after_the_outage_ended_are_ignored_and_double_answers_are_bugs() -> None:
    core = down_on_both_transports_at_one_second()
    h3_check, h1_check = core.next_checks(now=1.0)
    core.check_passed(h3_check, now=1.1)
    [trial] = core.next_attempts(now=1.1)
    core.attempt_answered(trial, stored(trial), now=1.2)
    assert of_type(core.take_effects(), OutputRecovered)[0].protocol is H3
    core.check_passed(h1_check, now=1.3)  # stale: nothing happens
    assert core.take_effects() == []
    assert core.next_attempts(now=1.3) == [] and core.next_checks(now=1.3) == []
    with pytest.raises(ValueError, match="not in flight"):
        core.check_passed(h1_check, now=1.4)


def test_an_outage_that_was_a_poison_record_ends_when_it_is_dead_lettered() -> None:
    core = delivery(batch_size=2, max_in_flight=1)
    core.offer(records(0, 2), now=0.0)

    def poison_one(attempt: Attempt, now: float) -> Answer:
        if 1 in attempt.seqs:
            return reply(500, {"error": "cannot store"}, attempt.protocol)
        return stored(attempt)

    run(core, poison_one, start=0.0, until=3600.0)
    effects = core.take_effects()
    assert delivered_seqs(effects) == [0]
    assert [type(e).__name__ for e in effects if isinstance(e, OutputDown | OutputRecovered)][
        -1
    ] == "OutputRecovered"
    assert core.is_idle and core.status().down_since is None


def test_a_stale_http3_check_does_not_pin_http11_when_the_receiver_returns() -> None:
    """The HTTP/3 check's handshake began while the receiver was still down and times out;
    the HTTP/1.1 check of the same round, a moment later, finds it back. That proves
    nothing about QUIC: the trial goes over HTTP/3 and, QUIC working, stays there."""
    core = down_on_both_transports_at_one_second()
    h3_check, h1_check = core.next_checks(now=1.0)
    core.check_passed(h1_check, now=1.05)  # the receiver is back
    assert core.next_attempts(now=1.05) == []  # waits for the HTTP/3 check
    core.check_failed(h3_check, quic_down(), now=2.0)
    [trial] = core.next_attempts(now=2.0)
    assert trial.protocol is H3
    core.attempt_answered(trial, stored(trial), now=2.1)
    effects = core.take_effects()
    assert not of_type(effects, ProtocolChanged)
    assert of_type(effects, OutputRecovered)[0].protocol is H3


def test_an_http3_failure_begun_during_the_outage_is_no_evidence_that_quic_is_blocked() -> None:
    """The trial's HTTP/3 handshake fails (the receiver, just back, was too slow to finish
    it); its HTTP/1.1 resend is delivered. The output recovers over HTTP/1.1 for that batch
    but keeps HTTP/3: evidence gathered while the receiver was down proves nothing."""
    core = down_on_both_transports_at_one_second()
    h3_check, h1_check = core.next_checks(now=1.0)
    core.check_passed(h1_check, now=1.5)
    core.check_failed(h3_check, quic_down(), now=2.0)
    [trial] = core.next_attempts(now=2.0)
    assert trial.protocol is H3
    core.attempt_failed(trial, quic_down(), now=3.0)
    [resent] = core.next_attempts(now=3.0)
    assert resent.protocol is H1
    core.attempt_answered(resent, stored(resent), now=3.1)
    effects = core.take_effects()
    assert of_type(effects, OutputRecovered)[0].protocol is H1
    assert not of_type(effects, ProtocolChanged)
    assert core.protocol is H3
