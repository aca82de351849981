"""IO adapter: list+watch Pods (this node) and Services through the official client.

Theory of operation
-------------------
This is a small Kubernetes reflector (client-go ``Reflector.ListAndWatch``), one per
resource, each in its own thread because the official client is synchronous:

1. **List** the collection. The first list sends ``resourceVersion=0`` so the API
   server may answer from its watch cache instead of etcd (thousands of agents
   start together after a cluster upgrade). The list's ``metadata.resourceVersion``
   is the point in history the state was taken at; it becomes ``Relisted`` in the
   cache. Large collections (Services) are read in pages (``limit``/``continue``).
2. **Watch** from that resourceVersion with ``allowWatchBookmarks=true`` and a
   jittered ``timeoutSeconds`` (300-600 s by default), so streams end regularly and
   resume; every event, and every ``BOOKMARK``, moves the resume point forward.
   Bookmarks matter for a node-scoped watch: nearly every change in the cluster is
   filtered out by ``spec.nodeName=<node>``, and without bookmarks the resume point
   would stay old enough to be compacted away.
3. When the resume point is too old, the server answers **410 Gone** (an ``ERROR``
   event with ``code: 410``, or HTTP 410 for an expired ``continue`` token). The
   client raises ``ApiException(410)`` at once because ``timeout_seconds`` is set.
   We then **re-list** with a consistent read (no ``resourceVersion``: a cached
   read could be older than the history we just lost) and watch again. Pods deleted
   in the gap are missing from the new list; the cache retains them as deleted.
4. **Every other failure** (5xx, 429, 403, connection refused, read timeout, a
   stream that ends at once with nothing in it) backs off exponentially with full
   jitter, honouring ``Retry-After``; a failed watch resumes from the same
   resourceVersion rather than re-listing, which is the cheapest request for the
   server. Success resets the backoff.

Errors are translated at this seam into ``api_errors`` counters keyed by reason
(``http_500``, ``http_429``, ``expired``, ``connection``, ``timeout``...); nothing
raised by the client escapes the thread. Waits use ``threading.Event.wait`` so
``stop()`` interrupts them, and ``stop()`` also closes the open watch socket.

The caller passes a configured ``ApiClient`` (in-cluster or kubeconfig): nothing
here loads configuration or touches the client's global defaults. Set
``Configuration.retries = False`` on it: otherwise urllib3's default ``Retry`` retries
connection errors three times at once and sleeps out a 429/503 ``Retry-After`` inside
the call, uncounted and deaf to ``stop()``; this module's backoff does both properly.
"""

from __future__ import annotations

import functools
import json
import random
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from kk_common.k8s.backoff import Backoff
from kk_common.k8s.cache import PodCache
from kk_common.k8s.events import Added, Bookmarked, Deleted, Modified, Relisted
from kk_common.k8s.model import (
    MetadataDecodeError,
    PodMeta,
    ServiceMeta,
    pod_from_dict,
    service_from_dict,
)
from kk_common.k8s.services import ServiceIndex

__all__ = [
    "ListWatch",
    "PodWatcher",
    "SourceStats",
    "SourceStatus",
    "WatchSettings",
    "classify",
]

T = TypeVar("T")

# A watch that ends this fast with nothing in it is a broken server or proxy, not a
# timeout: treat it as a failure so it backs off instead of spinning (client-go's
# "very short watch").
_SHORT_WATCH_S = 1.0


@dataclass(frozen=True)
class WatchSettings:
    """Timing knobs for list+watch; the defaults suit production."""

    watch_timeout_s: int = 300
    """Server-side ``timeoutSeconds``; each watch picks a value in [t, 2t)."""
    connect_timeout_s: float = 10.0
    list_timeout_s: float = 60.0
    page_size: int = 500
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0


@dataclass(frozen=True)
class SourceStatus:
    """A snapshot of one metadata source's health and counters."""

    synced: bool
    resource_version: str
    relists: int
    events: Mapping[str, int]
    api_errors: Mapping[str, int]
    skipped_objects: int
    consecutive_failures: int
    last_error: str


