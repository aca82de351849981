"""A fake kubelet serving metrics pages over HTTPS with a bearer-token check.

Each path serves what the test set (`serve`), or a status, or waits before answering
(`delay`); unauthenticated requests get 401, unknown paths 404, as the kubelet does.
"""

from __future__ import annotations

import contextlib
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.logs.fake_apiserver import TlsFiles, _Server, serve_in_thread

__all__ = ["MetricsKubelet", "cadvisor_page", "summary_document"]


class MetricsKubelet:
    """Also an annotated pod's exporter: plain HTTP without ``tls``, no check without ``token``."""

    def __init__(self, *, tls: TlsFiles | None, token: str | None) -> None:
        self.tls = tls
        self.token = token
        self._lock = threading.Lock()
        self._pages: dict[str, tuple[int, bytes, str]] = {}
        self._delays: dict[str, threading.Event] = {}
        self._remaining: dict[str, int] = {}
        self.requests: list[tuple[str, int]] = []
        self._server: _Server | None = None

    def __enter__(self) -> MetricsKubelet:
        self._server, self._thread = serve_in_thread(_Handler, self, self.tls)
        return self

    def __exit__(self, *exc: object) -> None:
        for gate in self._delays.values():
            gate.set()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def url(self, path: str) -> str:
        assert self._server is not None
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}{path}"

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def serve(
        self,
        path: str,
        body: bytes | str,
        *,
        status: int = 200,
        json: bool = False,
        times: int | None = None,
    ) -> None:
        """Serve ``body`` at ``path`` (only ``times`` times, then 404, if given)."""
        raw = body.encode() if isinstance(body, str) else body
        kind = "application/json" if json else "text/plain; version=0.0.4"
        with self._lock:
            self._pages[path] = (status, raw, kind)
            if times is not None:
                self._remaining[path] = times

    def hold(self, path: str) -> threading.Event:
        """Make ``path`` wait until the returned event is set (a hung source)."""
        gate = threading.Event()
        with self._lock:
            self._delays[path] = gate
        return gate

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for p, _ in self.requests if p == path)

    def respond(self, auth: str, path: str) -> tuple[int, bytes, str]:
        with self._lock:
            gate = self._delays.get(path)
        if gate is not None:
            gate.wait(30)
        with self._lock:
            if self.token is not None and auth != f"Bearer {self.token}":
                answer = (401, b"Unauthorized", "text/plain")
            else:
                answer = self._pages.get(path, (404, b"404 page not found", "text/plain"))
                if path in self._remaining:
                    if self._remaining[path] <= 0:
                        answer = (404, b"404 page not found", "text/plain")
                    self._remaining[path] -= 1
            self.requests.append((path, answer[0]))
            return answer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        status, body, kind = self.server.fake.respond(
            self.headers.get("Authorization", ""), self.path.split("?")[0]
        )
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)


def cadvisor_page(pods: int, containers: int = 3, *, labels: int = 12) -> str:
    """A cAdvisor-like page: per container several counters and gauges with the label sets
    cAdvisor uses (id, image, name, namespace, pod, container, ...), timestamps included."""
    stamp = int(time.time() * 1000)
    families = [
        ("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed"),
        ("container_memory_working_set_bytes", "gauge", "Current working set"),
        ("container_network_receive_bytes_total", "counter", "Cumulative count of bytes received"),
        ("container_fs_usage_bytes", "gauge", "Number of bytes that are consumed by the container"),
    ]
    lines = []
    for name, kind, help_text in families:
        lines.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        for pod in range(pods):
            for container in range(containers):
                extra = ",".join(f'extra_{k}="value-{k}-{pod}"' for k in range(labels - 6))
                lines.append(
                    f'{name}{{container="c{container}",id="/kubepods/burstable/pod{pod:05d}/'
                    f'{container:064x}",image="registry.example/app:{pod}",name="k8s_c{container}",'
                    f'namespace="ns-{pod % 20}",pod="pod-{pod:05d}",{extra}}} '
                    f"{pod * 1.5 + container} {stamp}\n"
                )
    return "".join(lines)


def summary_document(now: str = "2026-11-26T10:00:00Z") -> dict[str, Any]:
    """A /stats/summary document shaped as a kubelet 1.30 answers, one pod, two containers."""
    fs = {
        "time": now,
        "availableBytes": 50_000_000_000,
        "capacityBytes": 100_000_000_000,
        "usedBytes": 40_000_000_000,
        "inodesFree": 6_000_000,
        "inodes": 6_500_000,
        "inodesUsed": 500_000,
    }
    memory = {
        "time": now,
        "availableBytes": 4_000_000_000,
        "usageBytes": 3_000_000_000,
        "workingSetBytes": 2_500_000_000,
        "rssBytes": 1_000_000_000,
        "pageFaults": 123_456,
        "majorPageFaults": 12,
    }
    cpu = {"time": now, "usageNanoCores": 250_000_000, "usageCoreNanoSeconds": 9_000_000_000_000}
    network = {
        "time": now,
        "name": "eth0",
        "rxBytes": 1000,
        "rxErrors": 0,
        "txBytes": 2000,
        "txErrors": 1,
        "interfaces": [
            {"name": "eth0", "rxBytes": 1000, "rxErrors": 0, "txBytes": 2000, "txErrors": 1},
            {"name": "cni0", "rxBytes": 10, "rxErrors": 0, "txBytes": 20, "txErrors": 0},
        ],
    }
    container = {
        "startTime": now,
        "cpu": {"time": now, "usageCoreNanoSeconds": 5_000_000_000},  # no usageNanoCores yet
        "memory": {"time": now, "workingSetBytes": 50_000_000, "usageBytes": 60_000_000},
        "rootfs": {**fs, "usedBytes": 40_960},
        "logs": {**fs, "usedBytes": 8192},
    }
    return {
        "node": {
            "nodeName": "node-a",
            "systemContainers": [{"name": "kubelet", "startTime": now, "cpu": cpu}],
            "startTime": now,
            "cpu": cpu,
            "memory": memory,
            "network": network,
            "fs": fs,
            "runtime": {"imageFs": fs, "containerFs": fs},
            "rlimit": {"time": now, "maxpid": 4_194_304, "curproc": 812},
        },
        "pods": [
            {
                "podRef": {"name": "web-1", "namespace": "shop", "uid": "uid-1"},
                "startTime": now,
                "containers": [{**container, "name": "app"}, {**container, "name": "sidecar"}],
                "cpu": cpu,
                "memory": memory,
                "network": network,
                "volume": [
                    {**fs, "name": "data", "pvcRef": {"name": "data-web-1", "namespace": "shop"}},
                    {**fs, "name": "kube-api-access-xyz"},
                ],
                "ephemeral-storage": fs,
                "process_stats": {"process_count": 7},
            }
        ],
    }
