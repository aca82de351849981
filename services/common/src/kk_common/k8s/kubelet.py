"""Alternative metadata source: poll the local kubelet's ``/pods`` endpoint.

For clusters where thousands of agents watching the API server is unwelcome (or
RBAC for pods is not granted), the kubelet already knows every pod on its node.
``GET https://<node>:10250/pods`` returns a ``PodList`` (the kubelet's view, with no
list ``resourceVersion``), authenticated with the service account's bearer token and
verified against the cluster CA. Each successful poll is applied to the same
``PodCache`` as a relist, so pods that disappear from the kubelet are retained as
deleted exactly like with the watcher.

The token is re-read on every poll: projected service account tokens rotate
(hourly by default) and a cached one would start failing with 401.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import urllib3

from kk_common.k8s.backoff import Backoff
from kk_common.k8s.cache import PodCache
from kk_common.k8s.events import Relisted
from kk_common.k8s.model import MetadataDecodeError, PodMeta, pod_from_dict
from kk_common.k8s.watcher import SourceStats, SourceStatus, classify

__all__ = ["KubeletPodSource", "KubeletSettings", "parse_pod_list"]


@dataclass(frozen=True)
class KubeletSettings:
    """Where the kubelet is and how to authenticate to it."""

    url: str
    """``https://<node>:10250/pods``."""
    token_file: str | None = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105
    ca_file: str | None = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    poll_interval_s: float = 5.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0


def parse_pod_list(body: bytes | str) -> tuple[list[PodMeta], int]:
    """Decode a ``PodList``; returns the pods and how many items were skipped as invalid."""
    doc = json.loads(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("items", []), list):
        raise ValueError("not a PodList")
    pods: list[PodMeta] = []
    skipped = 0
    for raw in doc.get("items") or ():
        try:
            pods.append(pod_from_dict(raw))
        except (MetadataDecodeError, TypeError, ValueError, AttributeError):
            skipped += 1
    return pods, skipped


class _HttpStatusError(Exception):
    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class KubeletPodSource:
    """Polls the kubelet's ``/pods`` into a ``PodCache``."""

    def __init__(
        self,
        settings: KubeletSettings,
        cache: PodCache,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.stats = SourceStats()
        self._clock = clock
        self._backoff = Backoff(
            initial_s=settings.backoff_initial_s,
            max_s=settings.backoff_max_s,
            rng=rng or random.Random(),  # noqa: S311 - jitter, not cryptography
        )
        # Verification is never optional: the CA is the cluster's (or the kubelet's own).
        self._pool = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED", ca_certs=settings.ca_file, retries=False
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._synced = False

    def poll_once(self) -> bool:
        """One poll; True on success. Failures are counted, never raised."""
        try:
            pods, skipped = parse_pod_list(self._fetch())
        except _HttpStatusError as exc:
            self.stats.error_seen(f"http_{exc.status}", str(exc))
            return False
        except OSError as exc:
            if isinstance(exc, FileNotFoundError | PermissionError):
                self.stats.error_seen("token", f"{type(exc).__name__}: {exc.filename}")
            else:
                self.stats.error_seen(classify(exc)[0], f"{type(exc).__name__}: {exc}")
            return False
        except (urllib3.exceptions.HTTPError, ValueError) as exc:
            self.stats.error_seen(classify(exc)[0], f"{type(exc).__name__}: {exc}")
            return False
        for _ in range(skipped):
            self.stats.object_skipped()
        now = self._clock()
        self.cache.apply(Relisted(tuple(pods)), now)
        self.cache.expire(now)
        self.stats.relisted()
        self._synced = True
        return True

    def _fetch(self) -> bytes:
        s = self.settings
        headers = {"Accept": "application/json"}
        if s.token_file:
            headers["Authorization"] = "Bearer " + Path(s.token_file).read_text().strip()
        resp = self._pool.request(
            "GET",
            s.url,
            headers=headers,
            timeout=urllib3.Timeout(connect=s.connect_timeout_s, read=s.read_timeout_s),
        )
        if resp.status != 200:
            retry_after = resp.headers.get("Retry-After")
            try:
                after = float(retry_after) if retry_after else None
            except ValueError:
                after = None
            raise _HttpStatusError(resp.status, after)
        return resp.data

    def run(self, stop: threading.Event) -> None:
        """Poll every ``poll_interval_s`` until ``stop``; back off on failures."""
        while not stop.is_set():
            if self.poll_once():
                self._backoff.succeeded()
                delay = self.settings.poll_interval_s
            else:
                delay = max(self._backoff.failed(), self.settings.poll_interval_s / 10)
            stop.wait(delay)

    def start(self) -> None:
        """Poll in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run, args=(self._stop,), name="kk-kubelet-pods", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop polling; True if the thread ended within ``timeout_s``."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        alive = self._thread.is_alive()
        self._thread = None
        self._pool.clear()
        return not alive

    @property
    def ready(self) -> bool:
        """Whether one poll has succeeded."""
        return self._synced

    def status(self) -> SourceStatus:
        """A snapshot of readiness and counters."""
        return self.stats.snapshot(self._synced, "", self._backoff.failures)
