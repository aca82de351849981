"""The kubelet /pods source: TLS, a rotating bearer token, relist semantics, backoff."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kk_common.k8s.backoff import Backoff
from kk_common.k8s.cache import PodCache
from kk_common.k8s.kubelet import KubeletPodSource, KubeletSettings, parse_pod_list
from tests.logs.fake_apiserver import TlsFiles, eventually, make_pod, make_tls_files
from tests.logs.fake_kubelet import FakeKubelet


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("kubelet-tls"))


@pytest.fixture
def kubelet(tls: TlsFiles) -> Iterator[FakeKubelet]:
    with FakeKubelet(tls=tls, token="kubelet-token") as fake:
        yield fake


def source_for(
    kubelet: FakeKubelet, tls: TlsFiles, token_file: Path, cache: PodCache, **kw: float
) -> KubeletPodSource:
    settings = KubeletSettings(
        url=kubelet.url, token_file=str(token_file), ca_file=str(tls.ca), **kw
    )
    return KubeletPodSource(settings, cache, rng=random.Random(3))


def test_pods_from_the_kubelet_fill_the_cache_like_a_relist(
    kubelet: FakeKubelet, tls: TlsFiles, tmp_path: Path
) -> None:
    """Each poll is a relist: new pods appear, vanished pods are retained as deleted."""
    token = tmp_path / "token"
    token.write_text("kubelet-token\n")
    a, b = make_pod("a"), make_pod("b", labels={"app": "b"})
    kubelet.set_pods([a, b])
    cache = PodCache(retention_s=300)
    source = source_for(kubelet, tls, token, cache)
    assert source.poll_once()
    assert source.ready and cache.synced
    assert {p.name for p in cache.live_pods()} == {"a", "b"}
    found = cache.get(b["metadata"]["uid"], time.monotonic())
    assert found is not None and dict(found.labels) == {"app": "b"}

    kubelet.set_pods([b])
    assert source.poll_once()
    assert cache.is_deleted(a["metadata"]["uid"])
    assert cache.get(a["metadata"]["uid"], time.monotonic()) is not None
    assert source.status().relists == 2
    assert [auth for _, auth, _ in kubelet.requests] == ["Bearer kubelet-token"] * 2


def test_wrong_token_is_counted_and_a_rotated_token_is_picked_up(
    kubelet: FakeKubelet, tls: TlsFiles, tmp_path: Path
) -> None:
    """The token file is re-read on every poll, as projected tokens rotate."""
    token = tmp_path / "token"
    token.write_text("expired-token")
    kubelet.set_pods([make_pod("a")])
    cache = PodCache()
    source = source_for(kubelet, tls, token, cache)
    assert not source.poll_once()
    assert source.status().api_errors == {"http_401": 1}
    assert not source.ready and len(cache) == 0
    token.write_text("kubelet-token")
    assert source.poll_once()
    assert len(cache) == 1


def test_untrusted_certificate_is_refused(
    kubelet: FakeKubelet, tmp_path: Path, tls: TlsFiles
) -> None:
    """Verification is never off: a kubelet signed by another CA is a tls error."""
    other = make_tls_files(tmp_path / "other")
    token = tmp_path / "token"
    token.write_text("kubelet-token")
    settings = KubeletSettings(url=kubelet.url, token_file=str(token), ca_file=str(other.ca))
    source = KubeletPodSource(settings, PodCache())
    assert not source.poll_once()
    assert set(source.status().api_errors) == {"tls"}
    assert kubelet.requests == []


def test_missing_token_file_is_reported(
    kubelet: FakeKubelet, tls: TlsFiles, tmp_path: Path
) -> None:
    """No token mounted: a clear reason, and no request sent."""
    source = source_for(kubelet, tls, tmp_path / "absent", PodCache())
    assert not source.poll_once()
    assert source.status().api_errors == {"token": 1}
    assert kubelet.requests == []


def test_polling_thread_backs_off_on_errors_and_recovers(
    kubelet: FakeKubelet, tls: TlsFiles, tmp_path: Path
) -> None:
    """Failing polls are spaced by backoff; healing resumes the regular interval."""
    token = tmp_path / "token"
    token.write_text("kubelet-token")
    kubelet.set_pods([make_pod("a")])
    kubelet.fail(503)
    cache = PodCache()
    source = source_for(
        kubelet,
        tls,
        token,
        cache,
        poll_interval_s=0.1,
        backoff_initial_s=0.05,
        backoff_max_s=0.3,
    )
    source.start()
    try:
        eventually(lambda: len(kubelet.requests) >= 5, "five failed polls")
        times = [t for t, _, _ in kubelet.requests[:5]]
        replay = Backoff(0.05, 0.3, rng=random.Random(3))
        expected = sum(max(replay.failed(), 0.01) for _ in range(4))
        # Scheduling only adds latency; a tight loop would take a few milliseconds.
        assert times[-1] - times[0] >= 0.95 * expected > 0.1
        assert not source.ready
        kubelet.fail(None)
        eventually(lambda: source.ready and len(cache) == 1, "recovery")
    finally:
        assert source.stop()
    assert source.status().api_errors["http_503"] >= 5


def test_parse_pod_list_skips_invalid_items() -> None:
    """One item without a uid does not cost the others."""
    body = b'{"kind":"PodList","items":[{"metadata":{"name":"x"}},' + (
        b'{"metadata":{"name":"y","namespace":"d","uid":"u"}}]}'
    )
    pods, skipped = parse_pod_list(body)
    assert [p.name for p in pods] == ["y"] and skipped == 1
    with pytest.raises(ValueError):
        parse_pod_list(b"[]")
