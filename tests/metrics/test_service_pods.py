"""The service and this node's pods, from the fake API server: an annotated pod is scraped
with its workload while it exists and no longer once it is gone; cAdvisor's series of a pod
carry its workload."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from kubernetes import client
from metrics_kubelet import MetricsKubelet
from service_support import TOKEN, kubelet_source, metrics_config, running_service, spooled_records

from kk_common.k8s.cache import PodCache
from kk_common.k8s.events import Relisted
from kk_common.k8s.model import pod_from_dict
from kk_common.k8s.watcher import PodWatcher, WatchSettings
from kk_metrics.app import MetricsService
from tests.logs.fake_apiserver import (
    FakeApiServer,
    eventually,
    make_pod,
    make_tls_files,
    owner,
)

APP_PAGE = """\
# HELP orders_total Orders taken.
# TYPE orders_total counter
orders_total{status="ok"} 41
orders_total{status="failed"} 1
"""
FAST = WatchSettings(watch_timeout_s=5, backoff_initial_s=0.05, backoff_max_s=0.2)


def web_pod(name: str, port: int, path: str = "/app-metrics") -> dict[str, Any]:
    pod = make_pod(
        name,
        namespace="shop",
        labels={"pod-template-hash": "5d8f7c6b9"},
        owners=[owner("ReplicaSet", "web-5d8f7c6b9")],
        annotations={
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "prometheus.io/path": path,
        },
    )
    pod["status"]["podIP"] = "127.0.0.1"
    return pod


def records_of(service: MetricsService, source: str) -> list[dict[str, Any]]:
    return [
        record
        for batch in spooled_records(service)
        for record in map(orjson.loads, batch.record_bodies())
        if record["labels"]["source"] == source
    ]


@pytest.fixture
def exporter():
    with MetricsKubelet(tls=None, token=None) as fake:  # a pod's plain-HTTP exporter
        yield fake


@pytest.fixture
def api():
    with FakeApiServer() as server:
        yield server


def test_an_annotated_pod_is_scraped_with_its_workload_until_it_goes(
    exporter, api, tmp_path
) -> None:
    exporter.serve("/app-metrics", APP_PAGE)
    exporter.serve("/noisy", "".join(f'noise{{n="{i}"}} {i}\n' for i in range(50)))
    api.add_pod(web_pod("web-1", exporter.port))
    api.add_pod(web_pod("noisy-1", exporter.port, path="/noisy"))
    pods = PodCache()
    watcher = PodWatcher(client.ApiClient(client.Configuration(host=api.url)), "node-a", pods,
                         settings=FAST)  # fmt: skip
    config = metrics_config(tmp_path, [], pods={"enabled": True, "sample_limit": 20})
    with running_service(config, pods=pods, pod_source=watcher) as (service, loop):
        watcher.start()
        try:
            eventually(lambda: len(pods.live_pods()) == 2, "both pods listed")

            async def sync() -> None:
                service.sync_pod_targets()

            loop.run_until_complete(sync())
            assert sorted(service.sources) == ["pod/shop/noisy-1", "pod/shop/web-1"]

            outcome = loop.run_until_complete(service.scrape("pod/shop/web-1"))
            assert outcome.ok, outcome.error
            records = records_of(service, "pod/shop/web-1")
            assert sorted(r["name"] for r in records) == ["orders_total", "orders_total"]
            assert records[0]["labels"] == {
                "status": "ok",
                "k8s_namespace": "shop",
                "k8s_pod": "web-1",
                "k8s_workload": "web",
                "k8s_workload_kind": "Deployment",
                "k8s_node": "node-a",
                "k8s_cluster": "test",
                "source": "pod/shop/web-1",
            }
            # A runaway exporter fails its own scrape; the other pod is unaffected.
            noisy = loop.run_until_complete(service.scrape("pod/shop/noisy-1"))
            assert noisy.error_reason == "sample_limit"
            assert records_of(service, "pod/shop/noisy-1") == []

            api.delete_pod("shop", "web-1")
            eventually(lambda: len(pods.live_pods()) == 1, "the deletion watched")
            loop.run_until_complete(sync())
            assert sorted(service.sources) == ["pod/shop/noisy-1"]
            far_future = service.schedule.next_deadline() + 3600
            assert service.schedule.due(far_future) == ["pod/shop/noisy-1"]
            requests = exporter.count("/app-metrics")
            assert requests == 1
            snapshot = service.snapshot()
            gauges = {s.name: s.value for s in snapshot.samples if not s.labels}
            assert gauges["killkrill_metrics_pod_targets"] == 1
            assert gauges["killkrill_metrics_pod_metadata_synced"] == 1
        finally:
            watcher.stop()


def test_cadvisor_series_of_a_pod_carry_its_workload(tmp_path) -> None:
    pods = PodCache()
    pods.apply(Relisted((pod_from_dict(web_pod("web-1", 9102)),), "7"), now=0.0)
    page = (
        "# TYPE container_memory_working_set_bytes gauge\n"
        'container_memory_working_set_bytes{container="app",id="/kubepods/a",'
        'namespace="shop",pod="web-1"} 1000\n'
        'container_memory_working_set_bytes{container="",id="/",namespace="",pod=""} 9000\n'
    )
    with MetricsKubelet(tls=make_tls_files(tmp_path / "tls"), token=TOKEN) as kubelet:
        kubelet.serve("/metrics/cadvisor", page)
        source = kubelet_source("cadvisor", kubelet.url("/metrics/cadvisor"), tmp_path,
                                kubelet.tls.ca)  # fmt: skip
        config = metrics_config(tmp_path, [source], pods={"enabled": True})
        with running_service(config, pods=pods) as (service, loop):
            outcome = loop.run_until_complete(service.scrape("cadvisor"))
            assert outcome.ok, outcome.error
            by_id = {r["labels"]["id"]: r["labels"] for r in records_of(service, "cadvisor")}
    assert {k: v for k, v in by_id["/kubepods/a"].items() if k.startswith("k8s_")} == {
        "k8s_namespace": "shop",
        "k8s_pod": "web-1",
        "k8s_container": "app",
        "k8s_workload": "web",
        "k8s_workload_kind": "Deployment",
        "k8s_node": "node-a",
        "k8s_cluster": "test",
    }
    assert "k8s_pod" not in by_id["/"]


def test_without_api_credentials_the_service_runs_on_and_says_so(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path))
    config = metrics_config(tmp_path, [], pods={"enabled": True})
    with running_service(config) as (service, loop):

        async def start() -> None:
            service._start_pod_source()

        loop.run_until_complete(start())
        assert service.pod_source is None
        assert "pod metadata unavailable" in service.snapshot().status.detail
