"""The whole agent pod as four separate processes, as the DaemonSet runs it.

`AgentPodProcesses` starts ``killkrill-shipper``, ``killkrill-health``, ``killkrill-logs`` and
``killkrill-metrics`` (the order of ``make run``, `scripts/run_local.py`) with one shared
configuration, one IPC directory (the pod's ``emptyDir``) and one state directory (the
node's ``hostPath``), pointed at a `ReceiverProcess` over HTTP/3 with HTTP/1.1 fallback.
The logs service tails the writer's kubelet-shaped tree; the metrics service reads this
machine's own ``/proc`` and ``/sys`` as node metrics (there is no kubelet), every second.

Each service can be SIGKILLed (a crash, or the kubelet's kill after the grace period),
stopped with SIGTERM (a rolling update), and started again, alone or all at once; the
state directory can be kept (a node reboot) or wiped (a node rebuilt). What the pod says
about itself is read where an operator reads it: the health container's ``/metrics`` and
``/ready``, and each service's JSON log lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from e2e_support import LICENSE_KEY, merge
from prometheus_client.parser import text_string_to_metric_families

from kk_common.ipc import SHIPPER_INGEST_SOCKET
from kk_receiver.testing import ReceiverProcess, wait_until

BIN = Path(sys.executable).parent
SERVICES = ("shipper", "health", "logs", "metrics")
"""The pod's containers, in start order: the shipper binds the socket the others use."""
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy


def base_config(receiver: ReceiverProcess, log_root: Path, run_dir: Path) -> dict[str, Any]:
    """The pod's configuration: short timers, so that a test sees recovery in seconds."""
    output = {
        "url": receiver.https_url,
        "flush_interval": "200ms",
        "tls": {"ca_file": str(receiver.ca_file)},
        "retry": {"initial_backoff": "100ms", "max_backoff": "1s", "check_interval": "500ms"},
    }
    return {
        "agent": {
            "node_name": "node-chaos",
            "cluster_name": "reliability",
            "ipc_dir": str(run_dir / "ipc"),
            "state_dir": str(run_dir / "state"),
        },
        "logs": {
            "paths": [f"{log_root}/pods/*/*/*.log"],
            "batch_max_wait": "100ms",
            "rescan_interval": "2s",
            "kubernetes": {"enabled": False},
            "output": output,
        },
        "metrics": {
            "interval": "1s",
            "sources": [],
            "node": {"proc_path": "/proc", "sys_path": "/sys", "rootfs_path": "/"},
            "output": {**output, "flush_interval": "500ms"},
        },
        "shipper": {"telemetry_interval": "1s", "ack_timeout": "1s", "drain_timeout": "5s"},
        "health": {"listen_address": "127.0.0.1", "port": 0},
    }


