"""What the metrics and health containers cost, idle and scraping: CPU time and memory of
each process over a fixed period, the figures behind their requests and limits in
deploy/killkrill-agent.yaml (issue 12).

    .venv/bin/python benchmarks/metrics_health_cost.py                   # idle, 110 and 400 pods
    .venv/bin/python benchmarks/metrics_health_cost.py --pods 0,110 --period 60 --interval 30

Each run starts the reference receiver, the shipper, ``killkrill-metrics`` and
``killkrill-health`` as separate processes, as in the pod, all on loopback. The metrics
service reads this machine's ``/proc`` and ``/sys`` as the node's every ``--interval``.
Health is asked what the kubelet asks (``/healthz`` and ``/ready`` every 10 s).

* ``--pods 0``, *idle*: no kubelet; node metrics only; health answers the probes.
* ``--pods N``, *scraping*: a fake kubelet (in this process: HTTPS, bearer token) serves a
  cAdvisor page of 12 series per pod (4 families x 3 containers, 12 labels a series, as
  ``tests/metrics/metrics_kubelet.py`` makes them) at ``/metrics/cadvisor``, scraped every
  ``--interval``; Prometheus scrapes health's ``/metrics`` every ``--prometheus-interval``
  besides the probes. 110 pods is the kubelet's default pod limit.

After a warm-up (the first scrape at the receiver, then the processes quiet), the CPU time
(user + system, /proc) of the metrics and health processes is read, ``--period`` seconds
pass, and it is read again; memory is VmRSS at the end and VmHWM (peak since start). The
receiver must have stored new metric samples during the period (checked), so a run whose
scrapes failed is not a measurement. The fake kubelet and the probe traffic run in this
process and are not counted. The last line of the output is one JSON document.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# The repository root, for the tests' fake kubelet (tests.metrics.metrics_kubelet).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kkbench.processes import Child, Children, load_average, sample, wait_until_quiet
from kkbench.stack import Stack, StackSettings

from tests.logs.fake_apiserver import make_tls_files
from tests.metrics.metrics_kubelet import MetricsKubelet, cadvisor_page

REPO = Path(__file__).resolve().parent.parent
KUBELET_TOKEN = "bench-kubelet-token"  # noqa: S105 - the fake kubelet's, on loopback
PROBE_INTERVAL_S = 10.0
SERIES_PER_POD = 12


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pods", default="0,110,400", help="comma-separated pod counts; 0: idle (0,110,400)"
    )
    parser.add_argument("--period", type=float, default=60.0, help="seconds measured (60)")
    parser.add_argument(
        "--interval", type=float, default=10.0, help="metrics.interval in seconds (10)"
    )
    parser.add_argument(
        "--prometheus-interval",
        type=float,
        default=15.0,
        help="seconds between scrapes of health's /metrics when scraping (15)",
    )
    return parser.parse_args(argv)


@dataclass(frozen=True)
class ProcessCost:
    cpu_s: float
    millicores: float
    rss_mib: float
    peak_rss_mib: float


@dataclass(frozen=True)
class Run:
    pods: int
    series: int
    period_s: float
    interval_s: float
    metrics: ProcessCost
    health: ProcessCost
    samples_stored: int
    health_requests: int
    load_average: float


class MetricsHealthStack(Stack):
    """The receiver and shipper of `Stack`, with the metrics and health services instead of
    the logs service."""

    def __init__(self, *args: Any, sources: list[dict[str, Any]], interval_s: float, **kw: Any):
        super().__init__(*args, **kw)
        self.sources = sources
        self.interval_s = interval_s
        self.health_port = free_port()

    def config(self) -> dict[str, Any]:
        tls = {"ca_file": self.ready["ca_file"]}
        return {
            "agent": super().config()["agent"],
            "logs": {"enabled": False},
            "metrics": {
                "interval": f"{self.interval_s:g}s",
                "sources": self.sources,
                "node": {"proc_path": "/proc", "sys_path": "/sys", "rootfs_path": "/"},
                "output": {"url": self.ready["https_url"], "flush_interval": "1s", "tls": tls},
            },
            "health": {"listen_address": "127.0.0.1", "port": self.health_port},
        }

    def start(self, name: str) -> Child:
        return self._start_service(name)

    def metric_samples(self) -> int:
        return self.stats()["by_kind"].get("metrics", {}).get("unique_ids", 0)


class HealthClient:
    """The kubelet's probes and, when scraping, Prometheus: GETs on a timer in a thread."""

    def __init__(self, base_url: str, prometheus_interval_s: float | None) -> None:
        self.schedule = {"/healthz": PROBE_INTERVAL_S, "/ready": PROBE_INTERVAL_S}
        if prometheus_interval_s is not None:
            self.schedule["/metrics"] = prometheus_interval_s
        self.base_url = base_url
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __enter__(self) -> HealthClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        due = dict.fromkeys(self.schedule, time.monotonic())
        while not self._stop.is_set():
            now = time.monotonic()
            for path, when in due.items():
                if when <= now:
                    self._get(path)
                    due[path] = now + self.schedule[path]
            self._stop.wait(max(0.0, min(due.values()) - time.monotonic()))

    def _get(self, path: str) -> None:
        try:
            with self._opener.open(self.base_url + path, timeout=5) as reply:
                reply.read()
        except OSError:
            pass  # /ready answers 503 until the shipper has reached the receiver
        self.requests += 1


