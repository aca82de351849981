"""The queue file's format: old files open, newer or foreign files are refused, damage is named.

"A newer shipper image must read what an older one left": the v1 fixture is SQL text frozen
at the format shipper 0.1.0 writes; these tests build a database from it and open it with the
current code.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from kk_shipper.storage import (
    CURRENT_VERSION,
    DurableQueue,
    QueueCorruptError,
    QueueError,
    QueueFormatError,
    schema,
)

FIXTURES = Path(__file__).parent / "fixtures"
T1 = 1_700_000_010.0  # a few seconds after the fixture's story: its dedup window still holds


def build_v1(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript((FIXTURES / "storage_queue_v1.sql").read_text())
    conn.close()
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def tables(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT name FROM sqlite_master")]
    finally:
        conn.close()


def table_columns(path: Path, table: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def test_queue_left_by_a_version_1_shipper_opens_with_everything_in_it(tmp_path: Path) -> None:
    """Version 1 kept a row per record; version 2 a row per batch. The records come back in
    order with new seqs; dead letters and counters are kept; the id window is dropped."""
    db = build_v1(tmp_path / "queue.db")
    with DurableQueue(db) as q:
        logs = q.read("logs", after_seq=0, limit=10)
        assert [(r.seq, r.record_id, r.body, r.queued_at) for r in logs] == [
            (4, "log-3", b'{"msg":"third"}', 1_700_000_000.0)
        ]
        assert [r.record_id for r in q.read("metrics", after_seq=0, limit=10)] == ["metric-1"]
        [dead] = q.dead_letters()
        assert (dead.record_id, dead.reason) == ("log-2", "rejected: 400 invalid record")

        stats = q.stats(now=T1)
        assert stats.kinds["logs"].duplicates_dropped == 1
        assert stats.kinds["logs"].last_seq == 4
        assert q.verify() == []

        # It keeps working: seqs continue and dead letters replay. The delivered-id window
        # could not be carried over: a re-sent log-1 is stored again (the receiver drops it).
        assert q.append("logs", [("log-1", b"{}")], now=T1).stored == 1
        q.append("logs", [("log-4", b"{}")], now=T1)
        assert q.replay_dead_letters(now=T1) == 1
        assert [r.record_id for r in q.read("logs", after_seq=4, limit=10)] == [
            "log-1",
            "log-4",
            "log-2",
        ]
    assert user_version(db) == CURRENT_VERSION
    assert "queue" not in tables(db)
    assert "delivered" not in tables(db)


def test_new_queue_is_stamped_with_the_current_version(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    DurableQueue(db).close()
    assert user_version(db) == CURRENT_VERSION == 2


def test_queue_from_a_newer_shipper_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """A rollback to an older image must not rewrite what the newer one wrote."""
    db = build_v1(tmp_path / "queue.db")
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {CURRENT_VERSION + 1}")
    conn.close()
    before = digest(db)

    with pytest.raises(QueueFormatError) as caught:
        DurableQueue(db)

    error = caught.value
    assert (error.found_version, error.supported_version) == (CURRENT_VERSION + 1, 2)
    assert f"version {CURRENT_VERSION + 1}" in str(error)
    assert f"up to {CURRENT_VERSION}" in str(error)
    assert str(db) in str(error)
    assert digest(db) == before
    assert not Path(f"{db}-wal").exists()


def test_sqlite_database_that_is_not_a_queue_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE accounts (id INTEGER)")
    conn.close()
    with pytest.raises(QueueFormatError, match="not a shipper queue"):
        DurableQueue(db)


def test_file_that_is_not_a_database_is_reported_and_kept(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    db.write_bytes(b"this is not SQLite, it is a text file that got here somehow\n" * 100)
    before = digest(db)
    with pytest.raises(QueueCorruptError) as caught:
        DurableQueue(db)
    assert str(db) in str(caught.value)
    assert caught.value.path == db
    assert digest(db) == before


def test_damaged_pages_are_reported_as_corruption_naming_the_file(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    with DurableQueue(db) as q:
        q.append("logs", [(f"r{i}", b"x" * 300) for i in range(100)], now=0.0)
    # Keep page 1 (header and schema) and scribble over every table and index page.
    data = bytearray(db.read_bytes())
    data[4096:] = b"\xa5" * (len(data) - 4096)
    db.write_bytes(bytes(data))

    with pytest.raises(QueueCorruptError, match=str(db)):
        q = DurableQueue(db)
        q.read("logs", after_seq=0, limit=10)
    assert db.read_bytes() == bytes(data)


def test_registered_migrations_take_an_old_queue_to_the_current_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The v3 path: CURRENT_VERSION moves to 3 and MIGRATIONS gains ``2: migrate_2_to_3``;
    a version 1 file takes both steps."""

    def migrate_2_to_3(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE batches ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")

    monkeypatch.setattr(schema, "CURRENT_VERSION", 3)
    monkeypatch.setitem(schema.MIGRATIONS, 2, migrate_2_to_3)
    db = build_v1(tmp_path / "queue.db")

    with DurableQueue(db) as q:
        assert [r.record_id for r in q.read("logs", after_seq=0, limit=10)] == ["log-3"]
    assert "priority" in table_columns(db, "batches")
    assert user_version(db) == 3


def test_failed_migration_leaves_the_old_queue_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def migrate_2_to_3(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE batches ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")
        conn.execute("SELECT no_such_function()")

    monkeypatch.setattr(schema, "CURRENT_VERSION", 3)
    monkeypatch.setitem(schema.MIGRATIONS, 2, migrate_2_to_3)
    db = build_v1(tmp_path / "queue.db")

    with pytest.raises(QueueError):
        DurableQueue(db)

    # The whole chain is one transaction: not even the 1 -> 2 step stayed.
    assert user_version(db) == 1
    assert "queue" in tables(db)
    assert "batches" not in tables(db)
    monkeypatch.undo()
    with DurableQueue(db) as q:  # still a healthy queue, now migrated for real
        assert q.verify() == []
        assert [r.record_id for r in q.read("logs", after_seq=0, limit=10)] == ["log-3"]
