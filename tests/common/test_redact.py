"""A secret is redacted in every form a log line, error or health problem can carry it."""

from __future__ import annotations

import base64
import io
import json
import logging
from urllib.parse import quote

import pytest

from kk_common.jsonlog import configure_logging, log_event
from kk_common.redact import REDACTED, Redactor

KEY = 'api"key\\with/odd+chars=é'


@pytest.mark.parametrize(
    "leak",
    [
        KEY,
        repr(KEY),
        repr(KEY.encode()),
        base64.b64encode(KEY.encode()).decode(),
        base64.urlsafe_b64encode(KEY.encode()).decode().rstrip("="),
        quote(KEY, safe=""),
    ],
    ids=["raw", "repr", "bytes-repr", "base64", "urlsafe-base64", "percent"],
)
def test_each_form_of_a_secret_is_redacted_in_text_and_in_a_json_log_line(leak: str) -> None:
    redact = Redactor([KEY])
    assert KEY not in redact(f"error: {leak}")
    assert REDACTED in redact(f"error: {leak}")

    captured = io.StringIO()
    configure_logging(component="c", node="n", stream=captured, secrets=[KEY])
    log_event(logging.getLogger("kk.test"), logging.ERROR, "send_failed", error=f"x {leak} y")
    line = json.loads(captured.getvalue())
    assert line["error"].startswith("x ") and line["error"].endswith(" y")
    assert REDACTED in line["error"]
    assert "key" not in line["error"] and "chars" not in line["error"]
    assert leak not in line["error"]


def test_an_http_library_quoting_an_illegal_header_value_does_not_leak_it() -> None:
    """h11 refuses a header value with a CR and quotes it, escaped, in its error text."""
    key = "abc-secret\r\ninjected"
    captured = io.StringIO()
    configure_logging(component="c", node="n", stream=captured, secrets=[key])
    error = f"Illegal header value {key.encode()!r}"
    log_event(logging.getLogger("kk.test"), logging.ERROR, "send_failed", error=error)
    text = captured.getvalue()
    assert "abc-secret" not in text
    assert json.loads(text)["error"] == f"Illegal header value b'{REDACTED}'"


def test_ordinary_text_and_empty_secrets_are_left_alone() -> None:
    redact = Redactor(["", "ab"])
    assert not redact
    assert redact("ab abc") == "ab abc"
