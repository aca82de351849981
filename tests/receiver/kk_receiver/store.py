"""Persistence for the receiver: stored records, counters and the recent-request log (SQLite).

The core decides *what* happened to a request; the store makes it durable in one transaction
per request (records are inserted with ``executemany``, never one statement per record), so a
restart keeps the counts and the dedup state. Dedup is the ``UNIQUE (kind, record_id)``
constraint: ``INSERT OR IGNORE`` skips ids already stored, and the row count tells how many
records were new.

Counters are rows ``(protocol, kind, name, value)``; :mod:`kk_receiver.stats` shapes them into
the stats document. Counter names: ``requests``, ``records_received``, ``unique_ids``,
``duplicates``, ``rejected`` and ``status:<code>`` (``status:closed`` for dropped connections).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from .outcome import CommitResult, IngestOutcome, StoredRecord

DEFAULT_REQUEST_LOG_LIMIT = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    protocol TEXT NOT NULL,
    received_at REAL NOT NULL,
    record TEXT NOT NULL,
    UNIQUE (kind, record_id)
);
CREATE TABLE IF NOT EXISTS counters (
    protocol TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (protocol, kind, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rejections (
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (kind, reason)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    entry TEXT NOT NULL
);
"""

_BUMP_COUNTER = """
INSERT INTO counters (protocol, kind, name, value) VALUES (?, ?, ?, ?)
ON CONFLICT (protocol, kind, name) DO UPDATE SET value = value + excluded.value
"""
_BUMP_REJECTION = """
INSERT INTO rejections (kind, reason, count) VALUES (?, ?, ?)
ON CONFLICT (kind, reason) DO UPDATE SET count = count + excluded.count
"""


class SqliteStore:
    """The receiver's SQLite database (WAL journal), one file in the data directory.

    Use :meth:`open` for a file and :meth:`in_memory` for tests. Not thread-safe: the receiver
    uses it from its event loop thread only.
    """

    def __init__(self, connection: sqlite3.Connection, request_log_limit: int) -> None:
        self._db = connection
        self._request_log_limit = request_log_limit
        self._db.executescript(_SCHEMA)

    @classmethod
    def open(cls, path: Path, request_log_limit: int = DEFAULT_REQUEST_LOG_LIMIT) -> SqliteStore:
        """Open (creating if needed) the database at ``path``."""
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        # NORMAL with WAL survives a crash of this process (not of the OS): enough for tests.
        connection.execute("PRAGMA synchronous=NORMAL")
        return cls(connection, request_log_limit)

    @classmethod
    def in_memory(cls, request_log_limit: int = DEFAULT_REQUEST_LOG_LIMIT) -> SqliteStore:
        """A throwaway store that lives only as long as the object (for core tests)."""
        return cls(sqlite3.connect(":memory:", isolation_level=None), request_log_limit)

    def close(self) -> None:
        """Close the database; the store is unusable afterwards."""
        self._db.close()

    def commit(self, outcome: IngestOutcome) -> CommitResult:
        """Persist one request's outcome atomically and return what was new."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO records (kind, record_id, protocol, received_at, record)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        outcome.kind,
                        rec.record_id,
                        outcome.protocol,
                        outcome.received_at,
                        rec.record_json,
                    )
                    for rec in outcome.records
                ],
            )
            stored = db.total_changes - before
            result = CommitResult(stored=stored, duplicates=len(outcome.records) - stored)
            rejected = sum(outcome.rejected.values())
            status = "closed" if outcome.status is None else str(outcome.status)
            deltas = {
                "requests": 1,
                f"status:{status}": 1,
                "records_received": len(outcome.records) + rejected,
                "unique_ids": result.stored,
                "duplicates": result.duplicates,
                "rejected": rejected,
            }
            db.executemany(
                _BUMP_COUNTER,
                [(outcome.protocol, outcome.kind, name, value) for name, value in deltas.items()],
            )
            db.executemany(
                _BUMP_REJECTION,
                [(outcome.kind, reason, count) for reason, count in outcome.rejected.items()],
            )
            entry = {**outcome.log_entry, "stored": result.stored, "duplicates": result.duplicates}
            cursor = db.execute("INSERT INTO requests (entry) VALUES (?)", (json.dumps(entry),))
            db.execute(
                "DELETE FROM requests WHERE seq <= ?", (cursor.lastrowid - self._request_log_limit,)
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return result

    def counter_rows(self) -> list[tuple[str, str, str, int]]:
        """All counters as ``(protocol, kind, name, value)``."""
        return list(self._db.execute("SELECT protocol, kind, name, value FROM counters"))

    def rejection_rows(self) -> list[tuple[str, str, int]]:
        """Rejected-record counts as ``(kind, reason, count)``."""
        return list(self._db.execute("SELECT kind, reason, count FROM rejections"))

    def records(
        self, kind: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[StoredRecord]:
        """Stored records in arrival order, optionally of one kind and after a sequence number."""
        query = (
            "SELECT seq, kind, record_id, protocol, received_at, record FROM records WHERE seq > ?"
        )
        params: list[Any] = [after_seq]
        if kind is not None:
            query += " AND kind = ?"
            params.append(kind)
        query += " ORDER BY seq LIMIT ?"
        params.append(-1 if limit is None else limit)
        return [StoredRecord(*row) for row in self._db.execute(query, params)]

    def recent_requests(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` ingest requests' log entries, oldest first."""
        rows = self._db.execute(
            "SELECT seq, entry FROM requests ORDER BY seq DESC LIMIT ?", (limit,)
        ).fetchall()
        return [{"seq": seq, **json.loads(entry)} for seq, entry in reversed(rows)]
