"""A small, faithful fake Kubernetes API server for the official ``kubernetes`` client.

It implements what the agent's metadata watcher relies on (test-recipes.md section 4):

* ``GET /api/v1/{pods,services}`` and ``/api/v1/namespaces/{ns}/{pods,services}``;
  anything else is a 404 ``Status``. ``resources=`` serves other collections the same way
  (any group, cluster-scoped or namespaced: ``tests/metrics/cluster_apiserver.py``), with
  ``GET`` of one object, ``POST`` (409 ``AlreadyExists``) and ``PUT`` (409 ``Conflict``
  when the sent ``metadata.resourceVersion`` is not the current one).
* Lists: ``{"kind": "PodList", "metadata": {"resourceVersion": ...}, "items": [...]}``,
  honouring ``fieldSelector``, ``labelSelector``, ``limit`` and ``continue`` (pages
  come from one consistent snapshot; a token older than the compaction point is an
  HTTP 410 ``Expired`` ``Status``, as the real server does).
* Watches (``watch=true``): a chunked ``application/json`` stream of one JSON event per
  line, events newer than ``resourceVersion`` that match the selectors. As in the real
  watch cache, an object that starts matching a selector arrives as ``ADDED`` and one
  that stops matching as ``DELETED``. ``resourceVersion`` unset or ``0`` starts with
  synthetic ``ADDED`` events for the current state. Streams end at ``timeoutSeconds``
  with the ``0\\r\\n\\r\\n`` terminator. Events are split across two chunks on purpose
  (the client must re-split on newlines).
* Bookmarks (``allowWatchBookmarks=true``): periodically while the server's
  resourceVersion moves (even if every change was filtered out) and at stream end.
* 410 Gone: a watch from a resourceVersion older than the compaction point gets
  HTTP 200 and one ``ERROR`` event carrying a ``Status`` with ``code: 410``.
* Optional TLS (``make_tls_files``) and bearer-token check (401 ``Status``).

Tests drive it with ``add_pod``/``modify_pod``/``delete_pod`` (and the same for
services), each bumping the resourceVersion; ``compact()``; ``fail(status)`` /
``heal()`` to make requests fail (429 with ``Retry-After``); ``drop_watches()`` to end
open streams; and ``requests``/``count()`` to prove there is no retry storm.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kk_receiver.certs import ensure_certificates

__all__ = [
    "RESOURCES",
    "FakeApiServer",
    "RequestRecord",
    "Resource",
    "TlsFiles",
    "eventually",
    "make_pod",
    "make_service",
    "make_tls_files",
    "owner",
    "write_kubeconfig",
]


@dataclass(frozen=True)
class Resource:
    """A collection the fake serves: its kind, API group path and scope."""

    kind: str
    prefix: str = "/api/v1"
    """``/api/v1`` for the core group, ``/apis/<group>/<version>`` for the others."""
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return self.prefix.removeprefix("/api/").removeprefix("/apis/")


RESOURCES: Mapping[str, Resource] = {"pods": Resource("Pod"), "services": Resource("Service")}
"""What ``FakeApiServer`` serves by default; pass ``resources=`` to serve more."""

_PATH = re.compile(
    r"^(?P<prefix>/api/v1|/apis/[^/]+/[^/]+)(?:/namespaces/(?P<ns>[^/]+))?"
    r"/(?P<res>[a-z]+)(?:/(?P<name>[^/]+))?$"
)


def eventually(predicate: Callable[[], Any], what: str, timeout_s: float = 5.0) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for: {what}")
        time.sleep(0.01)


# -- object builders ----------------------------------------------------------


def owner(kind: str, name: str, *, controller: bool = True) -> dict[str, Any]:
    """An ``ownerReferences`` entry."""
    api = {
        "ReplicaSet": "apps/v1",
        "StatefulSet": "apps/v1",
        "DaemonSet": "apps/v1",
        "Job": "batch/v1",
        "Node": "v1",
    }.get(kind, "v1")
    return {
        "apiVersion": api,
        "kind": kind,
        "name": name,
        "uid": str(uuid.uuid4()),
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def make_pod(
    name: str,
    *,
    namespace: str = "default",
    node: str | None = "node-a",
    uid: str | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    owners: Iterable[Mapping[str, Any]] = (),
    containers: Iterable[str] = ("app",),
    image: str = "registry.local/app:1.0",
    created: str = "2026-11-26T10:00:00Z",
    restart_count: int = 0,
) -> dict[str, Any]:
    """A Pod as the API server returns it, with running container statuses."""
    names = list(containers)
    uid = uid or str(uuid.uuid4())

    def container_id(ctr: str) -> str:
        return "containerd://" + uuid.uuid5(uuid.NAMESPACE_OID, f"{uid}/{ctr}").hex * 2

    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "creationTimestamp": created,
            "labels": dict(labels or {}),
            "annotations": dict(annotations or {}),
            "ownerReferences": [dict(o) for o in owners],
        },
        "spec": {
            **({"nodeName": node} if node else {}),
            "containers": [{"name": c, "image": image} for c in names],
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": c,
                    "image": image,
                    "imageID": f"{image}@sha256:{'a' * 64}",
                    "containerID": container_id(c),
                    "restartCount": restart_count,
                    "ready": True,
                    "started": True,
                    "state": {"running": {"startedAt": created}},
                }
                for c in names
            ],
        },
    }


def make_service(
    name: str, *, namespace: str = "default", selector: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A Service with a pod selector."""
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())},
        "spec": {"selector": dict(selector or {}), "ports": [{"port": 80}]},
    }


