"""The defaults that depend on the node's IP: the metrics sources and the kubelet URL.

The default sources scrape the node's kubelet on port 10250 with the pod's service-account
token: its own metrics (``/metrics``), its embedded cAdvisor (``/metrics/cadvisor``), its
resource metrics (``/metrics/resource``) and its summary API (``/stats/summary``, JSON); the default
``logs.kubernetes.kubelet_url`` is the same kubelet, ``https://<node IP>:10250``. They are
filled in by the loader, not by the model, because they need ``agent.node_ip``
(``NODE_IP``); a ``metrics.sources`` or ``kubelet_url`` in the file replaces its default.
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
    "default_kubelet_url",
    "default_metric_sources",
    "fill_default_kubelet_url",
    "fill_default_metric_sources",
]

KUBELET_PORT = 10250
SERVICE_ACCOUNT_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path
SERVICE_ACCOUNT_CA_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
_DEFAULT_PATHS = (
    ("kubelet", "/metrics", "prometheus"),
    ("cadvisor", "/metrics/cadvisor", "prometheus"),
    ("resource", "/metrics/resource", "prometheus"),
    ("summary", "/stats/summary", "kubelet_summary"),
)


class DefaultSources(enum.Enum):
    """What the loader did about a node-specific default (``metrics.sources``, kubelet_url)."""

    EXPLICIT = "set in the file"
    FILLED = "default filled from the node IP"
    NODE_IP_MISSING = "default needed but no node IP"
    NODE_IP_INVALID = "default needed but agent.node_ip (or agent) is invalid, and reported"


def default_kubelet_url(node_ip: str) -> str:
    """The node's kubelet, ``https://<node IP>:10250`` (no path)."""
    address = ipaddress.ip_address(node_ip)
    # An IPv6 literal needs brackets in a URL: https://[fd00::1]:10250
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"https://{host}:{KUBELET_PORT}"


def default_metric_sources(node_ip: str) -> list[dict[str, Any]]:
    """The default source list for a node, as raw config data."""
    kubelet = default_kubelet_url(node_ip)
    return [
        {
            "name": name,
            "url": f"{kubelet}{path}",
            "format": source_format,
            "bearer_token_file": SERVICE_ACCOUNT_TOKEN_FILE,
            "ca_file": SERVICE_ACCOUNT_CA_FILE,
        }
        for name, path, source_format in _DEFAULT_PATHS
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


def fill_default_kubelet_url(document: dict[str, Any]) -> DefaultSources:
    """Put the default ``logs.kubernetes.kubelet_url`` into ``document`` unless it is set.

    Filled whatever ``source`` says, so the URL is known should it be switched to kubelet;
    with no usable node IP it stays unset (the cross-field checks need it for kubelet).
    """
    logs = document.get("logs")
    kubernetes = logs.get("kubernetes", {}) if isinstance(logs, dict) else None
    if not isinstance(logs, dict) or not isinstance(kubernetes, dict):
        return DefaultSources.NODE_IP_INVALID  # not a mapping: reported by validation
    if "kubelet_url" in kubernetes:
        return DefaultSources.EXPLICIT
    agent = document.get("agent")
    if not isinstance(agent, dict):
        return DefaultSources.NODE_IP_INVALID
    node_ip = agent.get("node_ip")
    if not node_ip:
        return DefaultSources.NODE_IP_MISSING
    try:
        url = default_kubelet_url(str(node_ip).strip())
    except ValueError:
        return DefaultSources.NODE_IP_INVALID
    logs["kubernetes"] = {**kubernetes, "kubelet_url": url}
    return DefaultSources.FILLED
