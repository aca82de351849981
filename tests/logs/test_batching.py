"""IPC batch assembly: closing rules, offsets carried with records, unique ids, claims."""

from __future__ import annotations

import json

from kk_common.envelope import EncodedRecords, decode, encode
from kk_common.envelope import merge_ranges as merge_spans
from kk_logs.batching import BatchAssembler
from kk_logs.records import FileRecords


def records(*lines: tuple[int, int]) -> FileRecords:
    """One record per ``(start, end)`` line, with the id ``r<start>``."""
    out = FileRecords()
    for start, end in lines:
        out.bodies.append(json.dumps({"id": f"r{start}"}).encode() + b"\n")
        out.ids.append(f"r{start}")
        out.positions.append(start)
        out.spans.append((start, end))
    return out


def test_batch_closes_when_full_and_carries_the_latest_safe_offset_per_file() -> None:
    assembler = BatchAssembler("logs@n1", max_records=3, max_wait_s=1.0)
    assembler.add("fileA", records((0, 50), (50, 100)), safe_offset=100, now=0.0)
    assert assembler.take(now=0.1) is None
    assembler.add("fileA", None, safe_offset=110, now=0.1)
    assembler.add("fileB", records((0, 40)), safe_offset=40, now=0.1)
    assembler.add("fileA", None, safe_offset=120, now=0.1)
    batch = assembler.take(now=0.1)
    assert batch is not None
    assert batch.ids == ["r0", "r50", "r0"]
    assert batch.offsets == {"fileA": 110, "fileB": 40}
    offsets_only = assembler.take(now=0.1)
    assert (len(offsets_only), offsets_only.offsets) == (0, {"fileA": 120})
    assert assembler.take(now=5.0) is None


def test_a_full_batch_is_queued_and_later_records_open_the_next() -> None:
    assembler = BatchAssembler("logs@n1", max_records=2, max_wait_s=10.0)
    assembler.add("fileA", records((0, 10), (10, 20)), safe_offset=20, now=0.0)
    assembler.add("fileA", records((20, 30)), safe_offset=30, now=0.0)
    assert assembler.next_deadline() == 0.0
    first = assembler.take(now=0.0)
    assert (first.ids, first.offsets) == (["r0", "r10"], {"fileA": 20})
    assert assembler.take(now=0.0) is None
    second = assembler.take(now=10.0)
    assert (second.ids, second.offsets) == (["r20"], {"fileA": 30})


def test_partial_batch_closes_after_max_wait() -> None:
    assembler = BatchAssembler("logs@n1", max_records=100, max_wait_s=0.2)
    assembler.add("fileA", records((0, 10)), safe_offset=10, now=1.0)
    assert assembler.next_deadline() == 1.2
    assert assembler.take(now=1.19) is None
    batch = assembler.take(now=1.2)
    assert batch is not None and len(batch) == 1
    assert assembler.next_deadline() is None


def test_offsets_without_records_close_at_once() -> None:
    """An excluded container's lines produce no records, but its offset must move."""
    assembler = BatchAssembler("logs@n1", max_records=100, max_wait_s=10.0)
    assembler.add("excluded", None, safe_offset=500, now=0.0)
    batch = assembler.take(now=0.0)
    assert batch is not None
    assert (batch.ids, batch.sources, batch.offsets) == ([], {}, {"excluded": 500})
    assert batch.claims() == []


def test_batch_ids_increase_within_a_run_and_differ_between_runs() -> None:
    first = BatchAssembler("logs@n1", max_records=1, max_wait_s=0)
    ids = []
    for n in range(3):
        first.add("f", records((n, n + 1)), safe_offset=n, now=0.0)
        ids.append(first.take(now=0.0).batch_id)
    assert [int(i.rsplit(":", 1)[1]) for i in ids] == [1, 2, 3]
    assert len(set(ids)) == 3
    second = BatchAssembler("logs@n1", max_records=1, max_wait_s=0)
    second.add("f", records((0, 1)), safe_offset=0, now=0.0)
    assert second.take(now=0.0).batch_id != ids[0]


def test_the_message_names_each_file_once_and_each_record_by_its_line_start() -> None:
    """Sources in order of first record; positions are (source index, line start)."""
    assembler = BatchAssembler("logs@n1", max_records=100, max_wait_s=1.0)
    assembler.add("fileA", records((0, 10), (10, 25)), safe_offset=25, now=0.0)
    assembler.add("fileB", records((0, 7)), safe_offset=7, now=0.0)
    assembler.add("fileA", records((25, 30)), safe_offset=30, now=0.0)
    message = assembler.take(now=0.0, force=True).message()
    assert isinstance(message, EncodedRecords)
    assert message.batch_id.startswith("logs@n1:")
    assert (message.producer, message.stream) == ("logs@n1", "logs")
    assert message.sources == ["fileA", "fileB"]
    assert list(message.positions) == [(0, 0), (0, 10), (1, 0), (0, 25)]
    assert message.record_ids() == ["r0", "r10", "r0", "r25"]
    assert [json.loads(body)["id"] for body in message.record_bodies()] == message.record_ids()
    assert decode(encode(message)) == message


