"""The tailer: which container log files are open, and which bytes to read next.

Theory of operation
-------------------
The app drives one `Tailer` from the wake-ups of `kk_logs.tailing.watch.changes`::

    async for wake in changes(globs, extra_dirs=tailer.directories):
        now, mono = time.time(), time.monotonic()
        tailer.changed(wake.written)              # inotify: these files were written
        if wake.rescan or tailer.wants_scan:
            events = tailer.scan(now, mono)       # discover; rotation/truncation/deletion
        chunks = tailer.read_round(now, mono=mono)  # bytes of the files that changed
        events += tailer.settle(now, mono)        # truncations seen while reading, the
                                                  # pool, what is drained (or out of time)

*Cost follows lines, not files.* A write wakes only the file written: inotify names it
(`changed`) and the next `read_round` reads the files marked so, plus those that returned
a full slice, those just opened and those renamed away or deleted (they are draining, and
a rotated file's writes come under a name nobody tails). `scan` (globs, a ``stat`` per
path, a directory listing per live file's directory) runs when directory entries change
(new, renamed and deleted files) and as a safety net every ``rescan_interval``; it marks
for reading every file whose size or modification time changed since it was last looked
at, which is also how files are found to have grown without inotify (polling). An idle
node therefore costs one scan per interval, whatever the number of files. `changed` also
notes when the oldest unread write was noticed (`marked_since`) and whether a busy file
was written (`busy_written`), so that the app can read slowly written files once per
batch rather than on every wake-up.

*Two clocks.* ``now`` is wall-clock seconds (``time.time()``): it is compared with file
modification times (``ignore_older``, whether a rotated file is new since the last look)
and gives the look mark. ``mono`` is a monotonic clock (``time.monotonic()``): every
duration (the deleted-file grace, the rotate wait, retry backoff) is measured on it, so a
wall-clock step (NTP, a VM resumed) neither abandons a file still draining nor holds one
for an hour. ``mono`` defaults to ``now`` for callers whose clock does not step (tests).
The tailer never reads a clock and never sleeps.

*The pool of open files.* At most ``max_open_files`` descriptors are held (the app sizes
it from ``RLIMIT_NOFILE``, leaving room for its sockets, SQLite and inotify). When a file
needs a slot and none is free, an idle file is *parked*: its descriptor is closed, and
its identity, offset and the bytes before the offset are kept, so nothing about it is
forgotten. A parked file is reopened when it changes (inotify names it, or a scan sees a
new size or modification time): the path must still reach the same inode, and the usual
checks (first line, bytes before the offset) tell whether it was truncated meanwhile. A
parked file renamed away (rotated) is found among its live file's rotated siblings by its
inode and read from its offset; one deleted is closed (`FileClosed`, ``deleted``), its
unread bytes, if any, counted as missed. When more files have bytes to read than there
are slots, files take turns: a file that has been read at least once since it was opened
is parked (unread bytes and all) for one that waits, in first-come order, so every file
is read. Idle files go first; files renamed away, deleted, not yet identified or just
truncated are never parked. A file parked with unread bytes that is deleted before its
next turn loses them (counted), the price of more active files than descriptors.

*Identity.* A tracked file is keyed by ``(st_dev, st_ino)`` while it is open: holding its
descriptor pins the inode, so the number cannot be reused under us. Its
`~kk_logs.tailing.identity.FileIdentity` adds a fingerprint of its first line, which makes
the string key stable across restarts and distinct across inode reuse once the file is
closed. A new file is opened at once but *identified* (and read) only when its first line
is complete (or it is deleted): until then there is nothing a parser could emit anyway.
Each `Chunk` carries the identity; record ids and checkpoints are made of
``(identity.key, offset)``. Symlinks are followed and files deduplicated by inode, so a
file reached through ``/var/log/containers`` and ``/var/log/pods`` is read once.

*Start offset.* When a file is identified the tailer asks ``start_offset(identity)`` (the
offset store: the committed offset, or ``None``). Unknown files start at 0. An offset
beyond the file's size means the file was truncated while we were away: it starts at 0
and counts as a truncation. Files closed earlier in this process remember their end
offset, so a file that comes back into view is not read twice.

*Rotation.* kubelet renames ``0.log`` to ``0.log.<timestamp>`` and the runtime opens a new
``0.log``. The old inode keeps its descriptor, identity and offset and is read to its end;
the rename only makes it *unreachable* (no glob reaches it), which is counted as a
rotation. The new ``0.log`` is a new inode, read from 0. The renamed file is closed once
it has been unreachable and idle at its end for ``rotate_wait_s`` (the runtime may still
write to it until it reopens its log) or once it is deleted and drained. kubelet's later
``gzip`` creates a ``.gz`` file, which is never read, and deletes the renamed one.

*Rotated files nobody held open.* A rotation can also happen when no descriptor is held:
while the logs service is down (killed, upgraded), or to a file created and renamed away
between two scans. So every scan also lists the live files' directories for their rotated
siblings (`kk_logs.tailing.discovery.rotated_rank`: kubelet's ``<n>.log.<timestamp>``,
docker's ``<id>-json.log.<n>``; never ``.gz``) and, oldest rotation first, opens

* a sibling whose identity is *known* (``start_offset`` has it, or this process read it)
  and has bytes past that offset: it is read from there;
* a sibling never seen whose modification time is not older than the tailer's *last look*
  (``last_look`` for the first scan: the previous process's last scan, which the app
  persists, see `look_mark`; afterwards the previous scan), less `NEW_FILE_SLACK_S` for
  coarse file timestamps: it was written after we last looked, so nobody read it; it is
  read from 0.

Anything else (older rotations present when the tailer first looked, copies, files read
to their end) is left alone, and remembered by size and mtime so it is not opened again
until it changes. A sibling keeps the path of its live file (``0.log``): the path is what
pod and container metadata come from, and the identity (inode and first line, never the
name) is what record ids come from, so its lines get the ids they would have had under
the old name. It is then treated like a rotated file we held (read to its end, closed
when idle or deleted; deleted before that, its unread bytes are ``bytes_missed``).

*Truncation* (copytruncate). A file that shrinks below the read offset, whose first line
no longer matches its fingerprint, or whose bytes just before the read offset changed,
was truncated and rewritten. If a *copy* is visible beside it (a rotated sibling, e.g.
``app.log.1``, whose first line matches the identity and which reaches our offset), the
unread rest is read from the copy under the old identity, so nothing is lost and the
parser just goes on (`FileTruncated.copy_path`). Otherwise the old identity ends
(`FileTruncated`: the app flushes that file's parser) and the bytes between our offset
and the size seen at the last look are counted as ``bytes_missed`` (a lower bound: the
writer may have written more before the truncate; ``missed_counted_from`` says which
estimate was used). Either way the rewritten file is identified afresh and read from 0;
if its first line is the one it had, it is the identity's next *generation*
(`kk_logs.tailing.identity`), so its lines never take the old lines' record ids. A copy
is never read as a file of its own: a sibling whose first line is that of a file we
know is a copy and is left alone.

*Deletion and the grace period.* A deleted file (``st_nlink == 0``) that is still open is
read to its end, then closed (``files_closed_deleted``). This is what makes a pod that
starts, logs and is deleted within two seconds complete: its file was opened when it
appeared. But an open deleted file still holds its disk blocks (vectordotdev/vector#18784),
so it is kept for at most ``deleted_grace_s`` after the deletion was seen; then it is
closed even if unread bytes remain. Those bytes are the loss, counted as ``bytes_missed``
(Datadog's ``logs.bytes_missed``) and logged as ``tailer_deleted_file_abandoned``.

*Fairness.* `read_round` gives each file at most ``slice_bytes`` per round; a file that
filled its slice, or that the round's budget did not reach, stays marked and queues behind
the files marked after it, so a noisy container delays the others by at most one slice
and cannot starve them. Deleted files go first: they are on a clock.

*Pause.* When the unacknowledged window is full the app calls `pause`: `read_round` then
returns nothing, while `scan` keeps opening new files and holding rotated and deleted ones,
so their bytes remain readable after `resume`, which continues exactly at each file's
offset. The one limit: a deleted file whose grace period ends while reading is paused (or
too slow) is closed and its unread bytes are counted as ``bytes_missed``. That, the
copytruncate without a visible copy above, and files created and deleted between two
scans (never seen) are the only ways bytes are lost; the first two are counted and
logged.

*Events.* `scan`, `settle` and `close_finished` return what happened to files; chunks carry their
identity. The app keeps one parser per ``chunk.identity.key``, made at that identity's
first chunk (``make_parser(offset=chunk.offset)``); on `FileTruncated` or `FileClosed` it
calls ``flush_all()`` on that identity's parser and drops it. `FileOpened` and
`FileRotated` are informational. A truncation is reported by the `scan` after its
detection (or by the `settle` after the read round that found it), and the file is not
read again before that, so the old identity's parser is
always flushed before the new identity's first chunk arrives, even when both have the
same key (a rewritten file with an identical first line).

*Errors.* A file that cannot be opened or read (permission denied, I/O error, descriptor
limit) is counted by kind in ``errors``, logged once per path and kind, and retried with
backoff; it never stops the tailer.
"""