class PageRefresher:
    """Serves a new cAdvisor page every second: its samples carry the time they were made,
    as cAdvisor's do, so that each scrape's samples are new to the receiver (a page made once
    would be stored once and dropped as duplicates after)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, kubelet: MetricsKubelet, pods: int) -> None:
        kubelet.serve("/metrics/cadvisor", cadvisor_page(pods))

        def refresh() -> None:
            while not self._stop.wait(1.0):
                kubelet.serve("/metrics/cadvisor", cadvisor_page(pods))

        self._thread = threading.Thread(target=refresh, daemon=True)
        self._thread.start()

    def __enter__(self) -> PageRefresher:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def cost(child: Child, cpu_before: float, period_s: float) -> ProcessCost:
    now = sample(child.pid)
    cpu = now.cpu_s - cpu_before
    return ProcessCost(
        round(cpu, 2),
        round(cpu / period_s * 1000, 1),
        round(now.rss_mib, 1),
        round(now.peak_rss_mib, 1),
    )


def wait_for(condition: Any, stack: Stack, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        stack.check_running()
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} within {timeout_s:.0f}s")
        time.sleep(0.2)


def one_run(pods: int, args: argparse.Namespace, scratch: Path) -> Run:
    scratch.mkdir()
    tls = make_tls_files(scratch / "kubelet-tls")
    token_file = scratch / "kubelet-token"
    token_file.write_text(KUBELET_TOKEN + "\n")
    settings = StackSettings(
        bin_dir=Path(sys.executable).parent,
        repo=REPO,
        codec="zstd",
        flush_interval_s=1.0,
        batch_wait_s=1.0,
        metadata="path",
        pods=0,
    )
    refresher = PageRefresher()
    with (
        MetricsKubelet(tls=tls, token=KUBELET_TOKEN) as kubelet,
        refresher,
        Children() as children,
    ):
        sources = []
        if pods:
            refresher.start(kubelet, pods)
            sources.append(
                {
                    "name": "cadvisor",
                    "url": kubelet.url("/metrics/cadvisor"),
                    "bearer_token_file": str(token_file),
                    "ca_file": str(tls.ca),
                }
            )
        stack = MetricsHealthStack(
            children,
            settings,
            scratch / "logs",
            scratch / "work",
            sources=sources,
            interval_s=args.interval,
        )
        stack.work_dir.mkdir()
        stack.start_receiver()
        stack.start_shipper()
        metrics, health = stack.start("metrics"), stack.start("health")
        prometheus = args.prometheus_interval if pods else None
        with HealthClient(f"http://127.0.0.1:{stack.health_port}", prometheus) as client:
            wait_for(lambda: stack.metric_samples() > 0, stack, 120, "metric samples stored")
            wait_until_quiet([metrics, health], timeout_s=args.interval)
            before = {child.name: sample(child.pid).cpu_s for child in (metrics, health)}
            stored_before, requests_before = stack.metric_samples(), client.requests
            time.sleep(args.period)
            stack.check_running()
            metrics_cost = cost(metrics, before["metrics"], args.period)
            health_cost = cost(health, before["health"], args.period)
            stored = stack.metric_samples() - stored_before
            requests = client.requests - requests_before
        if stored <= 0:
            raise RuntimeError("no metric samples stored during the period: not a measurement")
        if pods and not kubelet.count("/metrics/cadvisor"):
            raise RuntimeError("the fake kubelet was never scraped")
    return Run(
        pods=pods,
        series=pods * SERIES_PER_POD,
        period_s=args.period,
        interval_s=args.interval,
        metrics=metrics_cost,
        health=health_cost,
        samples_stored=stored,
        health_requests=requests,
        load_average=load_average(),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ssl.create_default_context()  # fail early if the interpreter has no ssl
    runs = []
    with tempfile.TemporaryDirectory(prefix="kk-mh-") as scratch:
        for index, pods in enumerate(int(value) for value in args.pods.split(",")):
            run = one_run(pods, args, Path(scratch) / f"run{index}")
            runs.append(run)
            kind = "idle" if pods == 0 else f"{pods} pods ({run.series:,} series)"
            for name, part in (("metrics", run.metrics), ("health", run.health)):
                print(
                    f"{kind:>24} {name:>7}: {part.cpu_s:6.2f} CPU-s in {run.period_s:g} s "
                    f"({part.millicores:6.1f} millicores), RSS {part.rss_mib:5.1f} MiB, "
                    f"peak {part.peak_rss_mib:5.1f} MiB",
                    flush=True,
                )
            print(
                f"{'':>24} stored {run.samples_stored:,} samples, {run.health_requests} health "
                f"requests, load average {run.load_average:.2f}",
                flush=True,
            )
    print(json.dumps({"runs": [asdict(run) for run in runs]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
