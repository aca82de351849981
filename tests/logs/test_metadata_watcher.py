"""The list+watch adapter against the fake API server, through the official client."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from kk_common.k8s.backoff import Backoff
from kk_common.k8s.cache import PodCache
from kk_common.k8s.model import pod_from_dict
from kk_common.k8s.services import ServiceIndex
from kk_common.k8s.watcher import PodWatcher, WatchSettings
from tests.logs.fake_apiserver import (
    FakeApiServer,
    eventually,
    make_pod,
    make_service,
    make_tls_files,
    write_kubeconfig,
)

FAST = WatchSettings(
    watch_timeout_s=1,
    connect_timeout_s=2.0,
    list_timeout_s=5.0,
    backoff_initial_s=0.05,
    backoff_max_s=0.5,
)


class FakeClock:
    """The cache's notion of now, moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with FakeApiServer() as srv:
        yield srv


@pytest.fixture
def start_watcher(server: FakeApiServer) -> Iterator[Callable[..., PodWatcher]]:
    started: list[tuple[PodWatcher, client.ApiClient]] = []

    def start(
        api: client.ApiClient | None = None,
        cache: PodCache | None = None,
        **kwargs: Any,
    ) -> PodWatcher:
        api = api or client.ApiClient(client.Configuration(host=server.url))
        kwargs.setdefault("settings", FAST)
        watcher = PodWatcher(api, "node-a", cache or PodCache(), **kwargs)
        watcher.start()
        started.append((watcher, api))
        return watcher

    yield start
    for watcher, api in started:
        assert watcher.stop(timeout_s=5.0), "watcher threads did not stop"
        api.close()


def names(watcher: PodWatcher) -> set[str]:
    return {p.name for p in watcher.cache.live_pods()}


def test_initial_list_then_watch_events_reach_the_cache(
    server: FakeApiServer, start_watcher: Callable[..., PodWatcher]
) -> None:
    """Pods listed at start, then added, modified and deleted ones, all land in the cache."""
    server.add_pod(make_pod("a", labels={"v": "1"}))
    watcher = start_watcher()
    eventually(lambda: watcher.ready, "initial list")
    assert names(watcher) == {"a"}

    b = server.add_pod(make_pod("b"))
    server.modify_pod("default", "a", lambda p: p["metadata"]["labels"].update(v="2"))
    eventually(lambda: "b" in names(watcher), "ADDED b")
    eventually(
        lambda: any(p.labels.get("v") == "2" for p in watcher.cache.live_pods()), "MODIFIED a"
    )
    server.delete_pod("default", "b")
    eventually(lambda: watcher.cache.is_deleted(b["metadata"]["uid"]), "DELETED b")

    status = watcher.status()["pods"]
    assert status.synced and status.relists == 1
    assert (status.events["ADDED"], status.events["MODIFIED"], status.events["DELETED"]) == (
        1,
        1,
        1,
    )
    assert status.api_errors == {}
    first_list = next(r for r in server.requests if not r.watch)
    assert first_list.query.get("resourceVersion") == "0"  # may be served from the watch cache


def test_field_selector_keeps_other_nodes_pods_out(
    server: FakeApiServer, start_watcher: Callable[..., PodWatcher]
) -> None:
    """A pod on another node never appears, neither from the list nor from the watch."""
    server.add_pod(make_pod("mine-1"))
    server.add_pod(make_pod("theirs-1", node="node-b"))
    watcher = start_watcher()
    eventually(lambda: watcher.ready, "initial list")
    server.add_pod(make_pod("theirs-2", node="node-b"))
    server.add_pod(make_pod("mine-2"))
    # Watch events arrive in order, so once mine-2 is here theirs-2 was already decided.
    eventually(lambda: "mine-2" in names(watcher), "mine-2")
    assert names(watcher) == {"mine-1", "mine-2"}
    assert {r.query.get("fieldSelector") for r in server.requests} == {"spec.nodeName=node-a"}


def test_pod_scheduled_after_creation_arrives_when_bound_to_this_node(
    server: FakeApiServer, start_watcher: Callable[..., PodWatcher]
) -> None:
    """A pending pod gets spec.nodeName later: for our filtered watch that is an ADDED."""
    watcher = start_watcher()
    eventually(lambda: watcher.ready, "initial list")
    server.add_pod(make_pod("pending", node=None))
    server.modify_pod("default", "pending", lambda p: p["spec"].update(nodeName="node-a"))
    eventually(lambda: "pending" in names(watcher), "bound pod")
    assert watcher.status()["pods"].events["ADDED"] == 1


