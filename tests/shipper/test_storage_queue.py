"""The durable queue: append, read, complete, dedup, bounds and durability across reopen."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kk_shipper.storage import (
    AppendResult,
    DurableQueue,
    QueueError,
    QueueFull,
    record_size,
)

T0 = 1_700_000_000.0
BODY = b'{"message":"hello"}'


@pytest.fixture
def db(tmp_path: Path) -> Path:
    # A directory that doesn't exist yet, as on a fresh node's hostPath.
    return tmp_path / "state" / "shipper" / "queue.db"


def records(*ids: str, body: bytes = BODY) -> list[tuple[str, bytes]]:
    return [(record_id, body) for record_id in ids]


def queued(q: DurableQueue, kind: str = "logs") -> list[tuple[int, str]]:
    return [(r.seq, r.record_id) for r in q.read(kind, after_seq=0, limit=10_000)]  # type: ignore[arg-type]


# -- append, read, complete ------------------------------------------------------------------


def test_appended_batch_is_read_back_in_order_and_removed_when_completed(db: Path) -> None:
    """Records come back with seqs in arrival order; completed ones are gone."""
    with DurableQueue(db) as q:
        assert q.append("logs", [("a", b"A"), ("b", b"B"), ("c", b"C")], now=T0) == AppendResult(
            stored=3, duplicates=0
        )
        got = q.read("logs", after_seq=0, limit=10)
        assert [(r.seq, r.record_id, r.body, r.queued_at) for r in got] == [
            (1, "a", b"A", T0),
            (2, "b", b"B", T0),
            (3, "c", b"C", T0),
        ]
        assert [r.seq for r in q.read("logs", after_seq=1, limit=1)] == [2]

        q.complete("logs", [1, 2], now=T0 + 1)

        assert queued(q) == [(3, "c")]
        stats = q.stats(now=T0 + 5)
        assert stats.used_bytes == record_size("c", b"C")
        logs = stats.kinds["logs"]
        assert (logs.queued_records, logs.oldest_queued_at, logs.oldest_age_s) == (1, T0, 5.0)
        assert logs.delivered_ids == 2
        assert q.verify() == []


def test_logs_and_metrics_have_independent_seqs_positions_and_dedup(db: Path) -> None:
    """Completing logs leaves metrics untouched; each output numbers its own records."""
    with DurableQueue(db) as q:
        q.append("logs", records("x", "y"), now=T0)
        q.append("metrics", records("x", "m2"), now=T0)  # same id "x" in another output
        assert queued(q, "logs") == [(1, "x"), (2, "y")]
        assert queued(q, "metrics") == [(1, "x"), (2, "m2")]

        q.complete("logs", [1, 2], now=T0)

        assert queued(q, "logs") == []
        assert queued(q, "metrics") == [(1, "x"), (2, "m2")]
        stats = q.stats(now=T0)
        assert stats.kinds["metrics"].queued_records == 2
        assert stats.kinds["metrics"].oldest_queued_at == T0
        assert stats.kinds["logs"].oldest_queued_at is None
        # "x" delivered as a log is not a duplicate for metrics, nor the other way round.
        assert q.append("metrics", records("y"), now=T0).stored == 1


def test_completion_may_arrive_out_of_order_and_unknown_seqs_are_ignored(db: Path) -> None:
    """Several requests in flight finish in any order; only the named seqs leave."""
    with DurableQueue(db) as q:
        q.append("logs", records("a", "b", "c", "d", "e"), now=T0)
        q.complete("logs", [4, 2], now=T0)
        assert queued(q) == [(1, "a"), (3, "c"), (5, "e")]
        q.complete("logs", [5, 99, 2], now=T0)  # 99 never existed, 2 already completed
        assert queued(q) == [(1, "a"), (3, "c")]
        assert q.stats(now=T0).kinds["logs"].delivered_ids == 3
        assert q.verify() == []


def test_seqs_are_never_reused_after_completion_or_reopen(db: Path) -> None:
    with DurableQueue(db) as q:
        q.append("logs", records("a", "b", "c"), now=T0)
        q.complete("logs", [1, 2, 3], now=T0)
        q.append("logs", records("d"), now=T0)
        assert queued(q) == [(4, "d")]
        q.complete("logs", [4], now=T0)
    with DurableQueue(db) as q:
        q.append("logs", records("e"), now=T0)
        assert queued(q) == [(5, "e")]


def test_reopened_queue_has_every_record_and_counter(db: Path) -> None:
    """What was committed before close() is all there after a reopen."""
    with DurableQueue(db) as q:
        q.append("logs", records("a", "b", "c"), now=T0)
        q.append("metrics", records("m"), now=T0 + 1)
        q.complete("logs", [2], now=T0 + 2)
        q.append("logs", records("a", "b"), now=T0 + 3)  # both duplicates
        before = q.stats(now=T0 + 4)
    with DurableQueue(db) as q:
        assert queued(q) == [(1, "a"), (3, "c")]
        assert queued(q, "metrics") == [(1, "m")]
        assert q.stats(now=T0 + 4) == before
        assert before.kinds["logs"].duplicates_dropped == 2
        # The delivered window survived too: "b" is still a duplicate.
        assert q.append("logs", records("b"), now=T0 + 5) == AppendResult(0, 1)


def test_empty_inputs_are_no_ops(db: Path) -> None:
    with DurableQueue(db) as q:
        assert q.append("logs", [], now=T0) == AppendResult(0, 0)
        q.complete("logs", [], now=T0)
        assert q.read("logs", after_seq=0, limit=0) == []
        assert q.stats(now=T0).kinds["logs"].last_seq == 0


# -- dedup ----------------------------------------------------------------------------------


def test_repeats_within_one_batch_are_stored_once_and_the_first_copy_wins(db: Path) -> None:
    with DurableQueue(db) as q:
        result = q.append("logs", [("a", b"first"), ("b", b"B"), ("a", b"second")], now=T0)
        assert result == AppendResult(stored=2, duplicates=1)
        assert [(r.record_id, r.body) for r in q.read("logs", after_seq=0, limit=9)] == [
            ("a", b"first"),
            ("b", b"B"),
        ]


def test_id_already_queued_is_not_queued_again(db: Path) -> None:
    """A producer re-sending an unacknowledged batch doesn't double it."""
    with DurableQueue(db) as q:
        q.append("logs", records("a", "b"), now=T0)
        assert q.append("logs", records("b", "c"), now=T0 + 1) == AppendResult(1, 1)
        assert queued(q) == [(1, "a"), (2, "b"), (3, "c")]


