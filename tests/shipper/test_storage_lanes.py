"""The queue's lanes: catch-up batches are read apart from live ones, and delivering the two
lanes out of seq order loses nothing and sends nothing twice, across a SIGKILL too."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from lanes_support import line_batch

from kk_shipper.storage import DurableQueue
from kk_shipper.storage import queue as queue_module

T0 = 1_700_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


def test_each_lane_is_read_on_its_own_in_seq_order(db: Path) -> None:
    """A quiet file's batch stored behind a backlog is the first thing its lane holds."""
    with DurableQueue(db) as q:
        q.append("logs", line_batch("noisy", range(0, 300, 10), catch_up=True), now=T0)
        q.append("logs", line_batch("quiet", range(0, 20, 10), catch_up=False), now=T0 + 1)
        q.append("logs", line_batch("noisy", range(300, 600, 10), catch_up=True), now=T0 + 2)

        [live] = q.read_runs("logs", after_seq=0, limit=100, catch_up=False)
        assert (list(live.seqs), live.ids, live.catch_up) == ([31, 32], "quiet@0\nquiet@10", False)
        backlog = q.read_runs("logs", after_seq=0, limit=40, catch_up=True)
        assert [(run.first_seq, run.count, run.catch_up) for run in backlog] == [
            (1, 30, True),
            (33, 10, True),
        ]
        # A position in the lane: the next read of it goes on after the last seq read.
        [rest] = q.read_runs("logs", after_seq=42, limit=100, catch_up=True)
        assert (rest.first_seq, rest.count) == (43, 20)
        # Both lanes, in seq order, for tools and tests.
        everything = q.read_runs("logs", after_seq=0, limit=1000)
        assert [(run.first_seq, run.catch_up) for run in everything] == [
            (1, True),
            (31, False),
            (33, True),
        ]


def test_the_lane_index_answers_the_lane_reads(db: Path) -> None:
    """Reading one lane must not walk the other lane's rows (a backlog of thousands)."""
    DurableQueue(db).close()
    conn = sqlite3.connect(db)
    plan = conn.execute(
        "EXPLAIN QUERY PLAN " + queue_module._READ_LANE, (0, "logs", 0, 1)
    ).fetchall()
    conn.close()
    assert any("batches_by_lane" in row[-1] for row in plan), plan


def test_completing_the_live_lane_first_leaves_the_backlog_whole(db: Path) -> None:
    """Delivery completes live records before older catch-up ones (out of seq order):
    the backlog stays queued, counted and readable, and the counters stay exact."""
    with DurableQueue(db) as q:
        q.append("logs", line_batch("noisy", range(0, 100, 10), catch_up=True), now=T0)
        q.append("logs", line_batch("quiet", range(0, 10, 10), catch_up=False), now=T0 + 1)
        [live] = q.read_runs("logs", after_seq=0, limit=100, catch_up=False)
        q.complete("logs", [live.seqs], now=T0 + 2)

        assert q.stats(now=T0 + 2).kinds["logs"].queued_records == 10
        [backlog] = q.read_runs("logs", after_seq=0, limit=100, catch_up=True)
        assert list(backlog.seqs) == list(range(1, 11))
        assert q.read_runs("logs", after_seq=0, limit=100, catch_up=False) == []
        assert q.verify() == []


# The child plays a shipper that stores a noisy file's backlog and then a quiet file's
# line, delivers the live line and part of the backlog (out of seq order), writing each
# delivered id to the "receiver" file before completing it, and is then SIGKILLed with
# the rest of the backlog still queued.
CHILD = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from lanes_support import line_batch
from kk_shipper.storage import DurableQueue

queue = DurableQueue(Path(sys.argv[1]))
received = open(sys.argv[2], "a")

def deliver(runs):
    for run in runs:
        for record in run.records():
            received.write(record.record_id + "\\n")
    received.flush()
    os.fsync(received.fileno())
    queue.complete("logs", [run.seqs for run in runs], now=2.0)

queue.append("logs", line_batch("noisy", range(0, 500, 10), catch_up=True), now=1.0)
queue.append("logs", line_batch("quiet", range(0, 20, 10), catch_up=False), now=1.0)
deliver(queue.read_runs("logs", after_seq=0, limit=100, catch_up=False))
deliver(queue.read_runs("logs", after_seq=0, limit=20, catch_up=True))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_lanes_delivered_out_of_order_lose_nothing_and_send_nothing_twice_across_sigkill(
    tmp_path: Path,
) -> None:
    db, received = tmp_path / "queue.db", tmp_path / "received"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(db), str(received), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    before_restart = received.read_text().split()
    assert before_restart[:2] == ["quiet@0", "quiet@10"]  # the live line went first
    assert len(before_restart) == 22

    with DurableQueue(db) as q:
        assert q.verify() == []
        # The restarted producer re-sends from its committed offsets: the newer live batch
        # first, then the older catch-up one. Both were stored already: nothing is queued
        # again, whichever order they come in.
        for resent in (
            line_batch("quiet", range(0, 20, 10), catch_up=False),
            line_batch("noisy", range(0, 500, 10), catch_up=True),
        ):
            result = q.append("logs", resent, now=3.0)
            assert (result.stored, result.duplicates) == (0, len(resent))
        assert q.read_runs("logs", after_seq=0, limit=100, catch_up=False) == []
        rest = q.read_runs("logs", after_seq=0, limit=100, catch_up=True)
        delivered_after = [record.record_id for run in rest for record in run.records()]
        q.complete("logs", [run.seqs for run in rest], now=4.0)
        assert q.stats(now=4.0).kinds["logs"].queued_records == 0

    everything = before_restart + delivered_after
    expected = [f"noisy@{o}" for o in range(0, 500, 10)] + ["quiet@0", "quiet@10"]
    assert Counter(everything) == Counter(expected)  # every record, each exactly once
