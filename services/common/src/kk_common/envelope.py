"""The versioned envelope for everything that crosses a container boundary.

Theory of operation
-------------------
Every message between the agent's containers is a ZeroMQ multipart message of two
frames: a header frame ``b"kk.v<major>"`` and a UTF-8 JSON payload. The header is
read before the payload so a reader can refuse a major version it does not know
without parsing anything else (`UnsupportedVersion`), which is what lets one
container's image be upgraded while the others keep running the previous one:

* Additive changes (a new optional field, a new message ``type`` that old readers
  may ignore) stay on major 1 and bump ``minor``. Readers ignore fields they do not
  know, so a v1.0 reader reads a v1.3 message.
* A breaking change adds major 2; the shipper then accepts N and N-1 for a release.

Three message types exist in v1:

* ``records`` (`RecordBatch`): producer -> shipper. Many records per message, never
  one message per line. Every record is a JSON object in the receiver's shape (see
  ``receiver-api.md``) and carries a deterministic ``id``.
* ``ack`` (`Ack`): shipper -> producer, naming the batch it answers.
* ``telemetry`` (`Telemetry`): any container -> health, metric samples and a status.

This module is pure: no sockets, files or clocks. Timestamps are passed in.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import orjson

__all__ = [
    "SUPPORTED_MAJORS",
    "WIRE_MAJOR",
    "WIRE_MINOR",
    "Ack",
    "AckStatus",
    "ComponentStatus",
    "EnvelopeError",
    "MalformedMessage",
    "Message",
    "MetricSample",
    "RecordBatch",
    "Telemetry",
    "UnsupportedVersion",
    "decode",
    "encode",
    "log_record_id",
    "metric_record_id",
    "stable_id",
]

WIRE_MAJOR = 1
"""The major version this code writes."""

WIRE_MINOR = 0
"""The minor version this code writes; readers of any v1 minor read it."""

SUPPORTED_MAJORS = frozenset({1})
"""Major versions this code reads."""

_HEADER_PREFIX = b"kk.v"

Stream = Literal["logs", "metrics"]


class EnvelopeError(ValueError):
    """A message could not be read. Readers count it, log it and carry on."""

    reason = "malformed"


class UnsupportedVersion(EnvelopeError):
    """The message was written by a major version this reader does not know."""

    reason = "unsupported_version"

    def __init__(self, header: bytes) -> None:
        self.header = header
        shown = header[:32].decode("ascii", "backslashreplace")
        super().__init__(
            f"unsupported envelope version {shown!r}; this reader supports "
            f"{', '.join(f'kk.v{m}' for m in sorted(SUPPORTED_MAJORS))}"
        )


class MalformedMessage(EnvelopeError):
    """The message claims a supported version but its content is not valid."""


class AckStatus(StrEnum):
    """What the shipper did with a batch."""

    STORED = "stored"
    """Durably stored: the producer may commit its progress (file offsets)."""

    REJECTED = "rejected"
    """The batch can never be stored (invalid content); re-sending will not help."""


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """Records from one producer, sent to the shipper in one message.

    ``batch_id`` is unique per producer and stable across re-sends of the same
    batch, so an `Ack` can name it. ``records`` are receiver-shaped JSON objects,
    each with a deterministic ``id``; fields this version does not know are kept
    as they are, so a newer producer's additions reach the receiver.
    """

    batch_id: str
    producer: str
    stream: Stream
    records: Sequence[Mapping[str, Any]]
    type: Literal["records"] = field(default="records", init=False)

    def record_ids(self) -> list[str]:
        """The ids of the records, in order."""
        return [record["id"] for record in self.records]


@dataclass(frozen=True, slots=True)
class Ack:
    """The shipper's answer to one `RecordBatch`."""

    batch_id: str
    status: AckStatus
    reason: str = ""
    """Why a batch was rejected; empty when stored."""
    duplicates: int = 0
    """How many of the batch's record ids the shipper already held."""
    type: Literal["ack"] = field(default="ack", init=False)


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One value of a component's own metric, for the health container to expose.

    ``kind`` is ``counter`` or ``gauge``. Histograms travel as their flattened
    ``_bucket``/``_sum``/``_count`` samples, as Prometheus exposes them.
    """

    name: str
    kind: Literal["counter", "gauge"]
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)
    help: str = ""


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """A component's view of its own health."""

    ready: bool
    detail: str = ""
    problems: Sequence[str] = ()
    """Short, operator-facing descriptions of what is wrong (never a secret)."""


