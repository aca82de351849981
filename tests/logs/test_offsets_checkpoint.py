"""CheckpointTracker stories: offsets advance only over the acknowledged prefix of batches.

Each test emits batches in send order, feeds the shipper's acks (in whatever order the story
needs) and checks what may be persisted. No IO, no clock.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kk_logs.offsets as offsets_pkg
from kk_logs.offsets import CheckpointStats, CheckpointTracker


def commit(tracker: CheckpointTracker) -> dict[str, int]:
    """What the app does after an ack: take the committable offsets and mark them persisted."""
    offsets = tracker.committable()
    tracker.mark_committed(offsets)
    return offsets


def test_in_order_acks_advance_the_offset_batch_by_batch() -> None:
    tracker = CheckpointTracker()
    tracker.emitted("b1", {"f": 100})
    tracker.emitted("b2", {"f": 250})
    assert tracker.committable() == {}

    tracker.acknowledged("b1")
    assert commit(tracker) == {"f": 100}
    tracker.acknowledged("b2")
    assert commit(tracker) == {"f": 250}
    assert tracker.pending_batches == 0
    assert tracker.oldest_pending() is None


def test_out_of_order_ack_is_held_back_until_the_gap_closes() -> None:
    """b2 and b3 are acked before b1: persisting their offsets would skip b1's lines after a
    crash, so nothing moves until b1's ack arrives, and then everything moves at once."""
    tracker = CheckpointTracker()
    tracker.emitted("b1", {"f": 100})
    tracker.emitted("b2", {"f": 200})
    tracker.emitted("b3", {"f": 300})

    tracker.acknowledged("b3")
    tracker.acknowledged("b2")
    assert tracker.committable() == {}
    assert tracker.oldest_pending() == "b1"
    assert tracker.stats().held_back == 2

    tracker.acknowledged("b1")
    assert commit(tracker) == {"f": 300}
    assert tracker.stats() == CheckpointStats(
        emitted=3,
        acked=3,
        ignored_acks=0,
        acked_out_of_order=2,
        held_back=0,
        pending=0,
    )


def test_gap_in_the_middle_lets_the_prefix_advance_up_to_it_only() -> None:
    tracker = CheckpointTracker()
    for n in range(1, 5):
        tracker.emitted(f"b{n}", {"f": n * 10})
    tracker.acknowledged("b1")
    tracker.acknowledged("b3")
    tracker.acknowledged("b4")
    assert commit(tracker) == {"f": 10}
    assert tracker.oldest_pending() == "b2"
    assert tracker.pending_batches == 3  # b2 unacked, b3 and b4 held back

    tracker.acknowledged("b2")
    assert commit(tracker) == {"f": 40}


def test_a_batch_of_several_files_advances_each_to_its_own_safe_offset() -> None:
    tracker = CheckpointTracker()
    tracker.emitted("b1", {"a": 10, "b": 500})
    tracker.emitted("b2", {"a": 30, "c": 7})
    tracker.acknowledged("b2")
    assert tracker.committable() == {}  # c is only in b2, but b2 waits for b1 like everyone

    tracker.acknowledged("b1")
    assert commit(tracker) == {"a": 30, "b": 500, "c": 7}


def test_a_file_absent_from_later_batches_keeps_its_offset() -> None:
    tracker = CheckpointTracker()
    tracker.emitted("b1", {"quiet": 42, "busy": 1})
    tracker.emitted("b2", {"busy": 2})
    tracker.emitted("b3", {"busy": 3})
    tracker.acknowledged("b1")
    assert commit(tracker) == {"quiet": 42, "busy": 1}

    tracker.acknowledged("b2")
    tracker.acknowledged("b3")
    # Only what moved is committable again; "quiet" stays at 42 in the store.
    assert commit(tracker) == {"busy": 3}


def test_safe_offset_is_committed_not_the_end_of_the_last_line() -> None:
    """The batch carries the parser's safe offset (before a pending partial line); the tracker
    commits exactly that, so the partial line is re-read after a restart."""
    tracker = CheckpointTracker()
    # Lines end at 120, but a CRI "P" line starts at 80 and is not finished.
    tracker.emitted("b1", {"f": 80})
    tracker.acknowledged("b1")
    assert commit(tracker) == {"f": 80}


def test_repeated_and_unknown_acks_are_ignored_and_counted() -> None:
    tracker = CheckpointTracker()
    tracker.emitted("b1", {"f": 100})
    tracker.emitted("b2", {"f": 200})
    tracker.acknowledged("b2")
    tracker.acknowledged("b2")  # repeated while held back
    tracker.acknowledged("b2")  # repeated again
    tracker.acknowledged("from-a-previous-life")
    assert tracker.committable() == {}

    tracker.acknowledged("b1")
    tracker.acknowledged("b1")  # repeated after the prefix passed it
    assert commit(tracker) == {"f": 200}
    stats = tracker.stats()
    assert (stats.acked, stats.ignored_acks) == (2, 4)


def test_failed_store_commit_loses_nothing_offsets_stay_committable() -> None:
    tracker = CheckpointTracker()
    tracker.emitted("b1", {"f": 100})
    tracker.acknowledged("b1")
    assert tracker.committable() == {"f": 100}
    # The store write failed: mark_committed was not called, so the next attempt retries.
    tracker.emitted("b2", {"g": 5})
    tracker.acknowledged("b2")
    assert tracker.committable() == {"f": 100, "g": 5}


