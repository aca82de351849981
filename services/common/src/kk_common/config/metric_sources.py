"""The default metrics sources, which depend on the node's IP.

The defaults scrape the node's kubelet (``/metrics``) and its embedded cAdvisor
(``/metrics/cadvisor``) on port 10250 with the pod's service-account token. They are
filled in by the loader, not by the model, because they need ``agent.node_ip``
(``NODE_IP``); when ``metrics.sources`` is given it replaces the defaults entirely.
"""

from __future__ import annotations

import enum
import ipaddress
from typing import Any

__all__ = [
    "KUBELET_PORT",
    "SERVICE_ACCOUNT_CA_FILE",
    "SERVICE_ACCOUNT_TOKEN_FILE",
    "DefaultSources",
    "default_metric_sources",
    "fill_default_metric_sources",
]

KUBELET_PORT = 10250
SERVICE_ACCOUNT_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path
SERVICE_ACCOUNT_CA_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
_DEFAULT_PATHS = (("kubelet", "/metrics"), ("cadvisor", "/metrics/cadvisor"))


class DefaultSources(enum.Enum):
    """What the loader did about ``metrics.sources``."""

    EXPLICIT = "listed in the file"
    FILLED = "defaults filled from the node IP"
    NODE_IP_MISSING = "defaults needed but no node IP"
    NODE_IP_INVALID = "defaults needed but agent.node_ip (or agent) is invalid, and reported"


def default_metric_sources(node_ip: str) -> list[dict[str, Any]]:
    """The default source list for a node, as raw config data."""
    address = ipaddress.ip_address(node_ip)
    # An IPv6 literal needs brackets in a URL: https://[fd00::1]:10250/metrics
    host = f"[{address}]" if address.version == 6 else str(address)
    return [
        {
            "name": name,
            "url": f"https://{host}:{KUBELET_PORT}{path}",
            "bearer_token_file": SERVICE_ACCOUNT_TOKEN_FILE,
            "ca_file": SERVICE_ACCOUNT_CA_FILE,
        }
        for name, path in _DEFAULT_PATHS
    ]


def fill_default_metric_sources(document: dict[str, Any]) -> DefaultSources:
    """Put the default sources into ``document`` (in place) unless sources are listed."""
    metrics = document.setdefault("metrics", {})
    if not isinstance(metrics, dict) or "sources" in metrics:
        return DefaultSources.EXPLICIT
    agent = document.get("agent")
    if not isinstance(agent, dict):
        metrics["sources"] = []
        return DefaultSources.NODE_IP_INVALID
    node_ip = agent.get("node_ip")
    if not node_ip:
        metrics["sources"] = []
        return DefaultSources.NODE_IP_MISSING
    try:
        metrics["sources"] = default_metric_sources(str(node_ip).strip())
    except ValueError:
        metrics["sources"] = []
        return DefaultSources.NODE_IP_INVALID
    return DefaultSources.FILLED
