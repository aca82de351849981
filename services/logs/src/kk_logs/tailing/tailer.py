"""The tailer: which container log files are open, and which bytes to read next.

Theory of operation
-------------------
The app drives one `Tailer` with three calls on every wake-up of
`kk_logs.tailing.watch.changes` (inotify events, and a timer at least once a second)::

    async for wake in changes(globs, busy=lambda: tailer.more_to_read,
                              extra_dirs=tailer.directories):
        now = time.time()
        if wake.rescan or now - last_scan >= 1.0:
            events = tailer.scan(now)         # discover; rotation/truncation/deletion
        chunks = tailer.read_round(now)       # bytes, round-robin, bounded per file
        events += tailer.close_finished(now)  # close what is drained (or out of time)

A round reads at most one slice per file, so while `Tailer.more_to_read` says bytes were
left behind, the wake-up source yields again at once (``reason="backlog"``) instead of
waiting for the next file event. Scanning is needed when files may have appeared, moved or
gone (``WakeUp.rescan``), and once a second as a safety net; not on mere writes, which a
read round handles (it also notices a copytruncated file that grew back past its offset).

``now`` is wall-clock seconds (``time.time()``): ``ignore_older`` compares it with file
modification times. The tailer never reads a clock and never sleeps.

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

*Fairness.* `read_round` gives each file at most ``slice_bytes`` per round, starting where
the previous round's budget ran out, so a noisy container delays the others by at most one
slice and cannot starve them. Deleted files go first: they are on a clock.

*Pause.* When the unacknowledged window is full the app calls `pause`: `read_round` then
returns nothing, while `scan` keeps opening new files and holding rotated and deleted ones,
so their bytes remain readable after `resume`, which continues exactly at each file's
offset. The one limit: a deleted file whose grace period ends while reading is paused (or
too slow) is closed and its unread bytes are counted as ``bytes_missed``. That, the
copytruncate without a visible copy above, and files created and deleted between two
scans (never seen) are the only ways bytes are lost; the first two are counted and
logged.

*Events.* `scan` and `close_finished` return what happened to files; chunks carry their
identity. The app keeps one parser per ``chunk.identity.key``, made at that identity's
first chunk (``make_parser(offset=chunk.offset)``); on `FileTruncated` or `FileClosed` it
calls ``flush_all()`` on that identity's parser and drops it. `FileOpened` and
`FileRotated` are informational. A truncation is reported by the `scan` after its
detection, and the file is not read again before that, so the old identity's parser is
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
from collections import OrderedDict
from collections.abc import Callable
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
    """New files are not opened beyond this many open descriptors (counted as errors)."""
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

    @property
    def lag_bytes(self) -> int:
        """Bytes written but not read yet (as of the last look at the file)."""
        return max(0, self.size - self.offset)


@dataclass(slots=True)
class TailerStats:
    """Counters (``*_total`` semantics unless noted) and per-file gauges."""

    files_open: int = 0
    """Gauge: open descriptors."""
    files_opened: int = 0
    files_identified: int = 0
    bytes_read: int = 0
    rotations: int = 0
    truncations: int = 0
    files_closed_deleted: int = 0
    """Deleted files closed: drained, or abandoned at the end of the grace period."""
    files_closed_grace_expired: int = 0
    files_closed_rotated: int = 0
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
    """An open file and what the tailer knows about it."""

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
    mtime_ns: int = 0
    source_path: str = ""
    """Where the bytes are read from when that is not ``path`` (a rotated sibling, a copy)."""
    tail: bytes = b""
    """The last bytes read before ``offset``: a rewrite shows as a change there."""
    from_zero: bool = False
    """Identify afresh at offset 0, ignoring the offset store (after a truncation)."""
    hold: bool = False
    """Truncated, not yet reported by `Tailer.scan`: no new identity, no reads until then."""


_FINISHED_MEMORY = 16384


def _error_kind(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission_denied"
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        return "too_many_open_files"
    return errno.errorcode.get(exc.errno or 0, "os_error").lower()


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
        # Rotated siblings decided against (history, copies, read to their end), by their
        # size and mtime then: not opened again until either changes.
        self._settled: dict[FileKey, tuple[int, int]] = {}
        self._files: dict[FileKey, _Tracked] = {}
        self._cursor = 0
        self._paused = False
        self._more = False
        self._pending: list[TailEvent] = []
        # End offsets of files closed in this process, by identity key, so a file that
        # is reached again (a glob matching rotated names, say) is not re-read.
        self._finished: OrderedDict[str, int] = OrderedDict()
        # path -> (failures so far, next attempt time, last error kind)
        self._retry: dict[str, tuple[int, float, str]] = {}
        self._stats = TailerStats()

    # -- inputs -------------------------------------------------------------------

    def pause(self) -> None:
        """Stop reading (the unacknowledged window is full); bookkeeping goes on."""
        self._paused = True

    def resume(self) -> None:
        """Read again, from where each file stopped."""
        self._paused = False
        self._more = True  # whatever piled up while paused is waiting

    @property
    def more_to_read(self) -> bool:
        """Whether the last round left bytes behind (a full slice, or the budget ran out).

        The app should then read again soon without waiting for a file event: pass this
        to `kk_logs.tailing.watch.changes` as ``busy``. Always false while paused.
        """
        return self._more and not self._paused

    @property
    def paused(self) -> bool:
        """Whether `read_round` is currently returning nothing."""
        return self._paused

    @property
    def look_mark(self) -> float | None:
        """A time before which every file this tailer means to read has been reported
        (`FileOpened`): the app persists it, with those files' identities, as the next
        process's ``last_look``. It is the last scan's time, held back by files opened
        but not identified yet (they could be rotated away before they are)."""
        return self._look_mark

    def scan(self, now: float) -> list[TailEvent]:
        """Discover files and check every open one; return what happened since last time.

        Opens newly matched files (even while paused, so their bytes survive deletion),
        notices rotations, truncations and deletions, identifies files whose first line
        is now complete, then closes what is finished (`close_finished`).
        """
        events, self._pending = self._pending, []
        result = discovery.scan_paths(self._config.globs)
        for path, exc in result.errors:
            self._failed(path, exc, now, "stat")
        decision = discovery.decide(
            result,
            now=now,
            exclude=self._exclude,
            ignore_older_s=self._config.ignore_older_s,
            known=self._files.keys(),
        )
        self._stats.skipped_compressed = decision.compressed
        self._stats.skipped_excluded = decision.excluded
        self._stats.skipped_too_old = decision.too_old

        for key, tracked in self._files.items():
            found = decision.files.get(key)
            if found is not None:
                tracked.path = found.real_path
                tracked.reachable = True
                tracked.unreachable_since = None
            elif tracked.reachable:
                tracked.reachable = False
                tracked.unreachable_since = now
        for key, found in decision.files.items():
            if key not in self._files:
                self._open(found, now)
        self._follow_rotated(decision, now)
        for tracked in list(self._files.values()):
            self._check(tracked, now, events)
        events.extend(self.close_finished(now))
        self._last_look = now
        unidentified = [t.opened_at for t in self._files.values() if t.identity is None]
        self._look_mark = min([now, *unidentified])
        return events

    def read_round(self, now: float, budget_bytes: int | None = None) -> list[Chunk]:
        """Read up to ``slice_bytes`` from each file with new bytes, round-robin.

        ``budget_bytes`` caps the whole round; the next round starts with the file the
        budget ran out on. Returns nothing while paused.
        """
        self._more = False
        if self._paused or not self._files:
            return []
        slice_bytes = self._config.slice_bytes
        remaining = budget_bytes
        files = list(self._files.values())
        start = self._cursor % len(files)
        order = files[start:] + files[:start]
        # Deleted files first: they are on the grace clock.
        order.sort(key=lambda t: t.deleted_at is None)
        chunks: list[Chunk] = []
        served = 0
        for tracked in order:
            if remaining is not None and remaining <= 0:
                self._more = True
                break
            served += 1
            if tracked.hold:
                continue
            if tracked.identity is None and not self._identify(
                tracked, now, final=tracked.deleted_at is not None
            ):
                continue
            want = slice_bytes if remaining is None else min(slice_bytes, remaining)
            chunk = self._read(tracked, want, now)
            if chunk is not None:
                chunks.append(chunk)
                if len(chunk.data) == want:
                    self._more = True  # a full slice: probably more behind it
                if remaining is not None:
                    remaining -= len(chunk.data)
        # The next round starts with the first file this one did not serve; after a
        # full round, with the next file, so every file takes its turn at the head.
        self._cursor = start + (served if served < len(files) else 1)
        return chunks

    def close_finished(self, now: float) -> list[FileClosed]:
        """Close deleted files that are drained or past their grace period, and rotated
        files that are drained and idle; count what could not be read."""
        closed: list[FileClosed] = []
        cfg = self._config
        for tracked in list(self._files.values()):
            if tracked.reachable and tracked.deleted_at is None:
                continue
            if not self._refresh(tracked, now):
                continue
            drained = tracked.offset >= tracked.size
            if tracked.deleted_at is not None:
                if drained and not (tracked.identity is None and tracked.size > 0):
                    closed.append(self._close(tracked, "deleted"))
                elif now - tracked.deleted_at >= cfg.deleted_grace_s:
                    closed.append(self._close(tracked, "grace_expired"))
            elif (
                drained
                and tracked.unreachable_since is not None
                and now - max(tracked.unreachable_since, tracked.last_data_at) >= cfg.rotate_wait_s
            ):
                closed.append(self._close(tracked, "rotated"))
        return closed

    def close(self) -> list[FileClosed]:
        """Close every file (shutdown); offsets stay wherever the offset store has them."""
        return [self._close(t, "shutdown") for t in list(self._files.values())]

    # -- outputs ------------------------------------------------------------------

    def stats(self) -> TailerStats:
        """A snapshot of the counters and per-file state."""
        s = self._stats
        return TailerStats(
            files_open=len(self._files),
            files_opened=s.files_opened,
            files_identified=s.files_identified,
            bytes_read=s.bytes_read,
            rotations=s.rotations,
            truncations=s.truncations,
            files_closed_deleted=s.files_closed_deleted,
            files_closed_grace_expired=s.files_closed_grace_expired,
            files_closed_rotated=s.files_closed_rotated,
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
                )
                for t in self._files.values()
            ],
        )

    def directories(self) -> set[str]:
        """Directories of the open files (for the watcher: symlink targets live there)."""
        return {os.path.dirname(t.path) for t in self._files.values()}

    # -- internals ----------------------------------------------------------------

    def _open(self, found: discovery.Found, now: float) -> None:
        path = found.real_path
        retry = self._retry.get(path)
        if retry is not None and now < retry[1]:
            return
        if len(self._files) >= self._config.max_open_files:
            self._failed(path, OSError(errno.EMFILE, "max_open_files reached"), now, "open")
            return
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return  # gone between the scan and the open: it was never seen, nothing read
        except OSError as exc:
            self._failed(path, exc, now, "open")
            return
        try:
            st = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            self._failed(path, exc, now, "open")
            return
        key = (st.st_dev, st.st_ino)
        if key in self._files:
            # The path now names a file we already hold (replaced since the stat).
            os.close(fd)
            return
        self._retry.pop(path, None)
        self._identify(self._adopt(fd, st, path, now), now, final=False)

    def _adopt(self, fd: int, st: os.stat_result, path: str, now: float, **state: Any) -> _Tracked:
        """Track an open file: ``path`` is the one it is read as (the live path for a
        rotated sibling or a copy, whose ``source_path`` says where it really is)."""
        key = (st.st_dev, st.st_ino)
        tracked = _Tracked(
            key=key,
            fd=fd,
            path=path,
            size=st.st_size,
            last_data_at=now,
            opened_at=now,
            mtime_ns=st.st_mtime_ns,
            **state,
        )
        if state.get("source_path"):
            tracked.reachable = False
            tracked.unreachable_since = now
        self._files[key] = tracked
        self._stats.files_opened += 1
        return tracked

    # -- rotated siblings ---------------------------------------------------------

    def _follow_rotated(self, decision: discovery.Decision, now: float) -> None:
        """Open the rotated siblings of the live files that nobody read to their end
        (module docstring, "Rotated files nobody held open"), oldest first."""
        live = [found.real_path for found in decision.files.values()]
        seen: set[FileKey] = set()
        for sibling in discovery.scan_rotated(live):
            seen.add(sibling.key)
            if sibling.key in self._files:
                continue
            if self._settled.get(sibling.key) == (sibling.size, sibling.mtime_ns):
                continue
            if self._exclude(sibling.path) or self._exclude(sibling.live_path):
                continue
            if len(self._files) >= self._config.max_open_files:
                self._failed(
                    sibling.path, OSError(errno.EMFILE, "max_open_files reached"), now, "open"
                )
                continue
            self._open_rotated(sibling, now)
        self._settled = {k: v for k, v in self._settled.items() if k in seen}

    def _open_rotated(self, sibling: discovery.RotatedSibling, now: float) -> None:
        try:
            fd = os.open(sibling.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return  # deleted meanwhile: nothing held it, nothing to read
        except OSError as exc:
            self._failed(sibling.path, exc, now, "open")
            return
        try:
            st = os.fstat(fd)
            head = os.pread(fd, FINGERPRINT_MAX_BYTES, 0)
        except OSError as exc:
            os.close(fd)
            self._failed(sibling.path, exc, now, "read")
            return
        key = (st.st_dev, st.st_ino)
        if key in self._files:
            os.close(fd)  # renamed again since the listing, and already held
            return
        if not self._wanted_sibling(key, head, st, now):
            os.close(fd)
            self._settled[key] = (st.st_size, st.st_mtime_ns)
            return
        tracked = self._adopt(fd, st, sibling.live_path, now, source_path=sibling.path)
        self._identify(tracked, now, final=False)

    def _wanted_sibling(self, key: FileKey, head: bytes, st: os.stat_result, now: float) -> bool:
        """Whether a rotated sibling (not held) still has bytes for us."""
        identity = identify(key[0], key[1], head)
        reference = now if self._last_look is None else self._last_look
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
        held = (t.identity for t in self._files.values() if t.identity is not None)
        if any(identity.fingerprint == fp for identity in held):
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
        return any(
            t.identity is not None and t.identity.key == identity.key for t in self._files.values()
        )

    def _identify(self, tracked: _Tracked, now: float, *, final: bool) -> bool:
        """Fingerprint the file if its first line is complete; pick its start offset."""
        try:
            head = os.pread(tracked.fd, FINGERPRINT_MAX_BYTES, 0)
        except OSError as exc:
            self._failed(tracked.path, exc, now, "read")
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
                self._refresh(tracked, now)
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
        tracked.identity = identity
        tracked.offset = offset
        tracked.tail = b""
        tracked.from_zero = False
        self._stats.files_identified += 1
        self._pending.append(FileOpened(identity, tracked.path, offset))
        return True

    def _refresh(self, tracked: _Tracked, now: float) -> bool:
        """fstat the open file: size and deletion. False if that failed."""
        try:
            st = os.fstat(tracked.fd)
        except OSError as exc:
            self._failed(tracked.path, exc, now, "stat")
            return False
        tracked.size = st.st_size
        tracked.mtime_ns = st.st_mtime_ns
        if st.st_nlink == 0 and tracked.deleted_at is None:
            tracked.deleted_at = now
            tracked.reachable = False
            if tracked.unreachable_since is None:
                tracked.unreachable_since = now
        return True

    def _check(self, tracked: _Tracked, now: float, events: list[TailEvent]) -> None:
        last_size = tracked.size
        if not self._refresh(tracked, now):
            return
        if not tracked.reachable and tracked.deleted_at is None and not tracked.rotated:
            # Renamed away from every glob but still on disk: kubelet rotation.
            tracked.rotated = True
            self._stats.rotations += 1
            events.append(FileRotated(tracked.identity, tracked.path))
        if tracked.identity is not None and (
            tracked.size < tracked.offset or not self._still_same(tracked, now)
        ):
            self._truncated(tracked, now, last_size)
        if tracked.identity is None:
            # FileTruncated (if any) is queued before the new identity's FileOpened, and
            # both reach the app before the new identity's first chunk.
            tracked.hold = False
            self._identify(tracked, now, final=tracked.deleted_at is not None)
        events.extend(self._pending)
        self._pending.clear()

    def _head_matches(self, tracked: _Tracked, now: float) -> bool:
        identity = tracked.identity
        if identity is None:
            return True
        try:
            head = os.pread(tracked.fd, identity.head_len, 0)
        except OSError as exc:
            self._failed(tracked.path, exc, now, "read")
            return True  # can't tell; the read error is counted, try again later
        return len(head) == identity.head_len and fingerprint(head) == identity.fingerprint

    def _still_same(self, tracked: _Tracked, now: float) -> bool:
        """Whether the file still holds what we read: its first line (the fingerprint)
        and the bytes just before our offset. A file truncated and rewritten past our
        offset (with the same first line, even) fails one of the two."""
        tail = tracked.tail
        if not self._head_matches(tracked, now):
            return False
        if not tail:
            return True
        try:
            before = os.pread(tracked.fd, len(tail), tracked.offset - len(tail))
        except OSError as exc:
            self._failed(tracked.path, exc, now, "read")
            return True
        return before == tail

    def _truncated(self, tracked: _Tracked, now: float, last_size: int) -> None:
        identity = tracked.identity
        assert identity is not None
        copy = self._open_copy(tracked, now)
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
        tracked.identity = None
        tracked.offset = 0
        tracked.tail = b""
        tracked.from_zero = True
        tracked.hold = True

    def _open_copy(self, tracked: _Tracked, now: float) -> _Tracked | None:
        """Find the copy of a truncated file beside it, newest rotation first, and take
        over its identity there: same first line, and at least our offset long."""
        identity = tracked.identity
        assert identity is not None
        live_path = tracked.source_path or tracked.path
        candidates = [
            s
            for s in discovery.scan_rotated([live_path])
            if s.key != tracked.key and s.key not in self._files and s.size >= tracked.offset
        ]
        for sibling in reversed(candidates):
            try:
                fd = os.open(sibling.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
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
                or fingerprint(head) != identity.fingerprint
                or len(head) != identity.head_len
                or before != tracked.tail
                or st.st_size < tracked.offset
            ):
                os.close(fd)
                continue
            return self._adopt(
                fd,
                st,
                tracked.path,
                now,
                source_path=sibling.path,
                identity=identity,
                offset=tracked.offset,
                rotated=True,
                tail=tracked.tail,
            )
        return None

    def _read(self, tracked: _Tracked, want: int, now: float) -> Chunk | None:
        identity = tracked.identity
        assert identity is not None
        # Read the last bytes before our offset along with the new ones, so a file that
        # was truncated and grew back past our offset shows in the same system call.
        tail = tracked.tail
        try:
            data = os.pread(tracked.fd, want + len(tail), tracked.offset - len(tail))
        except OSError as exc:
            self._failed(tracked.path, exc, now, "read")
            return None
        if len(data) < len(tail) or data[: len(tail)] != tail:
            self._truncated(tracked, now, tracked.size)  # shorter than our offset, or rewritten
            return None
        if len(data) == len(tail):
            return None
        # A copytruncated file may have grown back past our offset: check that it is
        # still the file we identified before passing its bytes off as that file's.
        if not self._head_matches(tracked, now):
            self._truncated(tracked, now, tracked.size)
            return None
        data = data[len(tail) :]
        chunk = Chunk(identity, tracked.path, tracked.offset, data)
        tracked.offset += len(data)
        tracked.tail = (tail + data)[-_TAIL_CHECK_BYTES:]
        tracked.size = max(tracked.size, tracked.offset)
        tracked.last_data_at = now
        self._stats.bytes_read += len(data)
        return chunk

    def _close(self, tracked: _Tracked, reason: str) -> FileClosed:
        del self._files[tracked.key]
        try:
            os.close(tracked.fd)
        except OSError as exc:
            self._count_error(_error_kind(exc))
        missed = 0
        if reason == "grace_expired":
            missed = max(0, tracked.size - tracked.offset)
            self._stats.files_closed_grace_expired += 1
            self._stats.bytes_missed += missed
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
                grace_s=self._config.deleted_grace_s,
            )
        if reason in ("deleted", "grace_expired"):
            self._stats.files_closed_deleted += 1
        elif reason == "rotated":
            self._stats.files_closed_rotated += 1
        if reason == "rotated" or tracked.source_path:
            # Rotated siblings come up in every scan: not opened again unless they change.
            self._settled[tracked.key] = (tracked.size, tracked.mtime_ns)
        if tracked.identity is not None:
            self._finished[tracked.identity.key] = tracked.offset
            self._finished.move_to_end(tracked.identity.key)
            while len(self._finished) > _FINISHED_MEMORY:
                self._finished.popitem(last=False)
        return FileClosed(tracked.identity, tracked.path, tracked.offset, reason, missed)

    def _count_error(self, kind: str) -> None:
        self._stats.errors[kind] = self._stats.errors.get(kind, 0) + 1

    def _failed(self, path: str, exc: OSError, now: float, op: str) -> None:
        """Count a failure, log it once per path and kind, and back off retries."""
        kind = _error_kind(exc)
        self._count_error(kind)
        failures, _, last_kind = self._retry.get(path, (0, 0.0, ""))
        delay = min(self._config.retry_max_s, float(2**failures))
        self._retry[path] = (failures + 1, now + delay, kind)
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
