"""The versioned envelope for everything that crosses a container boundary.

Theory of operation
-------------------
Every message between the agent's containers is a ZeroMQ multipart message: a header
frame ``b"kk.v<major>"``, a UTF-8 JSON payload and, for major 2, a records frame. The header is
read before the payload so a reader can refuse a major version it does not know
without parsing anything else (`UnsupportedVersion`), which is what lets one
container's image be upgraded while the others keep running the previous one:

* Additive changes (a new optional field, a new message ``type`` that old readers
  may ignore) stay on major 1 and bump ``minor``. Readers ignore fields they do not
  know, so a v1.0 reader reads a v1.3 message.
* A breaking change adds major 2; the shipper then accepts N and N-1 for a release.

Message types:

* ``records``, v2 (`EncodedRecords`): producer -> shipper, what producers write. The
  records are encoded once, by the producer, as the JSON objects that go into a request
  body (receiver-api.md), one per line (``\n`` never occurs inside compact JSON) in a
  third frame. The shipper stores and sends those bytes as they are: it never parses or
  re-encodes a record. The JSON payload says what the shipper needs without reading the
  records: their ``ids`` (for the receiver's dedup and the idempotency key), the
  *position* of each record in its source, and the *claims* that let the shipper drop
  re-sent records without an index over every id (see `EncodedRecords`). An optional
  ``catch_up`` (an additive field: absent means false, and a reader that does not know it
  ignores it) marks records read from a file with a backlog, which the shipper delivers
  after live ones (its queue's theory of operation says how).
* ``records``, v1 (`RecordBatch`): the previous producers' form, records as JSON objects
  inside the payload. The shipper still reads it (N-1), so a logs or metrics container of
  the previous release keeps working beside a new shipper. Upgrade the shipper first: a
  v1 shipper does not read v2.
* ``ack`` (`Ack`, v1): shipper -> producer, naming the batch it answers.
* ``telemetry`` (`Telemetry`, v1): any container -> health, metric samples and a status.

This module is pure: no sockets, files or clocks. Timestamps are passed in.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
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
    "EncodedRecords",
    "EnvelopeError",
    "MalformedMessage",
    "Message",
    "MetricSample",
    "RecordBatch",
    "Telemetry",
    "UnsupportedVersion",
    "decode",
    "encode",
    "encode_record_json",
    "from_record_batch",
    "log_record_id",
    "log_record_id_prefix",
    "merge_ranges",
    "metric_record_id",
    "metric_series_json",
    "stable_id",
]

WIRE_MAJOR = 1
"""The major version this code writes for acks and telemetry."""

RECORDS_MAJOR = 2
"""The major version this code writes for records (`EncodedRecords`)."""

WIRE_MINOR = 0
"""The minor version this code writes; readers of any minor of the same major read it."""

SUPPORTED_MAJORS = frozenset({1, 2})
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

    def __len__(self) -> int:
        return len(self.records)

    def record_ids(self) -> list[str]:
        """The ids of the records, in order."""
        return [record["id"] for record in self.records]


@dataclass(frozen=True, slots=True)
class EncodedRecords:
    """Records from one producer, encoded once (envelope major 2).

    ``bodies`` holds the records' compact JSON objects, each followed by ``\n``, exactly
    as they go into a request body; ``ids[i]`` is the ``id`` inside record ``i``.

    Dedup by position. Each record has a position in a *source*: ``sources[s]`` names the
    source (for logs, a file identity) and ``positions[i] = (s, p)`` says record ``i``
    starts at ``p`` in it (a byte offset; the records a long message was split into share
    one). ``claims`` are ``(s, start, end)`` ranges with a promise: **every** record of
    source ``s`` whose position lies in ``[start, end)`` is in this batch. For logs these
    are the byte ranges of the physical lines the batch's records were made of: a
    physical line belongs to exactly one logical line, so no other record can start
    there. The shipper remembers the ranges of what it stored and drops a re-sent record
    whose position one of them covers; since a claim speaks only for its own batch, an
    older batch re-sent after a newer one is never mistaken for a duplicate (a single
    high-water mark per source would drop it).
    """

    batch_id: str
    producer: str
    stream: Stream
    ids: Sequence[str]
    bodies: bytes
    sources: Sequence[str]
    positions: Sequence[tuple[int, int]]
    claims: Sequence[tuple[int, int, int]]
    catch_up: bool = False
    """The records were read from a source with a backlog (a file whose read slice
    filled), not as they were written: the shipper may deliver them after live records.
    Written only when true; a message without it (an older producer) is live."""
    type: Literal["records"] = field(default="records", init=False)

    def __len__(self) -> int:
        return len(self.ids)

    def record_ids(self) -> list[str]:
        """The ids of the records, in order."""
        return list(self.ids)

    def record_bodies(self) -> list[bytes]:
        """Each record's JSON bytes, in order (split at the newlines)."""
        if not self.bodies:
            return []
        return self.bodies[:-1].split(b"\n")


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


