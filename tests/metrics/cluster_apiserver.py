"""The logs tests' fake API server, serving what the object metrics and the election use.

`FakeApiServer` (tests/logs/fake_apiserver.py) with ``resources=CLUSTER_RESOURCES``: the
core collections (pods, services, nodes, namespaces, events), apps (deployments,
daemonsets, statefulsets), batch (jobs) and ``coordination.k8s.io`` Leases, which it can
get, create (409 AlreadyExists) and replace (409 Conflict on a stale resourceVersion).
"""

from __future__ import annotations

import uuid
from typing import Any

from kubernetes import client

from tests.logs.fake_apiserver import RESOURCES, FakeApiServer, Resource, make_pod

__all__ = [
    "CLUSTER_RESOURCES",
    "api_for",
    "make_event",
    "make_named",
    "pod_in_state",
]

CLUSTER_RESOURCES = {
    **RESOURCES,
    "nodes": Resource("Node", namespaced=False),
    "namespaces": Resource("Namespace", namespaced=False),
    "events": Resource("Event", "/apis/events.k8s.io/v1"),
    "deployments": Resource("Deployment", "/apis/apps/v1"),
    "daemonsets": Resource("DaemonSet", "/apis/apps/v1"),
    "statefulsets": Resource("StatefulSet", "/apis/apps/v1"),
    "jobs": Resource("Job", "/apis/batch/v1"),
    "leases": Resource("Lease", "/apis/coordination.k8s.io/v1"),
}


def make_named(name: str, namespace: str | None = "default") -> dict[str, Any]:
    """A minimal object of any kind: just its metadata."""
    meta: dict[str, Any] = {"name": name, "uid": str(uuid.uuid4())}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"metadata": meta, "spec": {}}


def pod_in_state(
    name: str,
    *,
    node: str = "node-a",
    namespace: str = "default",
    phase: str = "Running",
    state: dict[str, Any] | None = None,
    restarts: int = 0,
) -> dict[str, Any]:
    """A one-container pod in ``phase`` whose container is in ``state`` (default running)."""
    pod = make_pod(name, node=node, namespace=namespace, restart_count=restarts)
    pod["status"]["phase"] = phase
    if state is not None:
        pod["status"]["containerStatuses"][0]["state"] = state
    return pod


def api_for(fake: FakeApiServer) -> client.ApiClient:
    """An ApiClient for the fake, configured as the agent configures its own."""
    configuration = client.Configuration(host=fake.url)
    configuration.retries = False
    return client.ApiClient(configuration)


def make_event(
    name: str,
    *,
    namespace: str = "shop",
    reason: str = "BackOff",
    type_: str = "Warning",
    message: str = "Back-off restarting failed container app",
    count: int = 1,
    last: str = "2026-12-02T10:00:00Z",
    first: str = "2026-12-02T09:00:00Z",
    pod: str = "checkout-7d9f-abcde",
) -> dict[str, Any]:
    """An Event about a pod as the kubelet reports one (a core/v1 event), in the
    events.k8s.io/v1 form the API server serves it in (``deprecated*`` fields)."""
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": first,
        },
        "regarding": {
            "kind": "Pod",
            "namespace": namespace,
            "name": pod,
            "uid": str(uuid.uuid5(uuid.NAMESPACE_OID, pod)),
            "fieldPath": "spec.containers{app}",
        },
        "reason": reason,
        "note": message,
        "type": type_,
        "eventTime": None,
        "deprecatedCount": count,
        "deprecatedFirstTimestamp": first,
        "deprecatedLastTimestamp": last,
        "deprecatedSource": {"component": "kubelet", "host": "node-a"},
    }
