"""The queue database's versioned schema and its migrations.

The format version lives in ``PRAGMA user_version`` and the file is marked as ours with
``PRAGMA application_id`` (both are fields of the SQLite file header, changed transactionally).

Rules, so that a newer shipper image always reads what an older one left:

1. A released schema is frozen. ``SCHEMA_V1`` is what version 1 is, forever; the checked-in
   fixture ``tests/shipper/fixtures/storage_queue_v1.sql`` pins it.
2. A change adds ``CURRENT_VERSION + 1`` and a function ``migrate_<n>_to_<n+1>`` registered in
   `MIGRATIONS`. New databases are created at version 1 and migrated forward through the same
   chain an old database takes, so the upgrade path is exercised on every fresh start.
3. Opening a file with a version newer than `CURRENT_VERSION` (a downgrade) is refused with
   `QueueFormatError`; the file is not touched, so the newer image can still read it.
4. Migration runs inside one ``BEGIN IMMEDIATE`` transaction: it happens completely or not at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import get_args

from kk_common import sqlite_files
from kk_shipper.storage.bodies import ZSTD_MAGIC, BodiesCodec
from kk_shipper.storage.errors import QueueError, QueueFormatError
from kk_shipper.types import Kind

__all__ = [
    "APPLICATION_ID",
    "CURRENT_VERSION",
    "KINDS",
    "MAX_BATCH_RECORDS",
    "MIGRATIONS",
    "SCHEMA_V1",
    "SCHEMA_V2",
    "SCHEMA_V4",
    "check_header",
    "ensure_schema",
]

CURRENT_VERSION = 4
"""The format version this code writes."""

APPLICATION_ID = 0x4B4B5351
"""``PRAGMA application_id`` of a shipper queue: ASCII "KKSQ"."""

KINDS: tuple[Kind, ...] = get_args(Kind)
"""Every output the queue keeps (one queue position and one set of counters each)."""

SCHEMA_V1: tuple[str, ...] = (
    # One row per output. Counters are kept here, in the same transactions as the rows they
    # count, so sizes and totals never need a scan and survive restarts.
    """