Message = RecordBatch | EncodedRecords | Ack | Telemetry


def encode(message: Message, *, minor: int = WIRE_MINOR) -> list[bytes]:
    """Return the frames of ``message`` as written by this version."""
    payload: dict[str, Any] = {"minor": minor, "type": message.type}
    if isinstance(message, EncodedRecords):
        return _encode_records_v2(message, minor)
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


def _encode_records_v2(message: EncodedRecords, minor: int) -> list[bytes]:
    payload = {
        "minor": minor,
        "type": "records",
        "batch_id": message.batch_id,
        "producer": message.producer,
        "stream": message.stream,
        "ids": list(message.ids),
        "sources": list(message.sources),
        # Flat [s0, p0, s1, p1, ...] and [s, start, end, ...]: one list of ints each, the
        # cheapest shape to write and read for a thousand records.
        "positions": [n for pair in message.positions for n in pair],
        "claims": [n for claim in message.claims for n in claim],
    }
    if message.catch_up:
        payload["catch_up"] = True
    return [
        _HEADER_PREFIX + str(RECORDS_MAJOR).encode("ascii"),
        orjson.dumps(payload),
        message.bodies,
    ]


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
    payload = _payload(frames[1])
    kind = payload.get("type")
    if major == RECORDS_MAJOR:
        if kind != "records":
            raise MalformedMessage(f"unknown v2 message type {kind!r}")
        if len(frames) < 3:
            raise MalformedMessage("a v2 records message needs 3 frames, got 2")
        return _read_encoded_records(payload, bytes(frames[2]))
    if kind == "records":
        return _read_record_batch(payload)
    if kind == "ack":
        return _read_ack(payload)
    if kind == "telemetry":
        return _read_telemetry(payload)
    raise MalformedMessage(f"unknown message type {kind!r}")


def _payload(frame: bytes) -> dict[str, Any]:
    try:
        # orjson: the shipper decodes every batch it receives; the C parser is about three
        # times faster than json.loads here and just as strict (its error subclasses
        # json.JSONDecodeError; invalid UTF-8 and NaN are refused).
        payload = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"payload is not UTF-8 JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MalformedMessage("payload is not a JSON object")
    return payload