def test_claims_merge_touching_lines_per_file_but_never_bridge_a_gap() -> None:
    """The bytes of a line that is not in the batch (an open P of the other stream, say)
    stay unclaimed, so the shipper cannot mistake that line's records for duplicates."""
    assembler = BatchAssembler("logs@n1", max_records=100, max_wait_s=1.0)
    # stdout lines at 0..30 and 60..80; a joined stderr line made of 30..45 and 80..95.
    # The stderr line at 45..60 is still open in the parser: not in this batch.
    joined = FileRecords(
        bodies=[b'{"id":"r30"}\n'], ids=["r30"], positions=[30], spans=[(30, 45), (80, 95)]
    )
    assembler.add("fileA", records((0, 10), (10, 30), (60, 80)), safe_offset=45, now=0.0)
    assembler.add("fileA", joined, safe_offset=45, now=0.0)
    assembler.add("fileB", records((100, 120)), safe_offset=120, now=0.0)
    batch = assembler.take(now=0.0, force=True)
    assert batch.claims() == [(0, 0, 45), (0, 60, 95), (1, 100, 120)]


def test_merge_spans_sorts_and_joins_touching_and_overlapping_ranges() -> None:
    assert merge_spans([(20, 30), (0, 10), (10, 20), (40, 50), (45, 47), (46, 60)]) == [
        (0, 30),
        (40, 60),
    ]
    assert merge_spans([]) == []


def test_catch_up_lines_go_in_their_own_marked_batch_and_live_ones_are_taken_first() -> None:
    """A noisy file's backlog and a quiet file's line never share a batch; the live batch
    goes first when both are due, and only the catch-up one carries the mark."""
    assembler = BatchAssembler("logs@n1", max_records=100, max_wait_s=1.0)
    assembler.add("noisy", records((0, 10), (10, 20)), safe_offset=20, now=0.0, catch_up=True)
    assembler.add("quiet", records((0, 30)), safe_offset=30, now=0.5)
    assert assembler.next_deadline() == 1.0  # the older of the two open batches
    assert assembler.live_waiting  # a quiet line read now would join the open live batch
    live, backlog = assembler.take(now=1.5), assembler.take(now=1.5)
    assert (live.ids, live.offsets, live.catch_up) == (["r0"], {"quiet": 30}, False)
    assert (backlog.ids, backlog.offsets, backlog.catch_up) == (
        ["r0", "r10"],
        {"noisy": 20},
        True,
    )
    assert live.message().catch_up is False
    marked = decode(encode(backlog.message()))
    assert isinstance(marked, EncodedRecords) and marked.catch_up is True
    assert assembler.take(now=9.0) is None


def test_a_file_that_changes_lanes_sends_its_earlier_lines_first() -> None:
    """The offsets tracker expects a file's offsets in send order: when the noisy file's
    backlog is read out and its next lines are live, the catch-up batch holding its
    earlier lines closes at once and is taken before the live batch with the later ones."""
    assembler = BatchAssembler("logs@n1", max_records=100, max_wait_s=1.0)
    assembler.add("quiet", records((0, 30)), safe_offset=30, now=0.0)
    assembler.add("noisy", records((0, 10)), safe_offset=10, now=0.0, catch_up=True)
    assembler.add("noisy", records((10, 20)), safe_offset=20, now=0.1)  # caught up: live
    assert assembler.next_deadline() == 0.0  # the closed catch-up batch is ready
    backlog = assembler.take(now=0.1)
    assert (backlog.catch_up, backlog.offsets) == (True, {"noisy": 10})
    live = assembler.take(now=1.0)
    assert (live.catch_up, live.ids, live.offsets) == (
        False,
        ["r0", "r10"],
        {"quiet": 30, "noisy": 20},
    )


def test_a_live_batch_goes_past_catch_up_batches_held_back() -> None:
    """While the caller keeps catch-up batches back (``catch_up=False``), a live batch of
    other files still goes; one with lines of a file whose earlier lines wait does not."""
    assembler = BatchAssembler("logs@n1", max_records=2, max_wait_s=1.0)
    assembler.add("noisy", records((0, 10), (10, 20)), safe_offset=20, now=0.0, catch_up=True)
    assembler.add("quiet", records((0, 30)), safe_offset=30, now=0.0)
    assert assembler.catch_up_ready == 1
    assert assembler.next_deadline(catch_up=False) == 1.0  # only the live batch counts
    assert assembler.take(now=0.5, catch_up=False) is None  # not due yet
    live = assembler.take(now=1.0, catch_up=False)
    assert (live.catch_up, live.offsets) == (False, {"quiet": 30})
    assert assembler.take(now=1.0, catch_up=False) is None
    assert assembler.next_deadline(catch_up=False) is None  # nothing to wake up for

    assembler.add("noisy", records((20, 30)), safe_offset=30, now=1.0)  # now live
    assert assembler.take(now=9.0, catch_up=False) is None  # its earlier lines go first
    assert assembler.take(now=9.0).catch_up is True
    assert assembler.take(now=9.0).offsets == {"noisy": 30}
