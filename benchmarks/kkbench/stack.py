"""One benchmark run's processes: the reference receiver, the fake API server, the shipper
and the logs service, each a separate process as in the pod, all on loopback.

Where things live, and why:

* log files and the receiver's data (its SQLite store) on tmpfs (``/dev/shm``): the
  benchmark measures the agent, not the disk under the generated logs or the receiver;
* the agent's state directory (the shipper's durable queue, the logs offsets) under /tmp,
  on disk, like the hostPath it is on a node, since its fsyncs are part of the agent's cost;
* the IPC sockets in a short /tmp directory (``ipc://`` paths are limited to 107 bytes).

The services are the console scripts next to the running interpreter
(``Path(sys.executable).parent``), so the benchmark measures whichever checkout that
virtual environment was installed from.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kk_common.ipc import SHIPPER_INGEST_SOCKET
from kkbench.pods import CLUSTER_NAME, NODE_NAME
from kkbench.processes import Child, Children

LICENSE_KEY = "PENG-BENC-H000-0000-0000-0001"
BENCH_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class StackSettings:
    """What varies between runs."""

    bin_dir: Path
    """Where ``killkrill-*`` live: the virtual environment under test."""
    repo: Path
    """The checkout under test (for ``tests/logs/fake_apiserver.py``)."""
    codec: str
    """``gzip`` or ``zstd`` (``logs.output.compression``)."""
    flush_interval_s: float
    """``logs.output.flush_interval``: the shipper sends a partial batch after this long."""
    batch_wait_s: float
    """``logs.batch_max_wait``: the logs service hands a partial batch to the shipper
    after this long."""
    metadata: str
    """``api``: the fake API server; ``path``: only what the log path says (no cluster)."""
    pods: int


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


class Stack:
    """Starts the processes of one run under ``children`` (which stops them)."""

    def __init__(
        self, children: Children, settings: StackSettings, log_root: Path, work_dir: Path
    ) -> None:
        self.children = children
        self.settings = settings
        self.log_root = log_root
        self.work_dir = work_dir
        self.receiver_dir = log_root.parent / "receiver"
        self.ipc_dir = work_dir / "ipc"
        self.kubeconfig = work_dir / "kubeconfig"
        self.receiver: Child | None = None
        self.ready: dict[str, Any] = {}
        self.services: dict[str, Child] = {}

    # receiver ------------------------------------------------------------------------------

    def start_receiver(self) -> Child:
        """The reference receiver with HTTP/3 and HTTPS on one port, plain HTTP for stats,
        and a request log long enough to hold every request of the run (wire bytes)."""
        ready_file = self.receiver_dir / "ready.json"
        self.receiver = self.children.start(
            "receiver",
            [
                str(self.settings.bin_dir / "killkrill-reference-receiver"),
                "--data-dir",
                str(self.receiver_dir),
                "--https-port",
                "0",
                "--http-port",
                "0",
                "--log-level",
                "warning",
                "--request-log-limit",
                "100000000",
            ],
            {**os.environ, "KK_RECEIVER_LICENSE_KEY": LICENSE_KEY},
            self.work_dir / "receiver.log",
        )
        self._wait(lambda: ready_file.exists(), self.receiver, 30, "receiver ready.json")
        self.ready = json.loads(ready_file.read_text())
        return self.receiver

    @property
    def receiver_database(self) -> Path:
        return self.receiver_dir / "receiver.sqlite3"

    def stats(self) -> dict[str, Any]:
        """The receiver's ``GET /api/v1/stats`` (over plain HTTP, not counted in the stats)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.ready["http_url"] + "/api/v1/stats", timeout=10) as reply:
            return json.loads(reply.read())

    # the agent -----------------------------------------------------------------------------

    def start_fake_cluster(self) -> Child:
        python_path = os.pathsep.join([str(BENCH_DIR), str(self.settings.repo / "tests" / "logs")])
        child = self.children.start(
            "fake-apiserver",
            [
                sys.executable,
                "-m",
                "kkbench.fake_cluster",
                "--pods",
                str(self.settings.pods),
                "--kubeconfig",
                str(self.kubeconfig),
            ],
            {**os.environ, "PYTHONPATH": python_path},
            self.work_dir / "fake-apiserver.log",
        )
        self._wait(lambda: self.kubeconfig.exists(), child, 30, "fake API server kubeconfig")
        return child

    def config(self) -> dict[str, Any]:
        """The agent's configuration (JSON is YAML, so it is written as JSON)."""
        s = self.settings
        pods = self.log_root / "var" / "log" / "pods"
        containers = self.log_root / "var" / "log" / "containers"
        return {
            "agent": {
                "node_name": NODE_NAME,
                "cluster_name": CLUSTER_NAME,
                "ipc_dir": str(self.ipc_dir),
                "state_dir": str(self.work_dir / "state"),
                "log_level": "info",
            },
            "logs": {
                "paths": [f"{pods}/*/*/*.log", f"{containers}/*.log"],
                "batch_max_wait": _duration(s.batch_wait_s),
                "kubernetes": {"enabled": s.metadata == "api"},
                "output": {
                    "type": "http3",
                    "url": self.ready["https_url"],
                    "compression": s.codec,
                    "flush_interval": _duration(s.flush_interval_s),
                    "tls": {"ca_file": self.ready["ca_file"]},
                },
            },
            "metrics": {"enabled": False},
        }

    def _agent_env(self) -> dict[str, str]:
        config_path = self.work_dir / "config.yaml"
        config_path.write_text(json.dumps(self.config(), indent=2) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KILLKRILL_")}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env.update(KILLKRILL_CONFIG=str(config_path), KILLKRILL_LICENSE_KEY=LICENSE_KEY)
        if self.settings.metadata == "api":
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def start_shipper(self) -> Child:
        self.ipc_dir.mkdir(parents=True, exist_ok=True)
        child = self._start_service("shipper")
        socket_file = self.ipc_dir / SHIPPER_INGEST_SOCKET
        self._wait(socket_file.exists, child, 30, "shipper ingest socket")
        return child

    def start_logs(self) -> Child:
        return self._start_service("logs")

    def _start_service(self, name: str) -> Child:
        child = self.children.start(
            name,
            [str(self.settings.bin_dir / f"killkrill-{name}")],
            self._agent_env(),
            self.work_dir / f"{name}.log",
        )
        self.services[name] = child
        return child

    def check_running(self) -> None:
        """Raise if a process of the run has exited (with its log tail)."""
        for child in [self.receiver, *self.services.values()]:
            if child is not None and not child.running():
                raise RuntimeError(
                    f"{child.name} exited with {child.popen.returncode}:\n{child.log_tail()}"
                )

    @staticmethod
    def _wait(ready: Any, child: Child, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if not child.running():
                raise RuntimeError(f"{child.name} exited before {what}:\n{child.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {what} within {timeout_s:.0f}s:\n{child.log_tail()}")
            time.sleep(0.05)