def _require(payload: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = payload.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise MalformedMessage(f"field {key!r}: expected {expected}, got {type(value).__name__}")
    return value


def _batch_header(payload: Mapping[str, Any]) -> tuple[str, str, Stream]:
    """``batch_id``, ``producer`` and ``stream``: what every records message starts with."""
    batch_id = _require(payload, "batch_id", str)
    producer = _require(payload, "producer", str)
    stream = payload.get("stream")
    if stream not in ("logs", "metrics"):
        raise MalformedMessage(f"field 'stream': expected 'logs' or 'metrics', got {stream!r}")
    return batch_id, producer, stream


def _read_record_batch(payload: Mapping[str, Any]) -> RecordBatch:
    batch_id, producer, stream = _batch_header(payload)
    records = _require(payload, "records", list)
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise MalformedMessage(f"records[{index}]: expected an object")
        record_id = record.get("id")
        if not isinstance(record_id, str) or not record_id or "\n" in record_id:
            raise MalformedMessage(f"records[{index}]: missing a non-empty string 'id'")
    return RecordBatch(batch_id=batch_id, producer=producer, stream=stream, records=records)


def _int_list(payload: Mapping[str, Any], key: str, group: int) -> list[int]:
    values = _require(payload, key, list)
    if len(values) % group or not all(type(v) is int and v >= 0 for v in values):
        raise MalformedMessage(f"field {key!r}: expected groups of {group} non-negative integers")
    return values


def _read_encoded_records(payload: Mapping[str, Any], bodies: bytes) -> EncodedRecords:
    """Check the shape cheaply (no record is parsed): counts, types, index bounds."""
    batch_id, producer, stream = _batch_header(payload)
    ids = _require(payload, "ids", list)
    if not all(isinstance(i, str) and i for i in ids) or "\n" in "".join(ids):
        raise MalformedMessage("field 'ids': expected non-empty strings without newlines")
    sources = _require(payload, "sources", list)
    if not all(isinstance(s, str) for s in sources):
        raise MalformedMessage("field 'sources': expected strings")
    flat_positions = _int_list(payload, "positions", 2)
    flat_claims = _int_list(payload, "claims", 3)
    if len(flat_positions) != 2 * len(ids):
        raise MalformedMessage(f"{len(flat_positions) // 2} positions for {len(ids)} records")
    positions = list(zip(flat_positions[::2], flat_positions[1::2], strict=True))
    claims = list(zip(flat_claims[::3], flat_claims[1::3], flat_claims[2::3], strict=True))
    if any(s >= len(sources) for s, _ in positions) or any(
        s >= len(sources) or end < start for s, start, end in claims
    ):
        raise MalformedMessage("a position or claim names an unknown source or an empty range")
    newlines = bodies.count(b"\n")
    if newlines != len(ids) or (bodies and not bodies.endswith(b"\n")):
        raise MalformedMessage(f"{newlines} newline-terminated records for {len(ids)} ids")
    return EncodedRecords(
        batch_id=batch_id,
        producer=producer,
        stream=stream,
        ids=ids,
        bodies=bodies,
        sources=sources,
        positions=positions,
        claims=claims,
        # Anything but a literal true is live: the safe reading of a field a newer writer
        # might shape differently (live records are never delayed).
        catch_up=payload.get("catch_up") is True,
    )


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
    raw_samples = _require(payload, "samples", list) if "samples" in payload else []
    for index, raw in enumerate(raw_samples):
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


def encode_record_json(record: Any) -> bytes:
    """A record's compact UTF-8 JSON, as it goes into a request body (never contains ``\n``).

    Any JSON value inside a record (a label map, a string) is encoded the same way.

    A lone surrogate (from a ``\\ud800`` escape) cannot be UTF-8; ASCII escapes keep the
    record valid JSON instead of failing its whole batch.
    """
    try:
        return orjson.dumps(record)
    except TypeError:  # orjson also refuses nesting past 255 levels; the stdlib does not
        return _stdlib_record_json(record)


_ENCODE_RECURSION_LIMIT = 3000
"""Enough for any record `decode` accepted: orjson refuses nesting past 1024 levels."""


def _stdlib_record_json(record: Any) -> bytes:
    # A record nested ~1000 deep (legal, since orjson decoded it) exceeds the default
    # recursion limit of the stdlib encoder; raising it for the call keeps one odd record
    # from ending the shipper (a crash loop, as its producer re-sends the batch).
    limit = sys.getrecursionlimit()
    if limit < _ENCODE_RECURSION_LIMIT:
        sys.setrecursionlimit(_ENCODE_RECURSION_LIMIT)
    try:
        return json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    finally:
        if limit < _ENCODE_RECURSION_LIMIT:
            sys.setrecursionlimit(limit)


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """``[start, end)`` ranges sorted, touching and overlapping ones merged, empty ones
    dropped: the form of a batch's claims and of what the shipper remembers of them."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def from_record_batch(batch: RecordBatch) -> EncodedRecords:
    """A v1 `RecordBatch` (a previous producer's) in the v2 form the shipper stores.

    A v1 batch has no positions, so it is its own source (``batch:<batch_id>``): a re-send
    of the same batch is recognised as a duplicate, as v1 shippers did by id.
    """
    count = len(batch.records)
    bodies = b"".join(encode_record_json(record) + b"\n" for record in batch.records)
    return EncodedRecords(
        batch_id=batch.batch_id,
        producer=batch.producer,
        stream=batch.stream,
        ids=batch.record_ids(),
        bodies=bodies,
        sources=[f"batch:{batch.producer}:{batch.batch_id}"],
        positions=[(0, index) for index in range(count)],
        claims=[(0, 0, count)] if count else [],
    )


def stable_id(*parts: str | int | bytes) -> str:
    """A deterministic 128-bit hex id of ``parts``.

    The same parts give the same id in every process and on every run, which is
    what lets the shipper and the receiver drop re-sent records.
    """
    chunks = []
    for part in parts:
        raw = part if isinstance(part, bytes) else str(part).encode("utf-8")
        # Length-prefix each part so ("ab", "c") and ("a", "bc") differ.
        chunks.append(len(raw).to_bytes(8, "big"))
        chunks.append(raw)
    # One update of the joined parts is the same digest as one update per part, and
    # costs a third as much for a metric sample's twenty parts.
    return hashlib.blake2b(b"".join(chunks), digest_size=16).hexdigest()


def log_record_id_prefix(file_identity: str) -> str:
    """The part of a log record id that names its file: computed once per file."""
    return stable_id("log", file_identity)


def log_record_id(file_identity: str, offset: int, part: int = 0, *, prefix: str = "") -> str:
    """The id of the log record that starts at byte ``offset`` of a file.

    ``file_identity`` names the file across renames (device, inode and a
    fingerprint of its first bytes); ``part`` numbers the continuation records of
    a message split for the receiver's size limit. The id is the file's hashed prefix
    (`log_record_id_prefix`, pass it as ``prefix`` to skip hashing per record), the
    offset and the part in hex: unique and deterministic, and no hash per record.
    """
    head = prefix or log_record_id_prefix(file_identity)
    if part:
        return f"{head}-{offset:x}-{part:x}"
    return f"{head}-{offset:x}"


def metric_series_json(labels: Mapping[str, str]) -> bytes:
    """A series' labels as compact JSON with sorted keys: the form `metric_record_id` hashes,
    and a valid value of a record's ``labels`` (so a caller encodes them once)."""
    try:
        return orjson.dumps(labels, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # a lone surrogate: ASCII escapes, as encode_record_json does
        return json.dumps(labels, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode()


def metric_record_id(
    name: str, labels: Mapping[str, str], timestamp: str, *, labels_json: bytes | None = None
) -> str:
    """The id of one metric sample: a hash of its series (name + sorted labels) and timestamp.

    ``labels_json`` is `metric_series_json` of ``labels`` when the caller has it already.
    The labels are hashed as their sorted JSON (one C call) rather than pair by pair: on a
    100,000-series cAdvisor page that is a third of a CPU-second less.
    """
    series = labels_json if labels_json is not None else metric_series_json(labels)
    raw_name = name.encode("utf-8", "surrogatepass")
    # Length-prefixed name; the JSON object ends at its brace: no two inputs hash alike.
    message = b"metric\0%d:%s%s@%s" % (len(raw_name), raw_name, series, timestamp.encode())
    return hashlib.blake2b(message, digest_size=16).hexdigest()
