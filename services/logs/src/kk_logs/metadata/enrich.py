"""Pure enrichment: pod metadata + log path -> the record's ``labels`` and ``service_name``.

The receiver stores only a flat ``labels`` map of strings with no dots in keys
(receiver-api.md), so every Kubernetes fact becomes one label:
``k8s_cluster``, ``k8s_node``, ``k8s_namespace``, ``k8s_pod``, ``k8s_pod_uid``,
``k8s_container``, ``container_id``, ``container_image``, ``k8s_workload``,
``k8s_workload_kind``, ``k8s_services``, and the selected pod labels and
annotations as ``label_<key>`` / ``annotation_<key>`` with every character other
than ASCII letters and digits replaced by ``_``.

``service_name`` is the ``app.kubernetes.io/name`` label, else the ``app`` label,
else the owning workload's name, else the container name.

Pods opt out with annotations: ``killkrill.io/exclude: "true"`` drops the whole pod,
``killkrill.io/exclude-containers: "a,b"`` drops those containers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from kk_common.k8s.model import PodMeta
from kk_common.k8s.workload import owning_workload
from kk_logs.metadata.pod_path import PathMeta
from kk_logs.records import sanitize_label_key

__all__ = [
    "ALL_POD_METADATA",
    "EXCLUDE_ANNOTATION",
    "EXCLUDE_CONTAINERS_ANNOTATION",
    "EnrichSettings",
    "Enrichment",
    "enrich",
    "is_excluded",
]

ALL_POD_METADATA: tuple[str, ...] = (
    "namespace",
    "pod_name",
    "container_name",
    "labels",
    "annotations",
)
EXCLUDE_ANNOTATION = "killkrill.io/exclude"
EXCLUDE_CONTAINERS_ANNOTATION = "killkrill.io/exclude-containers"


@dataclass(frozen=True)
class EnrichSettings:
    """Node identity plus the ``logs.kubernetes.pod_metadata`` selection."""

    cluster: str
    node: str
    pod_metadata: frozenset[str] = frozenset(ALL_POD_METADATA)

    def __post_init__(self) -> None:
        unknown = set(self.pod_metadata) - set(ALL_POD_METADATA)
        if unknown:
            raise ValueError(f"unknown pod_metadata fields: {sorted(unknown)}")

    @classmethod
    def select(cls, cluster: str, node: str, pod_metadata: Iterable[str]) -> EnrichSettings:
        """Settings from the config's ``pod_metadata`` list (any iterable of field names)."""
        return cls(cluster=cluster, node=node, pod_metadata=frozenset(pod_metadata))


@dataclass(frozen=True)
class Enrichment:
    """The labels and service name for every record of one container."""

    labels: Mapping[str, str]
    service_name: str


def is_excluded(pod: PodMeta | None, container: str) -> bool:
    """Whether the pod's annotations exclude ``container`` (or the whole pod) from collection."""
    if pod is None:
        return False
    if pod.annotations.get(EXCLUDE_ANNOTATION, "").strip().lower() == "true":
        return True
    listed = pod.annotations.get(EXCLUDE_CONTAINERS_ANNOTATION, "")
    return container in {name.strip() for name in listed.split(",") if name.strip()}


def _prefixed(prefix: str, values: Mapping[str, str]) -> dict[str, str]:
    # Different keys can sanitize to the same label (``a.b`` and ``a-b``); iterating in
    # sorted order and keeping the first makes the winner deterministic.
    out: dict[str, str] = {}
    for key in sorted(values):
        out.setdefault(prefix + sanitize_label_key(key), values[key])
    return out


def _container_id(pod: PodMeta, path: PathMeta) -> str:
    if path.container_id:
        return path.container_id
    ctr = pod.container(path.container)
    if ctr is None:
        return ""
    # /var/log/pods/.../<restart>.log: the current status describes only the newest
    # instance and lastState the one before it; an older file's id is unknown.
    if path.restart_count is None or path.restart_count == ctr.restart_count:
        return ctr.container_id
    if path.restart_count == ctr.restart_count - 1:
        return ctr.last_container_id
    return ""


def enrich(
    path: PathMeta,
    pod: PodMeta | None,
    settings: EnrichSettings,
    services: Sequence[str] = (),
) -> Enrichment:
    """Labels and ``service_name`` for records from ``path``.

    With ``pod=None`` (metadata not available in time) only the path-derived fields
    are set, so a record is never held back for want of metadata.
    """
    selected = settings.pod_metadata
    labels: dict[str, str] = {"k8s_cluster": settings.cluster, "k8s_node": settings.node}
    if "namespace" in selected:
        labels["k8s_namespace"] = pod.namespace if pod else path.namespace
    if "pod_name" in selected:
        labels["k8s_pod"] = pod.name if pod else path.pod_name
        uid = pod.uid if pod else path.pod_uid
        if uid:
            labels["k8s_pod_uid"] = uid
    if "container_name" in selected:
        labels["k8s_container"] = path.container
    service_name = path.container
    if pod is None:
        if path.container_id:
            labels["container_id"] = path.container_id
        return Enrichment(MappingProxyType(labels), service_name)

    container_id = _container_id(pod, path)
    if container_id:
        labels["container_id"] = container_id
    ctr = pod.container(path.container)
    if ctr is not None and ctr.image:
        labels["container_image"] = ctr.image
    workload = owning_workload(pod)
    if workload is not None:
        labels["k8s_workload"] = workload.name
        labels["k8s_workload_kind"] = workload.kind
        service_name = workload.name
    app = pod.labels.get("app.kubernetes.io/name") or pod.labels.get("app")
    if app:
        service_name = app
    if services:
        labels["k8s_services"] = ",".join(services)
    if "labels" in selected:
        labels.update(_prefixed("label_", pod.labels))
    if "annotations" in selected:
        labels.update(_prefixed("annotation_", pod.annotations))
    return Enrichment(MappingProxyType(labels), service_name)
