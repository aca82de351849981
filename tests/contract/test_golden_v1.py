"""Version 1 golden payloads are read by the v1 reader, and the writer still writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from kk_common.envelope import (
    Ack,
    AckStatus,
    RecordBatch,
    Telemetry,
    UnsupportedVersion,
    decode,
    encode,
)

GOLDEN = Path(__file__).parent / "v1"
CANONICAL = ["records_logs", "records_metrics", "ack_stored", "ack_rejected", "telemetry"]


def golden(name: str) -> list[bytes]:
    return [b"kk.v1", (GOLDEN / f"{name}.json").read_bytes()]


@pytest.mark.parametrize("name", CANONICAL)
def test_writer_reproduces_golden_bytes(name: str) -> None:
    """Decoding a golden payload and encoding it again gives the same bytes."""
    frames = golden(name)
    assert encode(decode(frames)) == frames


def test_log_batch_golden_reads_as_records() -> None:
    batch = decode(golden("records_logs"))
    assert isinstance(batch, RecordBatch)
    assert (batch.stream, batch.producer, batch.batch_id) == (
        "logs",
        "logs@node-a",
        "logs@node-a:42",
    )
    assert batch.record_ids() == [
        "1c93a7b248241a2944cdf0670dd85550",
        batch.records[1]["id"],
    ]
    assert batch.records[1]["message"] == "payment failed: ünïcode ✓"


def test_future_minor_batch_is_read_and_keeps_unknown_record_fields() -> None:
    """A newer v1 producer's additions are ignored at batch level and kept on records."""
    current = decode(golden("records_logs"))
    future = decode(golden("records_logs_future_minor"))
    assert isinstance(future, RecordBatch)
    assert future.record_ids() == current.record_ids()
    assert future.records[0]["new_record_field"] == {"x": 1}


def test_future_minor_ack_is_read() -> None:
    ack = decode(golden("ack_future_minor"))
    assert ack == Ack(batch_id="logs@node-a:42", status=AckStatus.STORED)


def test_future_minor_telemetry_is_read() -> None:
    current = decode(golden("telemetry"))
    future = decode(golden("telemetry_future_minor"))
    assert isinstance(future, Telemetry)
    assert future.samples == current.samples
    assert future.status == current.status
    assert future.status.problems == ("logs output: 401 from receiver",)


def test_golden_payload_under_unknown_major_is_refused() -> None:
    """The same bytes under a v2 header are refused: a v1 reader must not guess."""
    with pytest.raises(UnsupportedVersion, match=r"kk\.v2"):
        decode([b"kk.v3", (GOLDEN / "records_logs.json").read_bytes()])