# -- selectors ----------------------------------------------------------------

_FIELDS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "metadata.name": lambda o: o["metadata"].get("name", ""),
    "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
    "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName", ""),
    "status.phase": lambda o: (o.get("status") or {}).get("phase", ""),
}
_FIELD_TERM = re.compile(r"^(?P<key>[\w.]+)(?P<op>!=|==|=)(?P<value>.*)$")
_LABEL_TERM = re.compile(
    r"\s*(?:(?P<neg>!)\s*(?P<nkey>[\w./-]+)"
    r"|(?P<skey>[\w./-]+)\s*(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)"
    r"|(?P<key>[\w./-]+)\s*(?:(?P<op>!=|==|=)\s*(?P<value>[\w.-]*))?)\s*(?:,|$)"
)


class SelectorError(ValueError):
    """A selector the real API server would reject with 400."""


def field_matcher(selector: str) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a field selector (``spec.nodeName=x,metadata.namespace!=y``)."""
    terms = []
    for raw in filter(None, (t.strip() for t in selector.split(","))):
        m = _FIELD_TERM.match(raw)
        if not m or m["key"] not in _FIELDS:
            raise SelectorError(f'field label not supported: "{raw}"')
        terms.append((_FIELDS[m["key"]], m["op"] != "!=", m["value"]))
    return lambda obj: all((get(obj) == value) is eq for get, eq, value in terms)


def label_matcher(selector: str) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a label selector (equality, set-based, existence)."""
    checks: list[Callable[[Mapping[str, str]], bool]] = []
    pos, text = 0, selector.strip()
    while pos < len(text):
        m = _LABEL_TERM.match(text, pos)
        if not m or m.end() == pos:
            raise SelectorError(f"unable to parse requirement: {text[pos:]!r}")
        pos = m.end()
        if m["nkey"]:
            checks.append(lambda labels, k=m["nkey"]: k not in labels)
        elif m["skey"]:
            values = {v.strip() for v in m["values"].split(",")}
            inside = m["setop"] == "in"
            checks.append(
                lambda labels, k=m["skey"], vs=values, inside=inside: (
                    (labels.get(k) in vs) is inside and (k in labels or not inside)
                )
            )
        elif m["op"]:
            eq = m["op"] != "!="
            checks.append(
                lambda labels, k=m["key"], v=m["value"], eq=eq: (labels.get(k) == v) is eq
            )
        else:
            checks.append(lambda labels, k=m["key"]: k in labels)
    return lambda obj: all(check(obj["metadata"].get("labels") or {}) for check in checks)


