"""`Line` + metadata -> receiver-shaped log records (receiver-api.md, "Log batch body").

Pure: no IO, no clock (the read time is passed in as ``now_rfc3339``).

Record ids are deterministic: ``log_record_id(file_identity, line.start_offset, part)``,
so the same line at the same offset of the same file gets the same ids across retries,
protocol fallback and agent restarts, and receivers that know ids drop repeats.

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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kk_common.envelope import log_record_id
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
    """
    if max_message_chars < 1:
        raise ValueError("max_message_chars must be positive")
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
        labels["oversize_of"] = log_record_id(file_identity, line.group_offset, 0)
        labels["oversize_piece"] = str(line.piece + 1)
        if line.last_piece:
            labels["oversize_last"] = "true"
    level = detect_level(message)
    start = line.start_offset

    if len(message) <= max_message_chars:
        return [
            {
                "id": log_record_id(file_identity, start, 0),
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
    first_id = log_record_id(file_identity, start, 0)
    records: list[dict[str, Any]] = []
    for part in range(total):
        part_labels = dict(labels)
        part_labels["continuation"] = f"{part + 1}/{total}"
        part_labels["split_of"] = first_id
        chunk = message[part * max_message_chars : (part + 1) * max_message_chars]
        records.append(
            {
                "id": first_id if part == 0 else log_record_id(file_identity, start, part),
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
