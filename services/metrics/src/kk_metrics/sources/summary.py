"""The kubelet's ``/stats/summary`` JSON into `RawSample`s (sans-IO).

The summary API has no exposition format; the names below follow the ``k8s_<level>_<what>``
pattern with Prometheus units (seconds, bytes, cores). Levels and their labels:

* node: ``k8s_node_*`` (the agent adds ``k8s_node``), file systems with
  ``filesystem`` = ``root`` | ``image`` | ``container``, interfaces with ``interface``;
* pod: ``k8s_pod_*`` with ``namespace``, ``pod``, ``pod_uid``; volumes as
  ``k8s_pod_volume_*`` with ``volume`` (and ``persistentvolumeclaim`` when it has one);
* container: ``k8s_container_*`` with ``namespace``, ``pod``, ``pod_uid``, ``container``;
  its root file system and logs as ``filesystem`` = ``rootfs`` | ``logs``.

Each value carries the ``time`` of the block it came from. A field the kubelet leaves out
(it does, e.g. ``usageNanoCores`` on the first scrape after its start) gives no sample; a
block of the wrong shape is skipped, never an error: the kubelet's summary is not versioned.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from kk_metrics.samples import RawSample, SampleKind

__all__ = ["summary_samples"]

Table = tuple[tuple[str, str, SampleKind, float], ...]
"""``(json key, name suffix, kind, scale)``."""

_CPU: Table = (
    ("usageNanoCores", "cpu_usage_cores", "gauge", 1e-9),
    ("usageCoreNanoSeconds", "cpu_time_seconds_total", "counter", 1e-9),
)
_MEMORY: Table = (
    ("availableBytes", "memory_available_bytes", "gauge", 1),
    ("usageBytes", "memory_usage_bytes", "gauge", 1),
    ("workingSetBytes", "memory_working_set_bytes", "gauge", 1),
    ("rssBytes", "memory_rss_bytes", "gauge", 1),
    ("pageFaults", "memory_page_faults_total", "counter", 1),
    ("majorPageFaults", "memory_major_page_faults_total", "counter", 1),
)
_SWAP: Table = (
    ("swapAvailableBytes", "memory_swap_available_bytes", "gauge", 1),
    ("swapUsageBytes", "memory_swap_usage_bytes", "gauge", 1),
)
_NETWORK: Table = (
    ("rxBytes", "network_receive_bytes_total", "counter", 1),
    ("rxErrors", "network_receive_errors_total", "counter", 1),
    ("txBytes", "network_transmit_bytes_total", "counter", 1),
    ("txErrors", "network_transmit_errors_total", "counter", 1),
)


def _fs_table(prefix: str) -> Table:
    return (
        ("availableBytes", f"{prefix}_available_bytes", "gauge", 1),
        ("capacityBytes", f"{prefix}_capacity_bytes", "gauge", 1),
        ("usedBytes", f"{prefix}_usage_bytes", "gauge", 1),
        ("inodesFree", f"{prefix}_inodes_free", "gauge", 1),
        ("inodes", f"{prefix}_inodes", "gauge", 1),
        ("inodesUsed", f"{prefix}_inodes_used", "gauge", 1),
    )


_FILESYSTEM = _fs_table("filesystem")
_VOLUME = _fs_table("volume")


class _Times:
    """RFC 3339 ``time`` fields to epoch seconds, parsed once per distinct string."""

    def __init__(self) -> None:
        self._cache: dict[str, float | None] = {}

    def __call__(self, block: Mapping[str, Any]) -> float | None:
        text = block.get("time")
        if not isinstance(text, str):
            return None
        if text not in self._cache:
            try:
                self._cache[text] = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
            except ValueError:
                self._cache[text] = None
        return self._cache[text]


def _items(value: Any) -> list[Any]:
    """A list block's items; a block of another shape (``"pods": 5``) has none."""
    return value if isinstance(value, list) else []


def _block(
    parent: Mapping[str, Any],
    key: str,
    table: Table,
    prefix: str,
    labels: Mapping[str, str],
    times: _Times,
) -> Iterator[RawSample]:
    block = parent.get(key)
    yield from _values(block, table, prefix, labels, times)


def _values(
    block: Any, table: Table, prefix: str, labels: Mapping[str, str], times: _Times
) -> Iterator[RawSample]:
    if not isinstance(block, dict):
        return
    stamp = times(block)
    for field, suffix, kind, scale in table:
        value = block.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            yield RawSample(f"{prefix}_{suffix}", kind, value * scale, labels, stamp)


