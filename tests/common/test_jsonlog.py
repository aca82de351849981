"""Structured JSON logs: consistent fields, levels from LOG_LEVEL, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from kk_common.jsonlog import TRACE, configure_logging, log_event, parse_level


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_has_the_same_core_fields(captured: io.StringIO) -> None:
    configure_logging(component="shipper", node="node-a", level="info", stream=captured)
    log_event(logging.getLogger("kk.test"), logging.WARNING, "queue_full", queued_bytes=1024)
    [line] = lines(captured)
    assert line["component"] == "shipper"
    assert line["node"] == "node-a"
    assert line["event"] == "queue_full"
    assert line["level"] == "warn"
    assert line["queued_bytes"] == 1024
    assert line["ts"].endswith("Z")
    assert line["logger"] == "kk.test"


def test_level_filters_lines(captured: io.StringIO) -> None:
    configure_logging(component="logs", node="n", level="warn", stream=captured)
    log = logging.getLogger("kk.test")
    log_event(log, logging.INFO, "hidden")
    log_event(log, logging.ERROR, "shown")
    assert [line["event"] for line in lines(captured)] == ["shown"]


def test_trace_level_is_below_debug(captured: io.StringIO) -> None:
    configure_logging(component="logs", node="n", level="trace", stream=captured)
    log_event(logging.getLogger("kk.test"), TRACE, "per_record")
    assert lines(captured)[0]["level"] == "trace"


def test_registered_secrets_are_redacted_everywhere(captured: io.StringIO) -> None:
    key = "PENG-AB12-CD34-EF56-GH78-IJ90"
    configure_logging(component="c", node="n", stream=captured, secrets=[key, ""])
    log_event(logging.getLogger("kk.test"), logging.ERROR, f"bad {key}", header=f"Bearer {key}")
    text = captured.getvalue()
    assert key not in text
    assert lines(captured)[0]["header"] == "Bearer [REDACTED]"


def test_chatty_libraries_are_quiet_unless_tracing(captured: io.StringIO) -> None:
    configure_logging(component="c", node="n", level="debug", stream=captured)
    logging.getLogger("quic").debug("packet sent")
    log_event(logging.getLogger("kk.test"), logging.DEBUG, "ours")
    configure_logging(component="c", node="n", level="trace", stream=captured)
    logging.getLogger("quic").debug("packet received")
    assert [line["event"] for line in lines(captured)] == ["ours", "library_log"]
    assert lines(captured)[1]["message"] == "packet received"


def test_library_text_never_becomes_the_event_and_quic_warnings_wait_for_trace(
    captured: io.StringIO,
) -> None:
    configure_logging(component="c", node="n", level="debug", stream=captured)
    logging.getLogger("quic").warning("Error: 298, reason: unable to get local issuer certificate")
    logging.getLogger("asyncio").error("Future exception was never retrieved")
    [line] = lines(captured)
    assert (line["event"], line["logger"]) == ("library_log", "asyncio")
    assert line["message"] == "Future exception was never retrieved"


def test_unknown_level_names_the_choices() -> None:
    assert parse_level("WARNING") == logging.WARNING
    with pytest.raises(ValueError, match="trace"):
        parse_level("loud")