CREATE TABLE kind_state (
    kind                 TEXT PRIMARY KEY,
    last_seq             INTEGER NOT NULL DEFAULT 0,  -- seqs are never reused
    queued_records       INTEGER NOT NULL DEFAULT 0,
    queued_bytes         INTEGER NOT NULL DEFAULT 0,
    delivered_ids        INTEGER NOT NULL DEFAULT 0,  -- rows in `delivered` for this kind
    duplicates_dropped   INTEGER NOT NULL DEFAULT 0,
    dead_letters         INTEGER NOT NULL DEFAULT 0,
    dead_letter_bytes    INTEGER NOT NULL DEFAULT 0,
    dead_letters_evicted INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID
""",
    # Records waiting for delivery. `size` is the accounted size (see queue.record_size).
    """
CREATE TABLE queue (
    kind      TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    record_id TEXT    NOT NULL,
    body      BLOB    NOT NULL,
    size      INTEGER NOT NULL,
    queued_at REAL    NOT NULL,
    PRIMARY KEY (kind, seq)
)
""",
    "CREATE UNIQUE INDEX queue_by_record ON queue (kind, record_id)",
    # Ids delivered recently: the persisted dedup window, pruned by age and by count.
    """
CREATE TABLE delivered (
    kind         TEXT NOT NULL,
    record_id    TEXT NOT NULL,
    delivered_at REAL NOT NULL,
    PRIMARY KEY (kind, record_id)
) WITHOUT ROWID
""",
    "CREATE INDEX delivered_by_age ON delivered (kind, delivered_at)",
    # Records refused for good or out of retries; bounded, oldest (lowest id) evicted first.
    # `size` is the record's queue size (restored on replay); `stored_size` adds the reason.
    """
CREATE TABLE dead_letters (
    id               INTEGER PRIMARY KEY,
    kind             TEXT    NOT NULL,
    record_id        TEXT    NOT NULL,
    body             BLOB    NOT NULL,
    size             INTEGER NOT NULL,
    stored_size      INTEGER NOT NULL,
    reason           TEXT    NOT NULL,
    queued_at        REAL    NOT NULL,
    dead_lettered_at REAL    NOT NULL
)
""",
    "CREATE INDEX dead_letters_by_kind ON dead_letters (kind, id)",
    "CREATE INDEX dead_letters_by_record ON dead_letters (kind, record_id)",
)
"""Version 1, statement by statement (frozen: see rule 1)."""

MAX_BATCH_RECORDS = 65_536
"""The most records one `batches` row holds; a larger incoming batch takes several rows.
It bounds how far before a seq the row holding it can start (range queries use it)."""

SCHEMA_V2: tuple[str, ...] = (
    # Version 2 stores batches, not records (one row and one index entry per batch instead
    # of two B-trees per record): record `first_seq + i` is line i of `ids` and of
    # `bodies`. Small columns come first so that reading them never touches the overflow
    # pages of `ids` and `bodies`. `done` is a bitmap of records already delivered or
    # dead-lettered (NULL while none is); the row goes when `remaining` reaches 0, and its
    # accounted `size` is freed then.
    """
CREATE TABLE batches (
    kind      TEXT    NOT NULL,
    first_seq INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    remaining INTEGER NOT NULL,
    size      INTEGER NOT NULL,
    queued_at REAL    NOT NULL,
    done      BLOB,
    ids       TEXT    NOT NULL,  -- record ids, joined by newlines
    bodies    BLOB    NOT NULL   -- record JSON, each followed by a newline
)
""",
    "CREATE UNIQUE INDEX batches_by_seq ON batches (kind, first_seq)",
    # The dedup state: per source, the position ranges of what was stored (coverage.py).
    """
CREATE TABLE coverage (
    kind       TEXT NOT NULL,
    source     TEXT NOT NULL,
    ranges     TEXT NOT NULL,
    touched_at REAL NOT NULL,
    PRIMARY KEY (kind, source)
) WITHOUT ROWID
""",
)
"""What version 2 adds (frozen: see rule 1); `migrate_1_to_2` also removes what it replaces."""

MIGRATED_BATCH_RECORDS = 1000
"""Records per `batches` row when a version 1 queue is converted."""


def migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Per-record rows become batch rows; the id-based dedup window is dropped.

    Queued records keep their order and get new seqs (nothing outside the file refers to a
    seq across a restart). The delivered-id window cannot be expressed as positions, so it
    is dropped: a producer re-sending records delivered just before the upgrade gets them
    delivered again, and the receiver drops them by id. Dead letters are kept as they are.
    """
    for statement in SCHEMA_V2:
        conn.execute(statement)
    kinds = [row[0] for row in conn.execute("SELECT kind FROM kind_state")]
    for kind in kinds:
        last_seq = conn.execute(
            "SELECT last_seq FROM kind_state WHERE kind = ?", (kind,)
        ).fetchone()[0]
        cursor = conn.execute(
            "SELECT record_id, body, size, queued_at FROM queue WHERE kind = ? ORDER BY seq",
            (kind,),
        )
        records = total = 0
        while rows := cursor.fetchmany(MIGRATED_BATCH_RECORDS):
            size = sum(row[2] for row in rows)
            conn.execute(
                "INSERT INTO batches (kind, first_seq, count, remaining, size, queued_at, ids,"
                " bodies) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    kind,
                    last_seq + 1,
                    len(rows),
                    len(rows),
                    size,
                    min(row[3] for row in rows),
                    "\n".join(row[0] for row in rows),
                    # v1 bodies are compact JSON; a stray newline could only be
                    # whitespace, and a space keeps the record on one line.
                    b"".join(bytes(row[1]).replace(b"\n", b" ") + b"\n" for row in rows),
                ),
            )
            last_seq += len(rows)
            records += len(rows)
            total += size
        conn.execute(
            "UPDATE kind_state SET last_seq = ?, queued_records = ?, queued_bytes = ?,"
            " delivered_ids = 0 WHERE kind = ?",
            (last_seq, records, total, kind),
        )
    conn.execute("DROP TABLE queue")
    conn.execute("DROP TABLE delivered")


