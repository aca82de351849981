"""Crash safety with a real process: SIGKILL mid-stream loses no acknowledged batch and leaves
no partial one.

A child process appends batches in a loop and prints each batch number once `append` has
returned, i.e. once the shipper would acknowledge it. It is killed with SIGKILL (no cleanup,
no close()): either by this test at whatever point it has reached, or by itself at a chosen
statement inside a batch's transaction (at its row's INSERT, before its counter update,
before its dedup state is written, right before COMMIT), so the dangerous moments are hit
every run rather than by luck.
Then the file is reopened and checked: every reported batch is fully there, every batch there
is complete, and the counters match the rows. A second writer then continues on the file the
killed one left (recovering its WAL) and is killed in turn.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from kk_common.envelope import EncodedRecords
from kk_shipper.storage import DurableQueue

SelfKill = tuple[str, int]
"""(statement prefix, occurrence within the batch) at which the writer kills itself."""

RECORDS_PER_BATCH = 400  # large enough that a kill usually lands inside a transaction
REPORTED_BEFORE_KILL = 25

CHILD = """
import os, signal, sys
from pathlib import Path
import pytest

from kk_common.envelope import EncodedRecords
from kk_shipper.storage import DurableQueue

queue = DurableQueue(Path(sys.argv[1]))
batch = int(sys.argv[2])
die_in_batch, die_on, die_at = int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
seen = 0

def trace(sql):
    global seen
    if batch == die_in_batch and sql.lstrip().startswith(die_on):
        seen += 1
        if seen == die_at:
            os.kill(os.getpid(), signal.SIGKILL)

# Test-only hook into the private connection: called as each statement (each executemany
# row) starts executing.
queue._conn.set_trace_callback(trace)
body = b'{"message":"' + b"x" * 280 + b'"}'
while True:
    first = batch * RECORDS_PER_BATCH
    queue.append("logs", EncodedRecords(
        batch_id=str(batch), producer="p", stream="logs",
        ids=[f"b{batch}-r{i}" for i in range(RECORDS_PER_BATCH)],
        bodies=(body + b"\\n") * RECORDS_PER_BATCH,
        sources=["file"],
        positions=[(0, first + i) for i in range(RECORDS_PER_BATCH)],
        claims=[(0, first, first + RECORDS_PER_BATCH)],
    ), now=batch)
    print(batch, flush=True)
    batch += 1
""".replace("RECORDS_PER_BATCH", str(RECORDS_PER_BATCH))


def run_and_kill(db: Path, first_batch: int, self_kill: SelfKill | None) -> list[int]:
    """Start a writer at ``first_batch``, SIGKILL it mid-stream, return the batches it reported.

    With ``self_kill`` the writer kills itself in batch ``first_batch + REPORTED_BEFORE_KILL``
    when the statement is reached; otherwise this test kills it after that many reports.
    """
    die_on, die_at = self_kill or ("never", 0)
    die_in_batch = first_batch + REPORTED_BEFORE_KILL if self_kill else -1
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(db),
            str(first_batch),
            str(die_in_batch),
            die_on,
            str(die_at),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    reported: list[int] = []
    try:
        while len(reported) < REPORTED_BEFORE_KILL:
            line = child.stdout.readline()
            assert line, f"writer exited early: {child.stderr.read()}"
            reported.append(int(line))
    finally:
        if self_kill is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
    # Lines it printed between our last read and the kill were acknowledged too.
    reported += [int(line) for line in child.stdout.read().split()]
    assert child.returncode == -signal.SIGKILL, child.stderr.read()
    child.stdout.close()
    child.stderr.close()
    return reported


def batches_on_disk(db: Path) -> Counter[int]:
    with DurableQueue(db) as q:
        assert q.verify() == []
        records = q.read("logs", after_seq=0, limit=1_000_000)
        assert q.stats(now=0).kinds["logs"].queued_records == len(records)
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    return Counter(int(r.record_id.split("-")[0][1:]) for r in records)


@pytest.mark.parametrize(
    "self_kill",
    [
        None,
        ("INSERT INTO batches", 1),
        ("UPDATE kind_state", 1),
        ("INSERT INTO coverage", 1),
        ("COMMIT", 1),
    ],
    ids=["killed-by-test", "mid-insert", "before-counters", "before-dedup-state", "before-commit"],
)
def test_sigkilled_writer_keeps_every_acknowledged_batch_and_no_partial_one(
    tmp_path: Path, self_kill: SelfKill | None
) -> None:
    db = tmp_path / "shipper" / "queue.db"
    acknowledged: list[int] = []
    next_batch = 0
    for kill in (self_kill, None):
        reported = run_and_kill(db, next_batch, kill)
        acknowledged += reported

        on_disk = batches_on_disk(db)

        assert set(acknowledged) <= set(on_disk), "an acknowledged batch was lost"
        partial = {b: n for b, n in on_disk.items() if n != RECORDS_PER_BATCH}
        assert partial == {}, "a batch is partially stored"
        assert sorted(on_disk) == list(range(len(on_disk)))
        this_run = sorted(b for b in on_disk if b >= next_batch)
        if kill is None:
            # At most the one batch in flight at the kill (committed, not yet printed) is
            # there without being reported; each run may leave one.
            assert len(this_run) - len(set(reported)) <= 1
        else:
            # Killed inside its transaction: that batch is entirely absent.
            assert this_run == sorted(reported)
        next_batch = len(on_disk)
    assert_dedup_state_matches_the_batches(db, next_batch)


def assert_dedup_state_matches_the_batches(db: Path, stored_batches: int) -> None:
    """A re-send of a stored batch is a duplicate; the batch after them is not (the dedup
    state was committed with, and only with, the batches it describes)."""
    with DurableQueue(db) as q:
        body = b'{"message":"again"}'
        for batch, expect_stored in ((stored_batches - 1, 0), (stored_batches, RECORDS_PER_BATCH)):
            first = batch * RECORDS_PER_BATCH
            result = q.append(
                "logs",
                EncodedRecords(
                    batch_id=str(batch),
                    producer="p",
                    stream="logs",
                    ids=[f"b{batch}-r{i}" for i in range(RECORDS_PER_BATCH)],
                    bodies=(body + b"\n") * RECORDS_PER_BATCH,
                    sources=["file"],
                    positions=[(0, first + i) for i in range(RECORDS_PER_BATCH)],
                    claims=[(0, first, first + RECORDS_PER_BATCH)],
                ),
                now=0,
            )
            assert result.stored == expect_stored, f"batch {batch}"