def test_delivered_id_is_a_duplicate_until_the_window_ends(db: Path) -> None:
    """Delivered at T0+10 with a 60 s window: refused through T0+69.9, accepted at T0+70."""
    with DurableQueue(db, dedup_window_s=60) as q:
        q.append("logs", records("a"), now=T0)
        q.complete("logs", [1], now=T0 + 10)
        assert q.append("logs", records("a"), now=T0 + 69.9) == AppendResult(0, 1)
        assert q.stats(now=T0 + 69.9).kinds["logs"].delivered_ids == 1

        assert q.append("logs", records("a"), now=T0 + 70) == AppendResult(1, 0)
        # The expired id was pruned from disk, not just ignored.
        assert q.stats(now=T0 + 70).kinds["logs"].delivered_ids == 0
        assert queued(q) == [(2, "a")]


def test_delivered_window_forgets_the_oldest_ids_beyond_its_count(db: Path) -> None:
    with DurableQueue(db, dedup_max_ids=3) as q:
        for i, record_id in enumerate("abcde"):
            q.append("logs", records(record_id), now=T0 + i)
            q.complete("logs", [i + 1], now=T0 + i)
        assert q.stats(now=T0 + 5).kinds["logs"].delivered_ids == 3

        # c, d, e are remembered; a and b, the oldest, were forgotten.
        result = q.append("logs", records("a", "b", "c", "d", "e"), now=T0 + 5)
        assert result == AppendResult(stored=2, duplicates=3)
        assert [rid for _, rid in queued(q)] == ["a", "b"]
        assert q.verify() == []


def test_count_bound_of_the_window_is_per_output(db: Path) -> None:
    """A flood of delivered metrics doesn't push logs ids out of the window."""
    with DurableQueue(db, dedup_max_ids=2) as q:
        q.append("logs", records("log"), now=T0)
        q.complete("logs", [1], now=T0)
        q.append("metrics", records("m1", "m2", "m3", "m4"), now=T0 + 1)
        q.complete("metrics", [1, 2, 3, 4], now=T0 + 1)
        assert q.append("logs", records("log"), now=T0 + 2).duplicates == 1
        assert q.stats(now=T0 + 2).kinds["metrics"].delivered_ids == 2


def test_duplicate_counts_are_per_output_and_survive_reopen(db: Path) -> None:
    with DurableQueue(db) as q:
        q.append("logs", records("a", "a", "a"), now=T0)
        q.append("metrics", records("m", "m"), now=T0)
    with DurableQueue(db) as q:
        q.append("logs", records("a"), now=T0)
        stats = q.stats(now=T0)
        assert stats.kinds["logs"].duplicates_dropped == 3
        assert stats.kinds["metrics"].duplicates_dropped == 1
        assert stats.duplicates_dropped == 4


# -- bounds ---------------------------------------------------------------------------------


def test_batch_that_does_not_fit_raises_queue_full_and_stores_nothing(db: Path) -> None:
    size = record_size("r1", BODY)
    with DurableQueue(db, other_output_reserve=0, max_bytes=3 * size) as q:
        q.append("logs", records("r1", "r2"), now=T0)

        with pytest.raises(QueueFull) as caught:
            q.append("logs", records("r2", "r3", "r4"), now=T0)  # r2 a duplicate, 2 new

        full = caught.value
        assert (full.reason, full.needed_bytes, full.used_bytes, full.max_bytes) == (
            "max_bytes",
            2 * size,
            2 * size,
            3 * size,
        )
        assert str(db) in str(full)
        assert queued(q) == [(1, "r1"), (2, "r2")]
        stats = q.stats(now=T0).kinds["logs"]
        # Nothing of the refused batch counted either: the producer will send it again.
        assert (stats.duplicates_dropped, stats.last_seq) == (0, 2)
        assert q.append("logs", records("r3"), now=T0).stored == 1
        assert queued(q)[-1] == (3, "r3")


