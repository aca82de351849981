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

*Truncation* (copytruncate). A file that shrinks below the read offset, or whose first
line no longer matches its fingerprint, was truncated and rewritten. Its old identity
ends (`FileTruncated`: the app flushes that file's parser); the file is identified afresh
and read from 0. The bytes between our offset and the size it had at the last look were
never read: that estimate is added to ``bytes_missed``. copytruncate always has such a
window (the writer keeps writing between the copy and the truncate): use rename rotation.
Before returning a chunk, `read_round` re-reads the first line, so content that a
truncated file grew back past our offset is not passed off as the old file's.

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
copytruncate window above, and files created and deleted between two scans (never seen)
are the only ways bytes are lost; the first two are counted and logged.

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

from kk_common.jsonlog import log_event
from kk_logs.tailing import discovery
from kk_logs.tailing.discovery import DEFAULT_GLOBS, FileKey
from kk_logs.tailing.identity import FINGERPRINT_MAX_BYTES, FileIdentity, fingerprint, identify

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
    """``identity`` ended at ``offset`` because the file was truncated; flush its parser."""

    identity: FileIdentity
    path: str
    offset: int
    missed_bytes: int


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
    """

    def __init__(
        self, config: TailerConfig | None = None, *, start_offset: StartOffset | None = None
    ) -> None:
        self._config = config or TailerConfig()
        self._exclude = discovery.compile_globs(self._config.exclude)
        self._start_offset = start_offset
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
        for tracked in list(self._files.values()):
            self._check(tracked, now, events)
        events.extend(self.close_finished(now))
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
        tracked = _Tracked(key=key, fd=fd, path=path, size=st.st_size, last_data_at=now)
        self._files[key] = tracked
        self._stats.files_opened += 1
        self._identify(tracked, now, final=False)

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
        offset = 0
        if not tracked.from_zero:
            stored = self._start_offset(identity) if self._start_offset else None
            offset = max(stored or 0, self._finished.get(identity.key, 0))
            if offset > max(tracked.size, len(head)):
                self._refresh(tracked, now)
                if offset > tracked.size:
                    # Truncated while we were not looking (agent restart): start over.
                    self._stats.truncations += 1
                    log_event(
                        _log,
                        logging.WARNING,
                        "tailer_file_truncated",
                        path=tracked.path,
                        identity=identity.key,
                        offset=offset,
                        size=tracked.size,
                    )
                    offset = 0
        tracked.identity = identity
        tracked.offset = offset
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
            tracked.size < tracked.offset or not self._head_matches(tracked, now)
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

    def _truncated(self, tracked: _Tracked, now: float, last_size: int) -> None:
        identity = tracked.identity
        assert identity is not None
        # What the file held past our offset at the previous look was never read: a
        # lower bound of the loss (the writer may have added more before the truncate).
        missed = max(0, last_size - tracked.offset)
        self._stats.truncations += 1
        self._stats.bytes_missed += missed
        log_event(
            _log,
            logging.WARNING,
            "tailer_file_truncated",
            path=tracked.path,
            identity=identity.key,
            offset=tracked.offset,
            size=tracked.size,
            missed_bytes=missed,
        )
        self._pending.append(FileTruncated(identity, tracked.path, tracked.offset, missed))
        self._finished.pop(identity.key, None)
        tracked.identity = None
        tracked.offset = 0
        tracked.from_zero = True
        tracked.hold = True

    def _read(self, tracked: _Tracked, want: int, now: float) -> Chunk | None:
        identity = tracked.identity
        assert identity is not None
        try:
            data = os.pread(tracked.fd, want, tracked.offset)
        except OSError as exc:
            self._failed(tracked.path, exc, now, "read")
            return None
        if not data:
            return None
        # A copytruncated file may have grown back past our offset: check that it is
        # still the file we identified before passing its bytes off as that file's.
        if not self._head_matches(tracked, now):
            self._truncated(tracked, now, tracked.size)
            return None
        chunk = Chunk(identity, tracked.path, tracked.offset, data)
        tracked.offset += len(data)
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
