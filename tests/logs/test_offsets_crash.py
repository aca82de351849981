"""Crash safety with a real process: a SIGKILLed committer leaves a store that opens cleanly
and holds a committed value, never a torn one.

A child process commits in a loop, each commit moving several files to the same offset ``n``
in one transaction, and prints ``n`` once `commit` has returned. It is SIGKILLed (no cleanup,
no close()) either by this test at whatever point it has reached, or by itself in the middle of
a commit's transaction (between two row writes, or right before COMMIT), so the dangerous
moments are hit every run, not by luck. The file is then reopened: it must pass SQLite's
integrity check, every file must hold the same offset (a commit is all or nothing), and that
offset must be at least the last one reported (a process crash loses no commit) and at most
the one in flight.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kk_logs.offsets import OffsetStore

FILES = 20
REPORTED_BEFORE_KILL = 30

CHILD = """
import os, signal, sys
from kk_logs.offsets import OffsetStore

store = OffsetStore(sys.argv[1])
n = int(sys.argv[2])
die_in, die_on, die_at = int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
seen = 0

def trace(sql):
    global seen
    if n == die_in and sql.lstrip().startswith(die_on):
        seen += 1
        if seen == die_at:
            os.kill(os.getpid(), signal.SIGKILL)

# Test-only hook into the private connection: called as each statement (each executemany
# row) starts executing.
store._conn.set_trace_callback(trace)
while True:
    store.commit({f"1:{i}:fp": (n, f"/var/log/pods/p{i}/0.log") for i in range(FILES)}, n)
    print(n, flush=True)
    n += 1
""".replace("FILES", str(FILES))

SelfKill = tuple[str, int]


def run_and_kill(db: Path, first: int, self_kill: SelfKill | None) -> list[int]:
    """Run a committer from offset ``first``, SIGKILL it, return the offsets it reported."""
    die_on, die_at = self_kill or ("never", 0)
    die_in = first + REPORTED_BEFORE_KILL if self_kill else -1
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(first), str(die_in), die_on, str(die_at)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    reported: list[int] = []
    try:
        while len(reported) < REPORTED_BEFORE_KILL:
            line = child.stdout.readline()
            assert line, f"committer exited early: {child.stderr.read()}"
            reported.append(int(line))
    finally:
        if self_kill is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
    # Lines printed between our last read and the kill were committed too.
    reported += [int(line) for line in child.stdout.read().split()]
    assert child.returncode == -signal.SIGKILL, child.stderr.read()
    child.stdout.close()
    child.stderr.close()
    return reported


@pytest.mark.parametrize(
    "self_kill",
    [None, ("INSERT INTO offsets", FILES // 2), ("COMMIT", 1)],
    ids=["killed-by-test", "between-row-writes", "before-commit"],
)
def test_sigkilled_committer_leaves_a_clean_store_holding_a_committed_offset(
    tmp_path: Path, self_kill: SelfKill | None
) -> None:
    db = tmp_path / "logs" / "offsets.db"
    first = 0
    # Two lives: the second recovers the WAL the first left, and is killed in turn.
    for kill in (self_kill, None):
        reported = run_and_kill(db, first, kill)

        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()
        with OffsetStore(db) as store:
            stored = store.load()
        assert len(stored) == FILES
        offsets = {s.offset for s in stored.values()}
        assert len(offsets) == 1, f"a commit was torn: {sorted(offsets)}"
        (offset,) = offsets
        assert offset >= reported[-1], "a reported commit was lost"
        if kill is None:
            assert offset <= reported[-1] + 1  # at most the commit in flight at the kill
        else:
            assert offset == reported[-1]  # killed inside its transaction: it is not there
        first = offset + 1
