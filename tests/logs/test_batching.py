"""IPC batch assembly: closing rules, offsets carried with records, unique ids."""

from __future__ import annotations

from kk_logs.batching import BatchAssembler


def record(n: int) -> dict:
    return {"id": f"r{n}", "message": f"line {n}"}


def test_batch_closes_when_full_and_carries_the_latest_safe_offset_per_file() -> None:
    assembler = BatchAssembler("logs@n1", max_records=3, max_wait_s=1.0)
    assembler.add("fileA", [record(1), record(2)], safe_offset=100, now=0.0)
    assert assembler.take(now=0.1) is None
    assembler.add("fileA", [], safe_offset=110, now=0.1)
    assembler.add("fileB", [record(3)], safe_offset=40, now=0.1)
    assembler.add("fileA", [], safe_offset=120, now=0.1)
    batch = assembler.take(now=0.1)
    assert batch is not None
    assert [r["id"] for r in batch.records] == ["r1", "r2", "r3"]
    assert batch.offsets == {"fileA": 110, "fileB": 40}
    offsets_only = assembler.take(now=0.1)
    assert (offsets_only.records, offsets_only.offsets) == ([], {"fileA": 120})
    assert assembler.take(now=5.0) is None


def test_a_full_batch_is_queued_and_later_records_open_the_next() -> None:
    assembler = BatchAssembler("logs@n1", max_records=2, max_wait_s=10.0)
    assembler.add("fileA", [record(1), record(2)], safe_offset=20, now=0.0)
    assembler.add("fileA", [record(3)], safe_offset=30, now=0.0)
    assert assembler.next_deadline() == 0.0
    first = assembler.take(now=0.0)
    assert ([r["id"] for r in first.records], first.offsets) == (["r1", "r2"], {"fileA": 20})
    assert assembler.take(now=0.0) is None
    second = assembler.take(now=10.0)
    assert ([r["id"] for r in second.records], second.offsets) == (["r3"], {"fileA": 30})


def test_partial_batch_closes_after_max_wait() -> None:
    assembler = BatchAssembler("logs@n1", max_records=100, max_wait_s=0.2)
    assembler.add("fileA", [record(1)], safe_offset=10, now=1.0)
    assert assembler.next_deadline() == 1.2
    assert assembler.take(now=1.19) is None
    batch = assembler.take(now=1.2)
    assert batch is not None and len(batch.records) == 1
    assert assembler.next_deadline() is None


def test_offsets_without_records_close_at_once() -> None:
    """An excluded container's lines produce no records, but its offset must move."""
    assembler = BatchAssembler("logs@n1", max_records=100, max_wait_s=10.0)
    assembler.add("excluded", [], safe_offset=500, now=0.0)
    batch = assembler.take(now=0.0)
    assert batch is not None
    assert (batch.records, batch.offsets) == ([], {"excluded": 500})


def test_batch_ids_increase_within_a_run_and_differ_between_runs() -> None:
    first = BatchAssembler("logs@n1", max_records=1, max_wait_s=0)
    ids = []
    for n in range(3):
        first.add("f", [record(n)], safe_offset=n, now=0.0)
        ids.append(first.take(now=0.0).batch_id)
    assert [int(i.rsplit(":", 1)[1]) for i in ids] == [1, 2, 3]
    assert len(set(ids)) == 3
    second = BatchAssembler("logs@n1", max_records=1, max_wait_s=0)
    second.add("f", [record(0)], safe_offset=0, now=0.0)
    assert second.take(now=0.0).batch_id != ids[0]
