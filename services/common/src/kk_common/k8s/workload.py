"""The workload that owns a pod, from its owner references alone.

The agent watches only Pods (one node-scoped watch), not ReplicaSets or Jobs, so
the two-level ownerships are derived from names the controllers generate:

* Deployment -> ReplicaSet ``<deployment>-<pod-template-hash>`` -> Pod, where the pod
  carries the same ``pod-template-hash`` label. If the ReplicaSet's name ends in
  ``-<that hash>``, the Deployment is the rest; otherwise it is a bare ReplicaSet.
* CronJob -> Job ``<cronjob>-<scheduled time in minutes since the epoch>`` -> Pod (the
  CronJob controller's ``getJobName``). A numeric suffix alone would also match a
  hand-made ``backup-20240101``, so the suffix must be a time at most a day before
  the pod's creation (retried Job pods are created later than the schedule).

When the caller does know an owner's own owner (``known_owners``, e.g. from a Job
watch), that wins over the name heuristics.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from kk_common.k8s.model import OwnerRef, PodMeta

__all__ = ["Workload", "owning_workload"]

_CRONJOB_JOB = re.compile(r"^(?P<cronjob>.+)-(?P<minutes>\d{1,12})$")
_CRONJOB_MAX_LAG_S = 24 * 3600.0
# Owners that are not workloads: a mirror pod is "owned" by its Node.
_NOT_WORKLOADS = frozenset({"Node"})


@dataclass(frozen=True)
class Workload:
    """A workload (``kind`` like ``Deployment``, and ``name``) in the pod's namespace."""

    kind: str
    name: str


def _controller(owners: tuple[OwnerRef, ...]) -> OwnerRef | None:
    # At most one owner reference has controller=true; it is the one that manages the pod.
    for ref in owners:
        if ref.controller:
            return ref
    return owners[0] if owners else None


def _cronjob_name(job: str, created_at: float | None) -> str | None:
    m = _CRONJOB_JOB.match(job)
    if m is None or created_at is None:
        return None
    scheduled = int(m["minutes"]) * 60.0
    lag = created_at - scheduled
    if -60.0 <= lag <= _CRONJOB_MAX_LAG_S:
        return m["cronjob"]
    return None


def owning_workload(
    pod: PodMeta, known_owners: Mapping[tuple[str, str, str], OwnerRef] | None = None
) -> Workload | None:
    """The workload managing ``pod``, or ``None`` for a bare pod (or a static pod).

    ``known_owners`` maps ``(namespace, kind, name)`` of a ReplicaSet or Job to that
    object's own controller reference, when the caller has it.
    """
    ref = _controller(pod.owners)
    if ref is None or ref.kind in _NOT_WORKLOADS or not ref.name:
        return None
    parent = (known_owners or {}).get((pod.namespace, ref.kind, ref.name))
    if parent is not None and ref.kind in ("ReplicaSet", "Job"):
        return Workload(parent.kind, parent.name)
    if ref.kind == "ReplicaSet":
        template_hash = pod.labels.get("pod-template-hash", "")
        suffix = f"-{template_hash}"
        if template_hash and ref.name.endswith(suffix) and len(ref.name) > len(suffix):
            return Workload("Deployment", ref.name[: -len(suffix)])
        return Workload("ReplicaSet", ref.name)
    if ref.kind == "Job":
        cronjob = _cronjob_name(ref.name, pod.created_at)
        if cronjob is not None:
            return Workload("CronJob", cronjob)
        return Workload("Job", ref.name)
    return Workload(ref.kind, ref.name)
