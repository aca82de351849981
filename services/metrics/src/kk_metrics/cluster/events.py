"""Kubernetes events into log records, each occurrence once (sans-IO).

The rule, exactly
-----------------
An *occurrence* is an event object's ``metadata.uid`` with its count (``series.count``,
else ``deprecatedCount`` as events.k8s.io/v1 shows a core/v1 event's ``count``, else 1):
the API server's clients fold repeats of one event into one object and raise its count, so
each new count is one more thing that happened. Events are read through events.k8s.io/v1;
the core/v1 field names are understood too.

* **Id.** A record's id is ``stable_id("k8s-event", cluster, uid, count)``: every agent, in
  every process, gives one occurrence the same id. Receivers that know ids drop repeats.
* **In one process** (`EventTracker`): a record is made only for a count higher than the
  highest already made for that uid. An update that does not raise the count (a new
  ``lastTimestamp`` only, a relist, a watch replay) makes nothing.
* **In the shipper**: each record's dedup *source* is ``k8s-event:<uid>`` and its position
  is the count, claiming ``[count, count + 1)``: the one record of that occurrence. The
  shipper therefore drops a record of an occurrence it stored in the last
  ``shipper.dedup_window``, exactly as it would drop the same record id.
* **Across restarts and failover**: the leader writes a *checkpoint* into the Lease it
  renews (annotation ``killkrill.io/events-checkpoint``: the resourceVersion up to which
  every event has been committed to the metrics spool, and the newest event time seen). A
  new leader, or the same one restarted, watches from that resourceVersion, so it does not
  send again what was committed before it. What the old leader committed after its last
  checkpoint is replayed and sent again with the same ids (at most ``retry_period`` of
  events); receivers that know ids drop those. When the checkpoint's resourceVersion is too
  old for the API server (410), the new leader lists the events and sends those whose last
  time is not older than the checkpoint's time.
* **With no checkpoint** (the first leader ever): every event the API server holds is sent
  once (by default it keeps them for an hour).

Record shape (receiver-api.md, "Log batch body"): ``message`` is the event's message;
``log_level`` ``warn`` for ``Warning`` events, else ``info``; ``timestamp`` the event's
last time (``series.lastObservedTime``, else ``deprecatedLastTimestamp``, ``eventTime``,
``deprecatedFirstTimestamp``, ``creationTimestamp``); ``service_name``
``kubernetes-events``; ``hostname`` the node the event names (``deprecatedSource.host``),
else the reporting agent's node;
labels ``k8s_event_reason``, ``k8s_event_type``, ``k8s_event_count``,
``k8s_event_first_time``, ``k8s_event_last_time``, ``k8s_event_uid``,
``k8s_event_component``, ``k8s_namespace``, ``k8s_object_kind``, ``k8s_object_name``,
``k8s_object_uid``, ``k8s_object_field_path``, ``k8s_cluster`` and ``k8s_node``. A message
longer than the receiver's 10,000 characters is cut there and says so
(``labels.truncated_from``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kk_common.envelope import EncodedRecords, encode_record_json, stable_id
from kk_common.k8s.times import micro_time, parse_time

__all__ = [
    "MAX_MESSAGE_CHARS",
    "Checkpoint",
    "EventRecord",
    "EventTracker",
    "event_batch",
    "event_time",
]

MAX_MESSAGE_CHARS = 10_000
"""The receiver's limit on one message (receiver-api.md)."""
SERVICE_NAME = "kubernetes-events"
ECS_VERSION = "8.0"
REMEMBERED_UIDS = 100_000
"""Events whose highest count is remembered; the oldest are forgotten first (the API
server deletes events after an hour by default, so this is far more than a cluster has)."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a new leader resumes: every event up to ``resource_version`` was committed;
    ``time_s`` is the newest event time seen then (used when that version is too old)."""

    resource_version: str
    time_s: float

    def encode(self) -> str:
        return f"{self.resource_version} {self.time_s:.3f}"

    @classmethod
    def decode(cls, text: str) -> Checkpoint | None:
        """None for an absent or unreadable checkpoint (then everything is sent)."""
        rv, _, time_s = text.strip().partition(" ")
        try:
            return cls(rv, float(time_s)) if rv else None
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One occurrence, encoded for the log stream."""

    id: str
    body: bytes
    uid: str
    count: int
    time_s: float


def _count(event: Mapping[str, Any]) -> int:
    series = event.get("series") or {}
    for value in (series.get("count"), event.get("deprecatedCount"), event.get("count")):
        if isinstance(value, int) and value > 0:
            return value
    return 1


def event_time(event: Mapping[str, Any]) -> float | None:
    """When the event last happened (see the module docstring for the order of fields)."""
    series = event.get("series") or {}
    for value in (
        series.get("lastObservedTime"),
        event.get("deprecatedLastTimestamp"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        event.get("deprecatedFirstTimestamp"),
        event.get("firstTimestamp"),
        (event.get("metadata") or {}).get("creationTimestamp"),
    ):
        seconds = parse_time(value)
        if seconds is not None:
            return seconds
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


class EventTracker:
    """Turns event objects into records, each occurrence once per process."""

    def __init__(self, *, cluster: str, node: str, remembered: int = REMEMBERED_UIDS) -> None:
        self.cluster = cluster
        self.node = node
        self._highest: OrderedDict[str, int] = OrderedDict()
        self._remembered = remembered
        self.skipped = 0
        """Objects without a uid (not events as the API server makes them)."""

    def record_for(
        self, event: Mapping[str, Any], now_s: float, *, since_s: float | None = None
    ) -> EventRecord | None:
        """The record of this event's newest occurrence, or None when already made.

        ``now_s`` stands in for an event with no time at all (the API server always sets
        ``creationTimestamp``, so only a broken object has none). ``since_s``: make nothing
        for an event last seen before then (after a 410, see the module docstring); it is
        still remembered.
        """
        meta = event.get("metadata") or {}
        uid = meta.get("uid")
        if not isinstance(uid, str) or not uid:
            self.skipped += 1
            return None
        count = _count(event)
        if self._highest.get(uid, 0) >= count:
            return None
        self._highest[uid] = count
        self._highest.move_to_end(uid)
        while len(self._highest) > self._remembered:
            self._highest.popitem(last=False)
        time_s = event_time(event)
        if since_s is not None and time_s is not None and time_s < since_s:
            return None
        time_s = now_s if time_s is None else time_s
        record_id = stable_id("k8s-event", self.cluster, uid, count)
        body = encode_record_json(self._record(event, record_id, uid, count, time_s))
        return EventRecord(record_id, body, uid, count, time_s)

    def forget(self, event: Mapping[str, Any]) -> None:
        """The event was deleted: it can have no more occurrences."""
        uid = (event.get("metadata") or {}).get("uid")
        if isinstance(uid, str):
            self._highest.pop(uid, None)

    def _record(
        self, event: Mapping[str, Any], record_id: str, uid: str, count: int, time_s: float
    ) -> dict[str, Any]:
        meta = event.get("metadata") or {}
        involved = event.get("regarding") or event.get("involvedObject") or {}
        source = event.get("deprecatedSource") or event.get("source") or {}
        message = _text(event.get("note") or event.get("message"))
        labels = {
            "k8s_cluster": self.cluster,
            "k8s_node": self.node,
            "k8s_namespace": _text(involved.get("namespace") or meta.get("namespace")),
            "k8s_event_reason": _text(event.get("reason")),
            "k8s_event_type": _text(event.get("type")),
            "k8s_event_count": str(count),
            "k8s_event_uid": uid,
            "k8s_event_component": _text(
                event.get("reportingController") or source.get("component")
            ),
            "k8s_object_kind": _text(involved.get("kind")),
            "k8s_object_name": _text(involved.get("name")),
            "k8s_object_uid": _text(involved.get("uid")),
            "k8s_object_field_path": _text(involved.get("fieldPath")),
        }
        first = parse_time(
            event.get("deprecatedFirstTimestamp")
            or event.get("firstTimestamp")
            or event.get("eventTime")
        )
        if first is not None:
            labels["k8s_event_first_time"] = micro_time(first)
        labels["k8s_event_last_time"] = micro_time(time_s)
        if len(message) > MAX_MESSAGE_CHARS:
            labels["truncated_from"] = str(len(message))
            message = message[:MAX_MESSAGE_CHARS]
        return {
            "id": record_id,
            "timestamp": micro_time(time_s),
            "log_level": "warn" if event.get("type") == "Warning" else "info",
            "message": message,
            "service_name": SERVICE_NAME,
            "hostname": _text(source.get("host")) or self.node,
            "ecs_version": ECS_VERSION,
            "labels": {key: value for key, value in labels.items() if value},
            "tags": [],
        }


def event_batch(records: Sequence[EventRecord], *, producer: str, batch_id: str) -> EncodedRecords:
    """One batch for the log stream; each event is a dedup source, each count a position."""
    source_of: dict[str, int] = {}
    for record in records:
        source_of.setdefault(record.uid, len(source_of))
    return EncodedRecords(
        batch_id=batch_id,
        producer=producer,
        stream="logs",
        ids=[record.id for record in records],
        bodies=b"".join(record.body + b"\n" for record in records),
        sources=[f"k8s-event:{uid}" for uid in source_of],
        positions=[(source_of[record.uid], record.count) for record in records],
        claims=[(source_of[r.uid], r.count, r.count + 1) for r in records],
    )
