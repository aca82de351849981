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
import sys
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
    namespace: str | None = None
    """The network namespace the engine (and so every container network) lives in; None: the
    host's."""

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


LINK_LOCAL_POOL = "169.254.77.0/24"
"""Where compose's bridge networks get their subnets (/28 each) when the engine has a
network namespace of its own: link-local addresses that exist only inside that namespace,
never on the host (test-recipes.md: no private or public range, no address in the host's
namespace)."""


@contextlib.contextmanager
def network_namespace() -> Iterator[str]:
    """A new, empty network namespace (only ``lo``, up), deleted afterwards."""
    name = f"kkd{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


@contextlib.contextmanager
def docker_engine(namespace: str | None = None) -> Iterator[Engine]:
    """dockerd on the shared image store. With ``namespace`` it runs inside that network
    namespace, with its iptables rules there too and bridge networks from
    `LINK_LOCAL_POOL`: plain ``compose.yaml`` then gets its default bridge network, its
    published ports are that namespace's 127.0.0.1, and the host's network is untouched."""
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
        command = [
            "dockerd",
            f"--data-root={data_root / 'data'}",
            f"--exec-root={run_dir / 'exec'}",
            f"--pidfile={pidfile}",
            f"--host=unix://{sock}",
            "--ip6tables=false",
            "--bridge=none",
        ]
        if namespace is None:
            command.append("--iptables=false")
        else:
            # nsenter, not `ip netns exec`: that also remounts /sys in a new mount
            # namespace, which hides the cgroup mounts dockerd needs.
            command = ["nsenter", f"--net=/run/netns/{namespace}", *command]
            command.append(f"--default-address-pool=base={LINK_LOCAL_POOL},size=28")
        daemon = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        engine = Engine({**os.environ, "DOCKER_HOST": f"unix://{sock}"}, namespace)
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


def fetch(url: str) -> tuple[int | None, str]:
    """GET ``url``: the status (None when nothing answered) and the body."""
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - a local test URL
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return None, ""


# `fetch` for a URL inside an engine's network namespace, run there by nsenter.
_FETCH_IN_NAMESPACE = """
import json, sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as reply:
        print(json.dumps([reply.status, reply.read().decode()]))
except urllib.error.HTTPError as error:
    print(json.dumps([error.code, error.read().decode()]))
except OSError:
    print(json.dumps([None, ""]))
"""


def fetch_in(namespace: str | None, url: str) -> tuple[int | None, str]:
    """`fetch` from inside network namespace ``namespace`` (None: here)."""
    if namespace is None:
        return fetch(url)
    done = subprocess.run(
        [
            "nsenter",
            f"--net=/run/netns/{namespace}",
            sys.executable,
            "-c",
            _FETCH_IN_NAMESPACE,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    status, body = json.loads(done.stdout)
    return status, body


def get_json(url: str, namespace: str | None = None) -> Any:
    status, body = fetch_in(namespace, url)
    assert status == 200, (url, status, body[:500])
    return json.loads(body)


def http_status(url: str, namespace: str | None = None) -> int | None:
    return fetch_in(namespace, url)[0]


def stored_records(stats_url: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """Every record of ``kind`` the receiver stored, in arrival order (all pages)."""
    records: list[dict[str, Any]] = []
    while True:
        after = len(records) and records[-1]["seq"]
        page = get_json(f"{stats_url}/api/v1/records?kind={kind}&after={after}", namespace)
        if not page["records"]:
            return records
        records.extend(page["records"])
