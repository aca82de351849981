"""CPU the metrics service's Kubernetes object part costs the agent.

    .venv/bin/python benchmarks/metrics_cluster_cost.py [--node-pods 110] [--cluster-pods 5000]

The logs tests' fake API server runs in a child process (its CPU is not counted), filled
with ``--node-pods`` pods on this node and ``--cluster-pods`` pods spread over 50 nodes,
plus 50 namespaces, 500 services, 400 deployments, 50 daemonsets, 50 statefulsets, 200 jobs
and 2,000 events. This process then measures its own CPU time (``time.process_time``, all
threads) for: one ``kubernetes_node`` scrape (this node's pods from the pod cache that the
service's pod watch keeps, as in the service: count, encode, spool), one
``kubernetes_cluster`` scrape on the leader, one election round (read + renew), and
turning 2,000 events into log records and spooling them (list + records + one batch).
It also counts the API requests each scrape makes (the client's ``call_api`` calls).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "metrics")]


def serve(node_pods: int, cluster_pods: int) -> None:
    """Child: fill a fake API server, print its URL, serve until stdin closes."""
    from cluster_apiserver import CLUSTER_RESOURCES, make_event, make_named, pod_in_state

    from tests.logs.fake_apiserver import FakeApiServer

    fake = FakeApiServer(resources=CLUSTER_RESOURCES).start()
    for i in range(node_pods):
        fake.add("pods", pod_in_state(f"here-{i}", namespace=f"ns-{i % 50}", node="node-a"))
    for i in range(cluster_pods):
        fake.add("pods", pod_in_state(f"there-{i}", namespace=f"ns-{i % 50}", node=f"n-{i % 49}"))
    for kind, count, scoped in (
        ("nodes", 50, False),
        ("namespaces", 50, False),
        ("services", 500, True),
        ("deployments", 400, True),
        ("daemonsets", 50, True),
        ("statefulsets", 50, True),
        ("jobs", 200, True),
    ):
        for i in range(count):
            fake.add(kind, make_named(f"{kind}-{i}", namespace=f"ns-{i % 50}" if scoped else None))
    for i in range(2000):
        fake.add("events", make_event(f"e-{i}", pod=f"here-{i % 110}", count=1 + i % 7))
    print(fake.url, flush=True)
    sys.stdin.read()
    fake.stop()


def cpu(work, repeat: int) -> float:  # type: ignore[no-untyped-def]
    work()  # warm: imports, connections
    started = time.process_time()
    for _ in range(repeat):
        work()
    return (time.process_time() - started) / repeat


def measure(url: str) -> dict[str, float]:
    from cluster_apiserver import api_for

    from kk_common.config.kubernetes_objects import KubernetesObjectsConfig
    from kk_common.k8s.cache import PodCache
    from kk_common.k8s.watcher import PodWatcher
    from kk_metrics.cluster.api import LeaseApi, ObjectLists
    from kk_metrics.cluster.election import Election, ElectionTiming
    from kk_metrics.cluster.event_watch import EventWatch
    from kk_metrics.cluster.events import EventTracker, event_batch
    from kk_metrics.cluster.leader import LeaderElector
    from kk_metrics.cluster.service import KubernetesObjects
    from kk_metrics.scrape import ScrapeContext
    from kk_metrics.spool import ScrapeSpool

    class Fake:
        pass

    server = Fake()
    server.url = url  # type: ignore[attr-defined]
    api = api_for(server)  # type: ignore[arg-type]
    calls = [0]
    call_api = api.call_api

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return call_api(*args, **kwargs)

    api.call_api = counted  # type: ignore[method-assign]
    pods = PodCache()
    watcher = PodWatcher(api, "node-a", pods)
    watcher.start()
    deadline = time.monotonic() + 30
    while not pods.synced and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pods.synced, "the pod watch did not list this node's pods"
    lists = ObjectLists(api, timeout_s=30)
    leases = LeaseApi(api, name="leader", namespace="killkrill-system", timeout_s=5)
    # Long durations: leadership must not run out while the scrapes are measured.
    elector = LeaderElector(leases, Election("agent-a", ElectionTiming(3600.0, 3000.0, 2.0)))
    objects = KubernetesObjects(
        KubernetesObjectsConfig(),
        node_name="node-a",
        lists=lists,
        elector=elector,
        node_pods=pods.live_pods,
    )
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        spool = ScrapeSpool(Path(directory) / "spool")
        stamp = [time.time()]

        def context(source: str) -> ScrapeContext:
            stamp[0] += 1
            return ScrapeContext(source, "metrics@node-a", "node-a", "bench", stamp[0], 10**6, 1000)

        never = threading.Event()

        async def rounds(n: int) -> float:
            await elector.attempt()  # warm
            started = time.process_time()
            for _ in range(n):
                await elector.attempt()
            return (time.process_time() - started) / n

        results["election round (read + renew), CPU-ms"] = 1000 * asyncio.run(rounds(100))
        before = calls[0]
        results["kubernetes_node scrape, CPU-ms"] = 1000 * cpu(
            lambda: objects.collect_node(context("kubernetes_node"), spool, float("inf"), never), 20
        )
        results["kubernetes_node scrape, API requests"] = (calls[0] - before) / 21
        watcher.stop()  # its thread's CPU is not the other measurements'
        assert elector.is_leader()
        results["kubernetes_cluster scrape (leader), CPU-ms"] = 1000 * cpu(
            lambda: objects.collect_cluster(
                context("kubernetes_cluster"), spool, float("inf"), never
            ),
            5,
        )
        assert elector.is_leader() and spool.bytes_used

        def events() -> None:
            watch = EventWatch(api, EventTracker(cluster="bench", node="node-a"))
            records = []
            watch._emit = lambda record, rv, t: records.append(record) if record else None
            watch.loop._list_and_apply("0")  # the list the watch starts with
            writer = spool.begin("k8s_events", round(stamp[0] * 1000))
            stamp[0] += 1
            writer.write(event_batch(records, producer="metrics@node-a", batch_id="b"))
            writer.commit()

        results["2,000 events listed, recorded and spooled, CPU-ms"] = 1000 * cpu(events, 5)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--node-pods", type=int, default=110)
    parser.add_argument("--cluster-pods", type=int, default=5000)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.node_pods, args.cluster_pods)
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", f"--node-pods={args.node_pods}",
         f"--cluster-pods={args.cluster_pods}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None and child.stdin is not None
    url = child.stdout.readline().strip()
    try:
        print(json.dumps(measure(url), indent=2))
    finally:
        child.stdin.close()
        child.wait(30)


if __name__ == "__main__":
    main()
