"""The kubelet's /stats/summary JSON becomes node, pod, container and volume samples."""

from __future__ import annotations

from metrics_kubelet import summary_document

from kk_metrics.sources.summary import summary_samples

STAMP = 1795687200.0  # 2026-11-26T10:00:00Z


def by_key(document: dict) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in summary_samples(document)}


def test_node_pod_container_and_volume_values_with_their_labels_and_time() -> None:
    samples = list(summary_samples(summary_document()))
    values = by_key(summary_document())
    pod = (("namespace", "shop"), ("pod", "web-1"), ("pod_uid", "uid-1"))
    app = tuple(sorted((*pod, ("container", "app"))))
    assert values[("k8s_node_cpu_usage_cores", ())] == 0.25
    assert values[("k8s_node_cpu_time_seconds_total", ())] == 9000.0
    assert values[("k8s_node_memory_working_set_bytes", ())] == 2_500_000_000
    assert values[("k8s_node_network_transmit_errors_total", (("interface", "eth0"),))] == 1
    assert values[("k8s_node_network_receive_bytes_total", (("interface", "cni0"),))] == 10
    assert values[("k8s_node_filesystem_usage_bytes", (("filesystem", "image"),))] == 4e10
    assert values[("k8s_node_processes", ())] == 812
    assert values[("k8s_pod_memory_rss_bytes", pod)] == 1_000_000_000
    assert values[("k8s_pod_processes", pod)] == 7
    claim = tuple(sorted((*pod, ("persistentvolumeclaim", "data-web-1"), ("volume", "data"))))
    assert values[("k8s_pod_volume_capacity_bytes", claim)] == 1e11
    token_volume = tuple(sorted((*pod, ("volume", "kube-api-access-xyz"))))
    assert ("k8s_pod_volume_inodes_used", token_volume) in values
    assert values[("k8s_container_cpu_time_seconds_total", app)] == 5.0
    assert ("k8s_container_cpu_usage_cores", app) not in values  # not given: no sample
    rootfs = tuple(sorted((*app, ("filesystem", "rootfs"))))
    assert values[("k8s_container_filesystem_usage_bytes", rootfs)] == 40_960
    assert {s.kind for s in samples if s.name.endswith("_total")} == {"counter"}
    # Values carry their block's time; process_stats has none: the scrape's time is used.
    assert {s.timestamp_s for s in samples if s.name != "k8s_pod_processes"} == {STAMP}


def test_odd_shapes_are_skipped_not_fatal() -> None:
    document = {"node": {"cpu": "busy", "memory": {"usageBytes": True}}, "pods": [None, {"x": 1}]}
    assert list(summary_samples(document)) == []
    # Lists of another type once raised TypeError, which lost the whole scrape.
    pod = {"podRef": {"name": "p"}, "volume": True, "containers": 7, "cpu": {"usageBytes": 1}}
    assert list(summary_samples({"pods": 5})) == []
    assert list(summary_samples({"pods": [pod]})) == []