class AgentPodProcesses:
    """The four services as processes; see the module docstring."""

    def __init__(
        self,
        receiver: ReceiverProcess,
        log_root: Path,
        *,
        overrides: Mapping[str, Any] | None = None,
        services: Iterable[str] = SERVICES,
    ) -> None:
        # ipc:// paths are limited to 107 bytes: a short directory of our own.
        self.dir = Path(tempfile.mkdtemp(prefix="kkr", dir="/tmp"))
        self.receiver = receiver
        self.services = tuple(services)
        self.config = merge(base_config(receiver, log_root, self.dir), overrides or {})
        self.ipc_dir = Path(self.config["agent"]["ipc_dir"])
        self.state_dir = Path(self.config["agent"]["state_dir"])
        self.ipc_dir.mkdir()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.starts: dict[str, int] = dict.fromkeys(SERVICES, 0)
        self.health_url = ""

    # lifecycle ---------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        path = self.dir / "config.yaml"
        path.write_text(yaml.safe_dump(self.config))
        keep = {k: v for k, v in os.environ.items() if not k.startswith("KILLKRILL_")}
        keep.pop("KUBERNETES_SERVICE_HOST", None)
        return {**keep, "KILLKRILL_CONFIG": str(path), "KILLKRILL_LICENSE_KEY": LICENSE_KEY}

    def start(self, name: str) -> None:
        """Start one service and wait until it is up (socket bound, port logged)."""
        assert not self.running(name), f"{name} is already running"
        listening_before = len(self.events("health", "health_listening"))
        socket_file = self.ipc_dir / SHIPPER_INGEST_SOCKET
        if name == "shipper":
            socket_file.unlink(missing_ok=True)
        with (self.dir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [str(BIN / f"killkrill-{name}")], env=self.env(), stdout=log, stderr=log
            )
        self.starts[name] += 1
        process = self.processes[name]
        if name == "shipper":
            self.wait_for(
                lambda: socket_file.exists() or process.poll() is not None, 30, "shipper socket"
            )
        elif name == "health":
            self.wait_for(
                lambda: (
                    len(self.events("health", "health_listening")) > listening_before
                    or process.poll() is not None
                ),
                30,
                "health listening",
            )
            if process.poll() is None:
                port = self.events("health", "health_listening")[-1]["port"]
                self.health_url = f"http://127.0.0.1:{port}"
        assert process.poll() is None, f"{name} exited at start:\n{self.log_tail(name)}"

    def start_all(self) -> None:
        for name in self.services:
            self.start(name)

    def running(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    def kill(self, *names: str) -> None:
        """SIGKILL the named services at once (all of them with no names), then reap them."""
        targets = [self.processes[n] for n in names or self.services if self.running(n)]
        for process in targets:
            process.send_signal(signal.SIGKILL)
        for process in targets:
            process.wait(10)

    def stop(self, name: str, timeout: float = 30) -> int:
        """SIGTERM, as the kubelet does before replacing a container; returns the exit code."""
        process = self.processes[name]
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout)

    def wipe_ipc(self) -> None:
        """A new pod's IPC emptyDir: nothing left from the previous one."""
        shutil.rmtree(self.ipc_dir)
        self.ipc_dir.mkdir()

    def wipe_state(self) -> None:
        """The node's state directory lost (a rebuilt node, a deleted hostPath)."""
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> AgentPodProcesses:
        self.start_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # what the pod says -------------------------------------------------------------------------

    def events(self, name: str, event: str | None = None) -> list[dict[str, Any]]:
        """The service's JSON log lines (all its runs), optionally only ``event`` ones."""
        path = self.dir / f"{name}.log"
        if not path.exists():
            return []
        found = []
        for line in path.read_text(errors="replace").splitlines():
            if event is not None and f'"{event}"' not in line:
                continue
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and (event is None or entry.get("event") == event):
                    found.append(entry)
        return found

    def log_tail(self, name: str, count: int = 25) -> str:
        path = self.dir / f"{name}.log"
        if not path.exists():
            return "(never started)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-count:])

    def all_log_tails(self, count: int = 15) -> str:
        parts = [f"--- {name}\n{self.log_tail(name, count)}" for name in self.services]
        return "\n".join([*parts, f"--- receiver\n{self.receiver.log_tail(count)}"])

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        """Every sample of the health container's ``/metrics`` (empty if it does not answer)."""
        try:
            with _HTTP.open(self.health_url + "/metrics", timeout=5) as reply:
                text = reply.read().decode()
        except (OSError, ValueError):
            return []
        return [
            (sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def sample(self, name: str, **labels: str) -> float | None:
        """The sum of the samples called ``name`` whose labels include ``labels``."""
        values = [
            value
            for sample_name, sample_labels, value in self.samples()
            if sample_name == name and labels.items() <= sample_labels.items()
        ]
        return sum(values) if values else None

    def ready(self) -> tuple[bool, list[str]]:
        """``/ready``: whether the pod is ready and the reasons it is not."""
        try:
            with _HTTP.open(self.health_url + "/ready", timeout=5) as reply:
                return reply.status == 200, []
        except urllib.error.HTTPError as error:
            with contextlib.suppress(ValueError):
                return False, [str(r) for r in json.loads(error.read()).get("reasons", [])]
            return False, [f"HTTP {error.code}"]
        except OSError as error:
            return False, [f"health not answering: {error}"]

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """`wait_until` whose failure shows every service's and the receiver's recent logs."""
        try:
            return wait_until(predicate, timeout=timeout, interval=0.1, message=what)
        except TimeoutError as exc:
            raise AssertionError(f"{what}: not within {timeout}s\n{self.all_log_tails()}") from exc
