"""`Line` + metadata -> receiver-shaped log records (receiver-api.md, "Log batch body").

Pure: no IO, no clock (the read time is passed in as ``now_rfc3339``).

Two ways to the same records:

* `FileRecordEncoder`, what the service uses: one per file (and per enrichment of it),
  it turns lines straight into the records' compact JSON bytes, the form the shipper
  stores and sends unchanged (envelope major 2). Everything that is the same for every
  line of a file (labels, ``service_name``, ``hostname``, ``ecs_version``, the id
  prefix) is encoded once, when the encoder is made; a common line (no flags, a runtime
  timestamp, a message within the receiver's limit) costs its id, level, one
  ``orjson.dumps`` of its message and two byte concatenations. Any other line takes the
  general path: `build_log_records` and ``orjson`` on the dicts.
* `build_log_records`, the general path and the reference: a dict per record.
  Both give the same JSON (tests/logs/test_record_encoding.py holds them to it).

Record ids are deterministic: ``log_record_id(file_identity, line.start_offset, part)``
(the file's hashed prefix, the offset and the part, see `kk_common.envelope`), so the
same line at the same offset of the same file gets the same ids across retries, protocol
fallback and agent restarts, and the shipper and receivers drop repeats.

Size limits, two levels:

* **Receiver limit** (``max_message_chars``, 10,000 by default). A longer message is
  split into records ``part`` 0..n-1, each with its own id, carrying
  ``labels.continuation`` = ``"i/n"`` (1-based) and ``labels.split_of`` = the id of part 0,
  exactly as receiver-api.md describes, so the receiver can rebuild the message.
* **Parser limit** (``max_line_bytes``, 1 MiB by default, `kk_logs.parsing.cri`). A merged
  line that exceeds it reaches us as several `Line` pieces, emitted while the line is
  still being written, so the total number of pieces is not known when the first is
  shipped. Each piece's records additionally carry ``labels.oversize_of`` (the id of
  part 0 of piece 0), ``labels.oversize_piece`` (1-based) and, on the last piece only,
  ``labels.oversize_last`` = ``"true"``; plus the tag ``oversize``. A receiver rebuilds the
  line by ``oversize_of``, ordering by ``oversize_piece`` then ``continuation``.

Flags become tags (``invalid_utf8``, ``parse_error``, ``partial_unterminated``,
``oversize``, ``no_newline``, ``bad_timestamp``). Where a flag has a value it is also a
label: ``parse_error`` (the reason, e.g. ``cri_timestamp``) and ``partial`` =
``unterminated``. A record whose line had no usable runtime timestamp gets the read time
and the ``bad_timestamp`` tag.

A message's trailing ``\\r`` (a CRLF-writing program; the runtime cuts at ``\\n`` only)
is removed from the record's message; the `Line` keeps it.

Lines of node system logs (plain text, ``plain_text=True``) have no runtime timestamp by
nature: their records carry the read time labelled ``timestamp_source`` = ``read_time``
instead of the ``bad_timestamp`` tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from kk_common.envelope import encode_record_json, log_record_id, log_record_id_prefix
from kk_logs.parsing.levels import detect_level
from kk_logs.parsing.lines import (
    FLAG_OVERSIZE,
    FLAG_PARSE_ERROR,
    FLAG_PARTIAL_UNTERMINATED,
    Line,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_CHARS",
    "ECS_VERSION",
    "TAG_BAD_TIMESTAMP",
    "FileRecordEncoder",
    "FileRecords",
    "build_log_records",
    "sanitize_label_key",
]

DEFAULT_MAX_MESSAGE_CHARS = 10_000
"""The documented receiver limit per message (receiver-api.md)."""
ECS_VERSION = "8.0"
TAG_BAD_TIMESTAMP = "bad_timestamp"
"""The record's timestamp is the read time: the runtime's was missing or unparsable."""

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def sanitize_label_key(key: str) -> str:
    """``key`` with every character other than an ASCII letter or digit replaced by ``_``.

    For ``label_<key>`` / ``annotation_<key>`` labels: the receiver's labels are flat
    and must not contain dots (receiver-api.md), so ``app.kubernetes.io/name`` becomes
    ``app_kubernetes_io_name``.
    """
    if key.isascii() and key.isalnum():
        return key
    return _NOT_ALNUM.sub("_", key)


def _labels(meta: Mapping[str, str]) -> dict[str, str]:
    # Metadata keys are already clean (k8s_namespace, label_app, ...). This guards the
    # receiver's "no dots in keys" rule for keys that slipped through, at the cost of one
    # C-level join and two substring tests per record in the common case.
    keys = "".join(meta)
    if "." in keys or "/" in keys:
        return {(_NOT_ALNUM.sub("_", k) if "." in k or "/" in k else k): v for k, v in meta.items()}
    return dict(meta)


def build_log_records(
    line: Line,
    *,
    file_identity: str,
    meta: Mapping[str, str],
    service_name: str,
    hostname: str,
    now_rfc3339: str,
    max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
    id_prefix: str = "",
) -> list[dict[str, Any]]:
    """The receiver records for one `Line` (one record unless the message is too long).

    Args:
        line: a parsed line.
        file_identity: the stable identity of the file (see `kk_common.envelope.log_record_id`).
        meta: labels from Kubernetes metadata and the log path (``k8s_namespace``, ...);
            copied into every record's ``labels``; ``stream`` and the flag labels win
            over a key of the same name.
        service_name: the record's ``service_name``.
        hostname: the node name.
        now_rfc3339: when the line was read, RFC 3339 UTC; used when the line has no
            usable timestamp.
        max_message_chars: the receiver's message limit; longer messages are split.
        id_prefix: ``log_record_id_prefix(file_identity)``, when the caller has it.
    """
    if max_message_chars < 1:
        raise ValueError("max_message_chars must be positive")
    prefix = id_prefix or log_record_id_prefix(file_identity)
    message = line.content
    if message[-1:] == "\r":
        message = message[:-1]
    flags = line.flags
    labels = _labels(meta)
    labels["stream"] = line.stream
    tags: list[str] = sorted(flags) if flags else []
    if line.parse_error:
        labels[FLAG_PARSE_ERROR] = line.parse_error
    if FLAG_PARTIAL_UNTERMINATED in flags:
        labels["partial"] = "unterminated"
    timestamp = line.timestamp
    if not timestamp:
        timestamp = now_rfc3339
        tags.append(TAG_BAD_TIMESTAMP)
    if FLAG_OVERSIZE in flags:
        labels["oversize_of"] = log_record_id(file_identity, line.group_offset, 0, prefix=prefix)
        labels["oversize_piece"] = str(line.piece + 1)
        if line.last_piece:
            labels["oversize_last"] = "true"
    level = detect_level(message)
    start = line.start_offset

    if len(message) <= max_message_chars:
        return [
            {
                "id": log_record_id(file_identity, start, 0, prefix=prefix),
                "timestamp": timestamp,
                "log_level": level,
                "message": message,
                "service_name": service_name,
                "hostname": hostname,
                "ecs_version": ECS_VERSION,
                "labels": labels,
                "tags": tags,
            }
        ]

    total = -(-len(message) // max_message_chars)
    first_id = log_record_id(file_identity, start, 0, prefix=prefix)
    records: list[dict[str, Any]] = []
    for part in range(total):
        part_labels = dict(labels)
        part_labels["continuation"] = f"{part + 1}/{total}"
        part_labels["split_of"] = first_id
        chunk = message[part * max_message_chars : (part + 1) * max_message_chars]
        records.append(
            {
                "id": log_record_id(file_identity, start, part, prefix=prefix),
                "timestamp": timestamp,
                "log_level": level,
                "message": chunk,
                "service_name": service_name,
                "hostname": hostname,
                "ecs_version": ECS_VERSION,
                "labels": part_labels,
                "tags": list(tags),
            }
        )
    return records


@dataclass(slots=True)
class FileRecords:
    """Encoded records made from lines of one file, in order, and what the shipper needs.

    ``spans`` are ``[start, end)`` byte ranges that cover every physical line the records
    were made of, and nothing else: the batch's claims (`kk_common.envelope.EncodedRecords`)
    are their merged ranges. Lines that follow each other in the file come as one span.
    """

    bodies: list[bytes] = field(default_factory=list)
    """Each record's compact JSON followed by ``\\n``."""
    ids: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    """Each record's line's start offset (the parts of a split message share it)."""
    spans: list[tuple[int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


class FileRecordEncoder:
    """Encodes the records of one file's lines, with that file's labels (module docstring).

    Make a new one when the file's labels or ``service_name`` change (new pod metadata);
    the labels are sanitized as in `build_log_records`.

    The common line's record is assembled from byte fragments: the id (hex), the
    timestamp and the level (one of six words) are written without escaping. A line's
    ``timestamp`` is what `kk_logs.parsing.normalize_timestamp` accepted (digits,
    ``-:.TZ``), and ``now_rfc3339`` must be of that form too.
    """

    def __init__(
        self,
        file_identity: str,
        *,
        labels: Mapping[str, str],
        service_name: str,
        hostname: str,
        plain_text: bool = False,
        max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
        id_prefix: str = "",
    ) -> None:
        if max_message_chars < 1:
            raise ValueError("max_message_chars must be positive")
        self.file_identity = file_identity
        self._prefix = id_prefix or log_record_id_prefix(file_identity)
        self._labels = _labels(labels)
        self._service_name = service_name
        self._hostname = hostname
        self._plain_text = plain_text
        self._max_chars = max_message_chars
        # The record after its message, up to the labels that differ per line. "stream"
        # (and a plain-text file's "timestamp_source") come last, per line, instead of
        # wherever the metadata had a key of that name: the line's value wins.
        per_line = {"stream", "timestamp_source"} if plain_text else {"stream"}
        shared = {k: v for k, v in self._labels.items() if k not in per_line}
        inner = encode_record_json(shared)[1:-1]
        self._middle = b"".join(
            (
                b',"service_name":',
                encode_record_json(service_name),
                b',"hostname":',
                encode_record_json(hostname),
                b',"ecs_version":',
                encode_record_json(ECS_VERSION),
                b',"labels":{',
                inner,
                b"," if inner else b"",
            )
        )
        self._after_stream = (
            b',"timestamp_source":"read_time"},"tags":[]}\n' if plain_text else b'},"tags":[]}\n'
        )
        self._after_messages: dict[str, bytes] = {}

    def _after_message(self, stream: str) -> bytes:
        after = self._middle + b'"stream":' + encode_record_json(stream) + self._after_stream
        self._after_messages[stream] = after
        return after

    def encode(self, lines: Iterable[Line], now_rfc3339: str) -> FileRecords:
        """The records of ``lines``, read at ``now_rfc3339`` (RFC 3339 UTC)."""
        out = FileRecords()
        bodies, ids, positions, spans = out.bodies, out.ids, out.positions, out.spans
        id_head, limit = self._prefix + "-", self._max_chars
        after_messages = self._after_messages
        read_time = now_rfc3339 if self._plain_text else ""
        # Lines that follow each other in the file are claimed as one span: the claims
        # are the merged spans (`kk_common.envelope.merge_ranges`), so this only saves
        # a tuple per line here and sorting and merging it per batch.
        run_start = run_end = -1
        for line in lines:
            # One unpacking instead of eight attribute lookups.
            start, end, stream, timestamp, _, message, flags, error, _, _, _, _, joined = line
            if message[-1:] == "\r":
                message = message[:-1]
            text = None
            if (timestamp or read_time) and not flags and not error and len(message) <= limit:
                try:
                    text = orjson.dumps(message)
                except TypeError:  # a lone surrogate: the general path escapes it
                    text = None
            if text is None:
                self._encode_general(line, now_rfc3339, out)
            else:
                # `kk_common.envelope.log_record_id` for part 0, without the call.
                record_id = f"{id_head}{start:x}"
                head = (
                    f'{{"id":"{record_id}","timestamp":"{timestamp or read_time}",'
                    f'"log_level":"{detect_level(message)}","message":'
                )
                after = after_messages.get(stream) or self._after_message(stream)
                bodies.append(head.encode() + text + after)
                ids.append(record_id)
                positions.append(start)
            if joined:
                spans.extend(joined)
            elif start == run_end:
                run_end = end
            else:
                if run_end >= 0:
                    spans.append((run_start, run_end))
                run_start, run_end = start, end
        if run_end >= 0:
            spans.append((run_start, run_end))
        return out

    def _encode_general(self, line: Line, now_rfc3339: str, out: FileRecords) -> None:
        records = build_log_records(
            line,
            file_identity=self.file_identity,
            meta=self._labels,
            service_name=self._service_name,
            hostname=self._hostname,
            now_rfc3339=now_rfc3339,
            max_message_chars=self._max_chars,
            id_prefix=self._prefix,
        )
        for record in records:
            if self._plain_text:
                # Plain text has no runtime timestamp: the read time is the norm there,
                # not a defect, so it is labelled instead of tagged as bad.
                record["tags"] = [tag for tag in record["tags"] if tag != TAG_BAD_TIMESTAMP]
                record["labels"]["timestamp_source"] = "read_time"
            out.bodies.append(encode_record_json(record) + b"\n")
            out.ids.append(record["id"])
            out.positions.append(line.start_offset)
