"""Persisted file offsets: one small SQLite file in the state directory (a hostPath).

One row per file identity (the tailer's opaque key, e.g. ``"dev:ino:fingerprint"``): the
offset to resume from, the path the file was last seen at, and when the row was last
written (``now`` passed in by the caller; the store reads no clock).

One more row, under the reserved identity `LOOK_MARK` (no file key starts with ``@``),
holds the tailer's *look mark* in ``updated_at``: the time before which every file the
tailer meant to read is in the store (`OffsetStore.last_look`). A rotated file that no
row names and that changed after it is new: the next process reads it from 0. The row
fits format v1 as it is, so an older agent reading the file just sees one identity that
no file ever has.

Durability. WAL journal with ``synchronous=NORMAL``, as Fluent Bit's ``db.sync normal``. In WAL
mode that never tears or corrupts the file: every commit is atomic, and after a process crash
(SIGKILL, OOM kill) every committed transaction is there, since it is in the OS page cache.
Only a power loss or kernel crash can drop the last few commits, and the file then opens at
an earlier consistent state. That costs a re-send, never a gap: offsets only move forward
over lines the shipper already holds, so an older offset re-reads lines whose records carry
the same deterministic ids, and the shipper drops them as duplicates. ``FULL`` would buy
nothing but an fsync per commit.

Monotonic offsets. `OffsetStore.commit` never moves a file's offset backwards, so a stale
or reordered caller cannot rewind a file into a replay loop, unless it says ``reset`` for the
file (it was truncated in place, copytruncate, and is read again from the start; see
`CheckpointTracker.rewound`).

Format. ``PRAGMA application_id`` marks the file as ours ("KKLO") and ``PRAGMA user_version``
holds the format version (`CURRENT_VERSION`). A released version's schema is frozen; a change
adds a version and a migration. A file from a newer agent is refused with `OffsetFormatError`
and left untouched (a rollback must not destroy what the newer image reads), a file that is
not ours likewise. A damaged file raises `OffsetCorruptError` naming the path; the store never
deletes it: an operator moves it aside, and the agent then starts every file afresh.

Errors::

    OffsetStoreError            anything the store could not do; ``path`` names the file
    ├── OffsetFormatError       a newer format version, or not an offsets file; untouched
    └── OffsetCorruptError      SQLite reports the file damaged or not a database; untouched

SQLite's exceptions never escape; they are translated at this seam (``raise … from exc``).

Not thread-safe: the app calls it from one worker thread (``check_same_thread=False`` lets that
thread differ from the creator). Another process may open the file; SQLite's locks serialise
writers. The file must be on a local filesystem (WAL needs shared memory).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Set
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from kk_common import sqlite_files

__all__ = [
    "APPLICATION_ID",
    "CURRENT_VERSION",
    "LOOK_MARK",
    "CommitResult",
    "OffsetCorruptError",
    "OffsetFormatError",
    "OffsetStore",
    "OffsetStoreError",
    "StoredOffset",
]

CURRENT_VERSION = 1
"""The format version this code writes (``PRAGMA user_version``)."""

APPLICATION_ID = 0x4B4B4C4F
"""``PRAGMA application_id`` of an offsets file: ASCII "KKLO"."""

LOOK_MARK = "@look_mark"
"""The reserved identity whose ``updated_at`` is the tailer's look mark (module docstring)."""

# Version 1, frozen. `byte_offset`, not `offset`: OFFSET is an SQL keyword.
_SCHEMA_V1 = """
CREATE TABLE offsets (
    identity    TEXT    PRIMARY KEY,
    byte_offset INTEGER NOT NULL CHECK (byte_offset >= 0),
    path        TEXT    NOT NULL,
    updated_at  REAL    NOT NULL
) WITHOUT ROWID
"""

_UPSERT = """
INSERT INTO offsets (identity, byte_offset, path, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (identity) DO UPDATE SET
    byte_offset = excluded.byte_offset, path = excluded.path, updated_at = excluded.updated_at
"""

_LOOKUP_CHUNK = 500
"""Files whose stored offsets one ``SELECT`` reads (within SQLite's parameter limit)."""


