"""The metrics service scrapes its node's pods from the API server like any other source."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_apiserver import CLUSTER_RESOURCES, api_for, pod_in_state
from service_support import metrics_config, running_service, spooled_records

from kk_metrics.cluster import service as cluster_service
from tests.logs.fake_apiserver import FakeApiServer


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApiServer]:
    with FakeApiServer(resources=CLUSTER_RESOURCES) as server:
        # What the in-cluster loader would build in a pod, pointed at the fake.
        monkeypatch.setattr(cluster_service, "api_client", lambda: api_for(server))
        yield server


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

    with running_service(config) as (service, loop):
        assert sorted(service.sources) == ["kubernetes_node", "node"]
        outcome = loop.run_until_complete(service.scrape("kubernetes_node"))
        records = [
            json.loads(body) for batch in spooled_records(service) for body in batch.record_bodies()
        ]

    assert outcome.ok, outcome.error
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

    with running_service(config) as (service, loop):
        outcome = loop.run_until_complete(service.scrape("kubernetes_node"))
        problem = service.sources["kubernetes_node"].status.problem()

    assert outcome.error_reason == "http_403"
    assert problem is not None and "listing pods failed (http_403)" in problem


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
    )

    with running_service(config) as (service, _):
        kubernetes = service.kubernetes
        assert kubernetes is not None and kubernetes.events is not None
        assert kubernetes.elector is not None
        assert kubernetes.elector.checkpoint == kubernetes.events.current_checkpoint
        # Cluster counts are off: the election runs for the events only.
        assert sorted(service.sources) == ["kubernetes_node", "node"]
