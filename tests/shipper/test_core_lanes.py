"""Delivery core stories: live records go before catch-up records; catch-up is not starved."""

from __future__ import annotations

import pytest
from core_support import delivery, records, stored

from kk_shipper.core import Attempt, RecordsDelivered
from kk_shipper.types import RecordRun


def lane(first: int, count: int, *, catch_up: bool, queued_at: float = 0.0) -> RecordRun:
    """A stored batch of ``count`` records from seq ``first``, in one lane."""
    [run] = RecordRun.of(records(first, count, queued_at))
    return run._replace(catch_up=catch_up)


def seqs_sent(attempts: list[Attempt]) -> list[list[int]]:
    return [[record.seq for record in attempt.records] for attempt in attempts]


def test_a_live_run_offered_behind_a_backlog_goes_in_the_next_request() -> None:
    """Batch size 4: eight catch-up records pending, then a live record with a higher seq
    arrives. The next request takes the live record first and tops it up with catch-up."""
    core = delivery(max_in_flight=1)
    core.offer([lane(1, 8, catch_up=True)], now=0.0)
    [first] = core.next_attempts(0.0)
    assert seqs_sent([first]) == [[1, 2, 3, 4]]

    core.offer([lane(9, 1, catch_up=False)], now=0.1)
    core.attempt_answered(first, stored(first), now=0.2)
    [second] = core.next_attempts(0.2)
    assert seqs_sent([second]) == [[9, 5, 6, 7]]

    core.attempt_answered(second, stored(second), now=0.3)
    assert core.next_attempts(0.3) == []  # one record left: it waits for the flush interval
    [third] = core.next_attempts(5.0)
    assert seqs_sent([third]) == [[8]]
    core.attempt_answered(third, stored(third), now=5.1)
    delivered = [
        seq
        for effect in core.take_effects()
        if isinstance(effect, RecordsDelivered)
        for run in effect.runs
        for seq in run.seqs
    ]
    assert sorted(delivered) == list(range(1, 10))  # every record, once


def test_with_nothing_live_a_request_is_all_catch_up() -> None:
    core = delivery(max_in_flight=2)
    core.offer([lane(1, 8, catch_up=True)], now=0.0)
    assert seqs_sent(core.next_attempts(0.0)) == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_a_partial_batch_closes_at_the_flush_interval_of_the_oldest_record_of_either_lane() -> None:
    """A live record in front of older catch-up ones does not push their deadline back."""
    core = delivery(max_in_flight=1, flush_interval_s=5.0)
    core.offer([lane(1, 1, catch_up=True, queued_at=100.0)], now=100.0, wall_now=100.0)
    core.offer([lane(2, 1, catch_up=False, queued_at=103.0)], now=103.0, wall_now=103.0)
    assert core.next_deadline() == pytest.approx(105.0)
    assert core.next_attempts(104.9) == []
    assert seqs_sent(core.next_attempts(105.0)) == [[2, 1]]


def test_each_lane_must_be_offered_in_seq_order_but_not_the_two_together() -> None:
    core = delivery()
    core.offer([lane(10, 2, catch_up=False)], now=0.0)
    core.offer([lane(1, 5, catch_up=True)], now=0.0)  # an older seq, the other lane: fine
    core.offer([lane(12, 1, catch_up=False)], now=0.0)
    with pytest.raises(ValueError, match="seq order"):
        core.offer([lane(3, 1, catch_up=True)], now=0.0)


def test_catch_up_leaves_one_request_of_room_for_live_records() -> None:
    """Batch size 4, two in flight: the hold is 16 records, catch-up may take 12 of them,
    so a live record stored while a backlog keeps the hold full is offered at once."""
    core = delivery(max_in_flight=2)
    assert (core.room(), core.room(catch_up=True)) == (16, 12)
    core.offer([lane(1, 12, catch_up=True)], now=0.0)
    assert (core.room(), core.room(catch_up=True)) == (4, 0)
    core.offer([lane(13, 1, catch_up=False)], now=0.1)
    in_flight = core.next_attempts(0.1)
    assert seqs_sent(in_flight) == [[13, 1, 2, 3], [4, 5, 6, 7]]
