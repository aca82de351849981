"""Kubernetes metadata for log records.

Pure parts: ``pod_path`` (what a log path says), ``enrich`` (labels and ``service_name``),
``waiting`` (how long a new pod's records wait for metadata). The pods themselves (model,
watch cache, workloads, Services, the API server and kubelet adapters) are
`kk_common.k8s`, shared with the metrics service; the names are re-exported here.
"""

from kk_common.k8s.cache import DEFAULT_RETENTION_S, PodCache
from kk_common.k8s.events import Added, Bookmarked, Deleted, Modified, Relisted
from kk_common.k8s.model import ContainerMeta, OwnerRef, PodMeta, ServiceMeta
from kk_common.k8s.services import ServiceIndex
from kk_common.k8s.workload import Workload, owning_workload
from kk_logs.metadata.enrich import Enrichment, EnrichSettings, enrich, is_excluded
from kk_logs.metadata.pod_path import PathMeta, parse_log_path
from kk_logs.metadata.waiting import DEFAULT_WAIT_S, ShipWithoutMeta, Wait, metadata_or_wait

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