Migration = Callable[[sqlite3.Connection], None]


def migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Bodies may be stored zstd-compressed (storage/bodies.py); the tables do not change.

    A version 2 row is read as it is, since its bodies do not start with the zstd magic
    number (they start with a JSON record). Should one nevertheless (a record that is not
    JSON), it is compressed here, so that the first bytes tell every row's form apart.
    The version number is what keeps a version 2 shipper from reading compressed rows as
    records.
    """
    codec = BodiesCodec()
    rows = conn.execute(
        "SELECT rowid, bodies FROM batches WHERE substr(bodies, 1, 4) = ?", (ZSTD_MAGIC,)
    ).fetchall()
    for rowid, bodies in rows:
        conn.execute(
            "UPDATE batches SET bodies = ? WHERE rowid = ?", (codec.pack(bytes(bodies)), rowid)
        )


SCHEMA_V4: tuple[str, ...] = (
    # Version 4 gives each batch a lane (storage/queue.py, "Lanes"): 1 for records read from
    # a backlog (a producer's catch-up batch), 0 for live ones, delivered first. ADD COLUMN
    # puts it after the large columns, but it is never read from the row: the index below
    # holds it, and every query that selects by lane is answered from that index.
    "ALTER TABLE batches ADD COLUMN catch_up INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX batches_by_lane ON batches (kind, catch_up, first_seq)",
)
"""What version 4 adds (frozen: see rule 1)."""


def migrate_3_to_4(conn: sqlite3.Connection) -> None:
    """Batches get a lane; every batch already queued is live.

    ADD COLUMN with a constant default rewrites no row (SQLite reads the default for rows
    written before it), so the migration costs the index build, one entry per batch. A
    version 3 queue was delivered first in first out, so calling all of it live keeps its
    order: it goes before any catch-up batch stored after the upgrade.
    """
    for statement in SCHEMA_V4:
        conn.execute(statement)


MIGRATIONS: dict[int, Migration] = {
    # from_version: function taking the database from from_version to from_version + 1.
    1: migrate_1_to_2,
    2: migrate_2_to_3,
    3: migrate_3_to_4,
}


def _create_v1(conn: sqlite3.Connection) -> None:
    # Not executescript(): it would COMMIT the caller's transaction first.
    for statement in SCHEMA_V1:
        conn.execute(statement)


def check_header(conn: sqlite3.Connection, path: Path) -> int:
    """Return the file's format version (0 = a new, empty file) or raise `QueueFormatError`.

    Reads only; call it before anything that could write to the file.
    """

    def refuse(problem: str, found: int | None) -> QueueFormatError:
        return QueueFormatError(
            f"{path} {problem}",
            path=path,
            found_version=found,
            supported_version=CURRENT_VERSION,
        )

    return sqlite_files.check_header(
        conn,
        application_id=APPLICATION_ID,
        supported_version=CURRENT_VERSION,
        refuse=refuse,
        what="a shipper queue",
        newer_hint="run the newer shipper image, or move the file aside to start an empty queue",
    )


def ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Create or migrate the schema to `CURRENT_VERSION` in one transaction.

    ``conn`` must be in autocommit mode (``isolation_level=None``); sqlite3 errors propagate
    to the caller, which translates them.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-check under the write lock: another process may have created it meanwhile.
        version = check_header(conn, path)
        if version == 0:
            _create_v1(conn)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            version = 1
        while version < CURRENT_VERSION:
            migrate = MIGRATIONS.get(version)
            if migrate is None:  # a release bug, not a user error; say so plainly
                raise QueueError(
                    f"{path}: no migration from queue format {version} to {version + 1}",
                    path=path,
                )
            migrate(conn)
            version += 1
        # PRAGMA takes no bound parameters; both values are our own integers.
        conn.execute(f"PRAGMA user_version = {version}")
        conn.executemany(
            "INSERT OR IGNORE INTO kind_state (kind) VALUES (?)", [(k,) for k in KINDS]
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.rollback()
        raise
