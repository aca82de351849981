"""What a receiver's answer means: the responses table of receiver-api.md, as data.

`classify` maps one `HttpResponse` to one outcome. The status table below is the only place
where a status code gets a meaning; `delivery.py` only acts on outcomes. No outcome ever
changes the protocol: only transport errors do (receiver-api.md, "Responses").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any

from ..types import HttpResponse
from .backoff import parse_retry_after
from .settings import Mode

__all__ = [
    "PARTIALLY_PROCESSED",
    "STATUS_TABLE",
    "UNEXPECTED_SUCCESS_BODY",
    "AuthFailed",
    "ContractMismatch",
    "Delivered",
    "Outcome",
    "Rejected",
    "Retry",
    "Split",
    "StatusAction",
    "classify",
]


class StatusAction(Enum):
    """What to do with a batch after a non-2xx status."""

    REJECT = "reject"
    """Permanent: dead-letter the records, no retry, no protocol change."""
    AUTH = "auth"
    """Permanent until the credentials change: pause the output, keep the records."""
    SPLIT = "split"
    """Too large: split in halves; a single record is dead-lettered."""
    RETRY = "retry"
    """Transient: back off and retry the same batch."""
    RETRY_ISOLATE = "retry_isolate"
    """Transient, but possibly caused by a record (poison): retry, and split after repeats."""


STATUS_TABLE: MappingProxyType[int, StatusAction] = MappingProxyType(
    {
        400: StatusAction.REJECT,  # bad request
        404: StatusAction.REJECT,  # unknown source
        401: StatusAction.AUTH,
        403: StatusAction.AUTH,
        413: StatusAction.SPLIT,
        408: StatusAction.RETRY,
        429: StatusAction.RETRY,
        503: StatusAction.RETRY,  # overload / maintenance: a record is not the cause
        # A receiver that fails on one record answers 500 however often it is retried; a
        # proxy in front of it may turn that into 502 or 504. These are the poison candidates.
        500: StatusAction.RETRY_ISOLATE,
        502: StatusAction.RETRY_ISOLATE,
        504: StatusAction.RETRY_ISOLATE,
    }
)
"""receiver-api.md "Responses", non-2xx rows. Unlisted 4xx are permanent (like OTel and Fluent
Bit); unlisted 5xx, 1xx and 3xx are retried: when unsure, keep the data."""

REJECT_REASONS: MappingProxyType[int, str] = MappingProxyType(
    {400: "bad_request", 404: "unknown_source"}
)
"""Stable dead-letter reason codes for metrics; other statuses give ``http_<status>``."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """Stored. ``rejected`` is how many the receiver said it did not keep."""

    processed: int | None
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class Retry:
    """Transient failure: retry the same batch later."""

    reason: str
    after_s: float | None = None
    """The receiver's ``Retry-After`` in seconds from now, if it sent a usable one."""
    isolate: bool = False
    """Count this failure towards splitting / dead-lettering a poison record."""
    status: int | None = None
    detail: str = ""
    """An excerpt of the receiver's error body, if any."""


@dataclass(frozen=True, slots=True)
class Split:
    """413: split the batch in halves (or dead-letter a single record)."""

    status: int = 413


@dataclass(frozen=True, slots=True)
class Rejected:
    """Permanent refusal: dead-letter with ``reason`` (a stable code) and ``detail``."""

    reason: str
    status: int
    detail: str


@dataclass(frozen=True, slots=True)
class AuthFailed:
    """401/403: the credentials are refused."""

    status: int
    detail: str


@dataclass(frozen=True, slots=True)
class ContractMismatch:
    """A single-record reply to a batch: the receiver only speaks ``mode: single``."""

    detail: str


Outcome = Delivered | Retry | Split | Rejected | AuthFailed | ContractMismatch

_SINGLE_REPLY_KEYS = ("log_id", "metric_id")

UNEXPECTED_SUCCESS_BODY = "unexpected_success_body"
"""A 2xx whose body is not ``{"status": "success", ...}``: a proxy's page, empty, ``OK``."""
PARTIALLY_PROCESSED = "partially_processed"
"""A 2xx whose ``processed`` is less than the batch's size."""
_DETAIL_LIMIT = 200


def classify(response: HttpResponse, *, batch_size: int, mode: Mode, now: float) -> Outcome:
    """The outcome of ``response`` to a request carrying ``batch_size`` records.

    ``now`` (unix time) resolves an HTTP-date ``Retry-After``.
    """
    status = response.status
    if 200 <= status < 300:
        return _classify_success(response.body, batch_size, mode, status)
    action = STATUS_TABLE.get(status)
    if action is None:
        action = StatusAction.REJECT if 400 <= status < 500 else StatusAction.RETRY
    detail = _detail(response.body)
    if action is StatusAction.REJECT:
        return Rejected(REJECT_REASONS.get(status, f"http_{status}"), status, detail)
    if action is StatusAction.AUTH:
        return AuthFailed(status, detail)
    if action is StatusAction.SPLIT:
        return Split(status)
    return Retry(
        reason=f"http_{status}",
        after_s=parse_retry_after(response.headers.get("retry-after"), now),
        isolate=action is StatusAction.RETRY_ISOLATE,
        status=status,
        detail=detail,
    )


def _classify_success(body: bytes, batch_size: int, mode: Mode, status: int) -> Outcome:
    """A 2xx is delivery only when its body says so (receiver-api.md, "Responses").

    A proxy's or WAF's page, an empty body or ``OK`` means the request never reached a
    receiver that stored it, and a receiver that processed fewer records than it was sent
    (without saying which) stored only some: neither may delete the batch. Both are retried;
    the partial case counts towards poison isolation, so a receiver that keeps refusing some
    records narrows them down until they are dead-lettered one by one with the reason, while
    the records it did store are dropped as repeats by their ids.
    """
    if mode == "single":
        # Today's receivers answer {"status": "accepted"|"success", "log_id"|"metric_id": ...}.
        return Delivered(processed=None)
    document = _json_object(body)
    if document is None or document.get("status") not in ("success", "accepted"):
        return Retry(
            reason=UNEXPECTED_SUCCESS_BODY,
            status=status,
            detail=f"a {status} whose body is not the receiver's batch answer: "
            f"{_detail(body) or '(empty)'}",
        )
    processed = document.get("processed")
    if "processed" not in document and (
        document.get("status") == "accepted" or any(k in document for k in _SINGLE_REPLY_KEYS)
    ):
        return ContractMismatch(
            f"the receiver answered a batch of {batch_size} with a single-record reply "
            f"({_detail(body)}); it speaks only single-record mode: set mode: single"
        )
    if processed is None:
        return Delivered(processed=None)
    if not isinstance(processed, int) or isinstance(processed, bool) or processed < 0:
        return Retry(
            reason=UNEXPECTED_SUCCESS_BODY,
            status=status,
            detail=f'"processed" is not a count: {_detail(body)}',
        )
    if processed < batch_size:
        return Retry(
            reason=PARTIALLY_PROCESSED,
            status=status,
            isolate=True,
            detail=f"the receiver processed {processed} of {batch_size} records and did not "
            "say which",
        )
    return Delivered(processed=processed)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None


def _detail(body: bytes) -> str:
    """A short, printable excerpt of an error body (the receiver's message, not ours)."""
    document = _json_object(body)
    if document is not None and isinstance(document.get("error"), str):
        text = document["error"]
    else:
        text = body.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 1] + "…"
