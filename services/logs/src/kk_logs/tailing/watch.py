"""Wake-ups for the tailer: inotify on the log directories, with a timer as safety net.

`changes` is an async iterator that yields a `WakeUp` whenever something happened in a
watched directory (a file created, renamed, deleted or written) and at least every
``rescan_interval_s``; the app answers each with `Tailer.read_round`, and with `Tailer.scan`
first when `WakeUp.rescan` says the set of files may have changed. Writes alone do not:
`WakeUp.written` names the files written (real paths), and only those are read
(`Tailer.changed`). Scanning globs and resolving every path on each write, or reading
every file on every wake-up, made a node of 500 quiet files cost the logs service most of
a core. Wake-ups are coalesced: at most one per ``min_interval_s``, however noisy the files.

Why directory watches only: inotify on a directory reports events for the entries in it,
writes included, so one watch per container directory (a few hundred on a node) covers
every log file and its rotations without a watch per file. The directories come from the
globs (`kk_logs.tailing.discovery.watch_dirs`) plus, through ``extra_dirs``, the real
directories of tailed files reached through symlinks. New pod and container directories
show up as ``IN_CREATE | IN_ISDIR`` on their parent and are watched at once; the glob is
re-expanded after the watch is added, so a file created in the gap is still found by the
tailer's scan that follows the wake-up.

inotify is reached through ``ctypes`` (libc's ``inotify_init1``/``inotify_add_watch``),
as the stdlib offers no binding and the few calls needed do not justify a dependency.
inotify is an optimisation, never a requirement: when it is unavailable (not Linux, no
instance left, watch limit ``fs.inotify.max_user_watches`` reached, or a queue overflow
made events unreliable) the iterator still yields every ``poll_interval_s`` (a rescan,
which finds grown files by their size) or, for the directories beyond the watch limit,
every ``rescan_interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import struct
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass

from kk_common.jsonlog import log_event
from kk_logs.tailing.discovery import watch_dirs

__all__ = ["DirectoryWatcher", "WakeUp", "Wakeups", "changes", "inotify_available"]

_log = logging.getLogger(__name__)

# <sys/inotify.h>
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

_MASK = (
    IN_MODIFY
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)


_FULL_SYNC_TICKS = 6
"""Every this many timer ticks the directory globs are expanded again (see `Wakeups`)."""

_WRITE_EVENTS = IN_MODIFY | IN_CLOSE_WRITE
"""Bytes written to a file (or it was truncated)."""

_ENTRY_EVENTS = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF
"""Events that change which files exist (as opposed to ``IN_MODIFY``: bytes written)."""


@dataclass(frozen=True, slots=True)
class WakeUp:
    """Why the iterator woke up: ``entries`` (inotify: files or directories created,
    renamed or deleted), ``write`` (inotify: only bytes written), ``timer`` (the
    safety-net tick or, without inotify, the poll), ``backlog`` (bytes left behind) or
    ``overflow`` (inotify lost events; scan everything). ``written``: the files inotify
    saw written since the last wake-up (real paths; whatever the reason)."""

    reason: str
    written: frozenset[str] = frozenset()

    @property
    def rescan(self) -> bool:
        """Whether the set of files may have changed: scan before reading."""
        return self.reason in ("entries", "timer", "overflow")


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        libc.inotify_init1  # noqa: B018 - probe the symbol
        libc.inotify_add_watch  # noqa: B018
        libc.inotify_rm_watch  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def inotify_available() -> bool:
    """Whether this system offers inotify (and an instance can be created now)."""
    libc = _libc()
    if libc is None:
        return False
    fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        return False
    os.close(fd)
    return True


class DirectoryWatcher:
    """An inotify instance with one watch per directory; falls back to nothing.

    `sync` makes the watch set match the directories wanted now; `read_events` drains
    the queue and says whether anything happened and whether the directory tree changed.
    """

    def __init__(self) -> None:
        self._libc = _libc()
        self.fd = -1
        self._by_wd: dict[int, str] = {}
        self._by_path: dict[str, int] = {}
        self._real_by_wd: dict[int, str] = {}
        """Each watched directory with symlinks resolved: written files are named by
        their real path, as the tailer knows them."""
        self.written: set[str] = set()
        """Files written (``IN_MODIFY``/``IN_CLOSE_WRITE``) since the caller last took them."""
        self.full = False
        """The watch limit was hit: some directories are only covered by the timer."""
        if self._libc is not None:
            self.fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            if self.fd < 0:
                err = ctypes.get_errno()
                log_event(
                    _log,
                    logging.WARNING,
                    "watch_inotify_unavailable",
                    error_code=errno.errorcode.get(err, str(err)).lower(),
                )

    @property
    def active(self) -> bool:
        """Whether inotify is in use."""
        return self.fd >= 0

    def sync(self, dirs: Iterable[str], *, drop_others: bool = True) -> None:
        """Watch every directory in ``dirs`` (already watched ones are left alone); with
        ``drop_others``, stop watching the rest."""
        if not self.active or self._libc is None:
            return
        wanted = set(dirs)
        for path in wanted - self._by_path.keys():
            wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), _MASK)
            if wd < 0:
                err = ctypes.get_errno()
                if err == errno.ENOSPC and not self.full:
                    self.full = True
                    log_event(
                        _log,
                        logging.WARNING,
                        "watch_limit_reached",
                        watches=len(self._by_path),
                        hint="raise fs.inotify.max_user_watches; the timer covers the rest",
                    )
                continue  # ENOENT/ENOTDIR: gone already; the scan will tell
            old = self._by_wd.get(wd)
            if old is not None and old != path:
                # Same directory reached by another name (a rename): keep one entry.
                self._by_path.pop(old, None)
            self._by_wd[wd] = path
            self._by_path[path] = wd
            self._real_by_wd[wd] = os.path.realpath(path)
        for path in self._by_path.keys() - wanted if drop_others else ():
            wd = self._by_path.pop(path)
            self._by_wd.pop(wd, None)
            self._real_by_wd.pop(wd, None)
            self._libc.inotify_rm_watch(self.fd, wd)

    def read_events(self) -> tuple[bool, bool, bool, bool]:
        """Drain the queue: ``(anything happened, directories changed, overflow, entries
        changed)``; entries change when a file or directory is created, renamed or deleted.
        The files written are added to `written`."""
        any_event = tree_changed = overflow = entries = False
        while True:
            try:
                buf = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                break
            if not buf:
                break
            any_event = True
            pos = 0
            while pos + _EVENT.size <= len(buf):
                wd, mask, _cookie, length = _EVENT.unpack_from(buf, pos)
                name_at = pos + _EVENT.size
                pos = name_at + length
                if mask & _WRITE_EVENTS and length and not mask & IN_ISDIR:
                    directory = self._real_by_wd.get(wd)
                    if directory is not None:
                        name = bytes(buf[name_at:pos]).rstrip(b"\0")
                        self.written.add(os.path.join(directory, os.fsdecode(name)))
                if mask & _ENTRY_EVENTS:
                    entries = True
                if mask & IN_Q_OVERFLOW:
                    overflow = tree_changed = True
                elif mask & IN_IGNORED:
                    # The kernel dropped the watch (directory deleted).
                    path = self._by_wd.pop(wd, None)
                    self._real_by_wd.pop(wd, None)
                    if path is not None:
                        self._by_path.pop(path, None)
                elif mask & IN_ISDIR or mask & (IN_DELETE_SELF | IN_MOVE_SELF):
                    tree_changed = True
        return any_event, tree_changed, overflow, entries or tree_changed

    @property
    def watched(self) -> set[str]:
        """The directories watched now."""
        return set(self._by_path)

    def close(self) -> None:
        """Release the inotify instance."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Wakeups:
    """The async iterator behind `changes`; `poke` wakes it from outside (e.g. on resume)."""

    def __init__(
        self,
        globs: Sequence[str],
        *,
        rescan_interval_s: float = 1.0,
        min_interval_s: float = 0.05,
        poll_interval_s: float = 0.25,
        extra_dirs: Callable[[], Iterable[str]] | None = None,
        busy: Callable[[], bool] | None = None,
        use_inotify: bool = True,
    ) -> None:
        self._globs = tuple(globs)
        self._rescan_interval_s = rescan_interval_s
        self._min_interval_s = min_interval_s
        self._poll_interval_s = poll_interval_s
        self._extra_dirs = extra_dirs
        self._busy = busy
        self._use_inotify = use_inotify
        self._woken: asyncio.Event | None = None
        self.mode: str | None = None
        """``"inotify"`` or ``"polling"`` once iteration has started."""

    def poke(self) -> None:
        """Wake the iterator now (call from the event loop's thread)."""
        if self._woken is not None:
            self._woken.set()

    def _wanted(self) -> set[str]:
        dirs = watch_dirs(self._globs)
        if self._extra_dirs is not None:
            dirs.update(self._extra_dirs())
        return dirs

    async def __aiter__(self) -> AsyncIterator[WakeUp]:
        loop = asyncio.get_running_loop()
        watcher = DirectoryWatcher() if self._use_inotify else None
        active = watcher is not None and watcher.active
        woken = self._woken = asyncio.Event()
        state = {"tree": False, "overflow": False, "entries": False}

        listening = False

        def drain() -> bool:
            assert watcher is not None
            any_event, tree, overflow, entries = watcher.read_events()
            state["tree"] = state["tree"] or tree
            state["overflow"] = state["overflow"] or overflow
            state["entries"] = state["entries"] or entries
            return any_event

        def on_readable() -> None:
            nonlocal listening
            if drain():
                woken.set()
                # Until this wake-up is taken, the kernel queues the events: one loop
                # iteration per write (a thousand a second on a busy node) cost more
                # than the reads they announced.
                assert watcher is not None
                loop.remove_reader(watcher.fd)
                listening = False

        def listen() -> None:
            nonlocal listening
            if active and not listening:
                assert watcher is not None
                loop.add_reader(watcher.fd, on_readable)
                listening = True

        if active:
            assert watcher is not None
            watcher.sync(self._wanted())
        self.mode = "inotify" if active else "polling"
        interval = self._rescan_interval_s if active else self._poll_interval_s
        last = last_timer = loop.time()
        ticks = 0
        try:
            yield WakeUp("timer")
            while True:
                if self._busy is not None and self._busy():
                    # Bytes were left behind: read on at once, but let others run first.
                    await asyncio.sleep(0)
                    reason = "backlog"
                else:
                    reason = "event"
                    listen()
                    timeout = max(0.0, last_timer + interval - loop.time())
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                    # cancel() that arrives as the event is set, and the iterator would
                    # then wait on instead of ending (seen as a hung test teardown).
                    try:
                        async with asyncio.timeout(timeout):
                            await woken.wait()
                    except TimeoutError:
                        reason = "timer"
                    woken.clear()
                    # Coalesce: a noisy file must not turn the loop into a busy spin.
                    wait = last + self._min_interval_s - loop.time()
                    if reason == "event" and wait > 0:
                        await asyncio.sleep(wait)
                        woken.clear()
                if loop.time() - last_timer >= interval:
                    reason = "timer" if reason != "backlog" else reason
                    last_timer = loop.time()
                if active and watcher is not None:
                    drain()  # what was queued while the wake-up was coalesced
                    if state["overflow"]:
                        reason = "overflow"
                        log_event(_log, logging.WARNING, "watch_queue_overflow")
                    # Re-expand the directory globs on tree changes, and on every
                    # `_FULL_SYNC_TICKS`-th timer tick (the safety net for anything inotify
                    # did not report: globbing every directory level costs as much as a
                    # scan). Other ticks add the tailer's directories (the scan found them).
                    if reason == "timer":
                        ticks += 1
                    full_tick = reason == "timer" and ticks % _FULL_SYNC_TICKS == 0
                    if state["tree"] or reason == "overflow" or full_tick:
                        watcher.sync(self._wanted())
                    elif reason == "timer" and self._extra_dirs is not None:
                        watcher.sync(self._extra_dirs(), drop_others=False)
                    if reason == "event":
                        reason = "entries" if state["entries"] else "write"
                    state["tree"] = state["overflow"] = state["entries"] = False
                elif reason == "event":
                    reason = "entries"  # poked from outside: look at everything
                last = loop.time()
                written: frozenset[str] = frozenset()
                if watcher is not None and watcher.written:
                    written = frozenset(watcher.written)
                    watcher.written.clear()
                yield WakeUp(reason, written)
        finally:
            self._woken = None
            if listening and watcher is not None:
                with contextlib.suppress(Exception):
                    loop.remove_reader(watcher.fd)
            if watcher is not None:
                watcher.close()


def changes(
    globs: Sequence[str],
    *,
    rescan_interval_s: float = 1.0,
    min_interval_s: float = 0.05,
    poll_interval_s: float = 0.25,
    extra_dirs: Callable[[], Iterable[str]] | None = None,
    busy: Callable[[], bool] | None = None,
    use_inotify: bool = True,
) -> Wakeups:
    """Wake-ups for the tailer: ``async for wake in changes(globs, ...)``.

    Yields a `WakeUp` at once (the startup scan), then on activity in the log
    directories (at most one per ``min_interval_s``) and at least every
    ``rescan_interval_s`` (``reason="timer"``; with inotify unavailable, every
    ``poll_interval_s``, so new files are still found well within a second). While
    ``busy()`` is true (pass ``lambda: tailer.more_to_read``) it yields again immediately
    with ``reason="backlog"``. ``extra_dirs`` adds directories to watch (pass
    `Tailer.directories`: the real directories of files reached through symlinks).
    """
    return Wakeups(
        globs,
        rescan_interval_s=rescan_interval_s,
        min_interval_s=min_interval_s,
        poll_interval_s=poll_interval_s,
        extra_dirs=extra_dirs,
        busy=busy,
        use_inotify=use_inotify,
    )
