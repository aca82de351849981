"""A Docker engine of the test's own, and compose runs against it.

The engine is Debian's ``dockerd`` started as test-recipes.md (sections 6 and 9) describes:
``--bridge=none`` and no iptables, so it creates no network on a private address range; its
socket and exec root are in a fresh short directory, and it is stopped (and its netns mount
removed) afterwards. Its image store is kept between runs in ``/var/tmp`` (one per checkout,
behind a lock), so the locally built base image is made once per machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kk_receiver.testing import wait_until

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("dockerd", "docker", "docker-compose", "debootstrap")


def missing_prerequisites() -> str | None:
    """Why the engine cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (dockerd, debootstrap)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return (
            f"{', '.join(missing)} not installed (scripts/install-system-packages installs "
            "docker.io, docker-compose and debootstrap)"
        )
    return None


@dataclass(frozen=True)
class Engine:
    """A running dockerd: ``environ`` points the docker and docker-compose clients at it."""

    environ: dict[str, str]

    def run(self, *command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=REPO,
            env=self.environ,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )


@contextlib.contextmanager
def docker_engine() -> Iterator[Engine]:
    data_root = Path("/var/tmp") / f"kk-docker-{hashlib.sha256(bytes(REPO)).hexdigest()[:10]}"
    data_root.mkdir(parents=True, exist_ok=True)
    # The shims create these even though containerd's state is under the exec root.
    shim_dirs = (Path("/run/containerd/s"), Path("/run/containerd/runc"), Path("/run/containerd"))
    created_by_us = [path for path in shim_dirs if not path.exists()]
    with (
        (data_root / ".lock").open("w") as lock,
        tempfile.TemporaryDirectory(prefix="kkd", dir="/tmp") as scratch,
    ):
        fcntl.flock(lock, fcntl.LOCK_EX)  # one engine per image store
        run_dir = Path(scratch)
        sock, pidfile = run_dir / "docker.sock", run_dir / "dockerd.pid"
        log = (run_dir / "dockerd.log").open("wb")
        daemon = subprocess.Popen(
            [
                "dockerd",
                f"--data-root={data_root / 'data'}",
                f"--exec-root={run_dir / 'exec'}",
                f"--pidfile={pidfile}",
                f"--host=unix://{sock}",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        engine = Engine({**os.environ, "DOCKER_HOST": f"unix://{sock}"})
        try:
            wait_until(
                lambda: daemon.poll() is not None or engine.run("docker", "info").returncode == 0,
                timeout=60,
                interval=0.2,
                message="dockerd answering",
            )
            assert daemon.poll() is None, (run_dir / "dockerd.log").read_text()
            yield engine
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            log.close()
            subprocess.run(["umount", str(run_dir / "exec" / "netns" / "default")], check=False)
            for path in created_by_us:
                with contextlib.suppress(OSError):
                    path.rmdir()  # only if empty


def free_port() -> int:
    """A port free on both TCP and UDP of 127.0.0.1 (HTTP/3 uses the HTTPS port's number)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - a local test URL
        return json.loads(reply.read())


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def stored_records(stats_url: str, kind: str) -> list[dict[str, Any]]:
    """Every record of ``kind`` the receiver stored, in arrival order (all pages)."""
    records: list[dict[str, Any]] = []
    while True:
        page = get_json(
            f"{stats_url}/api/v1/records?kind={kind}&after={len(records) and records[-1]['seq']}"
        )
        if not page["records"]:
            return records
        records.extend(page["records"])
