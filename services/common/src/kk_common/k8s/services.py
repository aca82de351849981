"""Sans-IO index of Services per namespace, to name the Services that select a pod.

A Service selects pods by equality on labels (``spec.selector``, all pairs must
match) within its own namespace. A Service with no selector selects nothing: its
endpoints are managed by hand (the API server's endpoints controller skips it).
"""

from __future__ import annotations

import threading

from kk_common.k8s.events import Added, Bookmarked, Deleted, Modified, Relisted, WatchEvent
from kk_common.k8s.model import PodMeta, ServiceMeta

__all__ = ["ServiceIndex"]


class ServiceIndex:
    """Services by namespace; fed watch events, asked which services select a pod."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_ns: dict[str, dict[str, ServiceMeta]] = {}
        self._resource_version = ""
        self._synced = False

    def apply(self, event: WatchEvent[ServiceMeta], now: float = 0.0) -> None:
        """Apply one watch event or relist (``now`` is accepted for symmetry; unused)."""
        with self._lock:
            match event:
                case Added(obj=svc) | Modified(obj=svc):
                    self._by_ns.setdefault(svc.namespace, {})[svc.name] = svc
                    self._advance(svc.resource_version)
                case Deleted(obj=svc):
                    ns = self._by_ns.get(svc.namespace, {})
                    ns.pop(svc.name, None)
                    if not ns:
                        self._by_ns.pop(svc.namespace, None)
                    self._advance(svc.resource_version)
                case Bookmarked(resource_version=rv):
                    self._advance(rv)
                case Relisted(objs=services, resource_version=rv):
                    by_ns: dict[str, dict[str, ServiceMeta]] = {}
                    for svc in services:
                        by_ns.setdefault(svc.namespace, {})[svc.name] = svc
                    self._by_ns = by_ns
                    self._resource_version = rv
                    self._synced = True
                case _:
                    raise TypeError(f"not a service watch event: {event!r}")

    def services_for(self, pod: PodMeta) -> tuple[str, ...]:
        """Names (sorted) of the Services in the pod's namespace whose selector matches it."""
        with self._lock:
            candidates = list(self._by_ns.get(pod.namespace, {}).values())
        return tuple(
            sorted(
                svc.name
                for svc in candidates
                if svc.selector and all(pod.labels.get(k) == v for k, v in svc.selector.items())
            )
        )

    @property
    def resource_version(self) -> str:
        """The resourceVersion a watch should resume from."""
        with self._lock:
            return self._resource_version

    @property
    def synced(self) -> bool:
        """Whether a complete list has been applied."""
        with self._lock:
            return self._synced

    def _advance(self, rv: str) -> None:
        if rv:
            self._resource_version = rv
