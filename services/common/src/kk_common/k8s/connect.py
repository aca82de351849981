"""The configured source of this node's pods (`logs.kubernetes`), for every service that
keeps a `PodCache`: the API server's list+watch, or the kubelet's ``/pods``.

The ``kubernetes`` client is imported here, not at the package's import, so a service that
only uses the pure parts does not need it installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kk_common.config import KubernetesMetadataConfig
from kk_common.k8s.cache import PodCache
from kk_common.k8s.services import ServiceIndex

if TYPE_CHECKING:
    from kk_common.k8s.kubelet import KubeletPodSource
    from kk_common.k8s.watcher import PodWatcher

__all__ = ["api_client", "pod_metadata_source"]


def api_client() -> Any:
    """A client for the API server: in-cluster credentials, else $KUBECONFIG."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    # urllib3's own retries would sleep out Retry-After inside a call that stop() cannot
    # interrupt; the watcher has its own backoff.
    configuration.retries = False
    return client.ApiClient(configuration)


def pod_metadata_source(
    kube: KubernetesMetadataConfig,
    node_name: str,
    pods: PodCache,
    services: ServiceIndex | None = None,
) -> PodWatcher | KubeletPodSource:
    """The source that keeps ``pods`` (and ``services``, API only) current; not started.

    Raises what the client raises when no API server credentials can be found.
    """
    if kube.source == "kubelet":
        from kk_common.k8s.kubelet import KubeletPodSource, KubeletSettings

        return KubeletPodSource(
            KubeletSettings(
                url=str(kube.kubelet_url).rstrip("/") + "/pods",
                token_file=kube.token_file,
                ca_file=kube.ca_file,
                poll_interval_s=kube.kubelet_poll_interval,
            ),
            pods,
        )
    from kk_common.k8s.watcher import PodWatcher

    return PodWatcher(api_client(), node_name, pods, services)
