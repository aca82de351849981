"""The SQLite plumbing shared by the shipper's queue and the logs' offset store."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from kk_common import sqlite_files


class Refused(Exception):
    def __init__(self, message: str, found: int | None) -> None:
        super().__init__(message)
        self.found = found


def check(conn: sqlite3.Connection) -> int:
    return sqlite_files.check_header(
        conn,
        application_id=0x4B4B5854,
        supported_version=2,
        refuse=Refused,
        what="a test store",
        newer_hint="use a newer image",
    )


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_a_new_file_is_version_zero_and_a_marked_one_reports_its_version(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db")
    assert check(conn) == 0
    conn.execute("PRAGMA application_id = 0x4B4B5854")
    conn.execute("PRAGMA user_version = 2")
    assert check(conn) == 2


@pytest.mark.parametrize(
    ("setup", "complaint", "found"),
    [
        (["CREATE TABLE t (x)"], "not a test store (no format version)", None),
        (["PRAGMA application_id = 7", "PRAGMA user_version = 1"], "application_id 0x7", None),
        (["PRAGMA application_id = 0x4B4B5854", "PRAGMA user_version = 3"], "version 3", 3),
    ],
)
def test_foreign_or_newer_files_are_refused(
    tmp_path: Path, setup: list[str], complaint: str, found: int | None
) -> None:
    conn = connect(tmp_path / "db")
    for statement in setup:
        conn.execute(statement)
    with pytest.raises(Refused) as refused:
        check(conn)
    assert complaint in str(refused.value)
    assert refused.value.found == found


def test_a_failed_transaction_is_rolled_back_and_translated(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db")
    conn.execute("CREATE TABLE t (x UNIQUE)")
    with sqlite_files.transaction(conn, translate=lambda exc: ValueError(str(exc))):
        conn.execute("INSERT INTO t VALUES (1)")
    with (
        pytest.raises(ValueError, match="UNIQUE"),
        sqlite_files.transaction(conn, translate=lambda exc: ValueError(str(exc))),
    ):
        conn.execute("INSERT INTO t VALUES (2)")
        conn.execute("INSERT INTO t VALUES (1)")
    assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    assert not conn.in_transaction


# -- private state files ---------------------------------------------------------------------


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def open_private(path: Path) -> sqlite3.Connection:
    """Open ``path`` as the stores do: made private, then connected, in WAL mode, one write."""
    sqlite_files.make_private(path)
    conn = sqlite_files.connect(
        path,
        busy_timeout_s=1.0,
        translate=lambda exc: exc,
        prepare=lambda c: c.execute("PRAGMA journal_mode=WAL").fetchone(),
    )
    conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    return conn


def test_a_new_state_file_its_wal_and_its_directory_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, under which SQLite alone would make 0644 files
    try:
        path = tmp_path / "state" / "shipper" / "queue.db"
        conn = open_private(path)
        try:
            assert mode(path.parent) == 0o700
            assert mode(path) == 0o600
            assert mode(path.with_name("queue.db-wal")) == 0o600
            assert mode(path.with_name("queue.db-shm")) == 0o600
        finally:
            conn.close()
    finally:
        os.umask(old)


def test_too_open_modes_left_by_an_older_version_are_tightened_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "logs"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    path = directory / "offsets.db"
    sqlite3.connect(path).close()
    path.chmod(0o644)

    with caplog.at_level("WARNING", logger="kk.state"):
        open_private(path).close()

    assert (mode(directory), mode(path)) == (0o700, 0o600)
    fixed = sorted(r.getMessage() for r in caplog.records)
    assert len(fixed) == 2
    assert all("state_permissions_tightened" in message for message in fixed)


def test_private_modes_are_left_alone_and_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state" / "queue.db"
    open_private(path).close()
    with caplog.at_level("WARNING", logger="kk.state"):
        open_private(path).close()
    assert caplog.records == []
