"""Errors raised by the durable queue.

The tree is small on purpose::

    QueueError                 anything the store could not do; names the database path
    ├── QueueFull              not stored: no room (``reason`` "max_bytes", "output_share" or
    │                          "disk_full"); nothing was written, so do not acknowledge and
    │                          retry later
    ├── QueueBusy              another process (``killkrill-shipper replay``, an operator's
    │                          sqlite3 shell) held the write lock past the busy timeout;
    │                          nothing changed: retry later
    ├── QueueFormatError       the file is not a queue this code can read (a newer format
    │                          version, or not a shipper queue at all); left untouched
    └── QueueCorruptError      SQLite reports the file damaged or not a database; left untouched

SQLite's own exceptions never escape: `translate` maps them at the seam (``raise … from exc``),
so callers can handle storage failures without importing :mod:`sqlite3`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

from kk_common import sqlite_files

__all__ = [
    "QueueBusy",
    "QueueCorruptError",
    "QueueError",
    "QueueFormatError",
    "QueueFull",
    "translate",
]


class QueueError(Exception):
    """The durable queue failed. ``path`` is the database file concerned."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path


class QueueFull(QueueError):
    """The batch was not stored because there is no room; nothing was written.

    ``reason`` is ``"max_bytes"`` (the configured bound: ``needed_bytes`` more would take
    ``used_bytes`` past ``max_bytes``) or ``"disk_full"`` (the filesystem refused the write;
    the byte fields are then None). Either way the caller withholds the acknowledgement so the
    producer slows down and re-sends later. A batch with ``needed_bytes > max_bytes`` can
    never fit: the caller must send smaller batches.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path,
        reason: Literal["max_bytes", "output_share", "disk_full"],
        needed_bytes: int | None = None,
        used_bytes: int | None = None,
        max_bytes: int | None = None,
    ) -> None:
        super().__init__(message, path=path)
        self.reason = reason
        self.needed_bytes = needed_bytes
        self.used_bytes = used_bytes
        self.max_bytes = max_bytes


class QueueBusy(QueueError):
    """Another connection held the database's write lock for longer than the busy timeout.

    Nothing was changed. Busy is a condition to wait out (with backoff) and report, not a
    reason to stop: the holder is usually a short-lived tool working on the same file.
    """


class QueueFormatError(QueueError):
    """The file's format is not one this code reads.

    ``found_version`` is the version in the file (None when it is not a shipper queue at
    all), ``supported_version`` the newest this code knows. The file is never rewritten.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path,
        found_version: int | None,
        supported_version: int,
    ) -> None:
        super().__init__(message, path=path)
        self.found_version = found_version
        self.supported_version = supported_version


class QueueCorruptError(QueueError):
    """SQLite reports the database damaged or not a database at all. Data is left in place
    for an operator to inspect or move aside; the store never deletes it."""


def translate(exc: sqlite3.Error, path: Path) -> QueueError:
    """Map a :mod:`sqlite3` exception to the queue's error tree (raise the result ``from exc``)."""
    primary = sqlite_files.primary_code(exc)
    if primary == sqlite3.SQLITE_FULL:
        return QueueFull(
            f"durable queue {path}: the filesystem is full ({exc})", path=path, reason="disk_full"
        )
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return QueueBusy(
            f"durable queue {path} is locked by another process ({exc}); retrying", path=path
        )
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return QueueCorruptError(
            f"durable queue {path} is damaged or not an SQLite database ({exc}); "
            "it was left untouched: move it aside to start with an empty queue",
            path=path,
        )
    if isinstance(exc, sqlite3.ProgrammingError):
        # The only programming error the queue can meet is use after close().
        return QueueError(f"durable queue {path}: {exc}", path=path)
    return QueueError(f"durable queue {path}: SQLite error: {exc}", path=path)
