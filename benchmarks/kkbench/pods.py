"""The benchmark node's pods: one container each, named and labelled like a real cluster's.

The same `BenchPod` list drives the log files (their kubelet paths) and the fake API server
(their Pod objects), so the logs service finds metadata for every file it reads.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

NODE_NAME = "bench-node"
CLUSTER_NAME = "bench"

# (namespace, workload) pairs cycled through; pods of one workload differ by their suffix.
_WORKLOADS = (
    ("shop", "checkout"),
    ("shop", "cart"),
    ("shop", "catalog"),
    ("payments", "payment-gateway"),
    ("payments", "fraud-scorer"),
    ("search", "query-api"),
    ("search", "indexer"),
    ("identity", "auth-server"),
    ("monitoring", "prometheus-adapter"),
    ("kube-system", "coredns"),
    ("data", "orders-db-proxy"),
    ("data", "kafka-connect"),
)
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class BenchPod:
    """One pod with one container, as the kubelet lays out its log directory."""

    namespace: str
    name: str
    uid: str
    container: str
    workload: str
    template_hash: str

    @property
    def log_dir_name(self) -> str:
        """``<namespace>_<pod>_<uid>``, the kubelet's directory under /var/log/pods."""
        return f"{self.namespace}_{self.name}_{self.uid}"

    @property
    def container_id(self) -> str:
        """The 64-hex id the fake API server reports (``make_pod``'s rule)."""
        return uuid.uuid5(uuid.NAMESPACE_OID, f"{self.uid}/{self.container}").hex * 2

    @property
    def replica_set(self) -> str:
        """The owning ReplicaSet, ``<deployment>-<pod-template-hash>``."""
        return f"{self.workload}-{self.template_hash}"

    @property
    def labels(self) -> dict[str, str]:
        """The labels a Deployment's pod typically carries."""
        return {
            "app.kubernetes.io/name": self.workload,
            "app.kubernetes.io/part-of": self.namespace,
            "app.kubernetes.io/version": "1.4.2",
            "pod-template-hash": self.template_hash,
        }

    def log_file(self, pods_root: Path) -> Path:
        """``<pods_root>/<ns>_<pod>_<uid>/<container>/0.log``."""
        return pods_root / self.log_dir_name / self.container / "0.log"

    def container_link_name(self) -> str:
        """The /var/log/containers symlink name: ``<pod>_<ns>_<container>-<id>.log``."""
        return f"{self.name}_{self.namespace}_{self.container}-{self.container_id}.log"


def _suffix(seed: str, length: int) -> str:
    """A kubelet-looking random suffix that is the same for the same seed."""
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    letters = []
    for _ in range(length):
        number, digit = divmod(number, len(_ALPHABET))
        letters.append(_ALPHABET[digit])
    return "".join(letters)


def bench_pods(count: int) -> list[BenchPod]:
    """``count`` distinct pods, the same list for the same count (names are derived, not
    random, so a rerun produces the same paths)."""
    pods = []
    for index in range(count):
        namespace, workload = _WORKLOADS[index % len(_WORKLOADS)]
        template_hash = _suffix(f"{workload}/{index // len(_WORKLOADS)}", 10)
        name = f"{workload}-{template_hash}-{_suffix(f'pod/{index}', 5)}"
        uid = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"kkbench/{namespace}/{name}"))
        pods.append(BenchPod(namespace, name, uid, "app", workload, template_hash))
    return pods
