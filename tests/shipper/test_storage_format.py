"""The queue file's format: old files open, newer or foreign files are refused, damage is named.

"A newer shipper image must read what an older one left": the v1 fixture is SQL text frozen
at the format shipper 0.1.0 writes; these tests build a database from it and open it with the
current code.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest
from lanes_support import line_batch

from kk_common.envelope import EncodedRecords
from kk_shipper.storage import (
    CURRENT_VERSION,
    DurableQueue,
    QueueCorruptError,
    QueueError,
    QueueFormatError,
    schema,
)
from kk_shipper.storage.bodies import ZSTD_MAGIC

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


def build_v2(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript((FIXTURES / "storage_queue_v2.sql").read_text())
    conn.close()
    return path


def stored_bodies(path: Path) -> list[bytes]:
    conn = sqlite3.connect(path)
    try:
        return [bytes(row[0]) for row in conn.execute("SELECT bodies FROM batches ORDER BY rowid")]
    finally:
        conn.close()


def test_queue_left_by_a_version_2_shipper_opens_with_everything_in_it(tmp_path: Path) -> None:
    """Version 2 stored bodies uncompressed; version 3 reads those rows as they are (a
    partly delivered batch included) and compresses what it stores from then on."""
    db = build_v2(tmp_path / "queue.db")
    with DurableQueue(db) as q:
        runs = q.read_runs("logs", after_seq=0, limit=10)
        assert [(list(r.seqs), r.ids) for r in runs] == [
            ([1], "app.log@0"),
            ([4], "app.log@30"),
            ([6], "app.log@50"),
        ]
        assert runs[0].bodies == b'{"id":"app.log@0","message":"line at 0"}\n'
        assert [r.record_id for r in q.read("metrics", after_seq=0, limit=10)] == ["metric-1"]
        [dead] = q.dead_letters()
        assert (dead.record_id, dead.reason) == ("app.log@40", "rejected: 400 invalid record")
        stats = q.stats(now=T1)
        assert (stats.kinds["logs"].queued_records, stats.kinds["logs"].last_seq) == (3, 6)
        assert stats.kinds["logs"].duplicates_dropped == 2
        assert q.verify() == []
        # The dedup ranges came along: a re-sent line is still a duplicate.
        resent = EncodedRecords(
            batch_id="again",
            producer="logs",
            stream="logs",
            ids=["app.log@20"],
            bodies=b'{"id":"app.log@20"}\n',
            sources=["app.log"],
            positions=[(0, 20)],
            claims=[(0, 20, 30)],
        )
        assert (q.append("logs", resent, now=T1).duplicates, q.stats(now=T1).used_bytes) == (
            1,
            stats.used_bytes,
        )
        q.append("logs", [("x", b"{}")], now=T1)
        q.complete("logs", [range(1, 7)], now=T1)
        assert [r.record_id for r in q.read("logs", after_seq=0, limit=10)] == ["x"]
        assert q.verify() == []
    assert user_version(db) == CURRENT_VERSION


def test_a_version_2_batch_that_looks_compressed_is_read_as_it_was_stored(
    tmp_path: Path,
) -> None:
    """Rows are told apart by their first bytes; a version 2 row that happens to start
    with the zstd magic number (a record that is not JSON) is compressed by the migration,
    so it is not mistaken for a frame."""
    db = build_v2(tmp_path / "queue.db")
    odd = ZSTD_MAGIC + b"not json\n"
    conn = sqlite3.connect(db)
    conn.execute("UPDATE batches SET bodies = ? WHERE kind = 'metrics'", (odd,))
    conn.commit()
    conn.close()
    with DurableQueue(db) as q:
        [run] = q.read_runs("metrics", after_seq=0, limit=10)
        assert run.bodies == odd


def build_v3(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript((FIXTURES / "storage_queue_v3.sql").read_text())
    conn.close()
    return path


def test_queue_left_by_a_version_3_shipper_opens_with_every_batch_live(tmp_path: Path) -> None:
    """Version 3 had no lanes: its batches become live ones, in their order, and a catch-up
    batch stored after the upgrade is read in its own lane."""
    db = build_v3(tmp_path / "queue.db")
    with DurableQueue(db) as q:
        live = q.read_runs("logs", after_seq=0, limit=1000, catch_up=False)
        assert [(list(run.seqs)[:1], run.count, run.catch_up) for run in live] == [
            ([1], 1, False),
            ([3], 1, False),
            ([4], 200, False),
        ]
        assert live[2].records()[0].body == (
            b'{"id":"app.log@30","message":"GET /api/items 200 12ms line at 30"}'
        )
        assert q.read_runs("logs", after_seq=0, limit=1000, catch_up=True) == []
        stats = q.stats(now=T1)
        assert (stats.kinds["logs"].queued_records, stats.kinds["logs"].last_seq) == (202, 203)
        assert stats.kinds["logs"].duplicates_dropped == 2
        assert q.verify() == []

        backlog = line_batch("big.log", range(0, 10, 10), catch_up=True)
        q.append("logs", backlog, now=T1)
        [caught_up] = q.read_runs("logs", after_seq=0, limit=10, catch_up=True)
        assert (caught_up.first_seq, caught_up.ids, caught_up.catch_up) == (204, "big.log@0", True)
        # The dedup ranges came along: a re-sent line is still a duplicate.
        resent = line_batch("app.log", range(20, 30, 10))
        assert q.append("logs", resent, now=T1).duplicates == 1
        q.complete("logs", [range(1, 205)], now=T1)
        assert q.stats(now=T1).kinds["logs"].queued_records == 0
        assert q.verify() == []
    assert user_version(db) == CURRENT_VERSION
    assert "catch_up" in table_columns(db, "batches")


def test_bodies_are_stored_compressed_when_that_pays_and_read_back_exactly(
    tmp_path: Path,
) -> None:
    """JSON records are stored as one zstd frame per batch; bytes that do not compress are
    kept as they are; either way delivery reads exactly what was appended."""
    db = tmp_path / "queue.db"
    logs = [(f"log-{i}", b'{"message":"GET /api/items 200 12ms","n":%d}' % i) for i in range(200)]
    # Random bytes with the high bit set: incompressible, and never a newline.
    noise = [(f"noise-{i}", bytes(b | 0x80 for b in os.urandom(300))) for i in range(3)]
    with DurableQueue(db) as q:
        q.append("logs", logs, now=T1)
        q.append("logs", noise, now=T1)
        runs = q.read_runs("logs", after_seq=0, limit=1000)
        assert runs[0].bodies == b"".join(body + b"\n" for _, body in logs)
        assert [r.body for r in runs[1].records()] == [body for _, body in noise]
    compressed, kept = stored_bodies(db)
    assert compressed.startswith(ZSTD_MAGIC) and len(compressed) < len(runs[0].bodies) / 5
    assert kept == runs[1].bodies


def test_a_damaged_compressed_batch_is_reported_as_corruption_naming_the_file(
    tmp_path: Path,
) -> None:
    db = tmp_path / "queue.db"
    with DurableQueue(db) as q:
        q.append("logs", [(f"log-{i}", b'{"n":%d}' % i) for i in range(100)], now=T1)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE batches SET bodies = substr(bodies, 1, 12)")
    conn.commit()
    conn.close()
    with DurableQueue(db) as q, pytest.raises(QueueCorruptError, match=str(db)):
        q.read_runs("logs", after_seq=0, limit=10)


def test_new_queue_is_stamped_with_the_current_version(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    DurableQueue(db).close()
    assert user_version(db) == CURRENT_VERSION == 4


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
    assert (error.found_version, error.supported_version) == (CURRENT_VERSION + 1, 4)
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
    """The v5 path: CURRENT_VERSION moves to 5 and MIGRATIONS gains ``4: migrate_4_to_5``;
    a version 1 file takes every step."""

    def migrate_4_to_5(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE batches ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")

    monkeypatch.setattr(schema, "CURRENT_VERSION", 5)
    monkeypatch.setitem(schema.MIGRATIONS, 4, migrate_4_to_5)
    db = build_v1(tmp_path / "queue.db")

    with DurableQueue(db) as q:
        assert [r.record_id for r in q.read("logs", after_seq=0, limit=10)] == ["log-3"]
    assert "priority" in table_columns(db, "batches")
    assert user_version(db) == 5


def test_failed_migration_leaves_the_old_queue_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def migrate_4_to_5(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE batches ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")
        conn.execute("SELECT no_such_function()")

    monkeypatch.setattr(schema, "CURRENT_VERSION", 5)
    monkeypatch.setitem(schema.MIGRATIONS, 4, migrate_4_to_5)
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