# -- TLS ----------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Write ``ca.crt``, ``server.crt`` and ``server.key`` into ``directory`` (the reference
    receiver's certificate code, which every test already trusts to do this)."""
    files = ensure_certificates(directory)
    return TlsFiles(files.ca_cert, files.server_cert, files.server_key)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    tls_context: ssl.SSLContext | None = None
    fake: Any = None

    def get_request(self):  # type: ignore[no-untyped-def]
        sock, addr = self.socket.accept()
        if self.tls_context is not None:
            # Handshake in the handler thread (on first read), not in the accept loop.
            sock = self.tls_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, addr


def serve_in_thread(
    handler: type[BaseHTTPRequestHandler], fake: Any, tls: TlsFiles | None
) -> tuple[_Server, threading.Thread]:
    """Start a ``ThreadingHTTPServer`` on 127.0.0.1:0 in a daemon thread."""
    server = _Server(("127.0.0.1", 0), handler)
    server.fake = fake
    if tls is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls.cert, tls.key)
        server.tls_context = ctx
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    return server, thread


# -- the fake -----------------------------------------------------------------


@dataclass(frozen=True)
class RequestRecord:
    """One request the fake received."""

    at: float
    method: str
    path: str
    query: Mapping[str, str]
    status: int

    @property
    def watch(self) -> bool:
        """Whether this was a watch request."""
        return self.query.get("watch") in ("true", "1")

    @property
    def resource(self) -> str:
        """``pods``, ``services``, ``leases``... or ``""``."""
        m = _PATH.match(self.path)
        return m["res"] if m else ""