from __future__ import annotations

import errno
import logging
import os
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kk_common.jsonlog import log_event
from kk_logs.tailing import discovery
from kk_logs.tailing.discovery import DEFAULT_GLOBS, FileKey
from kk_logs.tailing.identity import (
    FINGERPRINT_MAX_BYTES,
    FileIdentity,
    fingerprint,
    identify,
    key_fingerprint,
)

__all__ = [
    "Chunk",
    "FileClosed",
    "FileOpened",
    "FileRotated",
    "FileStatus",
    "FileTruncated",
    "TailEvent",
    "Tailer",
    "TailerConfig",
    "TailerStats",
]

_log = logging.getLogger(__name__)

StartOffset = Callable[[FileIdentity], "int | None"]
KnownFingerprint = Callable[[str], bool]

NEW_FILE_SLACK_S = 2.0
"""A rotated sibling modified up to this long before the last look still counts as new.

File times come from the kernel's coarse clock, which lags ``time.time()`` by up to a
scheduler tick, and the app's persisted look mark may lag the real last look; a file
read twice is dropped by id downstream, a file skipped is lost, so err towards reading."""

BUSY_CHUNK_BYTES = 16 * 1024
"""A file whose reads return at least this much of late is busy: its writes are worth
reading at once (`Tailer.busy_written`)."""

_TAIL_CHECK_BYTES = 32
"""How many bytes before the read offset are re-checked on every read (see `_still_same`)."""


@dataclass(frozen=True, slots=True)
class TailerConfig:
    """What to tail and how; durations are seconds."""

    globs: tuple[str, ...] = DEFAULT_GLOBS
    """Files to tail; symlinks are followed and each physical file is read once."""
    exclude: tuple[str, ...] = ()
    """Paths never to tail (matched against both the matched and the resolved path)."""
    ignore_older_s: float | None = None
    """Skip files not yet tracked whose mtime is older than this; ``None`` reads all."""
    slice_bytes: int = 256 * 1024
    """At most this many bytes per file per `Tailer.read_round`."""
    deleted_grace_s: float = 60.0
    """How long a deleted file is held open to be drained before it is closed anyway."""
    rotate_wait_s: float = 5.0
    """How long a rotated (renamed, not deleted) file stays open after its last byte."""
    max_open_files: int = 4096
    """At most this many descriptors are held; idle files are parked beyond (module
    docstring, "The pool of open files")."""
    retry_max_s: float = 30.0
    """Longest wait before retrying a file that could not be opened."""

    def __post_init__(self) -> None:
        if self.slice_bytes <= 0:
            raise ValueError("slice_bytes must be positive")
        if self.deleted_grace_s < 0 or self.rotate_wait_s < 0:
            raise ValueError("deleted_grace_s and rotate_wait_s must not be negative")
        if self.max_open_files <= 0:
            raise ValueError("max_open_files must be positive")


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes ``data`` read from file ``identity`` at byte ``offset``."""

    identity: FileIdentity
    path: str
    offset: int
    data: bytes

    @property
    def end(self) -> int:
        """The offset just past this chunk: where the next chunk of the file starts."""
        return self.offset + len(self.data)


@dataclass(frozen=True, slots=True)
class FileOpened:
    """A file was identified; its chunks start at ``offset``."""

    identity: FileIdentity
    path: str
    offset: int


@dataclass(frozen=True, slots=True)
class FileRotated:
    """A file was renamed away from every glob (rotation); it is still read to its end."""

    identity: FileIdentity | None
    path: str


@dataclass(frozen=True, slots=True)
class FileTruncated:
    """The file read as ``identity`` was truncated at our ``offset``.

    Without ``copy_path`` the identity ended there: flush its parser. With it, the rest
    of the identity is read from that copy, in chunks of the same identity that go on at
    ``offset``: keep the parser. ``missed_bytes`` were lost, estimated from
    ``missed_counted_from``: ``"copy"`` or ``"last_size_seen"`` (a lower bound).
    """

    identity: FileIdentity
    path: str
    offset: int
    missed_bytes: int
    copy_path: str | None = None
    missed_counted_from: str = "last_size_seen"


@dataclass(frozen=True, slots=True)
class FileClosed:
    """The file was closed; no more chunks of ``identity`` will come. Flush its parser.

    ``reason`` is ``deleted`` (drained after deletion), ``grace_expired`` (deleted, not
    drained in time: ``missed_bytes`` were lost), ``rotated`` (renamed away and drained)
    or ``shutdown``.
    """

    identity: FileIdentity | None
    path: str
    offset: int
    reason: str
    missed_bytes: int = 0


TailEvent = FileOpened | FileRotated | FileTruncated | FileClosed


@dataclass(frozen=True, slots=True)
class FileStatus:
    """One open file, for telemetry."""

    key: str | None
    """The identity key, or ``None`` while the file's first line is incomplete."""
    path: str
    offset: int
    size: int
    deleted: bool
    rotated: bool
    parked: bool = False
    """Its descriptor is closed (the pool is full); it is reopened when it changes."""

    @property
    def lag_bytes(self) -> int:
        """Bytes written but not read yet (as of the last look at the file)."""
        return max(0, self.size - self.offset)


