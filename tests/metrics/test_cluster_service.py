"""The metrics service reports its node's pods like any other source, from the pod cache
that its one API connection keeps current."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cluster_apiserver import CLUSTER_RESOURCES, api_for, pod_in_state
from service_support import metrics_config, running_service, spooled_records

from kk_metrics import app as metrics_app
from kk_metrics.app import MetricsService
from tests.logs.fake_apiserver import FakeApiServer, eventually

CONNECTIONS: list[Any] = []


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApiServer]:
    CONNECTIONS.clear()

    def connect() -> Any:
        # What the in-cluster loader would build in a pod, pointed at the fake.
        CONNECTIONS.append(api_for(server))
        return CONNECTIONS[-1]

    with FakeApiServer(resources=CLUSTER_RESOURCES) as server:
        monkeypatch.setattr(metrics_app, "api_client", connect)
        yield server


@contextmanager
def watching_pods(service: MetricsService) -> Iterator[None]:
    """The pod source as ``run`` starts it."""
    service._start_pod_source()
    try:
        yield
    finally:
        assert service.pod_source is not None
        service.pod_source.stop()


def test_the_node_source_reports_this_nodes_pods_only(fake: FakeApiServer, tmp_path: Path) -> None:
    fake.add("pods", pod_in_state("web", node="node-a"))
    fake.add(
        "pods",
        pod_in_state(
            "crashy", node="node-a", state={"waiting": {"reason": "CrashLoopBackOff"}}, restarts=4
        ),
    )
    fake.add("pods", pod_in_state("elsewhere", node="node-b"))
    config = metrics_config(
        tmp_path, [], node={"enabled": True}, kubernetes={"cluster_counts": False}
    )

    with running_service(config) as (service, loop), watching_pods(service):
        assert sorted(service.sources) == ["kubernetes_node", "node"]
        assert service.pods is not None
        eventually(lambda: service.pods.synced, "this node's pods to be listed")
        lists_before = [r for r in fake.requests if not r.watch]
        outcome = loop.run_until_complete(service.scrape("kubernetes_node"))
        lists_after = [r for r in fake.requests if not r.watch]
        records = [
            json.loads(body) for batch in spooled_records(service) for body in batch.record_bodies()
        ]

    assert outcome.ok, outcome.error
    # One connection for the pod watch and the object metrics; the scrape reads the cache.
    assert len(CONNECTIONS) == 1 and service.kubernetes_api is CONNECTIONS[0]
    assert lists_after == lists_before
    running = [
        r for r in records if r["name"] == "k8s_node_pods" and r["labels"]["phase"] == "Running"
    ]
    assert [r["value"] for r in running] == [2]
    assert running[0]["labels"]["source"] == "kubernetes_node"
    assert running[0]["labels"]["k8s_node"] == "node-a"
    restarts = {
        r["labels"]["pod"]: r["value"]
        for r in records
        if r["name"] == "k8s_container_restarts_total"
    }
    assert restarts == {"web": 0, "crashy": 4}


def test_a_refusing_api_server_is_a_failed_scrape_not_a_crash(
    fake: FakeApiServer, tmp_path: Path
) -> None:
    fake.fail(403)
    config = metrics_config(
        tmp_path, [], node={"enabled": True}, kubernetes={"cluster_counts": False}
    )

    with running_service(config) as (service, loop), watching_pods(service):
        eventually(lambda: "http_403" in service._pod_source_error(), "the watch to be refused")
        outcome = loop.run_until_complete(service.scrape("kubernetes_node"))
        problem = service.sources["kubernetes_node"].status.problem()

    # Not an empty node: a scrape that says why it has nothing to report.
    assert outcome.error_reason == "not_synced"
    assert problem is not None and "not listed yet: http_403" in problem


def test_the_node_source_works_with_metrics_pods_off(fake: FakeApiServer, tmp_path: Path) -> None:
    """metrics.pods only switches cAdvisor's labels and annotated pods: the cache stays."""
    fake.add("pods", pod_in_state("web", node="node-a"))
    config = metrics_config(
        tmp_path,
        [],
        node={"enabled": True},
        pods={"enabled": False},
        kubernetes={"cluster_counts": False},
    )

    with running_service(config) as (service, loop), watching_pods(service):
        assert service.pods is not None
        eventually(lambda: service.pods.synced, "this node's pods to be listed")
        service.sync_pod_targets()
        outcome = loop.run_until_complete(service.scrape("kubernetes_node"))

    assert outcome.ok and outcome.samples > 0, outcome.error
    assert service._cadvisor_labels() is not None and service._pod_targets == []


def test_without_an_api_server_the_service_runs_without_object_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent-kubeconfig"))
    config = metrics_config(tmp_path, [], node={"enabled": True})

    with running_service(config) as (service, _):
        assert service.kubernetes is None
        assert sorted(service.sources) == ["node"]


def test_events_need_the_election_and_leave_their_checkpoint_in_the_lease(
    fake: FakeApiServer, tmp_path: Path
) -> None:
    config = metrics_config(
        tmp_path,
        [],
        node={"enabled": True},
        kubernetes={"cluster_counts": False, "events": {"enabled": True}, "identity": "agent-a"},
        # The events go out as log records: the shipper's log output must be on.
        logs={"output": {"url": "https://logs.invalid:8443"}},
    )

    with running_service(config) as (service, _):
        kubernetes = service.kubernetes
        assert kubernetes is not None and kubernetes.events is not None
        assert kubernetes.elector is not None
        assert kubernetes.elector.checkpoint == kubernetes.events.current_checkpoint
        # Cluster counts are off: the election runs for the events only.
        assert sorted(service.sources) == ["kubernetes_node", "node"]