def _interfaces(
    network: Any, prefix: str, labels: Mapping[str, str], times: _Times
) -> Iterator[RawSample]:
    if not isinstance(network, dict):
        return
    interfaces = network.get("interfaces")
    if not isinstance(interfaces, list):
        # Older kubelets give only the default interface, at the top of the block.
        interfaces = [network] if isinstance(network.get("name"), str) else []
    for interface in interfaces:
        if isinstance(interface, dict) and isinstance(interface.get("name"), str):
            merged = {**labels, "interface": interface["name"]}
            stamp_source = interface if "time" in interface else network
            for sample in _values(interface, _NETWORK, prefix, merged, times):
                yield sample._replace(timestamp_s=times(stamp_source))


def _node(node: Any, times: _Times) -> Iterator[RawSample]:
    if not isinstance(node, dict):
        return
    prefix, labels = "k8s_node", {}
    yield from _block(node, "cpu", _CPU, prefix, labels, times)
    yield from _block(node, "memory", _MEMORY, prefix, labels, times)
    yield from _block(node, "swap", _SWAP, prefix, labels, times)
    yield from _interfaces(node.get("network"), prefix, labels, times)
    yield from _block(node, "fs", _FILESYSTEM, prefix, {"filesystem": "root"}, times)
    runtime = node.get("runtime")
    if isinstance(runtime, dict):
        for key, name in (("imageFs", "image"), ("containerFs", "container")):
            yield from _block(runtime, key, _FILESYSTEM, prefix, {"filesystem": name}, times)
    rlimit = node.get("rlimit")
    if isinstance(rlimit, dict):
        yield from _values(
            rlimit,
            (
                ("maxpid", "max_pids", "gauge", 1),
                ("curproc", "processes", "gauge", 1),
            ),
            prefix,
            labels,
            times,
        )


def _pod(pod: Any, times: _Times) -> Iterator[RawSample]:
    if not isinstance(pod, dict) or not isinstance(pod.get("podRef"), dict):
        return
    ref = pod["podRef"]
    labels = {
        "namespace": str(ref.get("namespace", "")),
        "pod": str(ref.get("name", "")),
        "pod_uid": str(ref.get("uid", "")),
    }
    prefix = "k8s_pod"
    yield from _block(pod, "cpu", _CPU, prefix, labels, times)
    yield from _block(pod, "memory", _MEMORY, prefix, labels, times)
    yield from _block(pod, "swap", _SWAP, prefix, labels, times)
    yield from _interfaces(pod.get("network"), prefix, labels, times)
    yield from _block(
        pod, "ephemeral-storage", _FILESYSTEM, prefix, {**labels, "filesystem": "ephemeral"}, times
    )
    processes = pod.get("process_stats")
    if isinstance(processes, dict):
        yield from _values(
            processes, (("process_count", "processes", "gauge", 1),), prefix, labels, times
        )
    for volume in _items(pod.get("volume")):
        if not isinstance(volume, dict) or not isinstance(volume.get("name"), str):
            continue
        volume_labels = {**labels, "volume": volume["name"]}
        claim = volume.get("pvcRef")
        if isinstance(claim, dict) and isinstance(claim.get("name"), str):
            volume_labels["persistentvolumeclaim"] = claim["name"]
        yield from _values(volume, _VOLUME, prefix, volume_labels, times)
    for container in _items(pod.get("containers")):
        if isinstance(container, dict) and isinstance(container.get("name"), str):
            yield from _container(container, labels, times)


def _container(
    container: Mapping[str, Any], pod_labels: Mapping[str, str], times: _Times
) -> Iterator[RawSample]:
    labels = {**pod_labels, "container": container["name"]}
    prefix = "k8s_container"
    yield from _block(container, "cpu", _CPU, prefix, labels, times)
    yield from _block(container, "memory", _MEMORY, prefix, labels, times)
    yield from _block(container, "swap", _SWAP, prefix, labels, times)
    for key in ("rootfs", "logs"):
        yield from _block(container, key, _FILESYSTEM, prefix, {**labels, "filesystem": key}, times)


def summary_samples(document: Any) -> Iterator[RawSample]:
    """The samples of a parsed ``/stats/summary`` document."""
    if not isinstance(document, dict):
        raise ValueError(f"expected a JSON object, got {type(document).__name__}")
    times = _Times()
    yield from _node(document.get("node"), times)
    for pod in _items(document.get("pods")):
        yield from _pod(pod, times)
