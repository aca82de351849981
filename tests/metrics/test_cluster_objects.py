"""Pods and object counts into samples (sans-IO)."""

from __future__ import annotations

from typing import Any

from cluster_apiserver import pod_in_state

from kk_common.k8s.model import PodMeta, pod_from_dict
from kk_metrics.cluster.objects import ClusterCounts, cluster_samples, node_samples


def cached(name: str, **state: Any) -> PodMeta:
    """A pod as this node's pod cache holds it (what ``kubernetes_node`` counts)."""
    return pod_from_dict(pod_in_state(name, **state))


def by_labels(samples, name):  # type: ignore[no-untyped-def]
    return {tuple(sorted(s.labels.items())): s.value for s in samples if s.name == name}


def test_a_nodes_pods_by_phase_and_containers_by_state() -> None:
    pods = [
        cached("web-1"),
        cached("web-2", restarts=3),
        cached(
            "crashy",
            state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m"}},
            restarts=12,
        ),
        cached("starting", phase="Pending", state={"waiting": {"reason": "ContainerCreating"}}),
        cached("batch", phase="Succeeded", state={"terminated": {"reason": "Completed"}}),
        cached("killed", phase="Failed", state={"terminated": {"reason": "OOMKilled"}}),
        cached("odd", phase="Evicted?"),
    ]

    samples = list(node_samples(pods))

    assert by_labels(samples, "k8s_node_pods") == {
        (("phase", "Pending"),): 1,
        (("phase", "Running"),): 3,
        (("phase", "Succeeded"),): 1,
        (("phase", "Failed"),): 1,
        (("phase", "Unknown"),): 1,
    }
    assert by_labels(samples, "k8s_node_containers") == {
        (("reason", ""), ("state", "running")): 3,
        (("reason", "CrashLoopBackOff"), ("state", "waiting")): 1,
        (("reason", "ContainerCreating"), ("state", "waiting")): 1,
        (("reason", "Completed"), ("state", "terminated")): 1,
        (("reason", "OOMKilled"), ("state", "terminated")): 1,
    }
    restarts = by_labels(samples, "k8s_container_restarts_total")
    assert restarts[(("container", "app"), ("namespace", "default"), ("pod", "crashy"))] == 12
    assert restarts[(("container", "app"), ("namespace", "default"), ("pod", "web-2"))] == 3
    assert {s.kind for s in samples if s.name == "k8s_container_restarts_total"} == {"counter"}


def test_an_empty_node_reports_zeros_not_nothing() -> None:
    samples = list(node_samples([]))
    assert by_labels(samples, "k8s_node_pods")[(("phase", "Running"),)] == 0
    assert by_labels(samples, "k8s_node_containers") == {
        (("reason", ""), ("state", state)): 0 for state in ("running", "waiting", "terminated")
    }


def test_cluster_counts_by_kind_and_pods_by_phase() -> None:
    counts = ClusterCounts()
    counts.set_total("nodes", 3)
    counts.set_total("jobs", 0)
    counts.count_pods([pod_in_state("a"), pod_in_state("b", phase="Pending")])
    counts.count_pods([pod_in_state("c")])

    samples = list(cluster_samples(counts))

    assert by_labels(samples, "k8s_cluster_objects") == {
        (("kind", "nodes"),): 3,
        (("kind", "pods"),): 3,
        (("kind", "jobs"),): 0,
    }
    phases = by_labels(samples, "k8s_cluster_pods")
    assert phases[(("phase", "Running"),)] == 2 and phases[(("phase", "Pending"),)] == 1
    assert phases[(("phase", "Failed"),)] == 0
