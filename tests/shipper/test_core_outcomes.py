"""The responses table of receiver-api.md, row by row, and Retry-After parsing."""

from __future__ import annotations

import json
from email.utils import formatdate

import pytest

from kk_shipper.core.backoff import parse_retry_after
from kk_shipper.core.outcomes import (
    PARTIALLY_PROCESSED,
    UNEXPECTED_SUCCESS_BODY,
    AuthFailed,
    ContractMismatch,
    Delivered,
    Rejected,
    Retry,
    Split,
    classify,
)
from kk_shipper.types import HttpResponse, Protocol

NOW = 1_764_151_200.0  # 2025-11-26T10:00:00Z, unix time


def response(status: int, document: object = None, **headers: str) -> HttpResponse:
    body = b"" if document is None else json.dumps(document).encode()
    return HttpResponse(status, headers, body, Protocol.H3)


def batch(answer: HttpResponse, size: int = 10) -> object:
    return classify(answer, batch_size=size, mode="batch", now=NOW)


def test_success_with_processed_equal_to_the_batch_size_is_delivered() -> None:
    assert batch(response(200, {"status": "success", "processed": 10})) == Delivered(10, 0)


@pytest.mark.parametrize("processed", [0, 7])
def test_fewer_processed_than_sent_is_retried_towards_isolation_not_deleted(processed: int) -> None:
    """Which records were not kept is unknown: the batch goes again (the receiver drops the
    ones it stored by id), and repeats narrow a refused record down to be dead-lettered."""
    outcome = batch(response(200, {"status": "success", "processed": processed}))
    assert outcome == Retry(
        reason=PARTIALLY_PROCESSED,
        status=200,
        isolate=True,
        detail=f"the receiver processed {processed} of 10 records and did not say which",
    )


def test_success_without_a_processed_count_is_delivered() -> None:
    assert batch(response(200, {"status": "success"})) == Delivered(None, 0)
    assert batch(response(202, {"status": "success"})) == Delivered(None, 0)


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (b"", "(empty)"),
        (b"OK", "OK"),
        (b"<html><body>Welcome to nginx!</body></html>", "<html><body>Welcome to nginx!"),
        (b'{"processed": 10}', '{"processed": 10}'),
        (b'{"status": "error", "error": "disk full"}', "disk full"),
        (b'{"status": "success", "processed": "10"}', "not a count"),
        (b'["success"]', '["success"]'),
    ],
    ids=["empty", "ok", "html", "no-status", "error-status", "processed-text", "not-an-object"],
)
def test_a_2xx_whose_body_is_not_the_receivers_answer_is_retried_not_deleted(
    body: bytes, shown: str
) -> None:
    """A proxy's page, a WAF's OK or a different service answering 2xx did not store the
    batch: keep it, retry, and say what came back."""
    outcome = batch(HttpResponse(status=200, headers={}, body=body, protocol=Protocol.H1))
    assert isinstance(outcome, Retry)
    assert (outcome.reason, outcome.status, outcome.isolate) == (
        UNEXPECTED_SUCCESS_BODY,
        200,
        False,
    )
    assert shown in outcome.detail


@pytest.mark.parametrize(
    "document",
    [
        {"status": "accepted", "log_id": "4b1c"},
        {"status": "success", "metric_id": "77"},
        {"status": "accepted"},
    ],
)
def test_a_single_record_reply_to_a_batch_is_a_contract_mismatch(document: object) -> None:
    outcome = batch(response(200, document))
    assert isinstance(outcome, ContractMismatch)
    assert "mode: single" in outcome.detail


def test_in_single_mode_the_single_record_reply_is_success() -> None:
    answer = response(200, {"status": "accepted", "log_id": "4b1c"})
    assert classify(answer, batch_size=1, mode="single", now=NOW) == Delivered(None, 0)


@pytest.mark.parametrize(("status", "reason"), [(400, "bad_request"), (404, "unknown_source")])
def test_400_and_404_are_permanent_rejections(status: int, reason: str) -> None:
    outcome = batch(response(status, {"status": "error", "error": "no such source"}))
    assert outcome == Rejected(reason, status, "no such source")


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_auth_failures(status: int) -> None:
    assert batch(response(status, {"error": "invalid license key"})) == AuthFailed(
        status, "invalid license key"
    )


def test_413_splits() -> None:
    assert batch(response(413)) == Split(413)


@pytest.mark.parametrize(
    ("status", "isolate"),
    [(408, False), (429, False), (503, False), (500, True), (502, True), (504, True)],
)
def test_transient_statuses_are_retried(status: int, isolate: bool) -> None:
    assert batch(response(status)) == Retry(f"http_{status}", None, isolate, status)


def test_unlisted_4xx_are_permanent_and_unlisted_5xx_transient() -> None:
    assert batch(response(415)) == Rejected("http_415", 415, "")
    assert batch(response(507)) == Retry("http_507", None, False, 507)
    assert batch(response(302)) == Retry("http_302", None, False, 302)


def test_retry_after_is_carried_in_seconds() -> None:
    assert batch(response(429, None, **{"retry-after": "17"})) == Retry(
        "http_429", 17.0, False, 429
    )


def test_a_long_error_body_is_shortened() -> None:
    outcome = batch(response(400, {"error": "x" * 1000}))
    assert isinstance(outcome, Rejected)
    assert len(outcome.detail) == 200


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        (formatdate(NOW + 30, usegmt=True), 30.0),
        (formatdate(NOW - 30, usegmt=True), 0.0),  # a past date means now
        ("Wed, 26 Nov 2025 10:01:00 -0000", 60.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_seconds_and_http_dates(value: str | None, expected: float | None) -> None:
    """RFC 9110 section 10.2.3: delay-seconds or an HTTP-date; anything else is ignored."""
    assert parse_retry_after(value, NOW) == expected
