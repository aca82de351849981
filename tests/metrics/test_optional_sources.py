"""The optional sources, off by default: a node-exporter on the node, and the metrics API
(metrics-server's ``metrics.k8s.io``), whose pod list is the cluster's and is cut to this
node's pods."""

from __future__ import annotations

import json

import pytest
from e2e_support import LICENSE_KEY
from kubernetes import client
from metrics_kubelet import MetricsKubelet
from service_support import TOKEN, metrics_config, running_service, spooled_records

from kk_common.config import ConfigError, parse_config
from kk_common.k8s.cache import PodCache
from kk_common.k8s.connect import KubernetesApiUnavailable
from kk_common.k8s.events import Relisted
from kk_common.k8s.model import pod_from_dict
from kk_metrics.app import metrics_api_paths, optional_sources
from kk_metrics.sources.metrics_api import metrics_api_samples
from tests.logs.fake_apiserver import make_pod, make_tls_files, owner

NODE_METRICS = {
    "kind": "NodeMetrics",
    "apiVersion": "metrics.k8s.io/v1beta1",
    "metadata": {"name": "node-a"},
    "timestamp": "2026-11-26T10:00:00Z",
    "window": "20.03s",
    "usage": {"cpu": "250m", "memory": "2048Mi"},
}
POD_METRICS = {
    "kind": "PodMetricsList",
    "apiVersion": "metrics.k8s.io/v1beta1",
    "metadata": {},
    "items": [
        {
            "metadata": {"name": "web-1", "namespace": "shop"},
            "timestamp": "2026-11-26T10:00:05Z",
            "window": "15s",
            "containers": [
                {"name": "app", "usage": {"cpu": "123456n", "memory": "1234Ki"}},
                {"name": "odd", "usage": {"cpu": "not a quantity", "memory": "1Ki"}},
            ],
        },
        {  # another node's pod
            "metadata": {"name": "db-0", "namespace": "shop"},
            "timestamp": "2026-11-26T10:00:05Z",
            "containers": [{"name": "db", "usage": {"cpu": "1", "memory": "1Gi"}}],
        },
    ],
}


def test_node_and_pod_usage_become_samples_for_this_nodes_pods_only() -> None:
    node = list(metrics_api_samples(NODE_METRICS, lambda ns, name: False))
    assert [(s.name, s.value, dict(s.labels)) for s in node] == [
        ("k8s_metrics_api_node_cpu_usage_cores", 0.25, {}),
        ("k8s_metrics_api_node_memory_working_set_bytes", 2048 * 1024**2, {}),
    ]
    assert node[0].timestamp_s == 1795687200.0  # 2026-11-26T10:00:00Z
    pods = list(metrics_api_samples(POD_METRICS, lambda ns, name: name == "web-1"))
    assert [(s.name, s.value, s.labels["container"]) for s in pods] == [
        ("k8s_metrics_api_container_cpu_usage_cores", pytest.approx(0.000123456), "app"),
        ("k8s_metrics_api_container_memory_working_set_bytes", 1234 * 1024, "app"),
        ("k8s_metrics_api_container_memory_working_set_bytes", 1024, "odd"),
    ]
    with pytest.raises(ValueError, match="not a JSON object"):
        list(metrics_api_samples([1, 2], lambda ns, name: True))


def test_the_optional_sources_are_off_by_default_and_named_when_on(tmp_path) -> None:
    assert optional_sources(metrics_config(tmp_path, [], pods={"enabled": True})) == []
    config = metrics_config(
        tmp_path,
        [],
        node_exporter={"enabled": True, "url": "http://10.0.0.1:9100/metrics"},
        metrics_api={"enabled": True},
        pods={"enabled": True},
    )
    assert {s.name: (s.url, s.format) for s in optional_sources(config)} == {
        "node-exporter": ("http://10.0.0.1:9100/metrics", "prometheus"),
    }
    # Paths on the API server, read through the agent's one Kubernetes connection.
    assert metrics_api_paths(config) == {
        "metrics-api-node": "/apis/metrics.k8s.io/v1beta1/nodes/node-a",
        "metrics-api-pods": "/apis/metrics.k8s.io/v1beta1/pods",
    }


def configuration(text: str, **environ: str) -> object:
    env = {
        "KILLKRILL_LICENSE_KEY": LICENSE_KEY,
        "KILLKRILL_LOG_RECEIVER_URL": "https://logs.invalid",
        "KILLKRILL_METRICS_RECEIVER_URL": "https://metrics.invalid",
        "NODE_NAME": "node-a",
        **environ,
    }
    return parse_config(text, env)