def test_bookmarks_move_the_resume_version_when_everything_is_filtered(
    server: FakeApiServer, start_watcher: Callable[..., PodWatcher]
) -> None:
    """Changes elsewhere in the cluster still advance our resourceVersion, via bookmarks."""
    watcher = start_watcher()
    eventually(lambda: watcher.ready, "initial list")
    listed_at = int(watcher.pods.resource_version)
    server.add_pod(make_pod("elsewhere", node="node-b"))
    server.touch_unrelated(5)
    target = server.resource_version
    assert target > listed_at
    eventually(lambda: int(watcher.pods.resource_version) >= target, "bookmark to reach target")
    assert watcher.cache.resource_version == str(target)
    assert names(watcher) == set()
    assert watcher.status()["pods"].events["BOOKMARK"] >= 1
    # The next watch resumes from the bookmark, not from the list's old version.
    eventually(
        lambda: any(
            r.watch and int(r.query.get("resourceVersion", "0")) >= target for r in server.requests
        ),
        "a watch resumed from the bookmarked version",
    )


def test_410_gone_relists_and_keeps_the_pod_added_in_between(
    server: FakeApiServer, start_watcher: Callable[..., PodWatcher]
) -> None:
    """After compaction the watcher re-lists; a pod added in the gap is not lost."""
    old = server.add_pod(make_pod("old"))
    watcher = start_watcher()
    eventually(lambda: "old" in names(watcher), "initial list")
    stale_rv = int(watcher.pods.resource_version)

    # The watcher loses its stream and cannot reconnect while history moves on.
    server.fail(500)
    server.drop_watches()
    eventually(lambda: watcher.status()["pods"].api_errors.get("http_500", 0) >= 1, "a 500")
    server.add_pod(make_pod("born-in-gap"))
    server.delete_pod("default", "old")
    compacted_at = server.compact()
    healed_at = time.monotonic()
    server.heal()

    eventually(lambda: "born-in-gap" in names(watcher), "relist after 410")
    status = watcher.status()["pods"]
    assert status.relists == 2
    assert status.api_errors["expired"] >= 1
    # The pod deleted in the gap is absent from the relist but still resolvable.
    assert watcher.cache.is_deleted(old["metadata"]["uid"])
    assert watcher.cache.get(old["metadata"]["uid"], now=time.monotonic()) is not None
    lists = [r for r in server.requests if not r.watch and r.status == 200]
    # The relist is a consistent read (no resourceVersion): a cached answer could be
    # older than the history we just lost.
    assert lists[-1].query.get("resourceVersion") is None
    # The 410 answered a watch that resumed, after the outage, from the stale version.
    resumed = [r for r in server.requests if r.watch and r.at >= healed_at]
    assert int(resumed[0].query["resourceVersion"]) == stale_rv < compacted_at


def test_api_errors_back_off_without_a_retry_storm_and_recover(
    server: FakeApiServer, start_watcher: Callable[..., PodWatcher]
) -> None:
    """While the server answers 500, attempts are spaced by jittered exponential backoff."""
    server.add_pod(make_pod("a"))
    server.fail(500)
    seed = 1234
    watcher = start_watcher(rng=random.Random(seed))
    eventually(lambda: server.count(resource="pods") >= 8, "eight attempts", timeout_s=10)
    attempts = server.requests[:8]
    span = attempts[-1].at - attempts[0].at
    replay = Backoff(FAST.backoff_initial_s, FAST.backoff_max_s, rng=random.Random(seed))
    expected = sum(replay.failed() for _ in range(7))
    # Scheduling can only add latency; a retry storm would do 8 requests in milliseconds.
    assert span >= 0.95 * expected > 0.5
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    assert max(gaps) <= FAST.backoff_max_s + 0.3  # the cap bounds staleness
    # The server logs a request before the client has read the answer: wait for the count.
    eventually(lambda: watcher.status()["pods"].api_errors.get("http_500", 0) >= 8, "counted")
    status = watcher.status()["pods"]
    assert not watcher.ready
    assert status.consecutive_failures >= 8 and "http_500" in status.last_error

    healed_at = time.monotonic()
    server.heal()
    eventually(lambda: watcher.ready, "recovery after heal")
    assert time.monotonic() - healed_at <= FAST.backoff_max_s + 1.0
    assert names(watcher) == {"a"}


def test_429_retry_after_is_honoured(
    server: FakeApiServer, start_watcher: Callable[..., PodWatcher]
) -> None:
    """The server's Retry-After is a floor on the next attempt."""
    server.fail(429, count=1, retry_after=1)
    settings = WatchSettings(watch_timeout_s=1, backoff_initial_s=0.01, backoff_max_s=5.0)
    # With its default Retry, urllib3 would itself sleep out the Retry-After and retry
    # inside the call (uncounted, and deaf to stop()); the recommended configuration
    # leaves retrying to the watcher.
    cfg = client.Configuration(host=server.url)
    cfg.retries = False
    watcher = start_watcher(api=client.ApiClient(cfg), settings=settings)
    eventually(lambda: watcher.ready, "list after the 429")
    first, second = server.requests[:2]
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 0.95
    assert watcher.status()["pods"].api_errors == {"http_429": 1}


