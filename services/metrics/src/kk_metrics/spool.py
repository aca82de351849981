"""Scrapes on disk until the shipper has stored them: what makes a kill -9 lose nothing.

Theory of operation
-------------------
A scrape is written here, batch by batch as it is parsed (so a 100,000-sample page never
sits in memory whole), into ``<dir>/<scrape>.partial/``. When the scrape has been read
completely it is *committed*: the directory is renamed to ``<dir>/<scrape>/`` (atomic), and
only then are its batches sent. When the shipper acknowledges a batch (durably stored), the
batch's file is deleted, and the scrape's directory with its last batch.

So, for a kill -9 (or a crash, or a node reboot) at any moment:

* during the scrape: the ``.partial`` directory is deleted at the next start. Nothing of
  that scrape was sent, so nothing is lost that was shipped halfway; the scrape is missing
  from the time series, like any failed scrape.
* after the commit: every batch not yet acknowledged is still on disk and is sent again at
  the next start, with the same batch id, ids, positions and claims. A batch the shipper
  had stored but whose ack (or file deletion) did not happen is dropped by the shipper by
  its positions, and by the receiver by its ids: it arrives once.

Files are written, fsync-ed and the directory renamed and fsync-ed, so a committed scrape
also survives a power loss. A batch file that cannot be read back (torn by a crash of the
disk, edited) is deleted and counted (``unreadable``), never a reason to stop.

A batch file holds the envelope frames of the batch (`kk_common.envelope.encode`), each
preceded by its length (8 bytes, big-endian): re-sending is decoding and sending those.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kk_common.envelope import EncodedRecords, EnvelopeError, decode, encode

__all__ = ["ScrapeSpool", "SpoolWriter", "SpooledBatch"]

_PARTIAL = ".partial"
_BATCH_SUFFIX = ".kkb"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """A committed batch waiting for the shipper's acknowledgement."""

    path: Path
    size: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpoolWriter:
    """Writes one scrape's batches; `commit` makes them visible to the sender."""

    def __init__(self, spool: ScrapeSpool, name: str) -> None:
        self._spool = spool
        self.final = spool.directory / name
        self.partial = spool.directory / f"{name}{_PARTIAL}"
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        self._count = 0
        self.bytes_written = 0

    def write(self, batch: EncodedRecords) -> None:
        frames = encode(batch)
        path = self.partial / f"{self._count:06d}{_BATCH_SUFFIX}"
        with path.open("wb") as out:
            for frame in frames:
                out.write(len(frame).to_bytes(8, "big"))
                out.write(frame)
            out.flush()
            os.fsync(out.fileno())
        self._count += 1
        self.bytes_written += path.stat().st_size

    def commit(self) -> list[SpooledBatch]:
        """Make the scrape durable and sendable; returns its batches in order."""
        _fsync_dir(self.partial)
        os.replace(self.partial, self.final)
        _fsync_dir(self._spool.directory)
        batches = self._spool.batches_of(self.final)
        self._spool.account(sum(batch.size for batch in batches))
        return batches

    def abort(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)


class ScrapeSpool:
    """The directory of committed scrapes; see the module docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.bytes_used = 0
        self.unreadable = 0
        # Scrapes are committed on worker threads, batches removed on the event loop.
        self._lock = threading.Lock()

    def account(self, delta: int) -> None:
        with self._lock:
            self.bytes_used += delta

    @staticmethod
    def scrape_name(source: str, scrape_ms: int) -> str:
        """``<scrape ms>-<source>``: sorts by time, so a restart sends the oldest first."""
        return f"{scrape_ms:013d}-{_SAFE_NAME.sub('_', source)}"

    def begin(self, source: str, scrape_ms: int) -> SpoolWriter:
        return SpoolWriter(self, self.scrape_name(source, scrape_ms))

    def batches_of(self, scrape_dir: Path) -> list[SpooledBatch]:
        return [
            SpooledBatch(path, path.stat().st_size)
            for path in sorted(scrape_dir.glob(f"*{_BATCH_SUFFIX}"))
        ]

    def recover(self) -> list[SpooledBatch]:
        """At start: drop unfinished scrapes; return the committed batches, oldest first."""
        batches: list[SpooledBatch] = []
        for entry in sorted(self.directory.iterdir()):
            if not entry.is_dir():
                continue
            if entry.name.endswith(_PARTIAL):
                shutil.rmtree(entry, ignore_errors=True)
                continue
            found = self.batches_of(entry)
            if not found:
                with contextlib.suppress(OSError):
                    entry.rmdir()
            batches += found
        self.bytes_used = sum(batch.size for batch in batches)
        return batches

    def load(self, batch: SpooledBatch) -> EncodedRecords | None:
        """The batch as it was written; None (and the file removed) if it is unreadable."""
        try:
            data = batch.path.read_bytes()
            message = decode(list(_frames(data)))
        except (OSError, EnvelopeError, ValueError):
            message = None
        if not isinstance(message, EncodedRecords):
            self.unreadable += 1
            self.remove(batch)
            return None
        return message

    def remove(self, batch: SpooledBatch) -> None:
        """The shipper stored it: forget it (and its scrape, with its last batch)."""
        with contextlib.suppress(FileNotFoundError):
            batch.path.unlink()
            self.account(-batch.size)
        with contextlib.suppress(OSError):
            batch.path.parent.rmdir()  # fails while other batches remain: that is fine


def _frames(data: bytes) -> Iterator[bytes]:
    offset = 0
    while offset < len(data):
        if offset + 8 > len(data):
            raise ValueError("truncated frame length")
        length = int.from_bytes(data[offset : offset + 8], "big")
        offset += 8
        if offset + length > len(data):
            raise ValueError("truncated frame")
        yield data[offset : offset + length]
        offset += length
