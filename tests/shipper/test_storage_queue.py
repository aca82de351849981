"""The durable queue: append, read, complete, dedup by position, bounds and durability."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kk_common.envelope import EncodedRecords
from kk_shipper.storage import (
    AppendResult,
    DurableQueue,
    QueueError,
    QueueFull,
    record_size,
)
from kk_shipper.storage.schema import MAX_BATCH_RECORDS

T0 = 1_700_000_000.0
BODY = b'{"message":"hello"}'


@pytest.fixture
def db(tmp_path: Path) -> Path:
    # A directory that doesn't exist yet, as on a fresh node's hostPath.
    return tmp_path / "state" / "shipper" / "queue.db"


def records(*ids: str, body: bytes = BODY) -> list[tuple[str, bytes]]:
    """Records without a position: stored as they are."""
    return [(record_id, body) for record_id in ids]


def lines(*offsets: int, source: str = "f", length: int = 10) -> EncodedRecords:
    """A producer's batch of one-physical-line records of ``source`` at ``offsets``.

    Record ids are ``<source>@<offset>``; each record claims its own line,
    ``[offset, offset + length)``.
    """
    ids = [f"{source}@{offset}" for offset in offsets]
    return EncodedRecords(
        batch_id=f"{source}:{offsets[0] if offsets else 0}",
        producer="p",
        stream="logs",
        ids=ids,
        bodies=b"".join(b'{"id":"%s"}\n' % i.encode() for i in ids),
        sources=[source],
        positions=[(0, offset) for offset in offsets],
        claims=[(0, offset, offset + length) for offset in offsets],
    )


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
        # A batch's bytes are freed with its last record.
        assert stats.used_bytes == sum(
            record_size(i, b) for i, b in [("a", b"A"), ("b", b"B"), ("c", b"C")]
        )
        logs = stats.kinds["logs"]
        assert (logs.queued_records, logs.oldest_queued_at, logs.oldest_age_s) == (1, T0, 5.0)
        assert q.verify() == []
        q.complete("logs", [3], now=T0 + 6)
        assert q.stats(now=T0 + 6).used_bytes == 0
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
        # Positions are per output: the same source's lines are new to metrics.
        q.append("logs", lines(0, 10), now=T0)
        assert q.append("metrics", lines(0, 10), now=T0).stored == 2


def test_completion_may_arrive_out_of_order_and_unknown_seqs_are_ignored(db: Path) -> None:
    """Several requests in flight finish in any order; only the named seqs leave."""
    with DurableQueue(db) as q:
        q.append("logs", records("a", "b", "c", "d", "e"), now=T0)
        q.complete("logs", [4, 2], now=T0)
        assert queued(q) == [(1, "a"), (3, "c"), (5, "e")]
        q.complete("logs", [5, 99, 2], now=T0)  # 99 never existed, 2 already completed
        assert queued(q) == [(1, "a"), (3, "c")]
        assert q.stats(now=T0).kinds["logs"].queued_records == 2
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
        q.append("logs", lines(0, 10, 20), now=T0)
        q.append("metrics", records("m"), now=T0 + 1)
        q.complete("logs", [2], now=T0 + 2)
        q.append("logs", lines(0, 10), now=T0 + 3)  # both duplicates
        before = q.stats(now=T0 + 4)
    with DurableQueue(db) as q:
        assert queued(q) == [(1, "f@0"), (3, "f@20")]
        assert queued(q, "metrics") == [(1, "m")]
        assert q.stats(now=T0 + 4) == before
        assert before.kinds["logs"].duplicates_dropped == 2
        # The dedup state survived too: the delivered line 10 is still a duplicate.
        assert q.append("logs", lines(10), now=T0 + 5) == AppendResult(0, 1)


def test_a_stored_batch_is_read_as_one_run_of_its_stored_bytes(db: Path) -> None:
    """Delivery gets a producer's batch back as it was stored, ids and bodies joined: one
    value per batch, not per record."""
    with DurableQueue(db) as q:
        batch = lines(0, 10, 20)
        q.append("logs", batch, now=T0)
        q.append("logs", lines(30, 40), now=T0 + 1)
        first, second = q.read_runs("logs", after_seq=0, limit=100)
        assert (first.first_seq, first.count, first.queued_at) == (1, 3, T0)
        assert first.ids == "f@0\nf@10\nf@20"
        assert first.bodies == batch.bodies
        assert (list(second.seqs), second.ids, second.queued_at) == ([4, 5], "f@30\nf@40", T0 + 1)
        # In-flight batches (at or before after_seq) are not read again.
        assert [list(run.seqs) for run in q.read_runs("logs", after_seq=3, limit=100)] == [[4, 5]]


def test_a_limit_cuts_a_run_and_the_next_read_resumes_inside_the_batch(db: Path) -> None:
    with DurableQueue(db) as q:
        q.append("logs", lines(0, 10, 20, 30, 40), now=T0)
        [head] = q.read_runs("logs", after_seq=0, limit=2)
        assert (list(head.seqs), head.ids) == ([1, 2], "f@0\nf@10")
        assert head.bodies == b'{"id":"f@0"}\n{"id":"f@10"}\n'
        [middle] = q.read_runs("logs", after_seq=2, limit=2)
        [tail] = q.read_runs("logs", after_seq=4, limit=2)
        assert [(list(r.seqs), r.ids) for r in (middle, tail)] == [
            ([3, 4], "f@20\nf@30"),
            ([5], "f@40"),
        ]
        assert tail.bodies == b'{"id":"f@40"}\n'


def test_delivery_reads_a_batch_whole_unless_it_would_pass_twice_the_limit(db: Path) -> None:
    """``whole_rows``: the batch at the limit is handed over whole (no cut to repeat on the
    next read) while the read stays within twice the limit; a larger one is cut."""
    with DurableQueue(db) as q:
        q.append("logs", lines(0, 10, 20), now=T0)  # seqs 1-3
        q.append("logs", lines(30, 40, 50), now=T0)  # seqs 4-6
        runs = q.read_runs("logs", after_seq=0, limit=4, whole_rows=True)
        assert [list(r.seqs) for r in runs] == [[1, 2, 3], [4, 5, 6]]
        runs = q.read_runs("logs", after_seq=0, limit=2, whole_rows=True)
        assert [list(r.seqs) for r in runs] == [[1, 2, 3]]
        q.append("logs", lines(*range(60, 200, 10)), now=T0)  # seqs 7-20
        runs = q.read_runs("logs", after_seq=6, limit=5, whole_rows=True)
        assert [list(r.seqs) for r in runs] == [[7, 8, 9, 10, 11]]


def test_finished_records_split_a_batch_into_runs_of_what_is_left(db: Path) -> None:
    """After a restart, a batch partly delivered comes back as the runs still queued."""
    with DurableQueue(db) as q:
        q.append("logs", lines(0, 10, 20, 30, 40, 50), now=T0)
        q.complete("logs", [range(2, 4), 6], now=T0)  # records 2, 3 and 6
    with DurableQueue(db) as q:
        runs = q.read_runs("logs", after_seq=0, limit=100)
        assert [(list(r.seqs), r.ids) for r in runs] == [([1], "f@0"), ([4, 5], "f@30\nf@40")]
        # Past seq 5 only finished records are left: nothing to read.
        assert q.read_runs("logs", after_seq=5, limit=100) == []
        assert [r.record_id for r in q.read("logs", after_seq=0, limit=100)] == [
            "f@0",
            "f@30",
            "f@40",
        ]


def test_completing_by_ranges_finishes_exactly_the_named_seqs(db: Path) -> None:
    """Ranges (a run's seqs) and single seqs mix, overlap, cross batches and name seqs
    that are gone; each queued record leaves once and the counters stay exact."""
    with DurableQueue(db) as q:
        q.append("logs", lines(0, 10, 20), now=T0)  # seqs 1-3
        q.append("logs", lines(30, 40, 50), now=T0)  # seqs 4-6
        q.append("logs", lines(60), now=T0)  # seq 7
        q.complete("logs", [range(2, 6), 3, range(5, 5), range(90, 95)], now=T0)
        assert queued(q) == [(1, "f@0"), (6, "f@50"), (7, "f@60")]
        q.complete("logs", [range(1, 2), range(6, 8)], now=T0)
        assert queued(q) == []
        assert q.stats(now=T0).used_bytes == 0
        assert q.verify() == []


def test_dead_lettering_a_range_moves_each_record_with_its_own_body(db: Path) -> None:
    with DurableQueue(db) as q:
        q.append("logs", lines(0, 10, 20, 30), now=T0)
        assert q.dead_letter("logs", [range(2, 4)], reason="too_large", now=T0 + 1) == 2
        letters = q.dead_letters("logs")
        assert [(d.record_id, d.body) for d in letters] == [
            ("f@10", b'{"id":"f@10"}'),
            ("f@20", b'{"id":"f@20"}'),
        ]
        assert queued(q) == [(1, "f@0"), (4, "f@30")]
        assert q.verify() == []


def test_empty_inputs_are_no_ops(db: Path) -> None:
    with DurableQueue(db) as q:
        assert q.append("logs", [], now=T0) == AppendResult(0, 0)
        q.complete("logs", [], now=T0)
        assert q.read("logs", after_seq=0, limit=0) == []
        assert q.stats(now=T0).kinds["logs"].last_seq == 0


# -- dedup by position -----------------------------------------------------------------------


def test_a_resent_batch_is_dropped_whole(db: Path) -> None:
    """A producer re-sending an unacknowledged batch doesn't double it."""
    with DurableQueue(db) as q:
        assert q.append("logs", lines(0, 10, 20), now=T0) == AppendResult(3, 0)
        assert q.append("logs", lines(0, 10, 20), now=T0 + 1) == AppendResult(0, 3)
        assert queued(q) == [(1, "f@0"), (2, "f@10"), (3, "f@20")]


def test_a_batch_overlapping_what_was_stored_keeps_only_the_new_records(db: Path) -> None:
    """After a restart the producer re-reads from its committed offset: the overlap goes."""
    with DurableQueue(db) as q:
        q.append("logs", lines(0, 10, 20), now=T0)
        assert q.append("logs", lines(10, 20, 30, 40), now=T0 + 1) == AppendResult(2, 2)
        assert [rid for _, rid in queued(q)] == ["f@0", "f@10", "f@20", "f@30", "f@40"]
        assert q.coverage.ranges(("logs", "f")).dumps() == "0-50"


def test_an_older_batch_resent_after_a_newer_one_is_stored(db: Path) -> None:
    """Two batches in flight, the first lost: its re-send must not look like a duplicate
    of the second (a high-water mark per source would drop it: a silent loss)."""
    with DurableQueue(db) as q:
        q.append("logs", lines(30, 40), now=T0)
        assert q.append("logs", lines(0, 10, 20), now=T0 + 1) == AppendResult(3, 0)
        assert sorted(rid for _, rid in queued(q)) == ["f@0", "f@10", "f@20", "f@30", "f@40"]


def test_a_line_between_claimed_ranges_is_not_a_duplicate(db: Path) -> None:
    """A stdout line still being written (CRI partial) while stderr lines around it ship:
    the ranges around it are stored, the gap stays open until its line arrives."""
    with DurableQueue(db) as q:
        q.append("logs", lines(0, 20), now=T0)
        assert q.coverage.ranges(("logs", "f")).dumps() == "0-10,20-30"
        assert q.append("logs", lines(10), now=T0 + 1) == AppendResult(1, 0)
        assert q.coverage.ranges(("logs", "f")).dumps() == "0-30"


def test_split_parts_of_one_line_share_its_position(db: Path) -> None:
    """A long message's continuation records are all stored, and re-sent together dropped."""
    parts = EncodedRecords(
        batch_id="b",
        producer="p",
        stream="logs",
        ids=["l@0", "l@0.1", "l@0.2"],
        bodies=b'{"p":0}\n{"p":1}\n{"p":2}\n',
        sources=["f"],
        positions=[(0, 0)] * 3,
        claims=[(0, 0, 30_000)],
    )
    with DurableQueue(db) as q:
        assert q.append("logs", parts, now=T0) == AppendResult(3, 0)
        assert q.append("logs", parts, now=T0) == AppendResult(0, 3)


def test_sources_are_independent(db: Path) -> None:
    with DurableQueue(db) as q:
        q.append("logs", lines(0, 10, source="a"), now=T0)
        assert q.append("logs", lines(0, 10, source="b"), now=T0).stored == 2
        assert q.stats(now=T0).kinds["logs"].dedup_sources == 2


def test_records_without_a_position_are_never_dropped(db: Path) -> None:
    with DurableQueue(db) as q:
        q.append("logs", records("a"), now=T0)
        assert q.append("logs", records("a"), now=T0) == AppendResult(1, 0)


def test_a_source_is_forgotten_after_the_window(db: Path) -> None:
    """Stored at T0 with a 60 s window: a re-send at T0+59 is a duplicate; once the source
    has been idle for the window it is forgotten (on disk too), and a re-send goes through
    to the receiver, which drops it by id."""
    with DurableQueue(db, dedup_window_s=60) as q:
        q.append("logs", lines(0), now=T0)
        assert q.append("logs", lines(0), now=T0 + 59).duplicates == 1
        q.append("logs", lines(0, source="other"), now=T0 + 120)
        assert q.stats(now=T0 + 120).kinds["logs"].dedup_sources == 1
    with DurableQueue(db, dedup_window_s=60) as q:
        assert q.append("logs", lines(0), now=T0 + 121) == AppendResult(1, 0)


def test_the_least_recently_used_sources_beyond_the_bound_are_forgotten(db: Path) -> None:
    with DurableQueue(db, dedup_max_sources=2) as q:
        for i, source in enumerate("abc"):
            q.append("logs", lines(0, source=source), now=T0 + i)
        q.append("logs", lines(10, source="d"), now=T0 + 100)  # prunes: a and b go
        assert q.stats(now=T0 + 100).kinds["logs"].dedup_sources == 2
        assert q.append("logs", lines(0, source="c"), now=T0 + 101).duplicates == 1
        assert q.append("logs", lines(0, source="a"), now=T0 + 101).stored == 1


def test_dedup_state_grows_with_sources_not_records(db: Path) -> None:
    """Ten thousand consecutive lines of one file leave one stored range."""
    with DurableQueue(db) as q:
        for start in range(0, 10_000, 1000):
            q.append("logs", lines(*range(start * 10, (start + 1000) * 10, 10)), now=T0)
        assert q.coverage.ranges(("logs", "f")).dumps() == "0-100000"


def test_duplicate_counts_are_per_output_and_survive_reopen(db: Path) -> None:
    with DurableQueue(db) as q:
        q.append("logs", lines(0, 10, 20), now=T0)
        q.append("logs", lines(0, 10), now=T0)
        q.append("metrics", lines(0), now=T0)
        q.append("metrics", lines(0), now=T0)
    with DurableQueue(db) as q:
        q.append("logs", lines(20), now=T0)
        stats = q.stats(now=T0)
        assert stats.kinds["logs"].duplicates_dropped == 3
        assert stats.kinds["metrics"].duplicates_dropped == 1
        assert stats.duplicates_dropped == 4


def test_append_returns_what_it_stored_as_the_runs_a_read_would_give(db: Path) -> None:
    """A reader that is caught up takes the stored runs from the append, not the file."""
    with DurableQueue(db) as q:
        q.append("logs", lines(0, 10), now=T0)
        stored = q.append("logs", lines(10, 20, 30), now=T0 + 1)  # f@10 is a duplicate
        assert (stored.stored, stored.duplicates) == (2, 1)
        assert stored.runs == tuple(q.read_runs("logs", after_seq=2, limit=100))
        many = q.append("logs", records(*(f"r{i}" for i in range(MAX_BATCH_RECORDS + 5))), now=T0)
        assert [run.count for run in many.runs] == [MAX_BATCH_RECORDS, 5]
        assert many.runs == tuple(q.read_runs("logs", after_seq=4, limit=2 * MAX_BATCH_RECORDS))
        assert q.append("logs", lines(0), now=T0 + 2).runs == ()


def test_a_batch_larger_than_a_row_takes_several_rows_with_consecutive_seqs(db: Path) -> None:
    count = MAX_BATCH_RECORDS + 5
    with DurableQueue(db) as q:
        q.append("logs", records(*(f"r{i}" for i in range(count))), now=T0)
        got = q.read("logs", after_seq=MAX_BATCH_RECORDS - 2, limit=10)
        assert [(r.seq, r.record_id) for r in got] == [
            (MAX_BATCH_RECORDS - 1 + i, f"r{MAX_BATCH_RECORDS - 2 + i}") for i in range(7)
        ]
        q.complete("logs", range(1, count + 1), now=T0)
        assert q.stats(now=T0).used_bytes == 0
        assert q.verify() == []


# -- bounds ---------------------------------------------------------------------------------


def test_batch_that_does_not_fit_raises_queue_full_and_stores_nothing(db: Path) -> None:
    def size(offset: int) -> int:
        return record_size(f"f@{offset}", b'{"id":"f@%d"}' % offset)

    limit = size(0) + size(10) + size(20)
    with DurableQueue(db, other_output_reserve=0, max_bytes=limit) as q:
        q.append("logs", lines(0, 10), now=T0)

        with pytest.raises(QueueFull) as caught:
            q.append("logs", lines(10, 20, 30), now=T0)  # 10 a duplicate, 2 new

        full = caught.value
        assert (full.reason, full.needed_bytes, full.used_bytes, full.max_bytes) == (
            "max_bytes",
            size(20) + size(30),
            size(0) + size(10),
            limit,
        )
        assert str(db) in str(full)
        assert queued(q) == [(1, "f@0"), (2, "f@10")]
        stats = q.stats(now=T0).kinds["logs"]
        # Nothing of the refused batch counted either: the producer will send it again.
        assert (stats.duplicates_dropped, stats.last_seq) == (0, 2)
        # ... and its claims were not remembered: its lines are still new.
        assert q.coverage.ranges(("logs", "f")).dumps() == "0-20"
        assert q.append("logs", lines(20), now=T0).stored == 1
        assert queued(q)[-1] == (3, "f@20")


def test_batch_that_fills_the_bound_exactly_fits_and_one_byte_more_does_not(db: Path) -> None:
    limit = record_size("a", b"x" * 100) + record_size("b", b"y" * 50)
    with DurableQueue(db, other_output_reserve=0, max_bytes=limit) as q:
        q.append("logs", [("a", b"x" * 100), ("b", b"y" * 50)], now=T0)
        assert q.stats(now=T0).used_bytes == limit
        with pytest.raises(QueueFull):
            q.append("logs", [("c", b"")], now=T0)
    db.unlink()
    with DurableQueue(db, other_output_reserve=0, max_bytes=limit - 1) as q:
        q.append("logs", [("a", b"z" * 10)], now=T0)
        with pytest.raises(QueueFull):
            q.append("logs", [("a", b"x" * 100), ("b", b"y" * 50)], now=T0)
        assert queued(q) == [(1, "a")]


def test_a_batch_larger_than_the_bound_is_stored_alone_not_refused_forever(db: Path) -> None:
    """Regression (issue 13, shipper_queue_full): with queue_max_size below one producer
    batch, the batch was refused by an empty queue, so nothing was ever delivered. It goes
    in when its output holds nothing, and waits like any batch otherwise."""
    big = [("a", b"x" * 100), ("b", b"y" * 100)]
    one = record_size("a", b"x" * 100)
    with DurableQueue(db, max_bytes=one, other_output_reserve=0.1) as q:
        assert q.append("logs", big, now=T0).stored == 2
        with pytest.raises(QueueFull):
            q.append("logs", [("c", b"z" * 100), ("d", b"z" * 100)], now=T0)
        # The other output has its own turn: its first oversized batch goes in too.
        assert q.append("metrics", [("m", b"m" * 100), ("n", b"n" * 100)], now=T0).stored == 2
        q.complete("logs", [1, 2], now=T0)
        assert q.append("logs", [("c", b"z" * 100), ("d", b"z" * 100)], now=T0).stored == 2


def test_a_full_queue_still_accepts_a_batch_of_duplicates(db: Path) -> None:
    """Duplicates need no room, so a re-sent batch is acknowledged even when full."""
    size = record_size("f@0", b'{"id":"f@0"}')
    with DurableQueue(db, other_output_reserve=0, max_bytes=size) as q:
        q.append("logs", lines(0), now=T0)
        assert q.append("logs", lines(0), now=T0) == AppendResult(0, 1)


def test_completing_records_makes_room_again(db: Path) -> None:
    with DurableQueue(db, other_output_reserve=0, max_bytes=2 * record_size("a", BODY)) as q:
        q.append("logs", records("a"), now=T0)
        q.append("logs", records("b"), now=T0)
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


def test_a_read_limit_inside_a_partly_finished_row_skips_nothing(db: Path) -> None:
    """Records finished out of order leave holes; a limited read resumes after the last
    record it returned, so every unfinished record is read exactly once."""
    with DurableQueue(db) as q:
        q.append("logs", records(*"abcdefgh"), now=T0)
        q.append("logs", records("i", "j"), now=T0)
        q.complete("logs", [2, 3, 6], now=T0)
        seen, after = [], 0
        while chunk := q.read("logs", after_seq=after, limit=2):
            seen += [r.record_id for r in chunk]
            after = chunk[-1].seq
        assert seen == ["a", "d", "e", "g", "h", "i", "j"]
