"""How many log files the logs service may hold open: the pool's size, from the limit.

A process gets ``RLIMIT_NOFILE`` descriptors. The log files must leave room for what the
service needs besides them, or the ZeroMQ sockets cannot reconnect to a restarted
shipper, SQLite cannot open its journal and inotify cannot start. Counted on a running
logs service: 3 standard streams, asyncio's epoll and self-pipe (3), inotify (1), the
offset store (``offsets.db`` with its ``-wal`` and ``-shm``: 3), ZeroMQ (its I/O thread's
epoll and mailboxes and, per socket, a mailbox and the connection, with a second one
while reconnecting: about 12), the metadata client (list and watch connections for pods
and Services, about 4) and files opened for a moment (heartbeat, /proc): about 30 in
all. `DESCRIPTOR_RESERVE` keeps twice that.

The formula (`open_files_pool`)::

    pool = RLIMIT_NOFILE soft limit - DESCRIPTOR_RESERVE
           - SYSTEM_LOGS_MAX_OPEN_FILES (when system logs are read)

``logs.max_open_files``, when set, is used instead, but never above that. The soft limit
is first raised to the hard limit (`raise_soft_limit`): the soft limit is the default a
runtime hands out (often 1,024), the hard one what the node allows a container.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

__all__ = [
    "DESCRIPTOR_RESERVE",
    "SYSTEM_LOGS_MAX_OPEN_FILES",
    "OpenFilesPool",
    "open_files_pool",
    "raise_soft_limit",
]

DESCRIPTOR_RESERVE = 64
"""Descriptors kept for everything but log files (module docstring)."""

SYSTEM_LOGS_MAX_OPEN_FILES = 16
"""Descriptors of the system-logs tailer (a handful of node files)."""

_MIN_POOL = 1
_UNLIMITED = 1 << 20
"""Stands for an unlimited descriptor limit (Linux caps it at ``fs.nr_open``, 1,048,576
by default)."""


@dataclass(frozen=True, slots=True)
class OpenFilesPool:
    """The pool of descriptors for container log files, and where its size came from."""

    size: int
    limit: int
    """The soft ``RLIMIT_NOFILE`` it was derived from."""
    configured: int | None
    lowered: bool
    """``configured`` was larger than the limit allows and was lowered to ``size``."""


def open_files_pool(
    soft_limit: int, configured: int | None, *, system_logs: bool = False
) -> OpenFilesPool:
    """The pool's size for a process whose soft descriptor limit is ``soft_limit``."""
    allowed = soft_limit - DESCRIPTOR_RESERVE
    if system_logs:
        allowed -= SYSTEM_LOGS_MAX_OPEN_FILES
    allowed = max(_MIN_POOL, allowed)
    if configured is None:
        return OpenFilesPool(allowed, soft_limit, None, lowered=False)
    return OpenFilesPool(min(configured, allowed), soft_limit, configured, configured > allowed)


def raise_soft_limit() -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit; return the soft
    limit in force afterwards (unchanged if raising is refused)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _UNLIMITED
    if soft < hard:
        target = _UNLIMITED if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft
