"""The benchmark's Kubernetes API: the tests' fake API server (``tests/logs/fake_apiserver.py``)
holding the node's pods and one Service per workload, as its own process.

    python -m kkbench.fake_cluster --pods 500 --kubeconfig /tmp/x/kubeconfig

``tests/logs`` must be importable (the benchmark puts it on ``PYTHONPATH``). The kubeconfig
appears once the server listens; SIGTERM or SIGINT stops it. It is the only fake in the
benchmark: the logs service lists and watches it exactly as it would a real API server.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

from fake_apiserver import FakeApiServer, make_pod, make_service, owner, write_kubeconfig

from kkbench.pods import NODE_NAME, bench_pods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pods", type=int, required=True)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    args = parser.parse_args()

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    api = FakeApiServer().start()
    try:
        workloads = set()
        for pod in bench_pods(args.pods):
            api.add_pod(
                make_pod(
                    pod.name,
                    namespace=pod.namespace,
                    node=NODE_NAME,
                    uid=pod.uid,
                    labels=pod.labels,
                    owners=[owner("ReplicaSet", pod.replica_set)],
                    containers=(pod.container,),
                    image=f"registry.bench.local/{pod.workload}:1.4.2",
                )
            )
            workloads.add((pod.namespace, pod.workload))
        for namespace, workload in sorted(workloads):
            api.add_service(
                make_service(
                    workload,
                    namespace=namespace,
                    selector={"app.kubernetes.io/name": workload},
                )
            )
        # Written under another name and renamed: a reader never sees half a kubeconfig.
        partial = args.kubeconfig.with_name(args.kubeconfig.name + ".tmp")
        write_kubeconfig(partial, api)
        os.replace(partial, args.kubeconfig)
        stop.wait()
    finally:
        api.stop()


if __name__ == "__main__":
    main()
