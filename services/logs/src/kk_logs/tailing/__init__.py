"""Finding and reading container log files: the tailer and its wake-up source.

See `kk_logs.tailing.tailer` for the theory of operation. The app builds a `Tailer`
from a `TailerConfig` (its pool of descriptors sized by `kk_logs.tailing.descriptors`),
iterates `changes(...)` and on every wake-up calls `Tailer.changed`, `Tailer.scan` when
the wake-up asks for one, `Tailer.read_round` and `Tailer.settle` (the loop is spelled out
at the top of `kk_logs.tailing.tailer`).
"""

from kk_logs.tailing.discovery import COMPRESSED_SUFFIXES, DEFAULT_GLOBS
from kk_logs.tailing.identity import FINGERPRINT_MAX_BYTES, FileIdentity, fingerprint, identify
from kk_logs.tailing.tailer import (
    Chunk,
    FileClosed,
    FileOpened,
    FileRotated,
    FileStatus,
    FileTruncated,
    Tailer,
    TailerConfig,
    TailerStats,
    TailEvent,
)
from kk_logs.tailing.watch import WakeUp, Wakeups, changes, inotify_available

__all__ = [
    "COMPRESSED_SUFFIXES",
    "DEFAULT_GLOBS",
    "FINGERPRINT_MAX_BYTES",
    "Chunk",
    "FileClosed",
    "FileIdentity",
    "FileOpened",
    "FileRotated",
    "FileStatus",
    "FileTruncated",
    "TailEvent",
    "Tailer",
    "TailerConfig",
    "TailerStats",
    "WakeUp",
    "Wakeups",
    "changes",
    "fingerprint",
    "identify",
    "inotify_available",
]
