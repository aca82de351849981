"""Liveness without a Python interpreter per probe: each container touches its own file.

Every service calls `touch_heartbeat` from its event loop (the telemetry loop), so the
file's modification time is the last moment that loop was turning. The container's
liveness probe is a shell one-liner on the file's age (`probe_command`), run by the
kubelet inside that container: no HTTP server, no Python start-up per period, and no
dependency on another container being up (the shipper stays alive while the health
container restarts).

The files live in the IPC directory (the pod's ``emptyDir``, new for each pod), so a
file left by an earlier pod can never make a new one look alive.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from kk_common.jsonlog import log_event

__all__ = [
    "DEFAULT_MAX_AGE_S",
    "heartbeat_age",
    "heartbeat_path",
    "probe_command",
    "touch_heartbeat",
]

DEFAULT_MAX_AGE_S = 60
"""A heartbeat older than this fails the liveness probe: six missed beats at the default
``shipper.telemetry_interval`` of 10 s, so one slow SQLite call or a long GC pause does not
get a container restarted."""

_log = logging.getLogger("kk.heartbeat")
_failing: set[Path] = set()


def heartbeat_path(ipc_dir: str | Path, component: str) -> Path:
    """``<ipc_dir>/<component>.alive``: the file ``component``'s liveness probe reads."""
    return Path(ipc_dir) / f"{component}.alive"


def touch_heartbeat(ipc_dir: str | Path, component: str) -> bool:
    """Set the heartbeat file's modification time to now (creating it if needed).

    Never raises: a heartbeat that cannot be written must not stop the service (the probe
    then fails and the kubelet restarts the container, which is the right outcome). The
    first failure and the recovery are logged once each; returns whether it worked.
    """
    path = heartbeat_path(ipc_dir, component)
    try:
        try:
            os.utime(path)
        except FileNotFoundError:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            os.close(fd)
    except OSError as exc:
        if path not in _failing:
            _failing.add(path)
            log_event(_log, logging.ERROR, "heartbeat_failed", path=str(path), detail=str(exc))
        return False
    if path in _failing:
        _failing.discard(path)
        log_event(_log, logging.INFO, "heartbeat_recovered", path=str(path))
    return True


def heartbeat_age(ipc_dir: str | Path, component: str, *, now: float) -> float | None:
    """Seconds since the last beat, or None when the file does not exist."""
    try:
        return now - heartbeat_path(ipc_dir, component).stat().st_mtime
    except FileNotFoundError:
        return None


def probe_command(
    ipc_dir: str | Path, component: str, max_age_s: int = DEFAULT_MAX_AGE_S
) -> list[str]:
    """The ``exec`` liveness probe for ``component``'s container (POSIX sh, coreutils).

    Exits 0 while the heartbeat is younger than ``max_age_s`` and non-zero when it is
    older or missing (``stat`` fails, the arithmetic sees an empty value).
    """
    path = heartbeat_path(ipc_dir, component)
    return [
        "sh",
        "-c",
        f'test $(( $(date +%s) - $(stat -c %Y "{path}") )) -lt {max_age_s}',
    ]
