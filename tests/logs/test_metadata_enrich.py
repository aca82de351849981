"""Enrichment: the exact labels map, the pod_metadata selection, service_name, excludes."""

from __future__ import annotations

from typing import Any

import pytest

from kk_common.k8s.model import PodMeta, pod_from_dict
from kk_logs.metadata.enrich import EnrichSettings, enrich, is_excluded
from kk_logs.metadata.pod_path import PathMeta, parse_log_path
from kk_logs.records import sanitize_label_key as sanitize_key
from tests.logs.fake_apiserver import make_pod, owner

UID = "6a1d2c3b-0000-4000-8000-000000000001"
CID_NOW = "c" * 64
CID_BEFORE = "b" * 64
SETTINGS = EnrichSettings(cluster="prod-eu", node="node-a")


def checkout_pod(**overrides: Any) -> PodMeta:
    raw = make_pod(
        "checkout-7d9f8b6c5d-abcde",
        namespace="shop",
        uid=UID,
        labels={
            "app.kubernetes.io/name": "checkout-svc",
            "pod-template-hash": "7d9f8b6c5d",
            "team": "payments",
        },
        annotations={
            "prometheus.io/scrape": "true",
            "kubectl.kubernetes.io/last-applied-configuration": '{"huge": "json"}',
        },
        owners=[owner("ReplicaSet", "checkout-7d9f8b6c5d")],
        containers=("app", "istio-proxy"),
        image="registry.local/checkout:2.3.1",
        restart_count=2,
    )
    status = raw["status"]["containerStatuses"][0]
    status["containerID"] = f"containerd://{CID_NOW}"
    status["lastState"] = {"terminated": {"containerID": f"containerd://{CID_BEFORE}"}}
    raw["metadata"]["labels"].update(overrides.pop("labels", {}))
    raw["metadata"]["annotations"].update(overrides.pop("annotations", {}))
    raw["metadata"].update(overrides)
    return pod_from_dict(raw)


def pods_path(restart: int = 2, container: str = "app") -> PathMeta:
    meta = parse_log_path(
        f"/var/log/pods/shop_checkout-7d9f8b6c5d-abcde_{UID}/{container}/{restart}.log"
    )
    assert meta is not None
    return meta


def test_full_pod_gives_the_exact_labels_map() -> None:
    """Every documented label, keys sanitized, the kubectl annotation left out."""
    result = enrich(pods_path(), checkout_pod(), SETTINGS, services=("checkout", "shop-all"))
    assert dict(result.labels) == {
        "k8s_cluster": "prod-eu",
        "k8s_node": "node-a",
        "k8s_namespace": "shop",
        "k8s_pod": "checkout-7d9f8b6c5d-abcde",
        "k8s_pod_uid": UID,
        "k8s_container": "app",
        "container_id": CID_NOW,
        "container_image": "registry.local/checkout:2.3.1",
        "k8s_workload": "checkout",
        "k8s_workload_kind": "Deployment",
        "k8s_services": "checkout,shop-all",
        "label_app_kubernetes_io_name": "checkout-svc",
        "label_pod_template_hash": "7d9f8b6c5d",
        "label_team": "payments",
        "annotation_prometheus_io_scrape": "true",
    }
    assert result.service_name == "checkout-svc"
    assert all("." not in key for key in result.labels)


def test_previous_restart_file_gets_the_previous_container_id() -> None:
    """<restart-1>.log was written by lastState's container; older files get no id."""
    pod = checkout_pod()
    assert enrich(pods_path(restart=1), pod, SETTINGS).labels["container_id"] == CID_BEFORE
    assert "container_id" not in enrich(pods_path(restart=0), pod, SETTINGS).labels


def test_symlink_path_container_id_is_authoritative() -> None:
    """A /var/log/containers name carries the id of the instance that wrote it."""
    path = parse_log_path(f"/var/log/containers/checkout-7d9f8b6c5d-abcde_shop_app-{'e' * 64}.log")
    assert path is not None
    assert enrich(path, checkout_pod(), SETTINGS).labels["container_id"] == "e" * 64


