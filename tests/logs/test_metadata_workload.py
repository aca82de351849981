"""Which workload owns a pod: every owner kind, including the two-level ones."""

from __future__ import annotations

from typing import Any

import pytest

from kk_common.k8s.model import OwnerRef, PodMeta, pod_from_dict
from kk_common.k8s.workload import Workload, owning_workload
from tests.logs.fake_apiserver import make_pod, owner

# 2026-11-26T10:00:00Z in minutes since the epoch: the CronJob controller's job suffix.
SCHEDULED_MINUTES = 29_928_120
CREATED = "2026-11-26T10:00:07Z"


def pod_owned_by(*owners: dict[str, Any], labels: dict[str, str] | None = None) -> PodMeta:
    return pod_from_dict(make_pod("p", owners=owners, labels=labels, created=CREATED))


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (
            pod_owned_by(
                owner("ReplicaSet", "checkout-7d9f8b6c5d"),
                labels={"pod-template-hash": "7d9f8b6c5d"},
            ),
            Workload("Deployment", "checkout"),
        ),
        # Deployment names may contain dashes and digits themselves.
        (
            pod_owned_by(
                owner("ReplicaSet", "api-v2-56b7f9c8d4"), labels={"pod-template-hash": "56b7f9c8d4"}
            ),
            Workload("Deployment", "api-v2"),
        ),
        # A ReplicaSet created by hand has no matching pod-template-hash suffix.
        (pod_owned_by(owner("ReplicaSet", "legacy-rs")), Workload("ReplicaSet", "legacy-rs")),
        (
            pod_owned_by(owner("ReplicaSet", "legacy-rs"), labels={"pod-template-hash": "abc"}),
            Workload("ReplicaSet", "legacy-rs"),
        ),
        (pod_owned_by(owner("StatefulSet", "db")), Workload("StatefulSet", "db")),
        (pod_owned_by(owner("DaemonSet", "node-exporter")), Workload("DaemonSet", "node-exporter")),
        (pod_owned_by(owner("Job", "migrate")), Workload("Job", "migrate")),
        (
            pod_owned_by(owner("Job", f"nightly-report-{SCHEDULED_MINUTES}")),
            Workload("CronJob", "nightly-report"),
        ),
        # A hand-made Job with a date suffix is not mistaken for a CronJob's Job: as minutes
        # since the epoch, 20240101 is in 2008, nowhere near the pod's creation.
        (pod_owned_by(owner("Job", "backup-20240101")), Workload("Job", "backup-20240101")),
        # A custom controller's kind is reported as is.
        (pod_owned_by(owner("Rollout", "canary")), Workload("Rollout", "canary")),
        # Mirror pods are "owned" by their Node, which is no workload; bare pods have none.
        (pod_owned_by(owner("Node", "node-a")), None),
        (pod_owned_by(), None),
    ],
)
def test_owner_kinds(pod: PodMeta, expected: Workload | None) -> None:
    """Each owner reference kind maps to the workload a user would name."""
    assert owning_workload(pod) == expected


def test_controller_reference_wins_over_other_owners() -> None:
    """Only the owner with controller=true manages the pod."""
    pod = pod_owned_by(
        owner("ConfigMap", "cfg", controller=False), owner("StatefulSet", "db", controller=True)
    )
    assert owning_workload(pod) == Workload("StatefulSet", "db")


def test_cronjob_job_needs_a_creation_time_close_to_the_schedule() -> None:
    """The suffix must be a schedule at most a day before the pod was created."""
    late = pod_from_dict(
        make_pod(
            "p",
            owners=[owner("Job", f"report-{SCHEDULED_MINUTES}")],
            created="2026-11-28T10:00:00Z",
        )
    )
    assert owning_workload(late) == Workload("Job", f"report-{SCHEDULED_MINUTES}")


def test_known_owner_of_the_job_is_used_when_available() -> None:
    """If a Job watch told us who owns the Job, that beats the name heuristic."""
    pod = pod_owned_by(owner("Job", "odd-name"))
    known = {("default", "Job", "odd-name"): OwnerRef("CronJob", "billing", controller=True)}
    assert owning_workload(pod, known) == Workload("CronJob", "billing")
