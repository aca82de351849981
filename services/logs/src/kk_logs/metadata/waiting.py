"""How long a record from a brand-new pod waits for that pod's metadata.

A container can write its first line before the pod's watch event reaches us (the
kubelet starts containers as soon as the pod is bound). Waiting a little lets those
first lines carry full labels; waiting forever would stall a file whenever the API
server is down (other agents either ship un-enriched at once or refuse to start).
So: wait at most ``wait_s`` (default 2 s) from the moment the file was first seen,
then ship with the fields the log path provides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kk_common.k8s.model import PodMeta

__all__ = ["DEFAULT_WAIT_S", "PodLookup", "ShipWithoutMeta", "Wait", "metadata_or_wait"]

DEFAULT_WAIT_S = 2.0


class PodLookup(Protocol):
    """Anything that resolves a pod uid at a time (``PodCache`` does)."""

    def get(self, uid: str, now: float) -> PodMeta | None:
        """The pod with ``uid``, or ``None``."""
        ...


@dataclass(frozen=True)
class Wait:
    """No metadata yet: ask again at ``until`` (or sooner, when an event arrives)."""

    until: float


@dataclass(frozen=True)
class ShipWithoutMeta:
    """Give up waiting: ship with the path-derived fields only."""

    waited_s: float


def metadata_or_wait(
    pods: PodLookup, uid: str, first_seen_at: float, now: float, wait_s: float = DEFAULT_WAIT_S
) -> PodMeta | Wait | ShipWithoutMeta:
    """Decide what to do with a record of pod ``uid`` whose file appeared at ``first_seen_at``.

    Times are monotonic seconds. The deadline is fixed by ``first_seen_at``, so
    however often this is asked, no record waits past ``first_seen_at + wait_s``.
    """
    pod = pods.get(uid, now) if uid else None
    if pod is not None:
        return pod
    deadline = first_seen_at + max(wait_s, 0.0)
    if now >= deadline:
        return ShipWithoutMeta(waited_s=max(now - first_seen_at, 0.0))
    return Wait(until=deadline)
