"""A new pod's records wait briefly for metadata, then ship without it; never forever."""

from __future__ import annotations

from kk_common.k8s.cache import PodCache
from kk_common.k8s.events import Added
from kk_common.k8s.model import pod_from_dict
from kk_logs.metadata.waiting import DEFAULT_WAIT_S, ShipWithoutMeta, Wait, metadata_or_wait
from tests.logs.fake_apiserver import make_pod


def test_waits_until_the_deadline_then_ships_without_metadata() -> None:
    """Before first_seen + wait_s the answer is Wait(deadline); after it, ShipWithoutMeta."""
    cache = PodCache()
    assert metadata_or_wait(cache, "u1", first_seen_at=10.0, now=10.0, wait_s=2.0) == Wait(12.0)
    assert metadata_or_wait(cache, "u1", first_seen_at=10.0, now=11.9, wait_s=2.0) == Wait(12.0)
    assert metadata_or_wait(cache, "u1", first_seen_at=10.0, now=12.0, wait_s=2.0) == (
        ShipWithoutMeta(waited_s=2.0)
    )


def test_metadata_arriving_while_waiting_is_used() -> None:
    """Once the pod event lands, the same question returns the pod."""
    cache = PodCache()
    assert isinstance(metadata_or_wait(cache, "u1", 0.0, 0.5), Wait)
    cache.apply(Added(pod_from_dict(make_pod("web", uid="u1"))), now=1.0)
    result = metadata_or_wait(cache, "u1", 0.0, 1.0)
    assert not isinstance(result, Wait | ShipWithoutMeta)
    assert result.name == "web"


def test_never_waits_past_the_limit_however_often_asked() -> None:
    """The deadline is anchored at first_seen_at, so repeated asking cannot extend it."""
    cache = PodCache()
    deadlines = set()
    now = 100.0
    while True:
        result = metadata_or_wait(cache, "u1", first_seen_at=100.0, now=now)
        if isinstance(result, ShipWithoutMeta):
            break
        assert isinstance(result, Wait)
        deadlines.add(result.until)
        now += 0.3
    assert deadlines == {100.0 + DEFAULT_WAIT_S}
    assert now < 100.0 + DEFAULT_WAIT_S + 0.3


def test_path_without_uid_does_not_wait_for_a_lookup_that_cannot_succeed() -> None:
    """An empty uid (a /var/log/containers path) still gets the same bounded wait."""
    assert metadata_or_wait(PodCache(), "", 0.0, 5.0, wait_s=2.0) == ShipWithoutMeta(5.0)
