"""Version 2 golden payloads (records encoded once): read by the shipper, written by producers.

A v2 message is three frames: ``kk.v2``, the JSON payload (``<name>.json``) and the records
(``<name>.bodies``, one compact JSON object per line).
"""

from __future__ import annotations

import json
from pathlib import Path

from kk_common.envelope import EncodedRecords, decode, encode

GOLDEN = Path(__file__).parent / "v2"
BODIES = (GOLDEN / "records_logs.bodies").read_bytes()


def golden(name: str) -> list[bytes]:
    return [b"kk.v2", (GOLDEN / f"{name}.json").read_bytes(), BODIES]


def test_writer_reproduces_golden_bytes() -> None:
    frames = golden("records_logs")
    assert encode(decode(frames)) == frames


def test_log_batch_golden_reads_as_encoded_records() -> None:
    batch = decode(golden("records_logs"))
    assert isinstance(batch, EncodedRecords)
    assert batch.stream == "logs"
    assert len(batch) == 2
    records = [json.loads(body) for body in batch.record_bodies()]
    assert [r["id"] for r in records] == list(batch.ids)
    assert records[1]["log_level"] == "error"
    assert batch.positions == [(0, 0), (0, 98)]
    assert batch.claims == [(0, 0, 210)]


def test_future_minor_batch_is_read() -> None:
    """A newer v2 writer's additions are ignored; the records are read as they are."""
    batch = decode(golden("records_logs_future_minor"))
    assert isinstance(batch, EncodedRecords)
    assert batch == decode(golden("records_logs"))
