"""The pod cache as a reflector store: events, retention of deleted pods, relists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from kk_common.k8s.cache import PodCache
from kk_common.k8s.events import Added, Bookmarked, Deleted, Modified, Relisted
from kk_common.k8s.model import PodMeta, pod_from_dict
from tests.logs.fake_apiserver import make_pod


def pod(name: str, rv: int = 1, **kwargs: Any) -> PodMeta:
    raw = make_pod(name, uid=f"uid-{name}", **kwargs)
    raw["metadata"]["resourceVersion"] = str(rv)
    return pod_from_dict(raw)


def labels_of(p: PodMeta | None) -> Mapping[str, str] | None:
    return None if p is None else dict(p.labels)


def test_added_modified_deleted_and_lookup_by_uid() -> None:
    """ADDED makes a pod resolvable, MODIFIED replaces it, DELETED keeps its last state."""
    cache = PodCache(retention_s=300)
    cache.apply(Added(pod("web", 10, labels={"v": "1"})), now=0.0)
    assert labels_of(cache.get("uid-web", now=0.0)) == {"v": "1"}
    cache.apply(Modified(pod("web", 11, labels={"v": "2"})), now=1.0)
    assert labels_of(cache.get("uid-web", now=1.0)) == {"v": "2"}
    cache.apply(Deleted(pod("web", 12, labels={"v": "3"})), now=2.0)
    assert labels_of(cache.get("uid-web", now=2.0)) == {"v": "3"}
    assert cache.is_deleted("uid-web")
    assert cache.get("uid-other", now=2.0) is None
    assert cache.resource_version == "12"


def test_deleted_pod_is_kept_for_the_retention_then_expires() -> None:
    """A short-lived pod's last lines are still enriched for retention_s after deletion."""
    cache = PodCache(retention_s=60)
    cache.apply(Added(pod("job-x")), now=100.0)
    cache.apply(Deleted(pod("job-x", 2)), now=200.0)
    assert cache.get("uid-job-x", now=259.9) is not None
    assert cache.expire(now=259.9) == 0
    assert cache.get("uid-job-x", now=260.0) is None
    assert cache.expire(now=260.0) == 1
    assert len(cache) == 0


def test_default_retention_is_five_minutes() -> None:
    """Without configuration deleted pods stay 300 s."""
    cache = PodCache()
    cache.apply(Deleted(pod("gone")), now=0.0)
    assert cache.get("uid-gone", now=299.0) is not None
    assert cache.get("uid-gone", now=300.0) is None


def test_delete_of_a_pod_never_seen_alive_is_still_kept() -> None:
    """A pod that lived between two watches arrives only as DELETED; keep its final state."""
    cache = PodCache()
    cache.apply(Deleted(pod("blink")), now=0.0)
    assert cache.get("uid-blink", now=1.0) is not None


def test_relist_replaces_state_and_retains_missing_pods_as_deleted() -> None:
    """Pods absent from a relist lost their DELETED event in a watch gap: retain them."""
    cache = PodCache(retention_s=30)
    assert not cache.synced
    cache.apply(Relisted((pod("a"), pod("b")), "50"), now=0.0)
    assert cache.synced and cache.resource_version == "50"
    cache.apply(Relisted((pod("b", labels={"new": "yes"}), pod("c")), "90"), now=10.0)
    assert sorted(p.name for p in cache.live_pods()) == ["b", "c"]
    assert cache.is_deleted("uid-a")
    assert cache.get("uid-a", now=39.9) is not None
    assert cache.get("uid-a", now=40.0) is None
    assert labels_of(cache.get("uid-b", now=10.0)) == {"new": "yes"}
    assert cache.resource_version == "90"


def test_pod_reappearing_after_being_presumed_deleted_is_live_again() -> None:
    """A MODIFIED for a pod a relist missed brings it back from the deleted set."""
    cache = PodCache(retention_s=30)
    cache.apply(Relisted((pod("a"),), "5"), now=0.0)
    cache.apply(Relisted((), "6"), now=1.0)
    cache.apply(Modified(pod("a", 7)), now=2.0)
    assert not cache.is_deleted("uid-a")
    assert cache.get("uid-a", now=1000.0) is not None


def test_bookmark_moves_only_the_resource_version() -> None:
    """A BOOKMARK advances the resume point without touching pods."""
    cache = PodCache()
    cache.apply(Relisted((pod("a"),), "5"), now=0.0)
    cache.apply(Bookmarked("977"), now=1.0)
    assert cache.resource_version == "977"
    assert [p.name for p in cache.live_pods()] == ["a"]


def test_static_pod_resolves_through_its_mirror_pod() -> None:
    """Logs of a static pod carry the config hash, which only the mirror annotation shows."""
    cache = PodCache()
    mirror = pod("etcd-node-a", annotations={"kubernetes.io/config.mirror": "hash123"})
    cache.apply(Added(mirror), now=0.0)
    found = cache.get("hash123", now=0.0)
    assert found is not None and found.name == "etcd-node-a"


def test_lookup_by_name_prefers_live_then_latest_deleted() -> None:
    """Symlink paths have no uid: a recreated StatefulSet pod resolves to the live one."""
    cache = PodCache()
    old = pod_from_dict(make_pod("db-0", uid="old", labels={"gen": "1"}))
    new = pod_from_dict(make_pod("db-0", uid="new", labels={"gen": "2"}))
    cache.apply(Added(old), now=0.0)
    cache.apply(Deleted(old), now=1.0)
    found = cache.get_by_name("default", "db-0", now=2.0)
    assert found is not None and found.uid == "old"
    cache.apply(Added(new), now=3.0)
    found = cache.get_by_name("default", "db-0", now=4.0)
    assert found is not None and found.uid == "new"
    assert cache.get_by_name("other-ns", "db-0", now=4.0) is None


def test_unknown_event_is_rejected() -> None:
    """A service event fed to the pod cache is a wiring bug, not something to ignore."""
    with pytest.raises(TypeError):
        PodCache().apply("ADDED", now=0.0)  # type: ignore[arg-type]
