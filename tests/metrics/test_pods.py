"""This node's pods, for metrics: which annotated pods are scraped where, and the workload
labels a pod's samples (its own, or cAdvisor's about it) get."""

from __future__ import annotations

from typing import Any

import orjson

from kk_common.k8s.model import PodMeta, pod_from_dict
from kk_metrics.pods import CadvisorPodLabels, scrape_targets
from kk_metrics.records import ScrapeEncoder
from kk_metrics.samples import RawSample
from tests.logs.fake_apiserver import make_pod, owner


def pod(name: str, ip: str = "10.1.2.3", phase: str = "Running", **annotations: str) -> PodMeta:
    raw: dict[str, Any] = make_pod(
        name,
        namespace="shop",
        labels={"pod-template-hash": "5d8f7c6b9"},
        owners=[owner("ReplicaSet", "web-5d8f7c6b9")],
        annotations=annotations,
    )
    raw["status"].update(podIP=ip, phase=phase)
    return pod_from_dict(raw)


def annotated(name: str, port: str = "9102", **more: str) -> PodMeta:
    return pod(name, **{"prometheus.io/scrape": "true", "prometheus.io/port": port, **more})


def test_an_annotated_running_pod_is_a_target_at_its_port_path_and_scheme() -> None:
    found = scrape_targets(
        [
            annotated("web-1"),
            annotated("web-2", **{"prometheus.io/path": "stats", "prometheus.io/scheme": "HTTPS"}),
            pod("plain"),  # not annotated
            annotated("starting", phase="Pending"),
            annotated("no-ip", ip=""),
        ]
    )
    assert {name: t.url for name, t in found.targets.items()} == {
        "pod/shop/web-1": "http://10.1.2.3:9102/metrics",
        "pod/shop/web-2": "https://10.1.2.3:9102/stats",
    }
    assert found.targets["pod/shop/web-1"].labels == {
        "k8s_namespace": "shop",
        "k8s_pod": "web-1",
        "k8s_workload": "web",
        "k8s_workload_kind": "Deployment",
    }
    assert found.problems == {}


def test_an_ipv6_pod_is_bracketed_and_unusable_annotations_are_said() -> None:
    found = scrape_targets(
        [
            annotated("v6", ip="fd00::7"),
            pod("portless", **{"prometheus.io/scrape": "true"}),
            annotated("bad-port", port="http"),
            annotated("bad-scheme", **{"prometheus.io/scheme": "ftp"}),
        ]
    )
    assert [t.url for t in found.targets.values()] == ["http://[fd00::7]:9102/metrics"]
    assert found.problems == {
        "pod/shop/portless": "annotated prometheus.io/scrape: true without prometheus.io/port",
        "pod/shop/bad-port": "prometheus.io/port 'http' is not a port number",
        "pod/shop/bad-scheme": "prometheus.io/scheme 'ftp' is neither http nor https",
    }


def test_cadvisor_series_of_a_known_pod_get_its_workload_once_per_container() -> None:
    lookups: list[tuple[str, str]] = []

    def lookup(namespace: str, name: str) -> PodMeta | None:
        lookups.append((namespace, name))
        return pod(name) if name == "web-1" else None

    labels_of = CadvisorPodLabels(lookup)
    series = {"namespace": "shop", "pod": "web-1", "container": "app", "id": "/kubepods/x"}
    assert labels_of(series) == {
        "k8s_namespace": "shop",
        "k8s_pod": "web-1",
        "k8s_container": "app",
        "k8s_workload": "web",
        "k8s_workload_kind": "Deployment",
    }
    assert labels_of({**series, "id": "/kubepods/y"})["k8s_workload"] == "web"
    # A pod the cache does not know keeps what the series says; the sandbox is no container.
    assert labels_of({"namespace": "shop", "pod": "gone", "container": "POD"}) == {
        "k8s_namespace": "shop",
        "k8s_pod": "gone",
    }
    # The node's own cgroups name no pod.
    assert labels_of({"id": "/system.slice/kubelet.service"}) == {}
    assert lookups == [("shop", "web-1"), ("shop", "gone")]


def test_added_labels_join_ours_and_keep_a_clashing_source_label_aside() -> None:
    encoder = ScrapeEncoder(
        source="cadvisor",
        node="node-a",
        cluster="prod",
        scrape_time_s=1_795_000_000.0,
        sample_limit=10,
        extra_labels=lambda labels: {"k8s_pod": labels["pod"], "k8s_workload": "web"},
    )
    sample = RawSample("container_cpu_usage_seconds_total", "counter", 1.5,
                       {"pod": "web-1", "k8s_workload": "theirs"})  # fmt: skip
    _, body = encoder.encode(sample)  # type: ignore[misc]
    assert orjson.loads(body)["labels"] == {
        "pod": "web-1",
        "exported_k8s_workload": "theirs",
        "k8s_pod": "web-1",
        "k8s_workload": "web",
        "k8s_node": "node-a",
        "k8s_cluster": "prod",
        "source": "cadvisor",
    }
