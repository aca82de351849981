"""The object metrics' API calls against the fake API server over a real socket: paged
lists, counts from ``remainingItemCount``, the Lease's create/replace and 409 Conflict."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_apiserver import CLUSTER_RESOURCES, api_for, make_named, pod_in_state

from kk_metrics.cluster.api import LeaseApi, LeaseConflict, LeaseUnavailable, ObjectLists
from kk_metrics.cluster.election import LeaseRecord
from kk_metrics.errors import ScrapeError
from tests.logs.fake_apiserver import FakeApiServer


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    with FakeApiServer(resources=CLUSTER_RESOURCES) as server:
        yield server


def test_a_collection_is_counted_with_one_small_request(fake: FakeApiServer) -> None:
    for i in range(7):
        fake.add("deployments", make_named(f"web-{i}", namespace=f"ns-{i % 3}"))
    lists = ObjectLists(api_for(fake), timeout_s=5)

    assert lists.count("deployments") == 7
    asked = [r for r in fake.requests if r.resource == "deployments"]
    assert len(asked) == 1 and asked[0].query["limit"] == "1"
    assert lists.count("statefulsets") == 0


def test_the_clusters_pods_are_read_a_page_at_a_time(fake: FakeApiServer) -> None:
    for i in range(4):
        fake.add("pods", pod_in_state(f"a-{i}", node="node-a"))
    fake.add("pods", pod_in_state("b-0", node="node-b"))
    lists = ObjectLists(api_for(fake), timeout_s=5, page_size=2)

    pages = list(lists.pages("pods"))

    assert [len(page) for page in pages] == [2, 2, 1]
    names = [pod["metadata"]["name"] for page in pages for pod in page]
    assert names == [*(f"a-{i}" for i in range(4)), "b-0"]


def test_a_refused_list_is_a_scrape_error_with_the_status(fake: FakeApiServer) -> None:
    fake.fail(403)
    lists = ObjectLists(api_for(fake), timeout_s=5)
    with pytest.raises(ScrapeError) as caught:
        lists.count("nodes")
    assert caught.value.reason == "http_403"
    assert "listing nodes failed" in str(caught.value)


def lease_api(fake: FakeApiServer) -> LeaseApi:
    return LeaseApi(api_for(fake), name="leader", namespace="killkrill-system", timeout_s=5)


def test_the_lease_is_created_read_and_replaced(fake: FakeApiServer) -> None:
    leases = lease_api(fake)
    assert leases.read() is None

    created = leases.write(
        LeaseRecord("agent-a", 15, acquired_at=1_800_000_000.5, renewed_at=1_800_000_000.5)
    )
    renewed = leases.write(
        LeaseRecord("agent-a", 15, 1_800_000_000.5, 1_800_000_002.25, 0, created.resource_version)
    )

    assert created.holder == "agent-a" and created.resource_version
    assert renewed.resource_version != created.resource_version
    assert leases.read() == renewed
    stored = fake.get("leases", "killkrill-system", "leader")
    assert stored is not None
    # MicroTime, RFC 3339 with microseconds (the client writes the offset as +00:00).
    assert stored["spec"]["renewTime"].startswith("2027-01-15T08:00:02.250000")
    assert stored["spec"]["holderIdentity"] == "agent-a"


def test_a_stale_or_duplicate_write_is_a_conflict(fake: FakeApiServer) -> None:
    leases = lease_api(fake)
    first = leases.write(LeaseRecord("agent-a", 15))
    with pytest.raises(LeaseConflict):
        leases.write(LeaseRecord("agent-b", 15))  # create: exists already
    leases.write(LeaseRecord("agent-a", 15, resource_version=first.resource_version))
    with pytest.raises(LeaseConflict):  # replace with the resourceVersion read before that
        leases.write(LeaseRecord("agent-b", 15, resource_version=first.resource_version))
    current = leases.read()
    assert current is not None and current.holder == "agent-a"


def test_an_unreachable_server_is_unavailable_not_a_crash(fake: FakeApiServer) -> None:
    leases = lease_api(fake)
    fake.fail(503)
    with pytest.raises(LeaseUnavailable) as caught:
        leases.read()
    assert caught.value.reason == "http_503"
