"""Plumbing shared by the agent's SQLite files (the shipper's queue, the logs' offsets).

Each file marks itself with ``PRAGMA application_id`` (whose file it is) and
``PRAGMA user_version`` (its format version); `check_header` reads both before anything
writes, so a file from a newer image, or someone else's database, is refused and left
untouched. `transaction` runs one ``BEGIN IMMEDIATE … COMMIT`` and turns sqlite3 errors
into the caller's own error type after a rollback. Each store keeps its own schema,
migrations and messages; only the mechanism lives here.

The files hold every queued log line and dead letter, so `connect` keeps them private: the
file (and SQLite's ``-wal``/``-shm`` companions, which SQLite creates with the main file's
mode) is 0600 and its directory 0700 (`make_private`, called by each store before
`connect`). Too-open modes left by an older version or an operator are tightened at open
and logged.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kk_common.jsonlog import log_event

__all__ = [
    "DIRECTORY_MODE",
    "FILE_MODE",
    "check_header",
    "connect",
    "make_private",
    "primary_code",
    "rollback",
    "transaction",
]

_log = logging.getLogger("kk.state")

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
_COMPANIONS = ("", "-wal", "-shm", "-journal")


def _tighten(path: Path, mode: int) -> None:
    """Give ``path`` exactly ``mode`` if it allows more (group or others); log the fix."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current & ~mode & 0o077:
        os.chmod(path, mode)
        log_event(
            _log,
            logging.WARNING,
            "state_permissions_tightened",
            path=str(path),
            was=f"{current:04o}",
            now=f"{mode:04o}",
            detail="agent state holds log data; only the agent's user may read it",
        )


def make_private(path: Path) -> None:
    """Create ``path``'s directory (0700) and the file (0600) if missing, and tighten the
    modes of an existing directory, file and SQLite companion files.

    Raises OSError when the directory cannot be created or the modes cannot be changed
    (a file owned by another user): the caller reports it with the path.
    """
    path.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    _tighten(path.parent, DIRECTORY_MODE)
    # Create the file ourselves with 0600: SQLite would use 0644 (minus the umask), and it
    # gives the -wal and -shm files the main file's mode.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
    for suffix in _COMPANIONS:
        _tighten(path.with_name(path.name + suffix), FILE_MODE)


def connect(
    path: Path,
    *,
    busy_timeout_s: float,
    translate: Callable[[sqlite3.Error], Exception],
    prepare: Callable[[sqlite3.Connection], None],
) -> sqlite3.Connection:
    """Open ``path`` for one-transaction-per-call use and run the store's ``prepare``.

    The connection is in autocommit mode (the store issues BEGIN/COMMIT through
    `transaction`) and usable from one thread other than its creator. ``prepare`` checks the
    header, sets pragmas and creates or migrates the schema; if it fails the connection is
    closed, and sqlite3 errors leave as ``translate(error)``. Call `make_private` first.
    """
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
        )
    except sqlite3.Error as exc:
        raise translate(exc) from exc
    try:
        prepare(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def primary_code(exc: sqlite3.Error) -> int | None:
    """The primary SQLite result code of ``exc`` (Python exposes the extended one)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is open; a failed COMMIT may already have rolled back, and
    this must never mask the original error."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


@contextmanager
def transaction(
    conn: sqlite3.Connection,
    *,
    translate: Callable[[sqlite3.Error], Exception],
    write: bool = True,
) -> Iterator[sqlite3.Connection]:
    """One transaction on an autocommit connection; sqlite3 errors leave as
    ``translate(error)`` (raised ``from`` the original) after a rollback."""
    try:
        # IMMEDIATE takes the write lock up front, so a concurrent writer (another process)
        # makes us wait at BEGIN rather than fail halfway through.
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    except sqlite3.Error as exc:
        raise translate(exc) from exc
    try:
        yield conn
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        rollback(conn)
        raise translate(exc) from exc
    except BaseException:
        rollback(conn)
        raise


def check_header(
    conn: sqlite3.Connection,
    *,
    application_id: int,
    supported_version: int,
    refuse: Callable[[str, int | None], Exception],
    what: str,
    newer_hint: str,
) -> int:
    """The file's format version (0: a new, empty file), reading only.

    Raises ``refuse(message, found_version)`` for a database that is not ``what`` (no
    version, or another application id) or whose version is newer than
    ``supported_version``; ``newer_hint`` tells the operator what to do then.
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if version == 0 and app_id == 0:
        if conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None:
            raise refuse(f"is an SQLite database but not {what} (no format version)", None)
        return 0
    if app_id != application_id:
        raise refuse(
            f"is an SQLite database but not {what} "
            f"(application_id {app_id:#x}, expected {application_id:#x})",
            None,
        )
    if version > supported_version:
        raise refuse(
            f"has format version {version}, written by a newer image; this one reads "
            f"versions up to {supported_version}. The file was left untouched: {newer_hint}",
            version,
        )
    return version
