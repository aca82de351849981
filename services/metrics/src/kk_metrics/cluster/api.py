"""IO adapter: the API server calls of the object metrics, through the official client.

Everything here is synchronous (the ``kubernetes`` client is) and runs on a worker thread.
Errors are translated at this seam: a list failure becomes a `ScrapeError` with a stable
reason (``http_403``, ``connection``, ``timeout``, ``expired``, ``malformed``), a Lease
failure a `LeaseConflict` (409) or `LeaseUnavailable`; nothing the client raises escapes.

Lists are read in pages (``limit``/``continue``), so memory holds one page, never the
cluster. A collection that is only counted asks for one item: the API server then says how
many remain (``remainingItemCount``) and the count costs one small request, whatever the
cluster's size. Where the server does not say (older servers, or a selector), the pages
are read and counted.

The ``ApiClient`` is the service's one connection (`kk_common.k8s.connect.api_client`, also
used for this node's pods): urllib3's own retries are off, so a failed call fails at once
and the caller's schedule (the next scrape, the next election round) is the retry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kk_common.k8s.times import micro_time, parse_time
from kk_common.k8s.watcher import classify
from kk_metrics.cluster.election import LeaseRecord
from kk_metrics.errors import ScrapeError

__all__ = [
    "SERVICE_ACCOUNT_NAMESPACE_FILE",
    "LeaseApi",
    "LeaseConflict",
    "LeaseUnavailable",
    "ObjectLists",
    "error_reason",
    "own_namespace",
]

SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
DEFAULT_NAMESPACE = "killkrill-system"

PAGE_SIZE = 500


def own_namespace(path: str = SERVICE_ACCOUNT_NAMESPACE_FILE) -> str:
    """The pod's namespace, from its service account; ``killkrill-system`` outside a pod."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip() or DEFAULT_NAMESPACE
    except OSError:
        return DEFAULT_NAMESPACE


def error_reason(exc: BaseException) -> str:
    """A stable code for a failed call: the pod watch's (`classify`: ``http_<status>``,
    ``expired``, ``connection``, ``tls``, ``timeout``...), and ``malformed`` for an answer
    that is not the JSON object asked for."""
    if isinstance(exc, ValueError) and not isinstance(exc, UnicodeDecodeError):
        return "malformed"
    return classify(exc)[0]


_CALL_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError)


def _json(response: Any) -> dict[str, Any]:
    try:
        body = json.loads(response.data)
    finally:
        response.release_conn()
    if not isinstance(body, dict):
        raise ValueError("the API server's answer is not a JSON object")
    return body