@dataclass(slots=True)
class TailerStats:
    """Counters (``*_total`` semantics unless noted) and per-file gauges."""

    files_open: int = 0
    """Gauge: open descriptors."""
    files_parked: int = 0
    """Gauge: files followed with their descriptor closed (the pool was full)."""
    max_open_files: int = 0
    """Gauge: the size of the pool of descriptors."""
    files_opened: int = 0
    files_identified: int = 0
    bytes_read: int = 0
    rotations: int = 0
    truncations: int = 0
    files_closed_deleted: int = 0
    """Deleted files closed: drained, or abandoned at the end of the grace period."""
    files_closed_grace_expired: int = 0
    files_closed_rotated: int = 0
    parks: int = 0
    """Files whose descriptor was closed to make room for another (idle, or for turns)."""
    reopens: int = 0
    """Parked files opened again (they changed, or it was their turn)."""
    bytes_missed: int = 0
    """Bytes that were in a file but will never be read (grace expiry, copytruncate)."""
    errors: dict[str, int] = field(default_factory=dict)
    """Failures by kind: ``permission_denied``, ``too_many_open_files``, ``eio`` ..."""
    skipped_compressed: int = 0
    """Gauge (last scan): files skipped because they are compressed."""
    skipped_excluded: int = 0
    """Gauge (last scan): files skipped by an exclude glob."""
    skipped_too_old: int = 0
    """Gauge (last scan): files skipped by ``ignore_older_s``."""
    files: list[FileStatus] = field(default_factory=list)

    @property
    def lag_bytes(self) -> int:
        """Total unread bytes over all open files."""
        return sum(f.lag_bytes for f in self.files)


@dataclass(slots=True)
class _Tracked:
    """A followed file and what the tailer knows about it; ``fd`` is -1 while parked.

    Times named ``*_at``/``*_since`` are on the monotonic clock, except ``opened_at``
    (wall clock: the look mark is made of it)."""

    key: FileKey
    fd: int
    path: str
    identity: FileIdentity | None = None
    offset: int = 0
    size: int = 0
    reachable: bool = True
    unreachable_since: float | None = None
    rotated: bool = False
    deleted_at: float | None = None
    last_data_at: float = 0.0
    opened_at: float = 0.0
    """Wall clock: when the tailer first saw the file (it holds the look mark back)."""
    slot_taken_at: float = 0.0
    """When it got its descriptor (opened, or reopened after being parked)."""
    turns: int = 0
    """Read rounds it was served in since it got its descriptor."""
    recent_chunk: int = 0
    """How much its reads return of late: the last read's bytes, or half the previous
    value if that is more (one short read between long ones does not make a busy file
    quiet). `Tailer.busy_written` compares it with `BUSY_CHUNK_BYTES`."""
    mtime_ns: int = 0
    source_path: str = ""
    """Where the bytes are read from when that is not ``path`` (a rotated sibling, a copy)."""
    tail: bytes = b""
    """The last bytes read before ``offset``: a rewrite shows as a change there."""
    from_zero: bool = False
    """Identify afresh at offset 0, ignoring the offset store (after a truncation)."""
    hold: bool = False
    """Truncated, not yet reported by `Tailer.scan`: no new identity, no reads until then."""

    @property
    def parked(self) -> bool:
        return self.fd < 0

    @property
    def leaving(self) -> bool:
        """Renamed away or deleted: read to its end, then closed."""
        return not self.reachable or self.deleted_at is not None

    @property
    def parkable(self) -> bool:
        """Whether its descriptor may be closed: it can be found again by its path."""
        return (
            self.identity is not None
            and not self.leaving
            and not self.hold
            and not self.source_path
            and not self.from_zero
        )


_FINISHED_MEMORY = 16384


