"""The SQLite plumbing shared by the shipper's queue and the logs' offset store."""

from __future__ import annotations

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
