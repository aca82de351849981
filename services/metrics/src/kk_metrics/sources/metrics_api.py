"""The resource metrics API (``metrics.k8s.io/v1beta1``, served by metrics-server) into
`RawSample`s (sans-IO).

Two documents: a ``NodeMetrics`` (``/apis/metrics.k8s.io/v1beta1/nodes/<node>``) and a
``PodMetricsList`` (``/apis/metrics.k8s.io/v1beta1/pods``). The API cannot filter pods by
node (it knows only ``metadata.name`` and ``metadata.namespace`` as field selectors), so the
list is the cluster's and ``on_this_node(namespace, name)`` keeps this node's pods: every
agent reports its own node's pods, none twice.

Names, in Prometheus units, each sample at the ``timestamp`` the API gives::

    k8s_metrics_api_node_cpu_usage_cores                 (the agent adds k8s_node)
    k8s_metrics_api_node_memory_working_set_bytes
    k8s_metrics_api_container_cpu_usage_cores            {namespace, pod, container}
    k8s_metrics_api_container_memory_working_set_bytes   {namespace, pod, container}

Quantities (``250m``, ``123456n``, ``1234Ki``) are read by the ``kubernetes`` client's
`parse_quantity`. An item or value of the wrong shape is skipped, never an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from kk_metrics.samples import RawSample

__all__ = ["metrics_api_samples"]

_USAGE = (("cpu", "cpu_usage_cores"), ("memory", "memory_working_set_bytes"))


def _time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _usage(
    prefix: str, usage: Any, labels: Mapping[str, str], stamp: float | None
) -> Iterator[RawSample]:
    if not isinstance(usage, Mapping):
        return
    for key, suffix in _USAGE:
        try:
            value = float(parse_quantity(usage[key]))
        except (KeyError, ValueError, TypeError, ArithmeticError):
            continue
        yield RawSample(f"{prefix}_{suffix}", "gauge", value, labels, stamp)


def metrics_api_samples(
    document: Any, on_this_node: Callable[[str, str], bool]
) -> Iterator[RawSample]:
    """The samples of a NodeMetrics, NodeMetricsList, PodMetrics or PodMetricsList."""
    if not isinstance(document, Mapping):
        raise ValueError("the metrics API answered something that is not a JSON object")
    kind = document.get("kind", "")
    items = document.get("items") if str(kind).endswith("List") else [document]
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping):
            continue
        stamp = _time(item.get("timestamp"))
        if str(kind).startswith("Node"):
            yield from _usage("k8s_metrics_api_node", item.get("usage"), {}, stamp)
            continue
        meta = item.get("metadata") or {}
        namespace, pod = meta.get("namespace"), meta.get("name")
        if not isinstance(namespace, str) or not isinstance(pod, str):
            continue
        if not on_this_node(namespace, pod):
            continue
        for container in item.get("containers") or ():
            if not isinstance(container, Mapping) or not isinstance(container.get("name"), str):
                continue
            labels = {"namespace": namespace, "pod": pod, "container": container["name"]}
            yield from _usage("k8s_metrics_api_container", container.get("usage"), labels, stamp)
