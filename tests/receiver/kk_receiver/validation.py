"""Validation of batch envelopes and of individual records, per receiver-api.md.

Each check returns a short, stable reason code (``invalid_timestamp``, ``message_too_long``...)
or None. Reason codes are what the stats endpoint counts under ``rejected_reasons``, so tests
can assert *why* a record was refused without parsing prose. Nothing here echoes record
contents back: a reason never includes a value.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Literal

Kind = Literal["logs", "metrics"]
KINDS: Final[tuple[Kind, ...]] = ("logs", "metrics")

LOG_LEVELS: Final = frozenset({"trace", "debug", "info", "warn", "error", "fatal"})
METRIC_TYPES: Final = frozenset({"counter", "gauge"})
MAX_MESSAGE_CHARS: Final = 10_000
"""The documented KillKrill limit per log message; the agent splits longer messages."""

# RFC 3339 restricted as receiver-api.md says: UTC written as "Z", up to nanoseconds.
_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,9})?Z")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class InvalidBatch(ValueError):
    """The body is not a batch of the expected kind at all (HTTP 400)."""


def records_of_batch(document: Any, kind: Kind) -> list[Any]:
    """Return the record list of a ``{"source": str, "<kind>": [...]}`` batch.

    Raises:
        InvalidBatch: if the document is not such a batch. The message says what is missing.
    """
    if not isinstance(document, dict):
        raise InvalidBatch("body must be a JSON object")
    if not isinstance(document.get("source"), str) or not document["source"]:
        raise InvalidBatch('batch needs a non-empty string "source"')
    records = document.get(kind)
    if not isinstance(records, list):
        raise InvalidBatch(f'batch needs a "{kind}" array')
    return records


def is_rfc3339_utc(value: Any) -> bool:
    """True for ``2026-11-26T10:00:00.123456789Z``-style strings; never for numbers."""
    if not isinstance(value, str):
        return False
    match = _TIMESTAMP.fullmatch(value)
    return match is not None and _is_valid_second(match.group(1))


@functools.lru_cache(maxsize=4096)
def _is_valid_second(text: str) -> bool:
    """Whether ``YYYY-MM-DDTHH:MM:SS`` names a real second (only the shape; UTC is the Z).

    Cached: a batch's records fall in a few seconds, and this was the receiver's most
    expensive check (``strptime`` per record).
    """
    try:
        datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]),
                 int(text[11:13]), int(text[14:16]), int(text[17:19]))  # fmt: skip
    except ValueError:
        return False
    return True


def log_record_problem(record: Any) -> str | None:
    """Return why ``record`` is not a valid log record, or None when it is.

    Unknown fields (``hostname``, ``ecs_version``...) are tolerated.
    """
    if not isinstance(record, dict):
        return "not_an_object"
    if not _nonempty_str(record.get("id")):
        return "invalid_id"
    if not is_rfc3339_utc(record.get("timestamp")):
        return "invalid_timestamp"
    if record.get("log_level") not in LOG_LEVELS:
        return "invalid_log_level"
    message = record.get("message")
    if not isinstance(message, str):
        return "invalid_message"
    if len(message) > MAX_MESSAGE_CHARS:
        return "message_too_long"
    if not _nonempty_str(record.get("service_name")):
        return "invalid_service_name"
    if "labels" in record:
        problem = _labels_problem(record["labels"])
        if problem:
            return problem
    if "tags" in record:
        tags = record["tags"]
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            return "invalid_tags"
    return None


def metric_record_problem(record: Any) -> str | None:
    """Return why ``record`` is not a valid metric sample, or None when it is."""
    if not isinstance(record, dict):
        return "not_an_object"
    if not _nonempty_str(record.get("id")):
        return "invalid_id"
    name = record.get("name")
    if not isinstance(name, str) or not _METRIC_NAME.fullmatch(name):
        return "invalid_name"
    if record.get("type") not in METRIC_TYPES:
        return "invalid_type"
    value = record.get("value")
    # bool is an int subclass in Python, but true/false is not a sample value.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "invalid_value"
    if isinstance(value, float) and not math.isfinite(value):
        return "non_finite_value"
    if "labels" not in record:
        return "invalid_labels"
    problem = _labels_problem(record["labels"])
    if problem:
        return problem
    if not is_rfc3339_utc(record.get("timestamp")):
        return "invalid_timestamp"
    return None


def record_problem(record: Any, kind: Kind) -> str | None:
    """Dispatch to the validator for ``kind``."""
    return log_record_problem(record) if kind == "logs" else metric_record_problem(record)


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _labels_problem(labels: Any) -> str | None:
    # labels is the only free-form field that reaches KillKrill's storage: a flat map of strings,
    # and dotted keys would be read as nested paths, so they are refused.
    if not isinstance(labels, Mapping):
        return "invalid_labels"
    for key, value in labels.items():
        if not isinstance(value, str):
            return "invalid_labels"
        if "." in key:
            return "label_key_with_dot"
    return None
