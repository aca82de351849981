"""The dead-letter store: move, list, replay, and its bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from kk_shipper.storage import DeadLetter, DurableQueue, QueueFull, record_size

T0 = 1_700_000_000.0
BODY = b'{"message":"refused"}'


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


def records(*ids: str) -> list[tuple[str, bytes]]:
    return [(record_id, BODY) for record_id in ids]


def queued(q: DurableQueue, kind: str = "logs") -> list[tuple[int, str]]:
    return [(r.seq, r.record_id) for r in q.read(kind, after_seq=0, limit=10_000)]  # type: ignore[arg-type]


def test_refused_records_move_to_the_dead_letter_store_with_their_reason(db: Path) -> None:
    with DurableQueue(db) as q:
        q.append("logs", records("a", "b", "c"), now=T0)

        moved = q.dead_letter("logs", [3, 1, 42], reason="rejected: 400 bad field", now=T0 + 1)

        assert moved == 2  # 42 isn't queued
        assert queued(q) == [(2, "b")]
        assert q.dead_letters() == [
            DeadLetter("logs", "a", BODY, "rejected: 400 bad field", T0 + 1),
            DeadLetter("logs", "c", BODY, "rejected: 400 bad field", T0 + 1),
        ]
        stats = q.stats(now=T0 + 1)
        # The batch's row keeps its bytes until its last record leaves.
        assert stats.used_bytes == 3 * record_size("b", BODY)
        assert stats.dead_letters == 2
        assert stats.kinds["logs"].dead_letters == 2
        assert stats.kinds["logs"].queued_records == 1
        assert q.verify() == []
        q.complete("logs", [2], now=T0 + 2)
        assert q.stats(now=T0 + 2).used_bytes == 0


def test_dead_letters_are_listed_per_output_oldest_first_with_a_limit(db: Path) -> None:
    with DurableQueue(db) as q:
        q.append("logs", records("l1", "l2"), now=T0)
        q.append("metrics", records("m1"), now=T0)
        q.dead_letter("logs", [2], reason="retries exhausted", now=T0 + 1)
        q.dead_letter("metrics", [1], reason="rejected", now=T0 + 2)
        q.dead_letter("logs", [1], reason="rejected", now=T0 + 3)

        assert [d.record_id for d in q.dead_letters()] == ["l2", "m1", "l1"]
        assert [d.record_id for d in q.dead_letters("logs")] == ["l2", "l1"]
        assert [d.record_id for d in q.dead_letters("metrics")] == ["m1"]
        assert [d.record_id for d in q.dead_letters(limit=1)] == ["l2"]


def test_replay_puts_dead_letters_back_at_the_end_of_the_queue(db: Path) -> None:
    """Replayed records get new seqs after everything queued, in dead-lettering order."""
    with DurableQueue(db) as q:
        q.append("logs", records("a", "b", "c"), now=T0)
        q.dead_letter("logs", [2], reason="rejected", now=T0 + 1)
        q.dead_letter("logs", [1], reason="rejected", now=T0 + 2)

        assert q.replay_dead_letters(now=T0 + 10) == 2

        assert queued(q) == [(3, "c"), (4, "b"), (5, "a")]
        replayed = q.read("logs", after_seq=3, limit=1)[0]
        assert (replayed.body, replayed.queued_at) == (BODY, T0 + 10)
        assert q.dead_letters() == []
        stats = q.stats(now=T0 + 10).kinds["logs"]
        assert (stats.dead_letters, stats.dead_letter_bytes, stats.duplicates_dropped) == (0, 0, 0)
        assert q.verify() == []


def test_replay_of_one_output_leaves_the_other_alone(db: Path) -> None:
    with DurableQueue(db) as q:
        q.append("logs", records("l"), now=T0)
        q.append("metrics", records("m"), now=T0)
        q.dead_letter("logs", [1], reason="r", now=T0)
        q.dead_letter("metrics", [1], reason="r", now=T0)

        assert q.replay_dead_letters("metrics", now=T0) == 1

        assert queued(q, "metrics") == [(2, "m")]
        assert queued(q, "logs") == []
        assert [d.record_id for d in q.dead_letters()] == ["l"]


def test_a_record_dead_lettered_twice_is_replayed_once(db: Path) -> None:
    """The producer re-sent "a" and that copy was refused too: one replay is enough."""
    with DurableQueue(db) as q:
        q.append("logs", records("a", "b"), now=T0)
        q.dead_letter("logs", [1, 2], reason="retries exhausted", now=T0)
        q.append("logs", records("a"), now=T0 + 1)  # seq 3
        q.dead_letter("logs", [3], reason="retries exhausted", now=T0 + 2)

        assert q.replay_dead_letters(now=T0 + 3) == 2

        assert queued(q) == [(4, "a"), (5, "b")]
        assert q.stats(now=T0 + 3).kinds["logs"].duplicates_dropped == 1
        assert q.verify() == []


def test_replay_that_does_not_fit_changes_nothing(db: Path) -> None:
    with DurableQueue(db, other_output_reserve=0, max_bytes=2 * record_size("a", BODY)) as q:
        q.append("logs", records("a"), now=T0)
        q.append("logs", records("b"), now=T0)
        q.dead_letter("logs", [1], reason="r", now=T0)
        q.append("logs", records("c"), now=T0)

        with pytest.raises(QueueFull):
            q.replay_dead_letters(now=T0)

        assert queued(q) == [(2, "b"), (3, "c")]
        assert [d.record_id for d in q.dead_letters()] == ["a"]
        assert q.verify() == []


def test_full_dead_letter_store_evicts_the_oldest_and_counts_them(db: Path) -> None:
    reason = "rejected"
    one = record_size("a", BODY) + len(reason)
    with DurableQueue(db, dead_letter_max_bytes=3 * one) as q:
        q.append("logs", records("a", "b"), now=T0)
        q.append("metrics", records("c", "d"), now=T0)
        q.dead_letter("logs", [1, 2], reason=reason, now=T0)
        q.dead_letter("metrics", [1], reason=reason, now=T0 + 1)
        assert q.stats(now=T0).dead_letter_bytes == 3 * one  # exactly at the bound: kept

        q.dead_letter("metrics", [2], reason=reason, now=T0 + 2)

        assert [d.record_id for d in q.dead_letters()] == ["b", "c", "d"]
        stats = q.stats(now=T0 + 2)
        assert stats.dead_letter_bytes == 3 * one
        assert stats.kinds["logs"].dead_letters_evicted == 1
        assert stats.kinds["metrics"].dead_letters_evicted == 0
        assert q.verify() == []
    with DurableQueue(db, dead_letter_max_bytes=3 * one) as q:
        assert q.stats(now=T0).dead_letters_evicted == 1


def test_a_batch_larger_than_the_dead_letter_bound_keeps_only_its_newest(db: Path) -> None:
    one = record_size("a", BODY) + len("r")
    with DurableQueue(db, dead_letter_max_bytes=2 * one) as q:
        q.append("logs", records("a", "b", "c", "d"), now=T0)
        assert q.dead_letter("logs", [1, 2, 3, 4], reason="r", now=T0) == 4
        assert [d.record_id for d in q.dead_letters()] == ["c", "d"]
        assert q.stats(now=T0).dead_letters_evicted == 2


def test_long_reasons_are_truncated(db: Path) -> None:
    with DurableQueue(db) as q:
        q.append("logs", records("a"), now=T0)
        q.dead_letter("logs", [1], reason="x" * 5000, now=T0)
        assert len(q.dead_letters()[0].reason) == 1000


def test_a_limited_replay_takes_the_oldest_and_leaves_the_rest_counted(db: Path) -> None:
    """`killkrill-shipper replay` goes in short transactions: each call replays at most
    ``limit`` records (every copy of each), and the counters stay exact in between."""
    with DurableQueue(db) as q:
        q.append("logs", records("a", "b", "c"), now=T0)
        q.dead_letter("logs", [1, 2, 3], reason="r", now=T0)
        q.append("logs", records("a"), now=T0 + 1)  # seq 4: "a" refused a second time
        q.dead_letter("logs", [4], reason="r", now=T0 + 1)
        one = record_size("a", BODY) + len("r")

        assert q.replay_dead_letters(now=T0 + 2, limit=2) == 2
        assert queued(q) == [(5, "a"), (6, "b")]
        assert [d.record_id for d in q.dead_letters()] == ["c"]
        stats = q.stats(now=T0 + 2).kinds["logs"]
        assert (stats.dead_letters, stats.dead_letter_bytes, stats.duplicates_dropped) == (
            1,
            one,
            1,
        )
        assert q.verify() == []

        assert q.replay_dead_letters(now=T0 + 3, limit=2) == 1
        assert q.replay_dead_letters(now=T0 + 4, limit=2) == 0
        assert queued(q)[-1] == (7, "c")
        assert q.stats(now=T0 + 4).kinds["logs"].dead_letter_bytes == 0
        assert q.verify() == []
