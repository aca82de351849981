"""Kubernetes objects into samples (sans-IO): this node's pods, and the cluster's counts.

This node's pods come from the service's pod cache (`kk_common.k8s`, the same list+watch
that labels cAdvisor's series and finds annotated pods): counting them costs no request.
The cluster's pods come from the API adapter (`kk_metrics.cluster.api`), which pages
through lists and hands the objects here as plain JSON mappings; nothing here does IO or
keeps objects once counted.

Node samples (every agent, its own node's pods)::

    k8s_node_pods{phase}                              pods by status.phase
    k8s_node_containers{state, reason}                containers by state: running, waiting
                                                      (reason: ContainerCreating,
                                                      CrashLoopBackOff, ...), terminated
                                                      (reason: Completed, Error, OOMKilled...)
    k8s_container_restarts_total{namespace, pod, container}
                                                      restartCount of each container

Cluster samples (the leader only, see `kk_metrics.cluster.election`)::

    k8s_cluster_objects{kind}                         nodes, namespaces, pods, services,
                                                      deployments, daemonsets,
                                                      statefulsets, jobs
    k8s_cluster_pods{phase}                           pods by status.phase

Every phase, and every container state, is always reported (0 included), so a series
drops to zero instead of vanishing when its last pod goes (a state's reasons come and go).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from kk_common.k8s.model import PodMeta
from kk_metrics.samples import RawSample

__all__ = [
    "CLUSTER_KINDS",
    "POD_PHASES",
    "ClusterCounts",
    "cluster_samples",
    "node_samples",
]

POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
"""The phases of ``PodStatus``; a pod without one counts as ``Unknown``."""

CLUSTER_KINDS = (
    "nodes",
    "namespaces",
    "pods",
    "services",
    "deployments",
    "daemonsets",
    "statefulsets",
    "jobs",
)
"""The collections counted cluster-wide, in the order they are listed."""

_CONTAINER_STATES = ("running", "waiting", "terminated")
_COUNTED_KINDS = ("init", "container")
"""Ephemeral (debug) containers are not the workload's: not counted."""


def _known_phase(phase: Any) -> str:
    return phase if phase in POD_PHASES else "Unknown"


def _phase(pod: Mapping[str, Any]) -> str:
    return _known_phase((pod.get("status") or {}).get("phase"))


def node_samples(pods: Iterable[PodMeta]) -> Iterator[RawSample]:
    """The samples of one node's pods (see the module docstring)."""
    phases: Counter[str] = Counter(dict.fromkeys(POD_PHASES, 0))
    states: Counter[tuple[str, str]] = Counter()
    for pod in pods:
        phases[_known_phase(pod.phase)] += 1
        for container in pod.containers.values():
            if not container.state or container.kind not in _COUNTED_KINDS:
                continue  # not in the pod's status yet
            states[(container.state, container.state_reason)] += 1
            yield RawSample(
                "k8s_container_restarts_total",
                "counter",
                float(container.restart_count),
                {"namespace": pod.namespace, "pod": pod.name, "container": container.name},
            )
    for phase, count in phases.items():
        yield RawSample("k8s_node_pods", "gauge", float(count), {"phase": phase})
    for state in _CONTAINER_STATES:
        # A state no container is in still gets its series, at 0.
        if not any(seen == state for seen, _ in states):
            states[(state, "")] = 0
    for (state, reason), count in sorted(states.items()):
        yield RawSample(
            "k8s_node_containers", "gauge", float(count), {"state": state, "reason": reason}
        )


class ClusterCounts:
    """Counts collected from the cluster-wide lists of one scrape."""

    def __init__(self) -> None:
        self.objects: dict[str, int] = {}
        self.pod_phases: Counter[str] = Counter(dict.fromkeys(POD_PHASES, 0))

    def count_pods(self, pods: Iterable[Mapping[str, Any]]) -> None:
        """Count one page of the cluster's pods."""
        self.objects.setdefault("pods", 0)
        for pod in pods:
            self.pod_phases[_phase(pod)] += 1
            self.objects["pods"] += 1

    def set_total(self, kind: str, total: int) -> None:
        """The number of objects of ``kind`` (a collection counted without its items)."""
        self.objects[kind] = total


def cluster_samples(counts: ClusterCounts) -> Iterator[RawSample]:
    """The cluster-wide samples (see the module docstring)."""
    for kind in CLUSTER_KINDS:
        if kind in counts.objects:
            yield RawSample(
                "k8s_cluster_objects", "gauge", float(counts.objects[kind]), {"kind": kind}
            )
    if "pods" in counts.objects:
        for phase, count in counts.pod_phases.items():
            yield RawSample("k8s_cluster_pods", "gauge", float(count), {"phase": phase})