def _error_kind(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission_denied"
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        return "too_many_open_files"
    return errno.errorcode.get(exc.errno or 0, "os_error").lower()


def _open_read_only(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)


class Tailer:
    """Keeps the matching log files open and reads them fairly (module docstring).

    ``start_offset`` is asked once per newly identified file for the offset to resume at
    (the offset store's committed offset); ``None`` or no callback means 0.
    ``known_fingerprint`` tells whether the offset store holds a file with that first-line
    fingerprint (a rotated sibling with it is a copy, not a new file). ``last_look`` is
    when the files were last looked at before this tailer (the previous process's
    `look_mark`, or this process's start): rotated files modified since are new; ``None``
    means the first scan's own time.
    """

    def __init__(
        self,
        config: TailerConfig | None = None,
        *,
        start_offset: StartOffset | None = None,
        known_fingerprint: KnownFingerprint | None = None,
        last_look: float | None = None,
    ) -> None:
        self._config = config or TailerConfig()
        self._exclude = discovery.compile_globs(self._config.exclude)
        self._start_offset = start_offset
        self._known_fingerprint = known_fingerprint
        self._last_look = last_look
        self._look_mark = last_look
        # The times of the call being served: wall clock and monotonic (module docstring).
        self._now = 0.0
        self._mono = 0.0
        # Rotated siblings decided against (history, copies, read to their end), by their
        # size and mtime then: not opened again until either changes.
        self._settled: dict[FileKey, tuple[int, int]] = {}
        self._files: dict[FileKey, _Tracked] = {}
        """Files holding a descriptor."""
        self._parked: dict[FileKey, _Tracked] = {}
        """Files followed without a descriptor (module docstring, "The pool")."""
        self._waiting: dict[FileKey, None] = {}
        """Parked files that want a descriptor, first come first served (ordered set)."""
        self._to_read: dict[FileKey, None] = {}
        """Open files the next `read_round` reads, in order (an ordered set)."""
        self._leaving: set[FileKey] = set()
        """Open files renamed away or deleted: read every round until closed."""
        self._recheck: set[FileKey] = set()
        """Files found truncated while reading: `settle` reports and identifies them."""
        self._by_path: dict[str, FileKey] = {}
        """Paths (real, and where a sibling's bytes are) of followed files, for `changed`."""
        self._identities: dict[str, FileKey] = {}
        """Identity keys of followed files (open or parked)."""
        self._fingerprints: Counter[str] = Counter()
        """First-line fingerprints of followed files."""
        self._resolved: discovery.ResolvedPaths = {}
        self._paused = False
        self._more = False
        self._busy_written = False
        self._marked_since: float | None = None
        self._scan_wanted = False
        self._pending: list[TailEvent] = []
        # End offsets of files closed in this process, by identity key, so a file that
        # is reached again (a glob matching rotated names, say) is not re-read.
        self._finished: OrderedDict[str, int] = OrderedDict()
        # path -> (failures so far, next attempt time (monotonic), last error kind)
        self._retry: dict[str, tuple[int, float, str]] = {}
        self._stats = TailerStats()

    # -- inputs -------------------------------------------------------------------

    def pause(self) -> None:
        """Stop reading (the unacknowledged window is full); bookkeeping goes on."""
        self._paused = True

    def resume(self) -> None:
        """Read again, from where each file stopped."""
        if self._paused:
            self._paused = False
            self._more = True  # whatever piled up while paused is waiting

    def changed(self, paths: Iterable[str], mono: float | None = None) -> None:
        """These files were written (inotify): read them in the next round, reopening
        parked ones. Paths nobody follows are ignored (a scan finds new files).

        ``mono`` is when the writes were noticed: the oldest such time not yet read is
        `marked_since`."""
        for path in paths:
            key = self._by_path.get(path)
            if key is None:
                continue
            tracked = self._files.get(key)
            if tracked is not None:
                if key in self._to_read and tracked.recent_chunk < BUSY_CHUNK_BYTES:
                    # Written again before a round read it: a quiet file turning busy?
                    self._weigh_unread(tracked)
                self._to_read[key] = None
                if tracked.recent_chunk >= BUSY_CHUNK_BYTES:
                    self._busy_written = True
                if self._marked_since is None:
                    self._marked_since = mono
            elif key in self._parked:
                self._waiting[key] = None

    @property
    def marked_since(self) -> float | None:
        """When the oldest write that `changed` reported and no round has read yet was
        noticed (the ``mono`` it was given), or ``None``."""
        return self._marked_since

    def _weigh_unread(self, tracked: _Tracked) -> None:
        """A file reported written again while it waits to be read: if the bytes waiting
        already make a busy file's read, count it busy (one ``fstat``; only for files
        written twice between rounds, so a node of slowly written files rarely pays it)."""
        try:
            size = os.fstat(tracked.fd).st_size
        except OSError:
            return  # the read will meet the error and count it
        tracked.recent_chunk = max(tracked.recent_chunk, size - tracked.offset)

    @property
    def busy_written(self) -> bool:
        """Whether a file marked for reading since the last round is busy (its reads
        return at least `BUSY_CHUNK_BYTES` of late): lines come in fast enough that a
        reader batching them should not wait to read them."""
        return self._busy_written

    @property
    def files_to_read(self) -> int:
        """How many open files are marked for the next round."""
        return len(self._to_read)

    @property
    def more_to_read(self) -> bool:
        """Whether the last round left bytes behind (a full slice, or the budget ran out).

        The app should then read again soon without waiting for a file event. Always
        false while paused.
        """
        return self._more and not self._paused

    @property
    def paused(self) -> bool:
        """Whether `read_round` is currently returning nothing."""
        return self._paused

    @property
    def wants_scan(self) -> bool:
        """A parked file was no longer at its path when reopened: a scan finds where it
        went (rotated beside it) or that it is gone."""
        return self._scan_wanted

    @property
    def look_mark(self) -> float | None:
        """A time before which every file this tailer means to read has been reported
        (`FileOpened`): the app persists it, with those files' identities, as the next
        process's ``last_look``. It is the last scan's time, held back by files seen but
        not identified yet (they could be rotated away before they are)."""
        return self._look_mark

    def scan(self, now: float, mono: float | None = None) -> list[TailEvent]:
        """Discover files and check every one that changed; return what happened since
        last time.

        Opens newly matched files (even while paused, so their bytes survive deletion),
        notices rotations, truncations and deletions, identifies files whose first line
        is now complete, then closes what is finished (`close_finished`).
        """
        self._at(now, mono)
        self._scan_wanted = False
        events, self._pending = self._pending, []
        result = discovery.scan_paths(self._config.globs, resolved=self._resolved)
        for path, exc in result.errors:
            self._failed(path, exc, "stat")
        decision = discovery.decide(
            result,
            now=now,
            exclude=self._exclude,
            ignore_older_s=self._config.ignore_older_s,
            known=self._files.keys() | self._parked.keys(),
        )
        self._stats.skipped_compressed = decision.compressed
        self._stats.skipped_excluded = decision.excluded
        self._stats.skipped_too_old = decision.too_old

        # Files that changed since they were last looked at get checked and read; the
        # others cost nothing more than their stat.
        to_check: list[_Tracked] = []
        missing: list[_Tracked] = []
        for tracked in self._followed():
            found = decision.files.get(tracked.key)
            if found is None:
                if tracked.reachable:
                    tracked.reachable = False
                    tracked.unreachable_since = self._mono
                if tracked.parked:
                    missing.append(tracked)
                else:
                    self._leaving.add(tracked.key)
                    to_check.append(tracked)
                continue
            tracked.path = found.real_path
            was_reachable, tracked.reachable = tracked.reachable, True
            tracked.unreachable_since = None
            unchanged = (found.size, found.mtime_ns) == (tracked.size, tracked.mtime_ns)
            if tracked.parked:
                if not unchanged or tracked.offset < found.size:
                    tracked.size, tracked.mtime_ns = found.size, found.mtime_ns
                    self._waiting[tracked.key] = None
                continue
            if tracked.deleted_at is None:
                self._leaving.discard(tracked.key)
            if not (unchanged and was_reachable and tracked.identity is not None):
                to_check.append(tracked)
        for key, found in decision.files.items():
            if key not in self._files and key not in self._parked:
                self._open(found)
        relocated = self._follow_rotated(decision, missing)
        for tracked in to_check:
            if tracked.key in self._files:
                self._check(tracked, events)
                self._to_read[tracked.key] = None
        events.extend(self._forget_gone([t for t in missing if t.key not in relocated]))
        self._fill_slots(events)
        events.extend(self._pending)  # files opened and identified above
        self._pending.clear()
        events.extend(self.close_finished(now, mono))
        self._last_look = now
        self._by_path = {}
        for tracked in self._followed():
            self._index_path(tracked)
        unidentified = [t.opened_at for t in self._followed() if t.identity is None]
        self._look_mark = min([now, *unidentified])
        return events

    def read_round(
        self, now: float, budget_bytes: int | None = None, *, mono: float | None = None
    ) -> list[Chunk]:
        """Read up to ``slice_bytes`` from each file marked for reading (module
        docstring), deleted files first.

        ``budget_bytes`` caps the whole round; the files it did not reach stay marked,
        ahead of those read. Returns nothing while paused.
        """
        self._at(now, mono)
        self._more = False
        if self._paused:
            return []
        self._busy_written = False
        if self._waiting:
            # Files written since they were parked get their descriptor back first;
            # what that finds (a truncation, a new file identified) `settle` reports.
            found: list[TailEvent] = []
            self._fill_slots(found)
            self._pending.extend(found)
        slice_bytes = self._config.slice_bytes
        remaining = budget_bytes
        for key in self._leaving:
            self._to_read[key] = None  # draining; its writes come under another name
        order = [self._files[key] for key in self._to_read if key in self._files]
        # Deleted files first: they are on the grace clock.
        order.sort(key=lambda t: t.deleted_at is None)
        chunks: list[Chunk] = []
        again: list[FileKey] = []
        for tracked in order:
            if remaining is not None and remaining <= 0:
                self._more = True
                break
            key = tracked.key
            del self._to_read[key]
            if tracked.hold:
                continue  # reported and identified again by the next settle or scan
            tracked.turns += 1
            if tracked.identity is None:
                if not self._identify(tracked, final=tracked.deleted_at is not None):
                    continue
                self._to_read.pop(key, None)  # being read now
            want = slice_bytes if remaining is None else min(slice_bytes, remaining)
            chunk = self._read(tracked, want)
            if chunk is not None:
                chunks.append(chunk)
                if len(chunk.data) == want:
                    self._more = True  # a full slice: probably more behind it
                    again.append(key)
                if remaining is not None:
                    remaining -= len(chunk.data)
        for key in self._to_read.keys() - self._files.keys():
            del self._to_read[key]
        if not self._to_read:
            self._marked_since = None  # else some writes noticed then are still unread
        # Files the budget did not reach keep their place; the ones read go behind them.
        for key in again:
            self._to_read[key] = None
        return chunks

    def settle(self, now: float, mono: float | None = None) -> list[TailEvent]:
        """After a read round: report the truncations it found and identify those files
        afresh, give waiting files their descriptors, close what is finished."""
        self._at(now, mono)
        events, self._pending = self._pending, []
        rechecks, self._recheck = self._recheck, set()
        for key in rechecks:
            tracked = self._files.get(key)
            if tracked is not None and tracked.hold:
                self._check(tracked, events)
                self._to_read[key] = None
        self._fill_slots(events)
        events.extend(self._pending)
        self._pending.clear()
        events.extend(self.close_finished(now, mono))
        return events

    def close_finished(self, now: float, mono: float | None = None) -> list[FileClosed]:
        """Close deleted files that are drained or past their grace period, and rotated
        files that are drained and idle; count what could not be read."""
        self._at(now, mono)
        mono = self._mono
        closed: list[FileClosed] = []
        cfg = self._config
        for tracked in [self._files[key] for key in self._leaving]:
            if not self._refresh(tracked):
                continue
            drained = tracked.offset >= tracked.size
            if tracked.deleted_at is not None:
                if drained and not (tracked.identity is None and tracked.size > 0):
                    closed.append(self._close(tracked, "deleted"))
                elif mono - tracked.deleted_at >= cfg.deleted_grace_s:
                    closed.append(self._close(tracked, "grace_expired"))
            elif (
                drained
                and tracked.unreachable_since is not None
                and mono - max(tracked.unreachable_since, tracked.last_data_at) >= cfg.rotate_wait_s
            ):
                closed.append(self._close(tracked, "rotated"))
        return closed

    def close(self) -> list[FileClosed]:
        """Close every file (shutdown); offsets stay wherever the offset store has them."""
        closed = [self._close(t, "shutdown") for t in list(self._files.values())]
        closed += [self._close(t, "shutdown") for t in list(self._parked.values())]
        return closed

    # -- outputs ------------------------------------------------------------------

    def stats(self) -> TailerStats:
        """A snapshot of the counters and per-file state."""
        s = self._stats
        return TailerStats(
            files_open=len(self._files),
            files_parked=len(self._parked),
            max_open_files=self._config.max_open_files,
            files_opened=s.files_opened,
            files_identified=s.files_identified,
            bytes_read=s.bytes_read,
            rotations=s.rotations,
            truncations=s.truncations,
            files_closed_deleted=s.files_closed_deleted,
            files_closed_grace_expired=s.files_closed_grace_expired,
            files_closed_rotated=s.files_closed_rotated,
            parks=s.parks,
            reopens=s.reopens,
            bytes_missed=s.bytes_missed,
            errors=dict(s.errors),
            skipped_compressed=s.skipped_compressed,
            skipped_excluded=s.skipped_excluded,
            skipped_too_old=s.skipped_too_old,
            files=[
                FileStatus(
                    t.identity.key if t.identity else None,
                    t.path,
                    t.offset,
                    t.size,
                    t.deleted_at is not None,
                    t.rotated,
                    t.parked,
                )
                for t in self._followed()
            ],
        )

    def directories(self) -> set[str]:
        """Directories of the followed files (for the watcher: symlink targets live there)."""
        return {os.path.dirname(t.path) for t in self._followed()}

    # -- internals ----------------------------------------------------------------

    def _at(self, now: float, mono: float | None) -> None:
        self._now = now
        self._mono = now if mono is None else mono

    def _followed(self) -> list[_Tracked]:
        return [*self._files.values(), *self._parked.values()]

    def _index_path(self, tracked: _Tracked) -> None:
        self._by_path[tracked.path] = tracked.key
        if tracked.source_path:
            self._by_path[tracked.source_path] = tracked.key

    def _set_identity(self, tracked: _Tracked, identity: FileIdentity | None) -> None:
        """Change a followed file's identity, keeping the indexes of identities in step."""
        old = tracked.identity
        if old is not None:
            if self._identities.get(old.key) == tracked.key:
                del self._identities[old.key]
            self._fingerprints[old.fingerprint] -= 1
            if self._fingerprints[old.fingerprint] <= 0:
                del self._fingerprints[old.fingerprint]
        tracked.identity = identity
        if identity is not None:
            self._identities[identity.key] = tracked.key
            self._fingerprints[identity.fingerprint] += 1

    def _open(self, found: discovery.Found) -> None:
        path = found.real_path
        if not self._may_retry(path):
            return
        if len(self._files) >= self._config.max_open_files:
            # No slot free: follow this one without a descriptor until `_fill_slots`
            # gives it one (parking idle files, in one go for all that wait). Until it is
            # identified it holds the look mark back.
            placeholder = _Tracked(
                key=found.key,
                fd=-1,
                path=path,
                size=0,
                opened_at=self._now,
                last_data_at=self._mono,
            )
            self._parked[found.key] = placeholder
            self._waiting[found.key] = None
            self._index_path(placeholder)
            return
        try:
            fd = _open_read_only(path)
        except FileNotFoundError:
            return  # gone between the scan and the open: it was never seen, nothing read
        except OSError as exc:
            self._failed(path, exc, "open")
            return
        try:
            st = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            self._failed(path, exc, "open")
            return
        key = (st.st_dev, st.st_ino)
        if key in self._files or key in self._parked:
            # The path now names a file we already follow (replaced since the stat).
            os.close(fd)
            return
        self._retry.pop(path, None)
        self._identify(self._adopt(fd, st, path), final=False)

    def _may_retry(self, path: str) -> bool:
        retry = self._retry.get(path)
        return retry is None or self._mono >= retry[1]

    def _adopt(self, fd: int, st: os.stat_result, path: str, **state: Any) -> _Tracked:
        """Track an open file: ``path`` is the one it is read as (the live path for a
        rotated sibling or a copy, whose ``source_path`` says where it really is)."""
        key = (st.st_dev, st.st_ino)
        identity = state.pop("identity", None)
        tracked = _Tracked(
            key=key,
            fd=fd,
            path=path,
            size=st.st_size,
            last_data_at=self._mono,
            opened_at=self._now,
            slot_taken_at=self._mono,
            mtime_ns=st.st_mtime_ns,
            **state,
        )
        if state.get("source_path"):
            tracked.reachable = False
            tracked.unreachable_since = self._mono
            self._leaving.add(key)
        self._files[key] = tracked
        self._set_identity(tracked, identity)
        self._to_read[key] = None
        self._index_path(tracked)
        self._stats.files_opened += 1
        return tracked

    # -- the pool of descriptors --------------------------------------------------

    def _make_room(self, wanted: int) -> bool:
        """Free up to ``wanted`` slots by parking open files, idle ones first (the least
        recently written), then, for turns, those read at least once since they got their
        descriptor (the longest held first). True if at least one slot is free."""
        free = self._config.max_open_files - len(self._files)
        if free >= wanted:
            return True
        candidates = [t for t in self._files.values() if t.parkable]
        idle = sorted(
            (t for t in candidates if t.offset >= t.size and t.key not in self._to_read),
            key=lambda t: t.last_data_at,
        )
        busy = sorted(
            (t for t in candidates if t.turns and not (t.offset >= t.size)),
            key=lambda t: t.slot_taken_at,
        )
        for tracked in [*idle, *busy][: wanted - free]:
            self._park(tracked)
            free += 1
        return free > 0

    def _park(self, tracked: _Tracked) -> None:
        del self._files[tracked.key]
        self._to_read.pop(tracked.key, None)
        try:
            os.close(tracked.fd)
        except OSError as exc:
            self._count_error(_error_kind(exc))
        tracked.fd = -1
        self._parked[tracked.key] = tracked
        self._stats.parks += 1
        if tracked.offset < tracked.size:
            self._waiting[tracked.key] = None  # its turn is over; the queue's end

    def _fill_slots(self, events: list[TailEvent]) -> None:
        """Give descriptors to the parked files that want one, in their order."""
        if not self._waiting:
            return
        self._make_room(len(self._waiting))
        for key in list(self._waiting):
            if len(self._files) >= self._config.max_open_files:
                return
            del self._waiting[key]
            tracked = self._parked.get(key)
            if tracked is not None:
                self._unpark(tracked, events)

    def _unpark(self, tracked: _Tracked, events: list[TailEvent]) -> None:
        """Reopen a parked file at its path, if that still reaches the same inode."""
        path = tracked.source_path or tracked.path
        if not self._may_retry(path):
            self._waiting[tracked.key] = None
            return
        try:
            fd = _open_read_only(path)
            st = os.fstat(fd)
        except FileNotFoundError:
            self._scan_wanted = True  # renamed away or deleted: the scan will tell
            return
        except OSError as exc:
            self._failed(path, exc, "open")
            self._waiting[tracked.key] = None
            return
        if (st.st_dev, st.st_ino) != tracked.key:
            os.close(fd)
            self._scan_wanted = True
            return
        self._retry.pop(path, None)
        del self._parked[tracked.key]
        self._files[tracked.key] = tracked
        tracked.fd = fd
        tracked.turns = 0
        tracked.slot_taken_at = self._mono
        self._to_read[tracked.key] = None
        if tracked.leaving:
            self._leaving.add(tracked.key)
        if tracked.identity is None:
            # Seen while the pool was full and never opened: a new file like any other.
            tracked.size = st.st_size
            tracked.mtime_ns = st.st_mtime_ns
            tracked.last_data_at = self._mono
            self._stats.files_opened += 1
            self._identify(tracked, final=False)
            events.extend(self._pending)
            self._pending.clear()
            return
        self._stats.reopens += 1
        self._check(tracked, events)

    def _forget_gone(self, gone: list[_Tracked]) -> list[FileClosed]:
        """Parked files that the scan found neither at their path nor renamed beside
        it: deleted (or moved out of sight) while parked. Their unread bytes are lost."""
        closed = []
        for tracked in gone:
            try:
                st = os.stat(tracked.source_path or tracked.path)
                if (st.st_dev, st.st_ino) == tracked.key:
                    continue  # still there (a scan error hid it): keep it
            except OSError:
                pass
            closed.append(self._close(tracked, "deleted", missed=tracked.size - tracked.offset))
        return closed

    # -- rotated siblings ---------------------------------------------------------

    def _follow_rotated(
        self, decision: discovery.Decision, missing: list[_Tracked]
    ) -> set[FileKey]:
        """Open the rotated siblings of the live files that nobody read to their end
        (module docstring, "Rotated files nobody held open"), oldest first. Returns the
        parked files among ``missing`` found renamed beside their live file: they are
        reopened there and read to their end as rotated files."""
        live = [found.real_path for found in decision.files.values()]
        live += [t.path for t in missing]
        seen: set[FileKey] = set()
        relocated: set[FileKey] = set()
        for sibling in discovery.scan_rotated(live):
            seen.add(sibling.key)
            if sibling.key in self._files:
                continue
            parked = self._parked.get(sibling.key)
            if parked is not None:
                parked.source_path = sibling.path
                self._index_path(parked)
                self._waiting[parked.key] = None
                relocated.add(parked.key)
                continue
            if self._settled.get(sibling.key) == (sibling.size, sibling.mtime_ns):
                continue
            if self._exclude(sibling.path) or self._exclude(sibling.live_path):
                continue
            if len(self._files) >= self._config.max_open_files and not self._make_room(1):
                self._failed(sibling.path, OSError(errno.EMFILE, "max_open_files reached"), "open")
                continue
            self._open_rotated(sibling)
        self._settled = {k: v for k, v in self._settled.items() if k in seen}
        return relocated

    def _open_rotated(self, sibling: discovery.RotatedSibling) -> None:
        try:
            fd = _open_read_only(sibling.path)
        except FileNotFoundError:
            return  # deleted meanwhile: nothing held it, nothing to read
        except OSError as exc:
            self._failed(sibling.path, exc, "open")
            return
        try:
            st = os.fstat(fd)
            head = os.pread(fd, FINGERPRINT_MAX_BYTES, 0)
        except OSError as exc:
            os.close(fd)
            self._failed(sibling.path, exc, "read")
            return
        key = (st.st_dev, st.st_ino)
        if key in self._files or key in self._parked:
            os.close(fd)  # renamed again since the listing, and already followed
            return
        if not self._wanted_sibling(key, head, st):
            os.close(fd)
            self._settled[key] = (st.st_size, st.st_mtime_ns)
            return
        tracked = self._adopt(fd, st, sibling.live_path, source_path=sibling.path)
        self._identify(tracked, final=False)

    def _wanted_sibling(self, key: FileKey, head: bytes, st: os.stat_result) -> bool:
        """Whether a rotated sibling (not held) still has bytes for us."""
        identity = identify(key[0], key[1], head)
        reference = self._now if self._last_look is None else self._last_look
        new = st.st_mtime >= reference - NEW_FILE_SLACK_S
        if identity is None:
            return new  # first line not complete yet: identified once it is
        latest = identity.with_generation(self._latest_generation(identity))
        known = self._known_offset(latest)
        if known is not None:
            return known < st.st_size
        if self._is_copy(identity):
            return False
        return new

    def _is_copy(self, identity: FileIdentity) -> bool:
        """Whether another file we know starts with the same first line."""
        fp = identity.fingerprint
        if self._fingerprints.get(fp):
            return True
        if any(key_fingerprint(key) == fp for key in self._finished):
            return True
        return self._known_fingerprint is not None and self._known_fingerprint(fp)

    def _known_offset(self, identity: FileIdentity) -> int | None:
        """Where a file known by its key was read up to, or ``None`` if it is unknown."""
        stored = self._start_offset(identity) if self._start_offset else None
        finished = self._finished.get(identity.key)
        if stored is None and finished is None:
            return None
        return max(stored or 0, finished or 0)

    def _latest_generation(self, identity: FileIdentity) -> int:
        """The newest generation of ``(dev, ino, fingerprint)`` that is known (0 if none)."""
        generation = 0
        while True:
            following = identity.with_generation(generation + 1)
            if self._known_offset(following) is None and not self._held(following):
                return generation
            generation += 1

    def _held(self, identity: FileIdentity) -> bool:
        return identity.key in self._identities

    def _identify(self, tracked: _Tracked, *, final: bool) -> bool:
        """Fingerprint the file if its first line is complete; pick its start offset."""
        try:
            head = os.pread(tracked.fd, FINGERPRINT_MAX_BYTES, 0)
        except OSError as exc:
            self._failed(tracked.path, exc, "read")
            return False
        identity = identify(tracked.key[0], tracked.key[1], head, final=final)
        if identity is None:
            return False
        latest = self._latest_generation(identity)
        offset = 0
        if tracked.from_zero:
            # Rewritten in place: a first line we already know gets the next generation,
            # so the new lines never take ids of lines already sent.
            known = self._known_offset(identity) is not None or self._held(identity)
            identity = identity.with_generation(latest + 1 if known else 0)
        else:
            identity = identity.with_generation(latest)
            offset = self._known_offset(identity) or 0
            if offset > max(tracked.size, len(head)):
                self._refresh(tracked)
                if offset > tracked.size:
                    # Truncated while we were not looking (agent restart): start over as
                    # the next generation.
                    self._stats.truncations += 1
                    log_event(
                        _log,
                        logging.WARNING,
                        "tailer_file_truncated",
                        path=tracked.path,
                        identity=identity.key,
                        offset=offset,
                        size=tracked.size,
                        missed_counted_from="unknown",
                    )
                    identity = identity.with_generation(latest + 1)
                    offset = 0
        self._set_identity(tracked, identity)
        tracked.offset = offset
        tracked.tail = b""
        tracked.from_zero = False
        self._to_read[tracked.key] = None
        self._stats.files_identified += 1
        self._pending.append(FileOpened(identity, tracked.path, offset))
        return True

    def _refresh(self, tracked: _Tracked) -> bool:
        """fstat the open file: size and deletion. False if that failed."""
        try:
            st = os.fstat(tracked.fd)
        except OSError as exc:
            self._failed(tracked.path, exc, "stat")
            return False
        tracked.size = st.st_size
        tracked.mtime_ns = st.st_mtime_ns
        if st.st_nlink == 0 and tracked.deleted_at is None:
            tracked.deleted_at = self._mono
            self._leaving.add(tracked.key)
            tracked.reachable = False
            if tracked.unreachable_since is None:
                tracked.unreachable_since = self._mono
        return True

    def _check(self, tracked: _Tracked, events: list[TailEvent]) -> None:
        last_size = tracked.size
        if not self._refresh(tracked):
            return
        if not tracked.reachable and tracked.deleted_at is None and not tracked.rotated:
            # Renamed away from every glob but still on disk: kubelet rotation.
            tracked.rotated = True
            self._stats.rotations += 1
            events.append(FileRotated(tracked.identity, tracked.path))
        if tracked.identity is not None and (
            tracked.size < tracked.offset or not self._still_same(tracked)
        ):
            self._truncated(tracked, last_size)
        if tracked.identity is None:
            # FileTruncated (if any) is queued before the new identity's FileOpened, and
            # both reach the app before the new identity's first chunk.
            tracked.hold = False
            self._identify(tracked, final=tracked.deleted_at is not None)
        events.extend(self._pending)
        self._pending.clear()

    def _head_matches(self, tracked: _Tracked) -> bool:
        identity = tracked.identity
        if identity is None:
            return True
        try:
            head = os.pread(tracked.fd, identity.head_len, 0)
        except OSError as exc:
            self._failed(tracked.path, exc, "read")
            return True  # can't tell; the read error is counted, try again later
        return len(head) == identity.head_len and fingerprint(head) == identity.fingerprint

    def _still_same(self, tracked: _Tracked) -> bool:
        """Whether the file still holds what we read: its first line (the fingerprint)
        and the bytes just before our offset. A file truncated and rewritten past our
        offset (with the same first line, even) fails one of the two."""
        tail = tracked.tail
        if not self._head_matches(tracked):
            return False
        if not tail:
            return True
        try:
            before = os.pread(tracked.fd, len(tail), tracked.offset - len(tail))
        except OSError as exc:
            self._failed(tracked.path, exc, "read")
            return True
        return before == tail

    def _truncated(self, tracked: _Tracked, last_size: int) -> None:
        identity = tracked.identity
        assert identity is not None
        copy = self._open_copy(tracked)
        if copy is not None:
            # The copy holds the file as it was when copied: read the rest from there.
            missed, counted_from = 0, "copy"
        else:
            # What the file held past our offset at the previous look was never read: a
            # lower bound of the loss (the writer may have added more before the truncate).
            missed, counted_from = max(0, last_size - tracked.offset), "last_size_seen"
            self._finished[identity.key] = tracked.offset
        self._stats.truncations += 1
        self._stats.bytes_missed += missed
        log_event(
            _log,
            logging.WARNING if missed or copy is None else logging.INFO,
            "tailer_file_truncated",
            path=tracked.path,
            identity=identity.key,
            offset=tracked.offset,
            size=tracked.size,
            missed_bytes=missed,
            missed_counted_from=counted_from,
            copy_path=copy.source_path if copy else None,
        )
        self._pending.append(
            FileTruncated(
                identity,
                tracked.path,
                tracked.offset,
                missed,
                copy.source_path if copy else None,
                counted_from,
            )
        )
        self._set_identity(tracked, None)
        tracked.offset = 0
        tracked.tail = b""
        tracked.from_zero = True
        tracked.hold = True
        self._recheck.add(tracked.key)

    def _open_copy(self, tracked: _Tracked) -> _Tracked | None:
        """Find the copy of a truncated file beside it, newest rotation first, and take
        over its identity there: same first line, and at least our offset long."""
        identity = tracked.identity
        assert identity is not None
        live_path = tracked.source_path or tracked.path
        candidates = [
            s
            for s in discovery.scan_rotated([live_path])
            if s.key != tracked.key
            and s.key not in self._files
            and s.key not in self._parked
            and s.size >= tracked.offset
        ]
        for sibling in reversed(candidates):
            try:
                fd = _open_read_only(sibling.path)
            except OSError:
                continue
            try:
                st = os.fstat(fd)
                head = os.pread(fd, identity.head_len, 0)
                tail = tracked.tail
                before = os.pread(fd, len(tail), tracked.offset - len(tail)) if tail else b""
            except OSError:
                os.close(fd)
                continue
            key = (st.st_dev, st.st_ino)
            if (
                key in self._files
                or key in self._parked
                or fingerprint(head) != identity.fingerprint
                or len(head) != identity.head_len
                or before != tracked.tail
                or st.st_size < tracked.offset
            ):
                os.close(fd)
                continue
            # The index of identities now names the copy; the truncated file drops the
            # identity right after.
            return self._adopt(
                fd,
                st,
                tracked.path,
                source_path=sibling.path,
                identity=identity,
                offset=tracked.offset,
                rotated=True,
                tail=tracked.tail,
            )
        return None

    def _read(self, tracked: _Tracked, want: int) -> Chunk | None:
        identity = tracked.identity
        assert identity is not None
        # Read the last bytes before our offset along with the new ones, so a file that
        # was truncated and grew back past our offset shows in the same system call.
        tail = tracked.tail
        try:
            data = os.pread(tracked.fd, want + len(tail), tracked.offset - len(tail))
        except OSError as exc:
            self._failed(tracked.path, exc, "read")
            return None
        if len(data) < len(tail) or data[: len(tail)] != tail:
            self._truncated(tracked, tracked.size)  # shorter than our offset, or rewritten
            return None
        if len(data) == len(tail):
            return None
        # A copytruncated file may have grown back past our offset: check that it is
        # still the file we identified before passing its bytes off as that file's.
        if not self._head_matches(tracked):
            self._truncated(tracked, tracked.size)
            return None
        data = data[len(tail) :]
        chunk = Chunk(identity, tracked.path, tracked.offset, data)
        tracked.recent_chunk = max(len(data), tracked.recent_chunk >> 1)
        tracked.offset += len(data)
        tracked.tail = (tail + data)[-_TAIL_CHECK_BYTES:]
        tracked.size = max(tracked.size, tracked.offset)
        tracked.last_data_at = self._mono
        self._stats.bytes_read += len(data)
        return chunk

    def _close(self, tracked: _Tracked, reason: str, missed: int = 0) -> FileClosed:
        """Stop following a file (open or parked); ``missed`` bytes were never read."""
        if tracked.parked:
            del self._parked[tracked.key]
            self._waiting.pop(tracked.key, None)
        else:
            del self._files[tracked.key]
            self._to_read.pop(tracked.key, None)
            self._leaving.discard(tracked.key)
            self._recheck.discard(tracked.key)
            try:
                os.close(tracked.fd)
            except OSError as exc:
                self._count_error(_error_kind(exc))
        for path in (tracked.path, tracked.source_path):
            if self._by_path.get(path) == tracked.key:
                del self._by_path[path]
        if reason == "grace_expired":
            missed = tracked.size - tracked.offset
            self._stats.files_closed_grace_expired += 1
        missed = max(0, missed)
        self._stats.bytes_missed += missed
        if missed:
            log_event(
                _log,
                logging.WARNING,
                "tailer_deleted_file_abandoned",
                path=tracked.path,
                file=tracked.source_path or tracked.path,
                identity=tracked.identity.key if tracked.identity else None,
                offset=tracked.offset,
                size=tracked.size,
                missed_bytes=missed,
                paused=self._paused,
                parked=tracked.parked,
                grace_s=self._config.deleted_grace_s,
            )
        if reason in ("deleted", "grace_expired"):
            self._stats.files_closed_deleted += 1
        elif reason == "rotated":
            self._stats.files_closed_rotated += 1
        if reason == "rotated" or tracked.source_path:
            # Rotated siblings come up in every scan: not opened again unless they change.
            self._settled[tracked.key] = (tracked.size, tracked.mtime_ns)
        identity = tracked.identity
        if identity is not None:
            self._set_identity(tracked, None)
            self._finished[identity.key] = tracked.offset
            self._finished.move_to_end(identity.key)
            while len(self._finished) > _FINISHED_MEMORY:
                self._finished.popitem(last=False)
        return FileClosed(identity, tracked.path, tracked.offset, reason, missed)

    def _count_error(self, kind: str) -> None:
        self._stats.errors[kind] = self._stats.errors.get(kind, 0) + 1

    def _failed(self, path: str, exc: OSError, op: str) -> None:
        """Count a failure, log it once per path and kind, and back off retries (on the
        monotonic clock)."""
        kind = _error_kind(exc)
        self._count_error(kind)
        failures, _, last_kind = self._retry.get(path, (0, 0.0, ""))
        delay = min(self._config.retry_max_s, float(2**failures))
        self._retry[path] = (failures + 1, self._mono + delay, kind)
        if kind != last_kind:
            log_event(
                _log,
                logging.WARNING,
                "tailer_file_error",
                path=path,
                op=op,
                error_code=kind,
                error=str(exc),
                retry_in_s=delay,
            )
        if len(self._retry) > 4 * self._config.max_open_files:
            # Paths that failed once and vanished: forget the oldest.
            for stale in list(self._retry)[: len(self._retry) // 2]:
                del self._retry[stale]