class SourceStats:
    """Thread-safe counters shared by the watcher and kubelet sources."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.relists = 0
        self.events: Counter[str] = Counter()
        self.api_errors: Counter[str] = Counter()
        self.skipped_objects = 0
        self.last_error = ""

    def relisted(self) -> None:
        """Count one complete list applied to the cache."""
        with self._lock:
            self.relists += 1

    def event_received(self, kind: str) -> None:
        """Count one watch event by type (``ADDED``, ``BOOKMARK``...)."""
        with self._lock:
            self.events[kind] += 1

    def object_skipped(self) -> None:
        """Count an object that could not be decoded (and was ignored)."""
        with self._lock:
            self.skipped_objects += 1

    def error_seen(self, reason: str, detail: str) -> None:
        """Count one failed call by ``reason``; ``detail`` is kept for health output."""
        with self._lock:
            self.api_errors[reason] += 1
            self.last_error = f"{reason}: {detail}"[:300]

    def snapshot(self, synced: bool, resource_version: str, failures: int) -> SourceStatus:
        """A frozen copy of the counters."""
        with self._lock:
            return SourceStatus(
                synced=synced,
                resource_version=resource_version,
                relists=self.relists,
                events=MappingProxyType(dict(self.events)),
                api_errors=MappingProxyType(dict(self.api_errors)),
                skipped_objects=self.skipped_objects,
                consecutive_failures=failures,
                last_error=self.last_error,
            )


class _Expired(Exception):
    """The resourceVersion (or continue token) was compacted away: re-list."""


def classify(exc: BaseException) -> tuple[str, float | None]:
    """Map a client error to a counter reason and an optional ``Retry-After`` in seconds."""
    if isinstance(exc, ApiException):
        if exc.status == 410:
            return "expired", None
        if not exc.status:
            # The client turns urllib3's SSLError into ApiException(status=0).
            return ("tls" if "SSLError" in str(exc.reason) else "connection"), None
        retry_after = None
        headers = exc.headers or {}
        value = headers.get("Retry-After") if hasattr(headers, "get") else None
        if value is not None:
            try:
                retry_after = float(value)
            except ValueError:
                retry_after = None
        return f"http_{exc.status}", retry_after
    if isinstance(exc, urllib3.exceptions.SSLError | ssl.SSLError):
        return "tls", None
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return classify(exc.reason)
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return "timeout", None
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return "decode", None
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return "connection", None
    # Anything else is a bug on our side, not a flaky server: name it as such, so
    # health output shows it instead of it hiding behind "transient" retries.
    return "internal", None


class ListWatch(Generic[T]):
    """List+watch loop for one collection, feeding decoded events to ``apply``."""

    def __init__(
        self,
        name: str,
        list_fn: Callable[..., Any],
        decode: Callable[[Mapping[str, Any]], T],
        apply: Callable[[Any, float], None],
        *,
        settings: WatchSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_applied: Callable[[float], None] | None = None,
    ) -> None:
        self.name = name
        self.stats = SourceStats()
        self._list_fn = list_fn
        self._decode = decode
        self._apply = apply
        self._on_applied = on_applied
        self._settings = settings or WatchSettings()
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._backoff = Backoff(
            initial_s=self._settings.backoff_initial_s,
            max_s=self._settings.backoff_max_s,
            rng=self._rng,
        )
        self._lock = threading.Lock()
        self._watch: watch.Watch | None = None
        self._synced = False
        self._rv = ""

    # -- public ---------------------------------------------------------------

    def run(self, stop: threading.Event, resume_from: str = "") -> None:
        """Run until ``stop`` is set (blocking; call from a thread or an executor).

        ``resume_from``: watch from this resourceVersion (a checkpoint kept elsewhere)
        instead of listing first; a 410 then lists as usual.
        """
        need_list, list_rv = True, "0"
        if resume_from:
            need_list, self._rv = False, resume_from
        while not stop.is_set():
            try:
                if need_list:
                    # A good list does not reset the backoff: only a healthy watch does,
                    # or list -> watch -> 410 -> list could loop without ever waiting.
                    self._list_and_apply(list_rv)
                    need_list = False
                if self._watch_once(stop):
                    self._backoff.succeeded()
                    continue
                reason, detail, retry_after = "short_watch", "watch ended with no events", None
            except _Expired as exc:
                need_list, list_rv = True, ""
                reason, detail, retry_after = "expired", str(exc), None
            except Exception as exc:
                # The thread must survive anything the client raises; classify() counts
                # unexpected exceptions as "internal" rather than as server trouble.
                if stop.is_set():
                    break
                reason, retry_after = classify(exc)
                detail = f"{type(exc).__name__}: {exc}"
                if reason == "expired":
                    need_list, list_rv = True, ""
            if stop.is_set():
                break
            self.stats.error_seen(reason, detail)
            delay = self._backoff.failed(retry_after)
            if reason == "expired" and self._backoff.failures == 1:
                # The first 410 after a healthy watch is routine (history compacted):
                # re-list promptly. Repeated 410s back off like any other failure.
                delay = 0.0
            stop.wait(delay)

    def interrupt(self) -> None:
        """Close the open watch stream, if any, so a blocked read returns."""
        with self._lock:
            w = self._watch
        if w is not None:
            w.stop()

    @property
    def synced(self) -> bool:
        """Whether a list has completed."""
        return self._synced

    @property
    def resource_version(self) -> str:
        """The resourceVersion the next watch resumes from."""
        return self._rv

    def status(self) -> SourceStatus:
        """A snapshot of readiness and counters."""
        return self.stats.snapshot(self._synced, self._rv, self._backoff.failures)

    # -- internals ------------------------------------------------------------

    def _decode_or_skip(self, raw: Any) -> T | None:
        try:
            return self._decode(raw)
        except (MetadataDecodeError, TypeError, ValueError, AttributeError):
            self.stats.object_skipped()
            return None

    def _list_and_apply(self, rv: str) -> None:
        s = self._settings
        items: list[T] = []
        list_rv, token = "", ""
        while True:
            kwargs: dict[str, Any] = {
                "_preload_content": False,
                "_request_timeout": (s.connect_timeout_s, s.list_timeout_s),
                "limit": s.page_size,
            }
            if token:
                kwargs["_continue"] = token
            elif rv:
                kwargs["resource_version"] = rv
            try:
                resp = self._list_fn(**kwargs)
            except ApiException as exc:
                if exc.status == 410:
                    raise _Expired(f"list continue token expired: {exc.reason}") from exc
                raise
            try:
                body = json.loads(resp.data)
            finally:
                resp.release_conn()
            meta = body.get("metadata") or {}
            list_rv = list_rv or str(meta.get("resourceVersion") or "")
            for raw in body.get("items") or ():
                obj = self._decode_or_skip(raw)
                if obj is not None:
                    items.append(obj)
            token = str(meta.get("continue") or "")
            if not token:
                break
        now = self._clock()
        self._apply(Relisted(tuple(items), list_rv), now)
        self._rv = list_rv
        self._synced = True
        self.stats.relisted()
        if self._on_applied:
            self._on_applied(now)

    def _watch_once(self, stop: threading.Event) -> bool:
        """One watch stream from ``self._rv``; True if it was a healthy stream."""
        s = self._settings
        timeout = self._rng.randint(s.watch_timeout_s, 2 * s.watch_timeout_s)
        # return_type="object" keeps events as plain dicts: we decode them ourselves, and
        # the generated models' strict validation would reject a whole event over one field.
        w = watch.Watch(return_type="object")
        with self._lock:
            self._watch = w
        # Wall-clock duration, not self._clock: that one is the cache's notion of now
        # and may be a test's frozen clock.
        started, received = time.monotonic(), 0
        try:
            stream = w.stream(
                self._list_fn,
                resource_version=self._rv,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout,
                # A client-side read timeout a little past the server's catches a
                # connection that died silently (no FIN through a NAT or proxy).
                _request_timeout=(s.connect_timeout_s, timeout + 15),
            )
            for event in stream:
                if stop.is_set():
                    break
                received += 1
                self._handle(event)
        except ApiException as exc:
            if exc.status == 410:
                raise _Expired(str(exc.reason)) from exc
            raise
        finally:
            with self._lock:
                self._watch = None
        return received > 0 or time.monotonic() - started >= _SHORT_WATCH_S

    def _handle(self, event: Mapping[str, Any]) -> None:
        kind = str(event.get("type", ""))
        raw = event.get("raw_object") or event.get("object") or {}
        self.stats.event_received(kind)
        rv = str(
            ((raw.get("metadata") or {}) if isinstance(raw, Mapping) else {}).get(
                "resourceVersion", ""
            )
        )
        now = self._clock()
        if kind == "BOOKMARK":
            if rv:
                self._apply(Bookmarked(rv), now)
        elif kind in ("ADDED", "MODIFIED", "DELETED"):
            obj = self._decode_or_skip(raw)
            if obj is not None:
                wrapper = {"ADDED": Added, "MODIFIED": Modified, "DELETED": Deleted}[kind]
                self._apply(wrapper(obj), now)
        if rv:
            self._rv = rv
        if self._on_applied:
            self._on_applied(now)


class PodWatcher:
    """Keeps a ``PodCache`` (this node's pods) and optionally a ``ServiceIndex`` current.

    ``start()`` runs one thread per watched resource; ``stop()`` ends them promptly.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        node_name: str,
        cache: PodCache,
        services: ServiceIndex | None = None,
        *,
        settings: WatchSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if not node_name:
            raise ValueError("node_name is required: the pod watch is scoped to one node")
        core = client.CoreV1Api(api_client)
        rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.cache = cache
        self.services = services
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # spec.nodeName is a field the API server indexes for pods: each agent sees
        # only its own node's pods, whatever the cluster's size.
        self.pods = ListWatch(
            "pods",
            functools.partial(
                core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node_name}"
            ),
            pod_from_dict,
            cache.apply,
            settings=settings,
            clock=clock,
            rng=rng,
            on_applied=cache.expire,
        )
        self.service_watch: ListWatch[ServiceMeta] | None = None
        if services is not None:
            self.service_watch = ListWatch(
                "services",
                core.list_service_for_all_namespaces,
                service_from_dict,
                services.apply,
                settings=settings,
                clock=clock,
                rng=rng,
            )

    def _loops(self) -> list[ListWatch[Any]]:
        return [lw for lw in (self.pods, self.service_watch) if lw is not None]

    def start(self) -> None:
        """Start the list+watch threads (daemon threads, so they never block exit)."""
        if self._threads:
            raise RuntimeError("already started")
        self._stop.clear()
        for loop in self._loops():
            t = threading.Thread(
                target=loop.run, args=(self._stop,), name=f"kk-watch-{loop.name}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop the threads; True if they all ended within ``timeout_s``."""
        self._stop.set()
        for loop in self._loops():
            loop.interrupt()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(deadline - time.monotonic(), 0.0))
        alive = any(t.is_alive() for t in self._threads)
        self._threads = []
        return not alive

    @property
    def ready(self) -> bool:
        """Pods listed at least once (Services are optional enrichment, not readiness)."""
        return self.pods.synced

    def status(self) -> dict[str, SourceStatus]:
        """Per-resource status snapshots (``pods``, and ``services`` when watched)."""
        return {loop.name: loop.status() for loop in self._loops()}

    def get(self, uid: str, now: float) -> PodMeta | None:
        """Shortcut for ``cache.get``."""
        return self.cache.get(uid, now)
