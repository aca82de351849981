"""The Kubernetes API connection and the configured source of this node's pods.

One rule for every service (logs and metrics): the API server is reached with the pod's
service account (in-cluster), else the file ``$KUBECONFIG`` names (``~/.kube/config`` when
unset). There are no per-section API server settings. This node's pods come from where
``logs.kubernetes.source`` says: that API server's list+watch, or the kubelet's ``/pods``
(``kubelet_url``, ``token_file``, ``ca_file``).

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

__all__ = ["KubernetesApiUnavailable", "api_client", "pod_metadata_source"]


class KubernetesApiUnavailable(Exception):
    """Neither in-cluster credentials nor a readable kubeconfig: no API server to ask."""


def api_client() -> Any:
    """A client for the API server: in-cluster credentials, else $KUBECONFIG.

    Raises `KubernetesApiUnavailable` when neither is there.
    """
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise KubernetesApiUnavailable(
                f"no in-cluster service account and no kubeconfig ({exc})"
            ) from exc
    configuration = client.Configuration.get_default_copy()
    # urllib3's own retries would sleep out Retry-After inside a call that stop() cannot
    # interrupt; the callers have their own backoff (or their schedule is the retry).
    configuration.retries = False
    return client.ApiClient(configuration)


def pod_metadata_source(
    kube: KubernetesMetadataConfig,
    node_name: str,
    pods: PodCache,
    services: ServiceIndex | None = None,
    *,
    api: Any = None,
) -> PodWatcher | KubeletPodSource:
    """The source that keeps ``pods`` (and ``services``, API only) current; not started.

    ``api`` is the service's API connection (`api_client` when None). Raises
    `KubernetesApiUnavailable` when the source is the API server and there is none.
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

    return PodWatcher(api if api is not None else api_client(), node_name, pods, services)
