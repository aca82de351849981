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
from kk_shipper.storage.errors import QueueError, QueueFormatError
from kk_shipper.types import Kind

__all__ = [
    "APPLICATION_ID",
    "CURRENT_VERSION",
    "KINDS",
    "MIGRATIONS",
    "SCHEMA_V1",
    "check_header",
    "ensure_schema",
]

CURRENT_VERSION = 1
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

Migration = Callable[[sqlite3.Connection], None]

MIGRATIONS: dict[int, Migration] = {
    # from_version: function taking the database from from_version to from_version + 1.
    # v2 registers here, e.g. ``1: migrate_1_to_2``.
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