class OffsetStoreError(Exception):
    """The offset store failed. ``path`` is the database file concerned."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path


class OffsetFormatError(OffsetStoreError):
    """The file is not in a format this code reads: ``found_version`` is its version (None if
    it is not an offsets file at all), ``supported_version`` the newest this code knows."""

    def __init__(
        self, message: str, *, path: Path, found_version: int | None, supported_version: int
    ) -> None:
        super().__init__(message, path=path)
        self.found_version = found_version
        self.supported_version = supported_version


class OffsetCorruptError(OffsetStoreError):
    """SQLite reports the file damaged or not a database. It is left in place."""


@dataclass(frozen=True, slots=True)
class StoredOffset:
    """One file's persisted state."""

    offset: int
    """Byte offset to resume reading from."""
    path: str
    """The path the file was last seen at (informational: identity is the key)."""
    updated_at: float
    """Unix seconds of the last commit that named the file."""


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What `OffsetStore.commit` did."""

    written: int
    """Rows inserted or updated (every identity given)."""
    kept_ahead: tuple[str, ...]
    """Identities whose stored offset was ahead of the one given and was kept (no ``reset``);
    their path and ``updated_at`` were still updated. Sorted."""


def _translate(exc: sqlite3.Error, path: Path) -> OffsetStoreError:
    """Map a :mod:`sqlite3` exception to the store's error tree."""
    primary = sqlite_files.primary_code(exc)
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return _corrupt(path, str(exc))
    return OffsetStoreError(f"offset store {path}: SQLite error: {exc}", path=path)


def _corrupt(path: Path, detail: str) -> OffsetCorruptError:
    return OffsetCorruptError(
        f"offset store {path} is damaged or not an SQLite database ({detail}); it was left "
        "untouched: move it aside to start every file afresh (lines may be re-sent)",
        path=path,
    )


def _check_header(conn: sqlite3.Connection, path: Path) -> int:
    """The file's format version (0: new and empty), or `OffsetFormatError`. Reads only."""

    def refuse(problem: str, found: int | None) -> OffsetFormatError:
        return OffsetFormatError(
            f"{path} {problem}", path=path, found_version=found, supported_version=CURRENT_VERSION
        )

    return sqlite_files.check_header(
        conn,
        application_id=APPLICATION_ID,
        supported_version=CURRENT_VERSION,
        refuse=refuse,
        what="a logs offset store",
        newer_hint="run the newer agent image, or move the file aside to start every file afresh",
    )


def _check_offset(identity: str, offset: int) -> None:
    # bool is an int; an offset of True is a caller bug, not byte 1.
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValueError(f"offset for {identity!r} must be an int >= 0, got {offset!r}")


