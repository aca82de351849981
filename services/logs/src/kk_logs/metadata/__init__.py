"""Kubernetes metadata for log records.

Pure parts: ``pod_path`` (what a log path says), ``model`` (typed pods/services),
``cache`` (the pod watch cache), ``workload``, ``services``, ``enrich`` (labels and
``service_name``), ``waiting`` (how long a new pod's records wait for metadata).
IO adapters: ``watcher`` (API server list+watch) and ``kubelet`` (``/pods`` polling).
"""

from kk_logs.metadata.cache import DEFAULT_RETENTION_S, PodCache
from kk_logs.metadata.enrich import Enrichment, EnrichSettings, enrich, is_excluded
from kk_logs.metadata.events import Added, Bookmarked, Deleted, Modified, Relisted
from kk_logs.metadata.model import ContainerMeta, OwnerRef, PodMeta, ServiceMeta
from kk_logs.metadata.pod_path import PathMeta, parse_log_path
from kk_logs.metadata.services import ServiceIndex
from kk_logs.metadata.waiting import DEFAULT_WAIT_S, ShipWithoutMeta, Wait, metadata_or_wait
from kk_logs.metadata.workload import Workload, owning_workload

__all__ = [
    "DEFAULT_RETENTION_S",
    "DEFAULT_WAIT_S",
    "Added",
    "Bookmarked",
    "ContainerMeta",
    "Deleted",
    "EnrichSettings",
    "Enrichment",
    "Modified",
    "OwnerRef",
    "PathMeta",
    "PodCache",
    "PodMeta",
    "Relisted",
    "ServiceIndex",
    "ServiceMeta",
    "ShipWithoutMeta",
    "Wait",
    "Workload",
    "enrich",
    "is_excluded",
    "metadata_or_wait",
    "owning_workload",
    "parse_log_path",
]
