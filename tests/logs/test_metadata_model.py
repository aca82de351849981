"""The pod model keeps what enrichment uses, once: the cache is long-lived."""

from __future__ import annotations

import json

from fake_apiserver import make_pod

from kk_common.k8s.model import pod_from_dict

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def decoded(name: str) -> dict:
    """A pod as the watch delivers it: freshly parsed JSON, no string shared with others."""
    pod = make_pod(
        name,
        namespace="shop",
        labels={"app.kubernetes.io/name": "checkout", "team": "payments"},
        annotations={LAST_APPLIED: json.dumps({"spec": "x" * 4000}), "team/owner": "ana"},
    )
    return json.loads(json.dumps(pod))


def test_the_copy_kubectl_apply_leaves_in_an_annotation_is_not_kept() -> None:
    pod = pod_from_dict(decoded("checkout-1"))
    assert dict(pod.annotations) == {"team/owner": "ana"}


def test_strings_many_pods_repeat_are_held_once() -> None:
    first, second = pod_from_dict(decoded("checkout-1")), pod_from_dict(decoded("checkout-2"))
    assert first.namespace is second.namespace
    assert first.labels["team"] is second.labels["team"]
    shared_keys = {id(k) for k in first.labels} & {id(k) for k in second.labels}
    assert len(shared_keys) == 2
    assert first.containers["app"].image is second.containers["app"].image


def test_each_container_keeps_its_state_reason_and_restarts() -> None:
    """The metrics service counts a node's containers by state from the same cache."""
    raw = make_pod("crashy", containers=("app", "sidecar", "new"), restart_count=4)
    statuses = raw["status"]["containerStatuses"]
    statuses[0]["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}
    statuses[1]["state"] = {"terminated": {"reason": "OOMKilled", "exitCode": 137}}
    statuses[2]["state"] = {}  # listed, the kubelet has not said yet
    raw["spec"]["containers"].append({"name": "unlisted", "image": "x"})

    pod = pod_from_dict(raw)

    seen = {name: (c.state, c.state_reason, c.restart_count) for name, c in pod.containers.items()}
    assert seen == {
        "app": ("waiting", "CrashLoopBackOff", 4),
        "sidecar": ("terminated", "OOMKilled", 4),
        "new": ("waiting", "", 4),
        "unlisted": ("", "", 0),
    }