@dataclass(frozen=True, slots=True)
class Telemetry:
    """A component's metrics and status at one moment (publish/subscribe, lossy)."""

    component: str
    node: str
    sent_at_unix: float
    status: ComponentStatus
    samples: Sequence[MetricSample] = ()
    type: Literal["telemetry"] = field(default="telemetry", init=False)


Message = RecordBatch | Ack | Telemetry


def encode(message: Message, *, minor: int = WIRE_MINOR) -> list[bytes]:
    """Return the frames of ``message`` as written by this version."""
    payload: dict[str, Any] = {"minor": minor, "type": message.type}
    if isinstance(message, RecordBatch):
        payload.update(
            batch_id=message.batch_id,
            producer=message.producer,
            stream=message.stream,
            records=list(message.records),
        )
    elif isinstance(message, Ack):
        payload.update(batch_id=message.batch_id, status=str(message.status))
        if message.reason:
            payload["reason"] = message.reason
        if message.duplicates:
            payload["duplicates"] = message.duplicates
    else:
        payload.update(
            component=message.component,
            node=message.node,
            sent_at_unix=message.sent_at_unix,
            status={
                "ready": message.status.ready,
                "detail": message.status.detail,
                "problems": list(message.status.problems),
            },
            samples=[
                {
                    "name": s.name,
                    "kind": s.kind,
                    "value": s.value,
                    "labels": dict(s.labels),
                    "help": s.help,
                }
                for s in message.samples
            ],
        )
    # allow_nan=False: NaN is not JSON; a producer must drop such values, not ship them.
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return [_HEADER_PREFIX + str(WIRE_MAJOR).encode("ascii"), body.encode("utf-8")]


def decode(frames: Sequence[bytes]) -> Message:
    """Read a message written by any v1 writer.

    Raises `UnsupportedVersion` for a major version this reader does not know and
    `MalformedMessage` for anything else it cannot read. Unknown fields and unknown
    minor versions are accepted.
    """
    if len(frames) < 2:
        raise MalformedMessage(f"expected 2 frames (header, payload), got {len(frames)}")
    header = bytes(frames[0])
    if not header.startswith(_HEADER_PREFIX):
        raise MalformedMessage(f"not a KillKrill envelope: header {header[:16]!r}")
    try:
        major = int(header[len(_HEADER_PREFIX) :])
    except ValueError:
        raise MalformedMessage(f"unreadable envelope version in header {header[:16]!r}") from None
    if major not in SUPPORTED_MAJORS:
        raise UnsupportedVersion(header)
    try:
        # orjson: the shipper decodes every batch it receives; the C parser is about three
        # times faster than json.loads here and just as strict (its error subclasses
        # json.JSONDecodeError; invalid UTF-8 and NaN are refused).
        payload = orjson.loads(frames[1])
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"payload is not UTF-8 JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MalformedMessage("payload is not a JSON object")
    kind = payload.get("type")
    if kind == "records":
        return _read_record_batch(payload)
    if kind == "ack":
        return _read_ack(payload)
    if kind == "telemetry":
        return _read_telemetry(payload)
    raise MalformedMessage(f"unknown message type {kind!r}")