@pytest.mark.parametrize(
    ("selection", "absent"),
    [
        ((), {"k8s_namespace", "k8s_pod", "k8s_pod_uid", "k8s_container"}),
        (("namespace", "pod_name", "container_name", "annotations"), {"label_team"}),
        (
            ("namespace", "pod_name", "container_name", "labels"),
            {"annotation_prometheus_io_scrape"},
        ),
        (("pod_name", "container_name"), {"k8s_namespace"}),
    ],
)
def test_pod_metadata_selection_is_honoured(selection: tuple[str, ...], absent: set[str]) -> None:
    """Fields left out of logs.kubernetes.pod_metadata are left out of the labels."""
    settings = EnrichSettings.select("prod-eu", "node-a", selection)
    labels = enrich(pods_path(), checkout_pod(), settings).labels
    assert absent.isdisjoint(labels)
    if "labels" not in selection:
        assert not any(k.startswith("label_") for k in labels)
    if "annotations" not in selection:
        assert not any(k.startswith("annotation_") for k in labels)
    assert labels["k8s_cluster"] == "prod-eu" and labels["k8s_node"] == "node-a"


def test_unknown_pod_metadata_field_is_rejected() -> None:
    """A typo in the selection is an error, not a silently empty label set."""
    with pytest.raises(ValueError, match="podname"):
        EnrichSettings.select("c", "n", ["podname"])


def test_sanitized_keys_and_deterministic_collisions() -> None:
    """Non-alphanumerics become _, and colliding keys resolve the same way every time."""
    assert sanitize_key("app.kubernetes.io/name") == "app_kubernetes_io_name"
    assert sanitize_key("ünï-code") == "_n__code"
    pod = checkout_pod(labels={"a.b": "dot", "a-b": "dash"})
    assert enrich(pods_path(), pod, SETTINGS).labels["label_a_b"] == "dash"  # "a-b" < "a.b"


@pytest.mark.parametrize(
    ("labels", "owners", "expected"),
    [
        ({"app.kubernetes.io/name": "n1", "app": "n2"}, [owner("StatefulSet", "db")], "n1"),
        ({"app": "n2"}, [owner("StatefulSet", "db")], "n2"),
        ({}, [owner("StatefulSet", "db")], "db"),
        ({}, [], "app"),
    ],
)
def test_service_name_rule_order(
    labels: dict[str, str], owners: list[dict[str, Any]], expected: str
) -> None:
    """app.kubernetes.io/name, then app, then the owning workload, then the container."""
    pod = pod_from_dict(make_pod("x", labels=labels, owners=owners, containers=("app",)))
    path = PathMeta("default", "x", "app", pod_uid=pod.uid, restart_count=0)
    assert enrich(path, pod, SETTINGS).service_name == expected


def test_without_metadata_only_path_fields_are_set() -> None:
    """A record that could not wait for metadata ships with what the path knows."""
    result = enrich(pods_path(), None, SETTINGS)
    assert dict(result.labels) == {
        "k8s_cluster": "prod-eu",
        "k8s_node": "node-a",
        "k8s_namespace": "shop",
        "k8s_pod": "checkout-7d9f8b6c5d-abcde",
        "k8s_pod_uid": UID,
        "k8s_container": "app",
    }
    assert result.service_name == "app"


@pytest.mark.parametrize(
    ("annotations", "container", "excluded"),
    [
        ({}, "app", False),
        ({"killkrill.io/exclude": "true"}, "app", True),
        ({"killkrill.io/exclude": "True "}, "istio-proxy", True),
        ({"killkrill.io/exclude": "false"}, "app", False),
        ({"killkrill.io/exclude-containers": "istio-proxy, linkerd"}, "istio-proxy", True),
        ({"killkrill.io/exclude-containers": "istio-proxy, linkerd"}, "linkerd", True),
        ({"killkrill.io/exclude-containers": "istio-proxy, linkerd"}, "app", False),
    ],
)
def test_annotation_driven_excludes(
    annotations: dict[str, str], container: str, excluded: bool
) -> None:
    """killkrill.io/exclude drops the pod; exclude-containers drops the listed containers."""
    assert is_excluded(checkout_pod(annotations=annotations), container) is excluded


def test_unknown_pod_is_never_excluded() -> None:
    """Without metadata there is no annotation to honour: collect."""
    assert is_excluded(None, "app") is False