def test_node_exporter_defaults_to_the_node_ip_and_needs_one_without_a_url() -> None:
    config = configuration("metrics:\n  node_exporter: {enabled: true}\n", NODE_IP="fd00::7")
    (exporter,) = [s for s in optional_sources(config) if s.name == "node-exporter"]  # type: ignore[arg-type]
    assert exporter.url == "http://[fd00::7]:9100/metrics"
    with pytest.raises(ConfigError, match=r"metrics\.node_exporter\.url: required"):
        configuration("metrics:\n  node_exporter: {enabled: true}\n  sources: []\n")
    with pytest.raises(ConfigError, match="'node-exporter' is the source name of"):
        configuration(
            "metrics:\n  node_exporter: {enabled: true}\n"
            "  sources: [{name: node-exporter, url: 'http://10.0.0.1:9100/metrics'}]\n",
            NODE_IP="10.0.0.1",
        )
    # A name that is no string is the model's error, not a TypeError from this check
    # (a list is unhashable; issue 13's config fuzzing found it).
    with pytest.raises(ConfigError, match=r"metrics\.sources\[0\]\.name"):
        configuration(
            "metrics:\n  sources: [{name: [], url: 'http://10.0.0.1:9100/metrics'}]\n",
            NODE_IP="10.0.0.1",
        )


def test_the_metrics_api_is_read_through_the_kubernetes_connection_and_keeps_this_nodes_pods(
    tmp_path,
) -> None:
    pods = PodCache()
    web = make_pod("web-1", namespace="shop", labels={"pod-template-hash": "5d8f7c6b9"},
                   owners=[owner("ReplicaSet", "web-5d8f7c6b9")])  # fmt: skip
    pods.apply(Relisted((pod_from_dict(web),), "3"), now=0.0)
    with MetricsKubelet(tls=make_tls_files(tmp_path / "tls"), token=TOKEN) as api:
        api.serve("/apis/metrics.k8s.io/v1beta1/nodes/node-a", json.dumps(NODE_METRICS), json=True)
        api.serve("/apis/metrics.k8s.io/v1beta1/pods", json.dumps(POD_METRICS), json=True)
        # The connection the in-cluster loader builds: the API server, its CA, the token.
        connection = client.Configuration(host=api.url(""))
        connection.ssl_ca_cert = str(api.tls.ca)  # type: ignore[union-attr]
        connection.api_key = {"authorization": f"Bearer {TOKEN}"}
        connection.retries = False
        config = metrics_config(
            tmp_path, [], metrics_api={"enabled": True}, pods={"enabled": True},
            kubernetes={"enabled": False},
        )  # fmt: skip
        kubernetes_api = client.ApiClient(connection)
        with running_service(config, pods=pods, kubernetes_api=kubernetes_api) as (service, loop):
            for name in ("metrics-api-node", "metrics-api-pods"):
                outcome = loop.run_until_complete(service.scrape(name))
                assert outcome.ok, outcome.error
            records = [json.loads(b) for batch in spooled_records(service)
                       for b in batch.record_bodies()]  # fmt: skip
    by_source: dict[str, list[str]] = {}
    for record in records:
        by_source.setdefault(record["labels"]["source"], []).append(record["name"])
    assert sorted(by_source["metrics-api-node"]) == [
        "k8s_metrics_api_node_cpu_usage_cores",
        "k8s_metrics_api_node_memory_working_set_bytes",
    ]
    assert len(by_source["metrics-api-pods"]) == 3  # web-1's containers; db-0 is elsewhere
    app_cpu = next(r for r in records if r["name"] == "k8s_metrics_api_container_cpu_usage_cores")
    assert app_cpu["labels"]["k8s_workload"] == "web"
    assert app_cpu["timestamp"] == "2026-11-26T10:00:05.000Z"


def test_a_refused_or_missing_api_connection_fails_the_metrics_api_scrape_only(tmp_path) -> None:
    config = metrics_config(
        tmp_path, [], metrics_api={"enabled": True}, pods={"enabled": False},
        kubernetes={"enabled": False},
    )  # fmt: skip
    with MetricsKubelet(tls=make_tls_files(tmp_path / "tls"), token=TOKEN) as api:
        api.serve("/apis/metrics.k8s.io/v1beta1/nodes/node-a", json.dumps(NODE_METRICS), json=True)
        connection = client.Configuration(host=api.url(""))
        connection.ssl_ca_cert = str(api.tls.ca)  # type: ignore[union-attr]
        connection.api_key = {"authorization": "Bearer wrong"}
        connection.retries = False
        with running_service(config, kubernetes_api=client.ApiClient(connection)) as (
            service,
            loop,
        ):
            refused = loop.run_until_complete(service.scrape("metrics-api-node"))

    assert refused.error_reason == "http_401"
    assert "metrics.k8s.io" in refused.error

    def unavailable() -> None:
        raise KubernetesApiUnavailable("no in-cluster service account and no kubeconfig")

    with running_service(config) as (service, loop):
        # What the service's connection says outside a cluster without a kubeconfig.
        service.sources["metrics-api-node"].fetcher.connect = unavailable  # type: ignore[union-attr]
        missing = loop.run_until_complete(service.scrape("metrics-api-node"))

    assert missing.error_reason == "no_api" and "no kubeconfig" in missing.error