def _require(payload: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = payload.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise MalformedMessage(f"field {key!r}: expected {expected}, got {type(value).__name__}")
    return value


def _read_record_batch(payload: Mapping[str, Any]) -> RecordBatch:
    batch_id = _require(payload, "batch_id", str)
    producer = _require(payload, "producer", str)
    stream = payload.get("stream")
    if stream not in ("logs", "metrics"):
        raise MalformedMessage(f"field 'stream': expected 'logs' or 'metrics', got {stream!r}")
    records = _require(payload, "records", list)
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise MalformedMessage(f"records[{index}]: expected an object")
        record_id = record.get("id")
        if not isinstance(record_id, str) or not record_id:
            raise MalformedMessage(f"records[{index}]: missing a non-empty string 'id'")
    return RecordBatch(batch_id=batch_id, producer=producer, stream=stream, records=records)


def _read_ack(payload: Mapping[str, Any]) -> Ack:
    batch_id = _require(payload, "batch_id", str)
    raw_status = _require(payload, "status", str)
    try:
        status = AckStatus(raw_status)
    except ValueError:
        # A newer shipper may answer with a status this producer does not know. It is
        # not "stored", so the producer must keep the batch: refusing is the safe reading.
        raise MalformedMessage(f"unknown ack status {raw_status!r}") from None
    reason = payload.get("reason", "")
    duplicates = payload.get("duplicates", 0)
    return Ack(
        batch_id=batch_id,
        status=status,
        reason=reason if isinstance(reason, str) else "",
        duplicates=duplicates if isinstance(duplicates, int) else 0,
    )


def _read_telemetry(payload: Mapping[str, Any]) -> Telemetry:
    component = _require(payload, "component", str)
    node = _require(payload, "node", str)
    sent_at = _require(payload, "sent_at_unix", (int, float))
    raw_status = _require(payload, "status", dict)
    ready = _require(raw_status, "ready", bool)
    problems = raw_status.get("problems", [])
    status = ComponentStatus(
        ready=ready,
        detail=str(raw_status.get("detail", "")),
        problems=tuple(str(p) for p in problems) if isinstance(problems, list) else (),
    )
    samples = []
    for index, raw in enumerate(payload.get("samples", [])):
        if not isinstance(raw, dict):
            raise MalformedMessage(f"samples[{index}]: expected an object")
        name = _require(raw, "name", str)
        kind = raw.get("kind")
        if kind not in ("counter", "gauge"):
            raise MalformedMessage(f"samples[{index}].kind: expected counter or gauge")
        value = _require(raw, "value", (int, float))
        if not math.isfinite(value):
            raise MalformedMessage(f"samples[{index}].value: not a finite number")
        labels = raw.get("labels", {})
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise MalformedMessage(f"samples[{index}].labels: expected a map of strings")
        help_text = raw.get("help", "")
        samples.append(
            MetricSample(
                name=name,
                kind=kind,
                value=float(value),
                labels=labels,
                help=help_text if isinstance(help_text, str) else "",
            )
        )
    return Telemetry(
        component=component,
        node=node,
        sent_at_unix=float(sent_at),
        status=status,
        samples=tuple(samples),
    )


def stable_id(*parts: str | int | bytes) -> str:
    """A deterministic 128-bit hex id of ``parts``.

    The same parts give the same id in every process and on every run, which is
    what lets the shipper and the receiver drop re-sent records.
    """
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        raw = part if isinstance(part, bytes) else str(part).encode("utf-8")
        # Length-prefix each part so ("ab", "c") and ("a", "bc") differ.
        digest.update(len(raw).to_bytes(8, "big"))
        digest.update(raw)
    return digest.hexdigest()


def log_record_id(file_identity: str, offset: int, part: int = 0) -> str:
    """The id of the log record that starts at byte ``offset`` of a file.

    ``file_identity`` names the file across renames (device, inode and a
    fingerprint of its first bytes); ``part`` numbers the continuation records of
    a message split for the receiver's size limit.
    """
    return stable_id("log", file_identity, offset, part)


def metric_record_id(name: str, labels: Mapping[str, str], timestamp: str) -> str:
    """The id of one metric sample: its series (name + sorted labels) and timestamp."""
    flat: Iterable[str] = (f"{k}={v}" for k, v in sorted(labels.items()))
    return stable_id("metric", name, *flat, "@", timestamp)
