"""One agent pod as real processes: the shipper and the logs service sharing one config,
one IPC directory and one state directory, pointed at a reference receiver and
(optionally) a fake Kubernetes API server through a kubeconfig."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from e2e_support import LICENSE_KEY, merge

from kk_common.ipc import SHIPPER_INGEST_SOCKET
from kk_receiver.testing import ReceiverProcess, wait_until

BIN = Path(sys.executable).parent


class AgentPod:
    """``killkrill-shipper`` and ``killkrill-logs`` with a test configuration."""

    def __init__(
        self,
        receiver: ReceiverProcess,
        log_root: Path,
        *,
        kubeconfig: Path | None = None,
        logs: Mapping[str, Any] | None = None,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="kka", dir="/tmp"))
        weakref.finalize(self, shutil.rmtree, self.dir, True)
        self.ipc_dir = self.dir / "ipc"
        self.ipc_dir.mkdir()
        self.kubeconfig = kubeconfig
        pods, containers = log_root / "pods", log_root / "containers"
        self.config = {
            "agent": {
                "node_name": "node-a",
                "cluster_name": "e2e",
                "ipc_dir": str(self.ipc_dir),
                "state_dir": str(self.dir / "state"),
                "log_level": "debug",
            },
            "logs": merge(
                {
                    "paths": [f"{pods}/*/*/*.log", f"{containers}/*.log"],
                    "batch_max_wait": "100ms",
                    "kubernetes": {"enabled": kubeconfig is not None, "metadata_wait": "2s"},
                    "output": {
                        "url": receiver.https_url,
                        "flush_interval": "200ms",
                        "tls": {"ca_file": str(receiver.ca_file)},
                        "retry": {"initial_backoff": "100ms", "max_backoff": "1s"},
                    },
                },
                logs or {},
            ),
            "metrics": {"enabled": False},
            "shipper": {"telemetry_interval": "1s", "ack_timeout": "1s"},
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def env(
        self, overrides: Mapping[str, Any] | None = None, name: str = "config"
    ) -> dict[str, str]:
        path = self.dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(merge(self.config, overrides or {})))
        keep = {k: v for k, v in os.environ.items() if not k.startswith("KILLKRILL_")}
        keep.pop("KUBERNETES_SERVICE_HOST", None)
        env = {**keep, "KILLKRILL_CONFIG": str(path), "KILLKRILL_LICENSE_KEY": LICENSE_KEY}
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def start(
        self,
        name: str,
        overrides: Mapping[str, Any] | None = None,
        *,
        max_descriptors: int | None = None,
    ) -> None:
        """Start ``shipper`` or ``logs`` (the shipper binds the socket the logs connect to),
        optionally with its own ``overrides`` of the shared configuration and a
        descriptor limit (``RLIMIT_NOFILE``, soft and hard, like ``prlimit --nofile``)."""
        log = (self.dir / f"{name}.log").open("ab")
        env = self.env(overrides, name=f"config-{name}") if overrides else self.env()

        def limit_descriptors() -> None:  # in the child, before exec
            if max_descriptors is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_descriptors, max_descriptors))

        self.processes[name] = subprocess.Popen(
            [str(BIN / f"killkrill-{name}")],
            env=env,
            stdout=log,
            stderr=log,
            preexec_fn=limit_descriptors if max_descriptors is not None else None,
        )
        log.close()
        if name == "shipper":
            socket_file = self.ipc_dir / SHIPPER_INGEST_SOCKET
            wait_until(
                lambda: socket_file.exists() or self.processes[name].poll() is not None,
                timeout=20,
            )
        assert self.processes[name].poll() is None, self.log_tail(name)

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop(self, name: str) -> int:
        process = self.processes[name]
        process.send_signal(signal.SIGTERM)
        return process.wait(30)

    def log_tail(self, name: str, count: int = 30) -> str:
        path = self.dir / f"{name}.log"
        if not path.exists():
            return f"({name} was not started)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-count:])

    def events(self, name: str, event: str) -> list[dict[str, Any]]:
        """The JSON log lines of ``name`` whose ``event`` is ``event``."""
        path = self.dir / f"{name}.log"
        if not path.exists():
            return []
        found = []
        for line in path.read_text(errors="replace").splitlines():
            if f'"{event}"' not in line:
                continue
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("event") == event:
                    found.append(entry)
        return found

    def wait_for(self, predicate: Any, timeout: float, what: str) -> None:
        """`wait_until` that shows both services' recent log lines when it times out."""
        try:
            wait_until(predicate, timeout=timeout, interval=0.1)
        except TimeoutError as exc:
            raise AssertionError(
                f"{what} not reached within {timeout}s\n--- logs\n{self.log_tail('logs')}"
                f"\n--- shipper\n{self.log_tail('shipper')}"
            ) from exc

    def __enter__(self) -> AgentPod:
        self.start("shipper")
        self.start("logs")
        return self

    def __exit__(self, *exc: object) -> None:
        for name in ("logs", "shipper"):
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)


def cri_line(text: str, stream: str = "stdout", tag: str = "F") -> str:
    return f"2026-11-26T10:00:00.123456789Z {stream} {tag} {text}\n"


def pod_log_dir(root: Path, namespace: str, pod: str, uid: str, container: str) -> Path:
    """``<root>/pods/<ns>_<pod>_<uid>/<container>/`` plus the /var/log/containers symlink."""
    directory = root / "pods" / f"{namespace}_{pod}_{uid}" / container
    directory.mkdir(parents=True, exist_ok=True)
    links = root / "containers"
    links.mkdir(parents=True, exist_ok=True)
    link = links / f"{pod}_{namespace}_{container}-{uid.replace('-', '')}.log"
    if not link.is_symlink():
        link.symlink_to(directory / "0.log")
    return directory
