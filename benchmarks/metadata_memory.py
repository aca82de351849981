"""Memory the logs service's pod metadata cache holds per pod.

    .venv/bin/python benchmarks/metadata_memory.py [--pods 2000]

Pods are built as the API server returns them (two containers, four labels, a
``last-applied-configuration`` annotation of ~2.5 KB as ``kubectl apply`` leaves, a
ReplicaSet owner), serialised, then parsed and decoded inside the measurement, as the
watch does, so no string is shared with the generator. Reports tracemalloc's bytes per pod
held by the cache.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "logs"))

from fake_apiserver import make_pod

from kk_common.k8s.events import Added
from kk_common.k8s.model import pod_from_dict
from kk_logs.metadata import PodCache


def pod_json(i: int) -> str:
    env = [{"name": f"E{j}", "value": "v" * 30} for j in range(40)]
    applied = {"spec": {"containers": [{"name": "app", "image": "x" * 40, "env": env}]}}
    return json.dumps(
        make_pod(
            f"checkout-{i}-abcde",
            namespace=f"ns-{i % 20}",
            labels={
                "app.kubernetes.io/name": "checkout",
                "pod-template-hash": "7d9f",
                "team": "shop",
                "tier": "backend",
            },
            annotations={
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied),
                "prometheus.io/scrape": "true",
                "checksum/config": "a" * 64,
            },
            owners=[
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"checkout-{i}",
                    "uid": "u" * 36,
                    "controller": True,
                }
            ],
            containers=("app", "sidecar"),
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=2000)
    args = parser.parse_args()
    raw = [pod_json(i) for i in range(args.pods)]
    gc.collect()
    tracemalloc.start()
    cache = PodCache()
    for text in raw:
        cache.apply(Added(pod_from_dict(json.loads(text))), now=0.0)
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    print(json.dumps({"pods": args.pods, "kib_per_pod": round(held / args.pods / 1024, 2)}))


if __name__ == "__main__":
    main()
