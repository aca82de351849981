"""When a batch closes: at batch_size, at the byte limit, or at the flush interval."""

from __future__ import annotations

import json
from collections import deque

from kk_shipper.core import OutputSettings
from kk_shipper.core.batching import batch_due, next_flush_deadline, take_batch
from kk_shipper.core.request_builder import Envelope, encode_batch
from kk_shipper.types import QueuedRecord, RecordRun


def settings(**overrides: object) -> OutputSettings:
    values: dict[str, object] = {
        "kind": "logs",
        "url": "https://recv:8443/api/v1/logs",
        "license_key": "PENG-A1B2-C3D4-E5F6-G7H8-J9K0",
        "source": "prod/node-a",
        "cluster_name": "prod",
        "node_name": "node-a",
        "batch_size": 4,
        "flush_interval_s": 5.0,
        "compression": "none",
    }
    values.update(overrides)
    return OutputSettings(**values)  # type: ignore[arg-type]


def record(seq: int, queued_at: float = 0.0, message_bytes: int = 10) -> QueuedRecord:
    body = json.dumps({"id": f"rec-{seq}", "message": "x" * message_bytes}).encode()
    return QueuedRecord(seq=seq, record_id=f"rec-{seq}", body=body, queued_at=queued_at)


def overhead(output: OutputSettings) -> int:
    return Envelope.for_settings(output).overhead


def runs(records: list[QueuedRecord]) -> list[RecordRun]:
    """As the queue hands them over: one run per stored batch (here, consecutive records)."""
    return RecordRun.of(records)


def take_batch_size(records: list[QueuedRecord], output: OutputSettings, envelope: int) -> int:
    """How many records the next batch takes from ``records``."""
    return sum(run.count for run in take_batch(deque(runs(records)), output, envelope))


def test_a_batch_closes_at_batch_size() -> None:
    output = settings()
    three = [record(i) for i in range(3)]
    assert not batch_due(runs(three), output, overhead(output), now=0.0)
    four = [*three, record(3)]
    assert batch_due(runs(four), output, overhead(output), now=0.0)
    assert take_batch_size([*four, record(4)], output, overhead(output)) == 4


def test_a_partial_batch_closes_at_the_flush_interval_of_its_oldest_record() -> None:
    output = settings()
    pending = runs([record(0, queued_at=100.0), record(1, queued_at=103.0)])
    assert next_flush_deadline(pending, output) == 105.0
    assert not batch_due(pending, output, overhead(output), now=104.999)
    assert batch_due(pending, output, overhead(output), now=105.0)
    assert next_flush_deadline([], output) is None


def test_a_batch_closes_before_a_record_would_pass_the_byte_limit() -> None:
    output = settings(batch_size=100, max_request_bytes=1024)
    pending = [record(i, message_bytes=280) for i in range(10)]
    count = take_batch_size(pending, output, overhead(output))
    assert count == 3
    assert batch_due(runs(pending), output, overhead(output), now=0.0)
    # The limit counts the whole uncompressed body: envelope, records and commas.
    envelope = Envelope.for_settings(output)
    fits = encode_batch(runs(pending[:count]), output, envelope).raw_size
    too_big = encode_batch(runs(pending[: count + 1]), output, envelope).raw_size
    assert fits <= 1024 < too_big


def test_a_record_larger_than_the_limit_still_goes_alone() -> None:
    """Only the receiver's 413 can say it is too large; then it is dead-lettered."""
    output = settings(max_request_bytes=1024)
    pending = [record(0, message_bytes=5000), record(1)]
    assert take_batch_size(pending, output, overhead(output)) == 1


def test_flush_all_sends_a_partial_batch_at_once() -> None:
    output = settings()
    pending = runs([record(0, queued_at=100.0)])
    assert not batch_due(pending, output, overhead(output), now=100.0)
    assert batch_due(pending, output, overhead(output), now=100.0, flush_all=True)


def test_single_mode_sends_every_record_at_once_and_alone() -> None:
    output = settings(mode="single")
    pending = [record(0, queued_at=100.0), record(1, queued_at=100.0)]
    assert batch_due(runs(pending), output, overhead(output), now=100.0)
    assert take_batch_size(pending, output, overhead(output)) == 1


def test_a_batch_takes_whole_stored_batches_and_splits_only_the_last() -> None:
    """Runs (stored batches) go into a request whole; the one that does not fit is cut at
    the batch boundary and its rest opens the next batch, nothing lost or repeated."""
    output = settings(batch_size=5)
    pending = deque(
        [*runs([record(i) for i in range(3)]), *runs([record(i, queued_at=1.0) for i in (3, 4, 5)])]
    )
    first = take_batch(pending, output, overhead(output))
    assert [list(run.seqs) for run in first] == [[0, 1, 2], [3, 4]]
    assert first[1].ids == "rec-3\nrec-4"
    assert first[1].bodies == record(3).body + b"\n" + record(4).body + b"\n"
    assert [(list(run.seqs), run.ids) for run in pending] == [([5], "rec-5")]
    assert [r.body for r in pending[0].records()] == [record(5).body]


def test_a_run_cut_by_the_byte_limit_keeps_every_record_once() -> None:
    output = settings(batch_size=100, max_request_bytes=1024)
    pending = deque(runs([record(i, message_bytes=280) for i in range(10)]))
    taken = []
    while pending:
        taken.append(
            [seq for run in take_batch(pending, output, overhead(output)) for seq in run.seqs]
        )
    assert taken == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