class OffsetStore:
    """File offsets persisted in one SQLite file. See the module docstring.

    Args:
        path: the database file, e.g. ``<state_dir>/logs/offsets.db`` (its directory is
            created if missing).
        busy_timeout_s: how long to wait for another process holding the write lock.

    Raises:
        OffsetFormatError: the file was written by a newer agent, or is not an offsets file.
        OffsetCorruptError: the file is damaged or not an SQLite database.
        OffsetStoreError: any other failure to open (e.g. permission denied).
    """

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        try:
            sqlite_files.make_private(self.path)
        except OSError as exc:
            raise OffsetStoreError(f"offset store {self.path}: {exc}", path=self.path) from exc
        self._conn = self._open(busy_timeout_s)

    def _open(self, busy_timeout_s: float) -> sqlite3.Connection:
        return sqlite_files.connect(
            self.path,
            busy_timeout_s=busy_timeout_s,
            translate=lambda exc: _translate(exc, self.path),
            prepare=self._prepare,
        )

    def _prepare(self, conn: sqlite3.Connection) -> None:
        path = self.path
        # Read-only checks first: a newer or foreign file must not be touched, and even
        # switching the journal mode writes to its header.
        _check_header(conn, path)
        # The file is small (one row per file), so a full check costs little and turns
        # damage into a clear error at startup rather than a wrong offset later.
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise _corrupt(path, "; ".join(map(str, problems[:3])))
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OffsetStoreError(f"offset store {path}: cannot use WAL (got {mode})", path=path)
        conn.execute("PRAGMA synchronous = NORMAL")  # per connection; see module docstring
        self._ensure_schema(conn)

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-check under the write lock: another process may have created it meanwhile.
            if _check_header(conn, self.path) == 0:
                conn.execute(_SCHEMA_V1)
                # PRAGMAs take no bound parameters; both values are our own integers.
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {CURRENT_VERSION}")
            # Version 1 is the only version so far: nothing to migrate. A v2 migrates here,
            # inside this transaction, so an upgrade happens completely or not at all.
            conn.execute("COMMIT")
        except BaseException:
            sqlite_files.rollback(conn)
            raise

    # -- plumbing --------------------------------------------------------------------------

    def _transaction(self, *, write: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        """One transaction; sqlite3 errors leave as `OffsetStoreError` after a rollback."""
        conn = self._conn
        if conn is None:
            raise OffsetStoreError(f"offset store {self.path} is closed", path=self.path)
        return sqlite_files.transaction(
            conn, write=write, translate=lambda exc: _translate(exc, self.path)
        )

    # -- API -------------------------------------------------------------------------------

    def load(self) -> dict[str, StoredOffset]:
        """Every stored file: identity -> `StoredOffset` (the look mark is not a file)."""
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT identity, byte_offset, path, updated_at FROM offsets WHERE identity != ?",
                (LOOK_MARK,),
            ).fetchall()
        return {
            identity: StoredOffset(offset=int(offset), path=str(path), updated_at=float(at))
            for identity, offset, path, at in rows
        }

    def last_look(self) -> float | None:
        """The look mark last committed (``looked_at``), or ``None`` if there is none."""
        with self._transaction(write=False) as conn:
            row = conn.execute(
                "SELECT updated_at FROM offsets WHERE identity = ?", (LOOK_MARK,)
            ).fetchone()
        return None if row is None else float(row[0])

    def commit(
        self,
        offsets: Mapping[str, tuple[int, str]],
        now: float,
        *,
        reset: bool | Set[str] = False,
        looked_at: float | None = None,
    ) -> CommitResult:
        """Store ``identity -> (offset, path)`` for every file given, in one transaction.

        With ``looked_at``, the look mark is set to it in the same transaction, so the
        mark never covers a file the same commit registers.

        A stored offset never moves backwards: when the stored one is ahead, it is kept (and
        named in `CommitResult.kept_ahead`), but the path and ``updated_at`` are updated.
        ``reset`` allows moving backwards, for every file given (True) or for the named
        ones (a set, e.g. `CheckpointTracker.rewound`): the file was truncated in place.

        Raises:
            ValueError: an offset is not an int >= 0 (nothing is written).
            OffsetStoreError: the write failed (nothing is written).
        """
        if not isinstance(reset, bool | Set):
            raise TypeError(f"reset must be a bool or a set of identities, got {reset!r}")
        for identity, (offset, _path) in offsets.items():
            _check_offset(identity, offset)
            if identity == LOOK_MARK:
                raise ValueError(f"{LOOK_MARK!r} is reserved for the look mark")
        if not offsets and looked_at is None:
            return CommitResult(written=0, kept_ahead=())
        kept_ahead: list[str] = []
        rows: list[tuple[str, int, str, float]] = []
        with self._transaction() as conn:
            # Read and write under one write lock, so the "never backwards" check cannot race
            # another writer. The stored offsets are read in a few statements, not one per
            # file: a commit on a node of many slowly written files names hundreds.
            names = list(offsets)
            stored: dict[str, int] = {}
            for start in range(0, len(names), _LOOKUP_CHUNK):
                part = names[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(part))
                stored.update(
                    conn.execute(
                        # Only placeholders are put into the text; the names are parameters.
                        f"SELECT identity, byte_offset FROM offsets WHERE identity IN ({marks})",  # noqa: S608
                        part,
                    )
                )
            for identity, (offset, path) in offsets.items():
                ahead = stored.get(identity)
                may_rewind = reset is True or (not isinstance(reset, bool) and identity in reset)
                if ahead is not None and ahead > offset and not may_rewind:
                    kept_ahead.append(identity)
                    offset = int(ahead)
                rows.append((identity, offset, path, now))
            conn.executemany(_UPSERT, rows)
            if looked_at is not None:
                conn.execute(_UPSERT, (LOOK_MARK, 0, "", looked_at))
        return CommitResult(written=len(rows), kept_ahead=tuple(sorted(kept_ahead)))

    def forget(self, identities: Iterable[str]) -> int:
        """Delete the rows of these files (e.g. deleted and fully read); returns how many
        existed."""
        with self._transaction() as conn:
            return conn.executemany(
                "DELETE FROM offsets WHERE identity = ?", [(i,) for i in identities]
            ).rowcount

    def prune(self, older_than: float, now: float) -> list[str]:
        """Delete files not committed for more than ``older_than`` seconds before ``now``
        (gone for a long time); returns their identities, sorted."""
        if older_than < 0:
            raise ValueError(f"older_than must be >= 0, got {older_than}")
        cutoff = now - older_than
        with self._transaction() as conn:
            gone = [
                row[0]
                for row in conn.execute(
                    "SELECT identity FROM offsets WHERE updated_at < ? AND identity != ? "
                    "ORDER BY identity",
                    (cutoff, LOOK_MARK),
                )
            ]
            conn.execute(
                "DELETE FROM offsets WHERE updated_at < ? AND identity != ?", (cutoff, LOOK_MARK)
            )
        return gone

    def close(self) -> None:
        """Close the file (idempotent). A later call raises `OffsetStoreError`."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> OffsetStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
