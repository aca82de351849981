"""Sans-IO pod cache fed by watch events; looked up by pod uid.

Theory of operation
-------------------
The cache is a Kubernetes "reflector store" for the pods of one node. A list gives
the complete state at some ``resourceVersion`` (``Relisted``); the watch that
follows from that version delivers ``Added``/``Modified``/``Deleted`` changes, and
``Bookmarked`` events that only move the version forward.

Deleted pods are not dropped at once: the files of a short-lived pod (a Job, a
crash-looping container) are usually still being read when its ``DELETED`` event
arrives, and its last lines deserve the same labels as its first ones. A deleted pod
stays resolvable for ``retention_s`` (default 300 s) after ``now`` of its deletion.
A relist treats pods that are missing from the new list exactly like deleted pods,
because a watch gap (410 Gone, API server outage) may have swallowed their
``DELETED`` events.

Time is always passed in (``now``, monotonic seconds): nothing here reads a clock.
The cache takes a lock around every operation so the watcher thread can apply
events while log readers look pods up from other threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from kk_common.k8s.events import Added, Bookmarked, Deleted, Modified, Relisted, WatchEvent
from kk_common.k8s.model import PodMeta

__all__ = ["DEFAULT_RETENTION_S", "PodCache"]

DEFAULT_RETENTION_S = 300.0


class PodCache:
    """Pods by uid, with deleted pods retained for ``retention_s`` seconds."""

    def __init__(self, retention_s: float = DEFAULT_RETENTION_S) -> None:
        if retention_s < 0:
            raise ValueError("retention_s must be >= 0")
        self.retention_s = retention_s
        self._lock = threading.RLock()
        self._live: dict[str, PodMeta] = {}
        self._deleted: dict[str, tuple[PodMeta, float]] = {}
        self._resource_version = ""
        self._synced = False

    # -- inputs ---------------------------------------------------------------

    def apply(self, event: WatchEvent[PodMeta], now: float) -> None:
        """Apply one watch event or relist observed at ``now``."""
        with self._lock:
            match event:
                case Added(obj=pod) | Modified(obj=pod):
                    # A MODIFIED for an unknown pod is an ADDED we missed; an update can
                    # also revive a pod a relist presumed gone.
                    self._deleted.pop(pod.uid, None)
                    self._live[pod.uid] = pod
                    self._advance(pod.resource_version)
                case Deleted(obj=pod):
                    # The DELETED object is the pod's final state: keep it, even if the
                    # pod was never seen alive (it lived between two watches).
                    self._live.pop(pod.uid, None)
                    self._deleted[pod.uid] = (pod, now)
                    self._advance(pod.resource_version)
                case Bookmarked(resource_version=rv):
                    self._advance(rv)
                case Relisted(objs=pods, resource_version=rv):
                    self._relist(pods, rv, now)
                case _:
                    raise TypeError(f"not a pod watch event: {event!r}")

    def expire(self, now: float) -> int:
        """Forget deleted pods retained longer than ``retention_s``; returns how many."""
        with self._lock:
            gone = [uid for uid, (_, at) in self._deleted.items() if now - at >= self.retention_s]
            for uid in gone:
                del self._deleted[uid]
            return len(gone)

    # -- lookups --------------------------------------------------------------

    def get(self, uid: str, now: float) -> PodMeta | None:
        """The pod with ``uid`` (live, or deleted less than ``retention_s`` ago).

        A static pod's logs carry its own uid, which the API server only shows in its
        mirror pod's ``kubernetes.io/config.mirror`` annotation, so that is tried too.
        """
        with self._lock:
            pod = self._live.get(uid)
            if pod is not None:
                return pod
            kept = self._deleted.get(uid)
            if kept is not None and now - kept[1] < self.retention_s:
                return kept[0]
            return self._find(lambda p: p.mirror_of == uid, now)

    def get_by_name(self, namespace: str, name: str, now: float) -> PodMeta | None:
        """The pod called ``name`` in ``namespace``, preferring a live one.

        ``/var/log/containers`` paths carry no uid; names are reused (a StatefulSet pod
        comes back with the same name), so a live pod wins over a deleted one, and the
        most recently deleted wins among deleted ones.
        """
        return self._find(lambda p: p.namespace == namespace and p.name == name, now)

    def is_deleted(self, uid: str) -> bool:
        """Whether the pod with ``uid`` is known only as deleted (kept for retention)."""
        with self._lock:
            return uid in self._deleted and uid not in self._live

    @property
    def resource_version(self) -> str:
        """The resourceVersion a watch should resume from (``""`` before the first list)."""
        with self._lock:
            return self._resource_version

    @property
    def synced(self) -> bool:
        """Whether a complete list has been applied at least once."""
        with self._lock:
            return self._synced

    def live_pods(self) -> list[PodMeta]:
        """The pods currently believed to exist."""
        with self._lock:
            return list(self._live.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._live) + len(self._deleted)

    # -- internals ------------------------------------------------------------

    def _find(self, match: Callable[[PodMeta], bool], now: float) -> PodMeta | None:
        with self._lock:
            for pod in self._live.values():
                if match(pod):
                    return pod
            best: tuple[PodMeta, float] | None = None
            for pod, at in self._deleted.values():
                if match(pod) and now - at < self.retention_s and (best is None or at > best[1]):
                    best = (pod, at)
            return best[0] if best else None

    def _advance(self, rv: str) -> None:
        # resourceVersions are opaque strings by contract; only "the latest one we were
        # given" is meaningful, and watch events arrive in order.
        if rv:
            self._resource_version = rv

    def _relist(self, pods: Iterable[PodMeta], rv: str, now: float) -> None:
        fresh = {pod.uid: pod for pod in pods}
        for uid, pod in self._live.items():
            if uid not in fresh:
                self._deleted[uid] = (pod, now)
        for uid in fresh:
            self._deleted.pop(uid, None)
        self._live = fresh
        self._resource_version = rv
        self._synced = True