@dataclass(frozen=True)
class _Change:
    rv: int
    resource: str
    type: str
    obj: dict[str, Any]
    prev: dict[str, Any] | None


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    """A ``metav1.Status`` failure object."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


_REASONS = {
    400: "BadRequest",
    409: "Conflict",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    410: "Expired",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


class FakeApiServer:
    """The fake server; use as a context manager or call ``start()``/``stop()``."""

    def __init__(
        self,
        *,
        token: str | None = None,
        tls: TlsFiles | None = None,
        bookmark_interval_s: float = 0.2,
        start_rv: int = 100,
        split_chunks: bool = True,
        resources: Mapping[str, Resource] = RESOURCES,
    ) -> None:
        self.token = token
        self.tls = tls
        self.bookmark_interval_s = bookmark_interval_s
        self.split_chunks = split_chunks
        self._cond = threading.Condition()
        self._rv = start_rv
        self.resources = dict(resources)
        self._store: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            r: {} for r in self.resources
        }
        self._history: list[_Change] = []
        self._compacted = 0
        self._closing = False
        self._watch_generation = 0
        self._fail_status: int | None = None
        self._fail_remaining: int | None = None
        self._fail_retry_after: str | None = None
        self._requests: list[RequestRecord] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> FakeApiServer:
        """Listen on 127.0.0.1 on a free port."""
        self._server, self._thread = serve_in_thread(_ApiHandler, self, self.tls)
        return self

    def stop(self) -> None:
        """End open watches and shut the server down."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, ``http(s)://127.0.0.1:<port>``."""
        assert self._server is not None, "not started"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    # -- objects --------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The server's current resourceVersion."""
        with self._cond:
            return self._rv

    def _change(self, resource: str, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            store = self._store[resource]
            prev = store.get(key)
            if kind == "ADDED" and prev is not None:
                raise ValueError(f"{resource} {key} already exists")
            if kind != "ADDED" and prev is None:
                raise KeyError(f"{resource} {key} not found")
            self._rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self._rv)
            if kind == "DELETED":
                del store[key]
            else:
                store[key] = obj
            self._history.append(
                _Change(self._rv, resource, kind, obj, copy.deepcopy(prev) if prev else None)
            )
            self._cond.notify_all()
            return copy.deepcopy(obj)

    def add_pod(self, pod: dict[str, Any]) -> dict[str, Any]:
        """Create a pod (``make_pod``); returns it with its resourceVersion."""
        return self._change("pods", "ADDED", pod)

    def modify_pod(
        self, namespace: str, name: str, mutate: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        """Apply ``mutate`` to a copy of the pod and store it as a new version."""
        with self._cond:
            pod = copy.deepcopy(self._store["pods"][(namespace, name)])
            mutate(pod)
            return self._change("pods", "MODIFIED", pod)

    def delete_pod(self, namespace: str, name: str) -> dict[str, Any]:
        """Delete a pod; watchers get its final state in a ``DELETED`` event."""
        with self._cond:
            return self._change("pods", "DELETED", self._store["pods"][(namespace, name)])

    def add_service(self, svc: dict[str, Any]) -> dict[str, Any]:
        """Create a service (``make_service``)."""
        return self._change("services", "ADDED", svc)

    def modify_service(
        self, namespace: str, name: str, mutate: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        """Apply ``mutate`` to a copy of the service and store it."""
        with self._cond:
            svc = copy.deepcopy(self._store["services"][(namespace, name)])
            mutate(svc)
            return self._change("services", "MODIFIED", svc)

    def delete_service(self, namespace: str, name: str) -> dict[str, Any]:
        """Delete a service."""
        with self._cond:
            return self._change("services", "DELETED", self._store["services"][(namespace, name)])

    def add(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create any served object; returns it with its resourceVersion."""
        return self._change(resource, "ADDED", obj)

    def modify(
        self, resource: str, namespace: str, name: str, mutate: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        """Apply ``mutate`` to a copy of any served object and store it as a new version."""
        with self._cond:
            obj = copy.deepcopy(self._store[resource][(namespace, name)])
            mutate(obj)
            return self._change(resource, "MODIFIED", obj)

    def delete(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        """Delete any served object (``namespace`` is ``""`` for cluster-scoped ones)."""
        with self._cond:
            return self._change(resource, "DELETED", self._store[resource][(namespace, name)])

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A copy of the stored object, or None."""
        with self._cond:
            obj = self._store[resource].get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def touch_unrelated(self, n: int = 1) -> None:
        """Bump the resourceVersion ``n`` times with changes no pod/service watch sees.

        Stands in for the rest of the cluster (endpoints, leases, events...), which
        moves the global resourceVersion without producing events for our watches.
        """
        with self._cond:
            for _ in range(n):
                self._rv += 1
                self._history.append(_Change(self._rv, "other", "MODIFIED", {}, None))
            self._cond.notify_all()

    # -- faults ---------------------------------------------------------------

    def compact(self) -> int:
        """Forget history up to now: older resourceVersions get 410 Gone. Returns the point."""
        with self._cond:
            self._compacted = self._rv
            return self._compacted

    def fail(self, status: int = 500, *, count: int | None = None, retry_after: int | None = None):
        """Answer the next ``count`` requests (all, if None, until ``heal()``) with ``status``."""
        with self._cond:
            self._fail_status = status
            self._fail_remaining = count
            self._fail_retry_after = None if retry_after is None else str(retry_after)

    def heal(self) -> None:
        """Stop failing requests."""
        with self._cond:
            self._fail_status = None
            self._fail_remaining = None

    def drop_watches(self) -> None:
        """End every open watch stream now (as an API server restart would)."""
        with self._cond:
            self._watch_generation += 1
            self._cond.notify_all()

    # -- request log ----------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received so far."""
        with self._cond:
            return list(self._requests)

    def count(
        self, *, resource: str | None = None, watch: bool | None = None, since: float = 0.0
    ) -> int:
        """How many requests match (``since`` is a ``time.monotonic()`` value)."""
        return sum(
            1
            for r in self.requests
            if r.at >= since
            and (resource is None or r.resource == resource)
            and (watch is None or r.watch == watch)
        )

    # -- request handling (called from handler threads) ------------------------

    def _record(self, method: str, path: str, query: Mapping[str, str], status: int) -> None:
        with self._cond:
            self._requests.append(RequestRecord(time.monotonic(), method, path, query, status))

    def _injected_failure(self) -> tuple[int, str | None] | None:
        with self._cond:
            if self._fail_status is None:
                return None
            status, retry_after = self._fail_status, self._fail_retry_after
            if self._fail_remaining is not None:
                self._fail_remaining -= 1
                if self._fail_remaining <= 0:
                    self._fail_status = None
            return status, retry_after

    def _state_at(self, resource: str, rv: int) -> dict[tuple[str, str], dict[str, Any]]:
        state: dict[tuple[str, str], dict[str, Any]] = {}
        for ch in self._history:
            if ch.rv > rv:
                break
            if ch.resource != resource:
                continue
            key = (ch.obj["metadata"].get("namespace", ""), ch.obj["metadata"]["name"])
            if ch.type == "DELETED":
                state.pop(key, None)
            else:
                state[key] = ch.obj
        return state


def _encode_continue(rv: int, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"rv": rv, "start": offset}).encode()).decode()


def _decode_continue(token: str) -> tuple[int, int]:
    data = json.loads(base64.urlsafe_b64decode(token.encode()))
    return int(data["rv"]), int(data["start"])


class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def fake(self) -> FakeApiServer:
        return self.server.fake

    def _send_json(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _fail(
        self, status: int, message: str, query: Mapping[str, str], retry_after: str | None = None
    ) -> None:
        self.fake._record(self.command, self.path.split("?")[0], query, status)
        headers = {"Retry-After": retry_after} if retry_after else {}
        self._send_json(
            status, status_body(status, _REASONS.get(status, "Unknown"), message), headers
        )

    def _route(self) -> tuple[re.Match[str], Resource, dict[str, str]] | None:
        """Authenticate, inject failures and find the collection; None: answered already."""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        fake = self.fake
        if fake.token is not None:
            auth = self.headers.get("Authorization", "")
            scheme, _, token = auth.partition(" ")
            # The in-cluster loader sends "bearer" in lowercase; HTTP auth schemes are
            # case-insensitive (RFC 9110 section 11.1).
            if scheme.lower() != "bearer" or token != fake.token:
                self._fail(401, "Unauthorized", query)
                return None
        failure = fake._injected_failure()
        if failure is not None:
            self._fail(failure[0], "injected failure", query, failure[1])
            return None
        m = _PATH.match(url.path)
        resource = fake.resources.get(m["res"]) if m else None
        if m is None or resource is None or resource.prefix != m["prefix"]:
            self._fail(404, f"the server could not find {url.path}", query)
            return None
        if m["ns"] is not None and not resource.namespaced:
            self._fail(404, f"{m['res']} is not namespaced", query)
            return None
        return m, resource, query

    def _read_body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _get_one(self, res: str, ns: str, name: str, query: Mapping[str, str]) -> None:
        obj = self.fake.get(res, ns, name)
        if obj is None:
            return self._fail(404, f'{res} "{name}" not found', query)
        self.fake._record("GET", self.path.split("?")[0], query, 200)
        self._send_json(200, obj)

    def do_POST(self) -> None:
        """Create; 409 ``AlreadyExists`` when the name is taken."""
        routed = self._route()
        if routed is None:
            return
        m, resource, query = routed
        body = self._read_body()
        name = ((body or {}).get("metadata") or {}).get("name")
        if body is None or not name or m["name"] is not None:
            return self._fail(400, "a create needs an object with metadata.name", query)
        body["metadata"]["namespace"] = m["ns"] or ""
        if not resource.namespaced:
            body["metadata"].pop("namespace")
        body["metadata"].setdefault("uid", str(uuid.uuid4()))
        body.setdefault("kind", resource.kind)
        body.setdefault("apiVersion", resource.api_version)
        try:
            created = self.fake.add(m["res"], body)
        except ValueError:
            return self._fail(409, f'{m["res"]} "{name}" already exists', query)
        self.fake._record("POST", self.path.split("?")[0], query, 201)
        self._send_json(201, created)

    def do_PUT(self) -> None:
        """Replace; 409 ``Conflict`` when ``metadata.resourceVersion`` is not the current one."""
        routed = self._route()
        if routed is None:
            return
        m, resource, query = routed
        body = self._read_body()
        ns, name = m["ns"] or "", m["name"]
        if body is None or not name:
            return self._fail(400, "a replace needs an object and a name", query)
        fake = self.fake
        with fake._cond:
            current = fake._store[m["res"]].get((ns, name))
            if current is None:
                return self._fail(404, f'{m["res"]} "{name}" not found', query)
            sent_rv = (body.get("metadata") or {}).get("resourceVersion")
            if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                return self._fail(
                    409,
                    f'Operation cannot be fulfilled on {m["res"]} "{name}": the object has been '
                    "modified; please apply your changes to the latest version and try again",
                    query,
                )
            body.setdefault("metadata", {})
            body["metadata"].update(name=name, namespace=ns, uid=current["metadata"].get("uid", ""))
            if not resource.namespaced:
                body["metadata"].pop("namespace")
            body.setdefault("kind", resource.kind)
            body.setdefault("apiVersion", resource.api_version)
            replaced = fake._change(m["res"], "MODIFIED", body)
        fake._record("PUT", self.path.split("?")[0], query, 200)
        self._send_json(200, replaced)

    def do_GET(self) -> None:
        routed = self._route()
        if routed is None:
            return
        m, _, query = routed
        url = urlsplit(self.path)
        if m["name"] is not None:
            return self._get_one(m["res"], m["ns"] or "", m["name"], query)
        try:
            match_field = field_matcher(query.get("fieldSelector", ""))
            match_label = label_matcher(query.get("labelSelector", ""))
        except SelectorError as exc:
            return self._fail(400, str(exc), query)
        ns = m["ns"]

        def matches(obj: Mapping[str, Any]) -> bool:
            return (
                (ns is None or obj["metadata"].get("namespace") == ns)
                and match_field(obj)
                and match_label(obj)
            )

        if query.get("watch") in ("true", "1"):
            self.fake._record("GET", url.path, query, 200)
            return self._watch(m["res"], matches, query)
        return self._list(m["res"], matches, query)

    def _list(self, resource: str, matches: Callable[..., bool], query: Mapping[str, str]) -> None:
        fake = self.fake
        with fake._cond:
            token = query.get("continue", "")
            if token:
                rv, start = _decode_continue(token)
                if rv < fake._compacted:
                    return self._fail(
                        410,
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue parameter.",
                        query,
                    )
                state = fake._state_at(resource, rv)
            else:
                rv, start = fake._rv, 0
                state = fake._store[resource]
            items = [copy.deepcopy(o) for k, o in sorted(state.items()) if matches(o)]
        limit = int(query.get("limit") or 0)
        page = items[start : start + limit] if limit else items[start:]
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if limit and start + limit < len(items):
            meta["continue"] = _encode_continue(rv, start + limit)
            meta["remainingItemCount"] = len(items) - start - limit
        for item in page:
            item.pop("kind", None)
            item.pop("apiVersion", None)
        fake._record("GET", self.path.split("?")[0], query, 200)
        self._send_json(
            200,
            {
                "kind": fake.resources[resource].kind + "List",
                "apiVersion": fake.resources[resource].api_version,
                "metadata": meta,
                "items": page,
            },
        )

    def _chunk(self, data: bytes) -> None:
        if not data:
            return
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _event(self, etype: str, obj: Mapping[str, Any]) -> None:
        line = json.dumps({"type": etype, "object": obj}).encode() + b"\n"
        if self.fake.split_chunks and len(line) > 2:
            half = len(line) // 2
            self._chunk(line[:half])
            self._chunk(line[half:])
        else:
            self._chunk(line)
        self.wfile.flush()

    def _bookmark(self, resource: str, rv: int) -> None:
        self._event(
            "BOOKMARK",
            {
                "kind": self.fake.resources[resource].kind,
                "apiVersion": self.fake.resources[resource].api_version,
                "metadata": {"resourceVersion": str(rv)},
            },
        )

    def _watch(self, resource: str, matches: Callable[..., bool], query: Mapping[str, str]) -> None:
        fake = self.fake
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            requested = query.get("resourceVersion", "")
            with fake._cond:
                generation = fake._watch_generation
                pos = fake._rv
                initial = [
                    copy.deepcopy(o) for _, o in sorted(fake._store[resource].items()) if matches(o)
                ]
                compacted = fake._compacted
            if requested not in ("", "0"):
                pos = int(requested)
                initial = []
                if pos < compacted:
                    self._event(
                        "ERROR",
                        status_body(
                            410, "Expired", f"too old resource version: {pos} ({compacted})"
                        ),
                    )
                    return
            for obj in initial:
                self._event("ADDED", obj)
            self._stream(resource, matches, pos, deadline, generation, bookmarks)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
            return
        finally:
            if not self.close_connection:
                try:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    self.close_connection = True

    def _stream(
        self,
        resource: str,
        matches: Callable[..., bool],
        pos: int,
        deadline: float,
        generation: int,
        bookmarks: bool,
    ) -> None:
        fake = self.fake
        bookmarked = pos
        next_bookmark = time.monotonic() + fake.bookmark_interval_s
        while True:
            with fake._cond:
                while True:
                    now = time.monotonic()
                    if fake._closing or generation != fake._watch_generation:
                        return
                    pending = [ch for ch in fake._history if ch.rv > pos]
                    bookmark_due = bookmarks and now >= next_bookmark
                    if pending or now >= deadline or bookmark_due:
                        break
                    wake = min(deadline, next_bookmark) if bookmarks else deadline
                    fake._cond.wait(max(wake - now, 0.001))
                current = fake._rv
            for ch in pending:
                if ch.resource != resource:
                    continue
                now_match = matches(ch.obj)
                prev_match = ch.prev is not None and matches(ch.prev)
                if ch.type == "MODIFIED" and now_match and not prev_match:
                    self._event("ADDED", ch.obj)
                elif ch.type == "MODIFIED" and prev_match and not now_match:
                    self._event("DELETED", ch.obj)
                elif now_match:
                    self._event(ch.type, ch.obj)
            pos = current
            now = time.monotonic()
            ending = now >= deadline
            if bookmarks and (ending or (now >= next_bookmark and pos > bookmarked)):
                # Periodic bookmarks only when the resourceVersion moved (that includes
                # changes the selector filtered out); the real server (1.27+) also sends
                # one right before it closes a watch, so the client resumes from there.
                self._bookmark(resource, pos)
                bookmarked = pos
            if bookmarks and now >= next_bookmark:
                next_bookmark = now + fake.bookmark_interval_s
            if ending:
                return


def write_kubeconfig(path: Path, server: FakeApiServer, token: str | None = None) -> Path:
    """A kubeconfig pointing at ``server`` (with its CA and token when set)."""
    cluster: dict[str, Any] = {"server": server.url}
    if server.tls is not None:
        cluster["certificate-authority"] = str(server.tls.ca)
    user: dict[str, Any] = {"token": token} if token else {}
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": cluster}],
        "users": [{"name": "fake", "user": user}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        "current-context": "fake",
    }
    path.write_text(json.dumps(doc))
    return path
