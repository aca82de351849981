"""What this node's pods mean for metrics (sans-IO): the labels that name a pod's workload,
cAdvisor series labelled with them, and the pods to scrape for their own metrics.

**Labels.** The same names as on log records: ``k8s_namespace``, ``k8s_pod``,
``k8s_container``, ``k8s_workload`` and ``k8s_workload_kind`` (the workload from the pod's
owner references, `kk_common.k8s.workload`).

**cAdvisor.** The kubelet's cAdvisor names a container's pod in the labels ``namespace``,
``pod`` and ``container`` (``pod_name`` and ``container_name`` before Kubernetes 1.16).
`CadvisorPodLabels` adds the pod's labels to such series, looking each pod up once per
scrape: a 100,000-series page names a few hundred pods. A pod the cache does not know
(yet, or any more) still gets what the series itself says.

**Annotated pods.** A pod of this node is scraped when it is ``Running``, has an IP and
carries the annotations Prometheus' Kubernetes examples made the convention::

    prometheus.io/scrape: "true"
    prometheus.io/port: "9102"          # required: the pod's own ports are not kept
    prometheus.io/path: /metrics        # default /metrics
    prometheus.io/scheme: http          # http (default) or https

Its source is named ``pod/<namespace>/<name>``. A pod whose annotations cannot be used
(a port that is not a port, an unknown scheme) is not scraped, and said why
(`PodTargets.problems`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from kk_common.k8s.model import PodMeta
from kk_common.k8s.workload import owning_workload

__all__ = [
    "PATH_ANNOTATION",
    "PORT_ANNOTATION",
    "SCHEME_ANNOTATION",
    "SCRAPE_ANNOTATION",
    "CadvisorPodLabels",
    "PodTarget",
    "PodTargets",
    "pod_labels",
    "pod_source_name",
    "scrape_targets",
    "url_host",
]

SCRAPE_ANNOTATION = "prometheus.io/scrape"
PORT_ANNOTATION = "prometheus.io/port"
PATH_ANNOTATION = "prometheus.io/path"
SCHEME_ANNOTATION = "prometheus.io/scheme"

_EMPTY: Mapping[str, str] = MappingProxyType({})


def pod_labels(pod: PodMeta) -> dict[str, str]:
    """``k8s_namespace``, ``k8s_pod`` and, when the pod has one, its workload."""
    labels = {"k8s_namespace": pod.namespace, "k8s_pod": pod.name}
    workload = owning_workload(pod)
    if workload is not None:
        labels["k8s_workload"] = workload.name
        labels["k8s_workload_kind"] = workload.kind
    return labels


def url_host(address: str) -> str:
    """An IP address as a URL's host: an IPv6 literal in brackets. Raises ValueError."""
    return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address


def pod_source_name(namespace: str, name: str) -> str:
    return f"pod/{namespace}/{name}"


class CadvisorPodLabels:
    """The pod labels of one scrape's cAdvisor series; one lookup per container.

    ``lookup(namespace, name)`` is the pod cache's (thread-safe) lookup: this is called
    on the scrape's worker thread.
    """

    def __init__(self, lookup: Callable[[str, str], PodMeta | None]) -> None:
        self._lookup = lookup
        self._seen: dict[tuple[str, str, str], Mapping[str, str]] = {}

    def __call__(self, labels: Mapping[str, str]) -> Mapping[str, str]:
        namespace = labels.get("namespace")
        name = labels.get("pod") or labels.get("pod_name")
        if not namespace or not name:
            return _EMPTY  # the node's or a system slice's cgroup, not a pod's
        container = labels.get("container") or labels.get("container_name") or ""
        key = (namespace, name, container)
        known = self._seen.get(key)
        if known is None:
            pod = self._lookup(namespace, name)
            found = pod_labels(pod) if pod is not None else {}
            found.setdefault("k8s_namespace", namespace)
            found.setdefault("k8s_pod", name)
            if container and container != "POD":  # "POD": the sandbox (pause) container
                found["k8s_container"] = container
            known = self._seen[key] = MappingProxyType(found)
        return known


@dataclass(frozen=True)
class PodTarget:
    """One annotated pod to scrape."""

    source: str
    url: str
    labels: Mapping[str, str]
    """Added to every sample of the pod (`pod_labels`)."""


@dataclass(frozen=True)
class PodTargets:
    targets: dict[str, PodTarget] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    """Source name -> why an annotated pod is not scraped."""


def _target(pod: PodMeta) -> PodTarget | str:
    annotations = pod.annotations
    port_text = annotations.get(PORT_ANNOTATION, "").strip()
    if not port_text:
        return f"annotated {SCRAPE_ANNOTATION}: true without {PORT_ANNOTATION}"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return f"{PORT_ANNOTATION} {port_text!r} is not a port number"
    scheme = annotations.get(SCHEME_ANNOTATION, "http").strip().lower() or "http"
    if scheme not in ("http", "https"):
        return f"{SCHEME_ANNOTATION} {scheme!r} is neither http nor https"
    path = annotations.get(PATH_ANNOTATION, "").strip() or "/metrics"
    if not path.startswith("/"):
        path = f"/{path}"
    try:
        host = url_host(pod.ip)
    except ValueError:
        return f"pod IP {pod.ip!r} is not an IP address"
    return PodTarget(
        source=pod_source_name(pod.namespace, pod.name),
        url=f"{scheme}://{host}:{int(port_text)}{path}",
        labels=MappingProxyType(pod_labels(pod)),
    )


def scrape_targets(pods: Iterable[PodMeta]) -> PodTargets:
    """The annotated pods that can be scraped now, and why the others cannot."""
    found = PodTargets()
    for pod in pods:
        if pod.annotations.get(SCRAPE_ANNOTATION, "").strip().lower() != "true":
            continue
        if pod.phase != "Running" or not pod.ip:
            continue  # not yet (or no longer) serving: not a problem
        target = _target(pod)
        name = pod_source_name(pod.namespace, pod.name)
        if isinstance(target, str):
            found.problems[name] = target
        else:
            found.targets[name] = target
    return found