class ObjectLists:
    """Paged lists of the collections the object metrics read."""

    def __init__(
        self, api: client.ApiClient, *, timeout_s: float, page_size: int = PAGE_SIZE
    ) -> None:
        core, apps, batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
        self.timeout_s = timeout_s
        self.page_size = page_size
        self.collections: Mapping[str, Callable[..., Any]] = {
            "nodes": core.list_node,
            "namespaces": core.list_namespace,
            "pods": core.list_pod_for_all_namespaces,
            "services": core.list_service_for_all_namespaces,
            "deployments": apps.list_deployment_for_all_namespaces,
            "daemonsets": apps.list_daemon_set_for_all_namespaces,
            "statefulsets": apps.list_stateful_set_for_all_namespaces,
            "jobs": batch.list_job_for_all_namespaces,
        }

    def _page(self, kind: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.collections[kind](
                _preload_content=False, _request_timeout=self.timeout_s, **kwargs
            )
            return _json(response)
        except _CALL_ERRORS as exc:
            reason = error_reason(exc)
            detail = exc.reason if isinstance(exc, ApiException) else exc
            raise ScrapeError(reason, f"listing {kind} failed ({reason}): {detail}") from None

    def pages(self, kind: str) -> Iterator[list[dict[str, Any]]]:
        """The items of ``kind``, a page at a time (one consistent snapshot)."""
        token = ""
        while True:
            kwargs: dict[str, Any] = {"limit": self.page_size}
            if token:
                kwargs["_continue"] = token
            body = self._page(kind, **kwargs)
            items = body.get("items") or []
            yield [item for item in items if isinstance(item, dict)]
            token = str((body.get("metadata") or {}).get("continue") or "")
            if not token:
                return

    def count(self, kind: str) -> int:
        """How many objects of ``kind`` exist (one request when the server says)."""
        body = self._page(kind, limit=1)
        meta = body.get("metadata") or {}
        items = len(body.get("items") or [])
        remaining = meta.get("remainingItemCount")
        if not meta.get("continue"):
            return items
        if isinstance(remaining, int) and remaining >= 0:
            return items + remaining
        return sum(len(page) for page in self.pages(kind))


# -- Leases -------------------------------------------------------------------------


class LeaseUnavailable(Exception):
    """The Lease could not be read or written; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class LeaseConflict(LeaseUnavailable):
    """409: another candidate wrote the Lease first (or created it first)."""


def _micro_time(seconds: float | None) -> str | None:
    return None if seconds is None else micro_time(seconds)


CHECKPOINT_ANNOTATION = "killkrill.io/events-checkpoint"


def lease_from_dict(body: Mapping[str, Any]) -> LeaseRecord:
    """A Lease in Kubernetes JSON form as a `LeaseRecord`."""
    spec = body.get("spec") or {}
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration_s=int(spec.get("leaseDurationSeconds") or 0),
        acquired_at=parse_time(spec.get("acquireTime")),
        renewed_at=parse_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str(meta.get("resourceVersion") or ""),
        checkpoint=str(annotations.get(CHECKPOINT_ANNOTATION) or ""),
    )


def lease_to_dict(name: str, namespace: str, lease: LeaseRecord) -> dict[str, Any]:
    """The Lease object to create or replace (with the resourceVersion it replaces)."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if lease.resource_version:
        meta["resourceVersion"] = lease.resource_version
    if lease.checkpoint:
        meta["annotations"] = {CHECKPOINT_ANNOTATION: lease.checkpoint}
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {
            "holderIdentity": lease.holder or None,
            "leaseDurationSeconds": lease.duration_s,
            "acquireTime": _micro_time(lease.acquired_at),
            "renewTime": _micro_time(lease.renewed_at),
            "leaseTransitions": lease.transitions,
        },
    }


class LeaseApi:
    """Read, create and replace one Lease."""

    def __init__(
        self, api: client.ApiClient, *, name: str, namespace: str, timeout_s: float
    ) -> None:
        self._api = client.CoordinationV1Api(api)
        self.name = name
        self.namespace = namespace
        self.timeout_s = timeout_s

    def _call(self, what: str, call: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
        try:
            return _json(call(*args, _preload_content=False, _request_timeout=self.timeout_s))
        except ApiException as exc:
            if exc.status == 404 and what == "read":
                return None
            if exc.status == 409:
                raise LeaseConflict("conflict", f"{what} Lease: {exc.reason}") from None
            reason = error_reason(exc)
            raise LeaseUnavailable(
                reason, f"{what} Lease failed ({reason}): {exc.reason}"
            ) from None
        except _CALL_ERRORS as exc:
            reason = error_reason(exc)
            raise LeaseUnavailable(reason, f"{what} Lease failed ({reason}): {exc}") from None

    def read(self) -> LeaseRecord | None:
        """The Lease, or None when it does not exist."""
        body = self._call("read", self._api.read_namespaced_lease, self.name, self.namespace)
        return None if body is None else lease_from_dict(body)

    def write(self, lease: LeaseRecord) -> LeaseRecord:
        """Create (no resourceVersion) or replace (with the one read); returns the new Lease."""
        body = lease_to_dict(self.name, self.namespace, lease)
        if lease.resource_version:
            written = self._call(
                "replace", self._api.replace_namespaced_lease, self.name, self.namespace, body
            )
        else:
            written = self._call("create", self._api.create_namespaced_lease, self.namespace, body)
        assert written is not None
        return lease_from_dict(written)
