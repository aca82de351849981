"""The fake API server behaves like the real one where the official client can tell."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.logs.fake_apiserver import FakeApiServer, make_pod


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with FakeApiServer() as srv:
        yield srv


@pytest.fixture
def v1(server: FakeApiServer) -> Iterator[client.CoreV1Api]:
    api = client.ApiClient(client.Configuration(host=server.url))
    yield client.CoreV1Api(api)
    api.close()


def test_list_then_watch_transcript(server: FakeApiServer, v1: client.CoreV1Api) -> None:
    """The transcript from test-recipes section 4: filtered events, then bookmarks."""
    for name, node in (("a", "node-a"), ("b", "node-b"), ("c", "node-a")):
        server.add_pod(make_pod(name, node=node))
    lst = v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-a")
    assert [p.metadata.name for p in lst.items] == ["a", "c"]
    assert lst.metadata.resource_version == "103"
    server.add_pod(make_pod("d"))
    server.delete_pod("default", "a")
    server.add_pod(make_pod("e", node="node-b"))
    w = watch.Watch()
    seen = [
        (ev["type"], ev["raw_object"]["metadata"].get("name") or "")
        for ev in w.stream(
            v1.list_pod_for_all_namespaces,
            field_selector="spec.nodeName=node-a",
            resource_version=lst.metadata.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=1,
        )
    ]
    assert seen[:2] == [("ADDED", "d"), ("DELETED", "a")]
    assert {t for t, _ in seen[2:]} == {"BOOKMARK"}
    assert w.resource_version == "106"


def test_compacted_version_is_a_410_error_event(
    server: FakeApiServer, v1: client.CoreV1Api
) -> None:
    """With timeout_seconds set the client raises ApiException(410) at once."""
    server.add_pod(make_pod("a"))
    server.touch_unrelated(3)
    server.compact()
    with pytest.raises(ApiException) as info:
        list(
            watch.Watch().stream(
                v1.list_pod_for_all_namespaces, resource_version="101", timeout_seconds=1
            )
        )
    assert info.value.status == 410
    assert "too old resource version: 101 (104)" in info.value.reason
    assert server.count(watch=True) == 1


def test_label_selector_namespaces_and_unknown_paths(
    server: FakeApiServer, v1: client.CoreV1Api
) -> None:
    """Namespaced lists, equality/set/existence label selectors, 404 and 400 Status."""
    server.add_pod(make_pod("x", namespace="shop", labels={"app": "web", "tier": "front"}))
    server.add_pod(make_pod("y", namespace="shop", labels={"app": "db"}))
    server.add_pod(make_pod("z", namespace="other", labels={"app": "web"}))

    def names(**kw: str) -> list[str]:
        return [p.metadata.name for p in v1.list_pod_for_all_namespaces(**kw).items]

    assert [p.metadata.name for p in v1.list_namespaced_pod("shop").items] == ["x", "y"]
    assert names(label_selector="app=web") == ["z", "x"]
    assert names(label_selector="app in (db, web),!tier") == ["z", "y"]
    assert names(label_selector="tier") == ["x"]
    with pytest.raises(ApiException) as info:
        v1.list_pod_for_all_namespaces(field_selector="spec.hostname=n")
    assert info.value.status == 400
    with pytest.raises(ApiException) as info:
        v1.list_namespaced_config_map("shop")
    assert info.value.status == 404