def test_offset_that_moved_on_during_the_commit_stays_committable() -> None:
    tracker = CheckpointTracker()
    tracker.emitted("b1", {"f": 100})
    tracker.emitted("b2", {"f": 200})
    tracker.acknowledged("b1")
    taken = tracker.committable()
    tracker.acknowledged("b2")  # arrives while the store writes `taken`
    tracker.mark_committed(taken)
    assert tracker.committable() == {"f": 200}


def test_truncated_file_rewinds_and_is_named_for_a_reset_commit() -> None:
    """copytruncate: the tailer reads the same identity from 0 again. The lower offset is
    committable once its batch is in the prefix, and `rewound` tells the store to accept it."""
    tracker = CheckpointTracker(initial={"f": 5000})
    tracker.emitted("b1", {"f": 6000})
    tracker.emitted("b2", {"f": 40})  # truncated in place, read again from the start
    tracker.acknowledged("b1")
    assert (tracker.committable(), tracker.rewound()) == ({"f": 6000}, frozenset())
    tracker.mark_committed({"f": 6000})

    tracker.acknowledged("b2")
    assert (tracker.committable(), tracker.rewound()) == ({"f": 40}, {"f"})
    tracker.mark_committed({"f": 40})
    assert tracker.rewound() == frozenset()


def test_rewind_against_the_stored_offset_is_noticed_after_a_restart() -> None:
    tracker = CheckpointTracker(initial={"f": 5000, "g": 10})
    tracker.emitted("b1", {"f": 12, "g": 20})  # f was truncated while the agent was down
    tracker.acknowledged("b1")
    assert tracker.rewound() == {"f"}


def test_forgotten_file_is_no_longer_committable() -> None:
    tracker = CheckpointTracker()
    tracker.emitted("b1", {"gone": 100, "f": 1})
    tracker.acknowledged("b1")
    tracker.forget(["gone"])
    assert tracker.committable() == {"f": 1}


def test_emitting_a_pending_batch_id_twice_is_refused() -> None:
    tracker = CheckpointTracker()
    tracker.emitted("b1", {"f": 1})
    with pytest.raises(ValueError, match="b1"):
        tracker.emitted("b1", {"f": 2})
    with pytest.raises(ValueError, match="negative"):
        tracker.emitted("b2", {"f": -1})
    assert tracker.pending_batches == 1
    tracker.acknowledged("b1")
    assert tracker.committable() == {"f": 1}


# -- the property: any ack order --------------------------------------------------------------


@st.composite
def stories(draw: st.DrawFn) -> tuple[list[dict[str, int]], list[int]]:
    """Batches over a few files with growing offsets, then every batch acked once, in any
    order, with some unknown and repeated acks mixed in."""
    files = ["a", "b", "c"]
    position = dict.fromkeys(files, 0)
    batches: list[dict[str, int]] = []
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        mentioned = draw(st.lists(st.sampled_from(files), unique=True, max_size=3))
        batch: dict[str, int] = {}
        for f in mentioned:
            position[f] += draw(st.integers(min_value=0, max_value=1000))
            batch[f] = position[f]
        batches.append(batch)
    order = draw(st.permutations(range(len(batches))))
    acks = list(order)
    # -1 is an id never emitted; a repeat names an index already in the list.
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        extra = draw(st.sampled_from([-1, *range(len(batches))]))
        acks.insert(draw(st.integers(min_value=0, max_value=len(acks))), extra)
    return batches, acks


@settings(max_examples=300, deadline=None)
@given(stories())
def test_any_ack_order_never_commits_past_an_unacknowledged_batch(
    story: tuple[list[dict[str, int]], list[int]],
) -> None:
    batches, acks = story
    tracker = CheckpointTracker()
    for i, offsets in enumerate(batches):
        tracker.emitted(f"b{i:03}", offsets)

    persisted: dict[str, int] = {}
    acked: set[int] = set()
    for i in acks:
        tracker.acknowledged(f"b{i:03}" if i >= 0 else "unknown")
        if i >= 0:
            acked.add(i)
        for f, offset in commit(tracker).items():
            assert offset >= persisted.get(f, 0), "a committed offset went backwards"
            persisted[f] = offset

        first_gap = min(set(range(len(batches))) - acked, default=len(batches))
        for f, offset in persisted.items():
            # Never past the first unacknowledged batch that mentions the file ...
            unacked = [b[f] for n, b in enumerate(batches) if n not in acked and f in b]
            if unacked:
                assert offset <= unacked[0]
        # ... and exactly the latest mention in the acknowledged prefix.
        expected: dict[str, int] = {}
        for b in batches[:first_gap]:
            expected.update(b)
        assert persisted == expected

    last: dict[str, int] = {}
    for b in batches:
        last.update(b)
    assert persisted == last
    assert tracker.pending_batches == 0
    stats = tracker.stats()
    assert stats.acked == len(batches)
    assert stats.held_back == 0


# -- sans-IO ----------------------------------------------------------------------------------


def test_tracker_imports_no_io_and_no_clock_and_the_store_reads_no_clock() -> None:
    """The tracker is sans-IO; the store does IO but takes ``now`` from its caller."""
    src = Path(offsets_pkg.__file__).parent
    io_modules = {"asyncio", "time", "os", "io", "socket", "pathlib", "threading", "sqlite3"}
    for path, forbidden in (
        (src / "checkpoint.py", io_modules),
        (src / "store.py", {"time", "datetime", "asyncio"}),
    ):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not names & forbidden, (path.name, node.lineno, names)