def test_batch_that_fills_the_bound_exactly_fits_and_one_byte_more_does_not(db: Path) -> None:
    limit = record_size("a", b"x" * 100) + record_size("b", b"y" * 50)
    with DurableQueue(db, other_output_reserve=0, max_bytes=limit) as q:
        q.append("logs", [("a", b"x" * 100), ("b", b"y" * 50)], now=T0)
        assert q.stats(now=T0).used_bytes == limit
        with pytest.raises(QueueFull):
            q.append("logs", [("c", b"")], now=T0)
    db.unlink()
    with DurableQueue(db, other_output_reserve=0, max_bytes=limit - 1) as q:
        with pytest.raises(QueueFull):
            q.append("logs", [("a", b"x" * 100), ("b", b"y" * 50)], now=T0)
        assert queued(q) == []


def test_a_full_queue_still_accepts_a_batch_of_duplicates(db: Path) -> None:
    """Duplicates need no room, so a re-sent batch is acknowledged even when full."""
    with DurableQueue(db, other_output_reserve=0, max_bytes=record_size("a", BODY)) as q:
        q.append("logs", records("a"), now=T0)
        assert q.append("logs", records("a"), now=T0) == AppendResult(0, 1)


def test_completing_records_makes_room_again(db: Path) -> None:
    with DurableQueue(db, other_output_reserve=0, max_bytes=2 * record_size("a", BODY)) as q:
        q.append("logs", records("a", "b"), now=T0)
        with pytest.raises(QueueFull):
            q.append("logs", records("c"), now=T0)
        q.complete("logs", [1], now=T0)
        assert q.append("logs", records("c"), now=T0).stored == 1


def test_the_byte_bound_covers_both_outputs_together(db: Path) -> None:
    with DurableQueue(db, other_output_reserve=0, max_bytes=2 * record_size("a", BODY)) as q:
        q.append("metrics", records("a", "b"), now=T0)
        with pytest.raises(QueueFull):
            q.append("logs", records("c"), now=T0)


def test_a_stalled_output_cannot_take_the_space_the_other_needs(db: Path) -> None:
    """Metrics pile up (their receiver is down) until their share is used; logs still fit."""
    one = record_size("a", BODY)
    with DurableQueue(db, max_bytes=10 * one, other_output_reserve=0.2) as q:
        assert q.output_share_bytes == 8 * one
        q.append("metrics", records(*"abcdefgh"), now=T0)
        with pytest.raises(QueueFull) as full:
            q.append("metrics", records("i"), now=T0)
        assert full.value.reason == "output_share"
        assert q.append("logs", records("x", "y"), now=T0).stored == 2
        with pytest.raises(QueueFull) as full:
            q.append("logs", records("z"), now=T0)
        assert full.value.reason == "max_bytes"


# -- API contract ---------------------------------------------------------------------------


def test_queue_created_on_one_thread_works_from_a_worker_thread(db: Path) -> None:
    """The app creates the queue, then drives it from one dedicated worker thread."""
    with DurableQueue(db) as q, ThreadPoolExecutor(max_workers=1) as worker:
        worker.submit(q.append, "logs", records("a"), now=T0).result()
        assert worker.submit(queued, q).result() == [(1, "a")]


def test_use_after_close_is_a_queue_error(db: Path) -> None:
    q = DurableQueue(db)
    q.close()
    q.close()  # idempotent
    with pytest.raises(QueueError, match="closed"):
        q.append("logs", records("a"), now=T0)


def test_unknown_kind_and_bad_bounds_are_refused(db: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        DurableQueue(db, other_output_reserve=0, max_bytes=0)
    with DurableQueue(db) as q, pytest.raises(ValueError, match="traces"):
        q.append("traces", records("a"), now=T0)  # type: ignore[arg-type]


def test_dedup_lookup_probes_ids_instead_of_scanning_the_window(db: Path) -> None:
    """Checking a batch costs O(batch), not O(window): with a million delivered ids in the
    window, a scan by age would make every append slow."""
    from kk_shipper.storage.queue import _KNOWN_IDS

    with DurableQueue(db):
        pass
    conn = sqlite3.connect(db)
    try:
        plan = " | ".join(
            row[3]
            for row in conn.execute(
                f"EXPLAIN QUERY PLAN {_KNOWN_IDS}",
                {"kind": "logs", "ids": '["a"]', "cutoff": 0.0},
            )
        )
    finally:
        conn.close()
    assert "SEARCH delivered USING PRIMARY KEY (kind=? AND record_id=?)" in plan
    assert "SEARCH queue USING COVERING INDEX queue_by_record (kind=? AND record_id=?)" in plan