def test_deleted_pod_stays_resolvable_for_the_retention_time(
    server: FakeApiServer, start_watcher: Callable[..., PodWatcher]
) -> None:
    """A DELETED pod is kept retention_s of the cache's clock, then forgotten."""
    clock = FakeClock(1000.0)
    watcher = start_watcher(cache=PodCache(retention_s=300), clock=clock)
    uid = server.add_pod(make_pod("short-lived-job"))["metadata"]["uid"]
    eventually(lambda: watcher.cache.get(uid, clock()) is not None, "pod added")
    server.delete_pod("default", "short-lived-job")
    eventually(lambda: watcher.cache.is_deleted(uid), "pod deleted")
    clock.now += 299.0
    assert watcher.cache.get(uid, clock()) is not None
    clock.now += 1.0
    assert watcher.cache.get(uid, clock()) is None


def test_services_are_listed_in_pages_and_watched(
    server: FakeApiServer, start_watcher: Callable[..., PodWatcher]
) -> None:
    """Services from all namespaces fill the index; a paged list shares one snapshot."""
    for i in range(5):
        server.add_service(make_service(f"svc-{i}", selector={"app": f"app-{i}"}))
    web = server.add_pod(make_pod("web", labels={"app": "web"}))
    settings = WatchSettings(
        watch_timeout_s=1, page_size=2, backoff_initial_s=0.05, backoff_max_s=0.5
    )
    watcher = start_watcher(services=ServiceIndex(), settings=settings)
    assert watcher.services is not None
    index = watcher.services
    eventually(lambda: index.synced and watcher.ready, "both lists")
    service_lists = [r for r in server.requests if r.resource == "services" and not r.watch]
    assert len(service_lists) == 3 and "continue" in service_lists[-1].query

    pod = pod_from_dict(web)
    assert index.services_for(pod) == ()
    server.add_service(make_service("web", selector={"app": "web"}))
    eventually(lambda: index.services_for(pod) == ("web",), "service added")
    server.delete_service("default", "web")
    eventually(lambda: index.services_for(pod) == (), "service deleted")


def test_stop_ends_an_open_watch_promptly(
    server: FakeApiServer, start_watcher: Callable[..., PodWatcher]
) -> None:
    """stop() closes the stream instead of waiting for the server's timeout."""
    watcher = start_watcher(settings=WatchSettings(watch_timeout_s=60))
    eventually(lambda: watcher.ready, "initial list")
    eventually(lambda: server.count(watch=True) >= 1, "watch open")
    started = time.monotonic()
    assert watcher.stop(timeout_s=5.0)
    assert time.monotonic() - started < 2.0


def test_tls_and_bearer_token_from_a_kubeconfig(tmp_path: Path) -> None:
    """The watcher works over HTTPS with a token; a wrong token is a counted 401, not a storm."""
    tls = make_tls_files(tmp_path / "tls")
    with FakeApiServer(tls=tls, token="s3cret") as srv:
        srv.add_pod(make_pod("secure"))
        good = config.new_client_from_config(
            config_file=str(write_kubeconfig(tmp_path / "good.yaml", srv, "s3cret"))
        )
        bad = config.new_client_from_config(
            config_file=str(write_kubeconfig(tmp_path / "bad.yaml", srv, "wrong"))
        )
        ok = PodWatcher(good, "node-a", PodCache(), settings=FAST)
        denied = PodWatcher(bad, "node-a", PodCache(), settings=FAST, rng=random.Random(5))
        ok.start()
        denied.start()
        try:
            eventually(lambda: {p.name for p in ok.cache.live_pods()} == {"secure"}, "tls list")
            eventually(lambda: denied.status()["pods"].api_errors.get("http_401", 0) >= 4, "401s")
            assert not denied.ready
            rejected = [r for r in srv.requests if r.status == 401]
            assert rejected[-1].at - rejected[0].at >= 0.05  # spaced by backoff
        finally:
            assert ok.stop() and denied.stop()
            good.close()
            bad.close()


def test_node_name_is_required() -> None:
    """An unscoped pod watch would pull every pod in the cluster into every agent."""
    with pytest.raises(ValueError, match="node_name"):
        PodWatcher(
            client.ApiClient(client.Configuration(host="http://127.0.0.1:1")), "", PodCache()
        )
