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


def test_catch_up_batch_round_trips_and_is_marked() -> None:
    """Records read from a backlog carry ``catch_up``; the writer reproduces it exactly."""
    frames = golden("records_logs_catch_up")
    batch = decode(frames)
    assert isinstance(batch, EncodedRecords)
    assert batch.catch_up is True
    assert encode(batch) == frames


def test_a_batch_without_the_mark_is_live() -> None:
    """A producer of the previous release never writes ``catch_up``: its batches are live,
    and the writer leaves the field out of live batches (the golden bytes stay as they were)."""
    batch = decode(golden("records_logs"))
    assert isinstance(batch, EncodedRecords)
    assert batch.catch_up is False
    assert b"catch_up" not in encode(batch)[1]


def test_the_mark_is_the_only_difference_a_previous_reader_would_ignore() -> None:
    """Apart from the mark the catch-up golden is the live one, field for field: a reader
    that does not know ``catch_up`` (which ignores unknown fields) reads the same batch."""
    live = json.loads((GOLDEN / "records_logs.json").read_bytes())
    marked = json.loads((GOLDEN / "records_logs_catch_up.json").read_bytes())
    assert marked.pop("catch_up") is True
    assert marked == live


def test_only_a_literal_true_marks_catch_up() -> None:
    """A shape this reader does not expect is read as live (never delayed)."""
    payload = json.loads((GOLDEN / "records_logs.json").read_bytes())
    for odd in ("yes", 1, None, [True]):
        payload["catch_up"] = odd
        batch = decode([b"kk.v2", json.dumps(payload).encode(), BODIES])
        assert isinstance(batch, EncodedRecords)
        assert batch.catch_up is False, odd
