"""The producer's pending-batch window, driven with explicit times."""

from __future__ import annotations

import pytest

from kk_common.envelope import Ack, AckStatus
from kk_common.ipc import PendingBatches

FRAMES = [b"kk.v1", b"x" * 100]


def stored(batch_id: str) -> Ack:
    return Ack(batch_id=batch_id, status=AckStatus.STORED)


def test_acknowledged_batch_is_returned_once_with_its_context() -> None:
    pending = PendingBatches(resend_after_s=5)
    pending.sent("b1", FRAMES, records=10, now=0.0, context={"file": 7})
    kept = pending.acknowledged(stored("b1"))
    assert kept is not None
    assert (kept.batch_id, kept.records, kept.context) == ("b1", 10, {"file": 7})
    assert pending.acknowledged(stored("b1")) is None
    assert len(pending) == 0
    assert pending.bytes_pending == 0


def test_unanswered_batch_is_resent_with_doubling_waits() -> None:
    pending = PendingBatches(resend_after_s=5, max_resend_after_s=12)
    pending.sent("b1", FRAMES, records=1, now=0.0)
    assert pending.next_deadline() == 5.0
    assert pending.due(now=4.9) == []
    assert [b.batch_id for b in pending.due(now=5.0)] == ["b1"]
    assert pending.next_deadline() == 15.0  # waited 5, now waits 10
    assert pending.due(now=14.0) == []
    assert [b.attempts for b in pending.due(now=15.0)] == [3]
    assert pending.next_deadline() == 27.0  # capped at 12


def test_reconnect_resends_everything_and_restarts_the_backoff() -> None:
    pending = PendingBatches(resend_after_s=5)
    pending.sent("b1", FRAMES, records=1, now=0.0)
    pending.sent("b2", FRAMES, records=1, now=1.0)
    pending.due(now=5.0)
    again = pending.reconnected(now=6.0)
    assert [b.batch_id for b in again] == ["b1", "b2"]
    assert pending.next_deadline() == 11.0


def test_window_fills_by_count_and_by_bytes() -> None:
    by_count = PendingBatches(max_batches=2, max_bytes=10_000)
    by_count.sent("b1", FRAMES, records=1, now=0.0)
    assert by_count.has_room()
    by_count.sent("b2", FRAMES, records=1, now=0.0)
    assert not by_count.has_room()
    by_count.acknowledged(stored("b1"))
    assert by_count.has_room()

    by_bytes = PendingBatches(max_batches=100, max_bytes=150)
    by_bytes.sent("b1", FRAMES, records=1, now=0.0)
    assert by_bytes.has_room()
    by_bytes.sent("b2", FRAMES, records=1, now=0.0)
    assert not by_bytes.has_room()


def test_an_oversize_batch_still_fits_an_empty_window() -> None:
    pending = PendingBatches(max_batches=4, max_bytes=10)
    assert pending.has_room()
    pending.sent("big", FRAMES, records=1, now=0.0)
    assert not pending.has_room()


def test_oldest_age_and_records_pending() -> None:
    pending = PendingBatches()
    assert pending.oldest_age(now=3.0) == 0.0
    pending.sent("b1", FRAMES, records=4, now=1.0)
    pending.sent("b2", FRAMES, records=6, now=2.0)
    assert pending.oldest_age(now=3.0) == 2.0
    assert pending.records_pending == 10


def test_same_batch_cannot_be_registered_twice() -> None:
    pending = PendingBatches()
    pending.sent("b1", FRAMES, records=1, now=0.0)
    with pytest.raises(ValueError, match="already pending"):
        pending.sent("b1", FRAMES, records=1, now=0.0)


def test_a_refused_batch_is_kept_and_offered_again_only_after_the_longest_wait() -> None:
    """Rejected means not stored: the records must not be given up (their offsets would be
    committed), so the batch stays, and the shipper is asked again once a minute."""
    pending = PendingBatches(resend_after_s=5, max_resend_after_s=60)
    pending.sent("b1", FRAMES, records=3, now=0.0)
    refusal = Ack(batch_id="b1", status=AckStatus.REJECTED, reason="logs output disabled")

    kept = pending.refused(refusal, now=1.0)

    assert kept is not None and kept.refused == "logs output disabled"
    assert len(pending) == 1
    assert pending.refusals() == ["logs output disabled"]
    assert pending.due(60.9) == []
    assert [b.batch_id for b in pending.due(61.0)] == ["b1"]
    # Stored at last (the shipper was reconfigured): forgotten like any stored batch.
    assert pending.acknowledged(stored("b1")) is kept
    assert pending.refusals() == []


def test_a_refusal_for_an_unknown_batch_changes_nothing() -> None:
    pending = PendingBatches()
    assert pending.refused(Ack(batch_id="nope", status=AckStatus.REJECTED), now=0.0) is None
    assert len(pending) == 0
