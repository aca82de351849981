"""The heartbeat file and the shell probe that reads it (run for real with ``sh``)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from kk_common.heartbeat import heartbeat_age, heartbeat_path, probe_command, touch_heartbeat


def probe_passes(ipc_dir: Path, component: str, max_age_s: int = 60) -> bool:
    command = probe_command(ipc_dir, component, max_age_s)
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


def test_a_beat_creates_the_file_and_then_moves_its_time(tmp_path: Path) -> None:
    path = heartbeat_path(tmp_path, "shipper")
    assert path == tmp_path / "shipper.alive"
    assert heartbeat_age(tmp_path, "shipper", now=time.time()) is None

    assert touch_heartbeat(tmp_path, "shipper")
    os.utime(path, (1000.0, 1000.0))  # as if the last beat was long ago
    assert heartbeat_age(tmp_path, "shipper", now=1030.0) == 30.0

    assert touch_heartbeat(tmp_path, "shipper")
    assert path.stat().st_mtime > 1000.0


def test_the_probe_passes_on_a_fresh_beat_and_fails_on_an_old_or_missing_one(
    tmp_path: Path,
) -> None:
    assert not probe_passes(tmp_path, "logs")  # never beaten

    touch_heartbeat(tmp_path, "logs")
    assert probe_passes(tmp_path, "logs")

    old = time.time() - 61
    os.utime(heartbeat_path(tmp_path, "logs"), (old, old))
    assert not probe_passes(tmp_path, "logs")
    assert probe_passes(tmp_path, "logs", max_age_s=120)


def test_a_beat_that_cannot_be_written_is_reported_not_raised(tmp_path: Path) -> None:
    missing = tmp_path / "not-there"
    assert touch_heartbeat(missing, "shipper") is False
    assert touch_heartbeat(missing, "shipper") is False
    missing.mkdir()
    assert touch_heartbeat(missing, "shipper") is True
