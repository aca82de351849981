"""Ingest holds what a full or locked queue cannot take and acknowledges it once stored.

The stories drive `Ingest.store` and `Ingest.store_held` with explicit times against a real
queue file; the receiver is a recording stand-in for the ZeroMQ socket (the real socket is
covered by the shipper's end-to-end tests).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from kk_common.envelope import Ack, AckStatus, EncodedRecords
from kk_common.ipc import IncomingBatch
from kk_shipper.core.held_batches import HeldBatches
from kk_shipper.ingest import Ingest, StorageThread
from kk_shipper.storage import DurableQueue, record_size
from kk_shipper.telemetry import ShipperMetrics

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class RecordingReceiver:
    """Stands in for `BatchReceiver`: remembers every acknowledgement and its peer."""

    def __init__(self) -> None:
        self.acks: list[tuple[bytes, Ack]] = []

    async def receive(self) -> IncomingBatch:  # pragma: no cover - not used by these stories
        raise NotImplementedError

    def acknowledge(self, incoming: IncomingBatch, ack: Ack) -> None:
        self.acks.append((incoming.peer, ack))

    @property
    def acked_ids(self) -> list[str]:
        return [ack.batch_id for _, ack in self.acks]


def batch(source: str, *offsets: int, stream: str = "logs", peer: bytes = b"p1") -> IncomingBatch:
    ids = [f"{source}@{offset}" for offset in offsets]
    return IncomingBatch(
        peer=peer,
        batch=EncodedRecords(
            batch_id=f"{source}:{offsets[0]}",
            producer="logs@node",
            stream=stream,  # type: ignore[arg-type]
            ids=ids,
            bodies=b"".join(b'{"id":"%s"}\n' % i.encode() for i in ids),
            sources=[source],
            positions=[(0, offset) for offset in offsets],
            claims=[(0, offset, offset + 10) for offset in offsets],
        ),
    )


def room_for(records: int) -> int:
    return records * record_size("f@100", b'{"id":"f@100"}')


class Story:
    def __init__(self, path: Path, *, max_bytes: int, **queue_options: float) -> None:
        self.clock = Clock()
        queue_options.setdefault("other_output_reserve", 0)
        self.queue = DurableQueue(path, max_bytes=max_bytes, **queue_options)
        self.storage = StorageThread()
        self.receiver = RecordingReceiver()
        self.stored: list[str] = []
        self.metrics = ShipperMetrics()
        self.ingest = Ingest(
            self.receiver,  # type: ignore[arg-type]
            self.queue,
            self.storage,
            enabled=["logs", "metrics"],
            on_stored=lambda kind, runs: self.stored.append(kind),
            metrics=self.metrics,
            clock=self.clock,
            monotonic=self.clock,
            new_hold=lambda: HeldBatches(first_retry_s=0.1, max_retry_s=0.5),
        )

    def store(self, incoming: IncomingBatch) -> None:
        asyncio.run(self.ingest.store(incoming))

    def retry_at(self, now: float) -> None:
        self.clock.now = now
        asyncio.run(self.ingest.store_held())

    def deliver_everything(self, kind: str = "logs") -> None:
        seqs = [r.seq for r in self.queue.read(kind, after_seq=0, limit=10_000)]  # type: ignore[arg-type]
        self.queue.complete(kind, seqs, now=self.clock.now)  # type: ignore[arg-type]

    def close(self) -> None:
        self.storage.close()
        self.queue.close()


@pytest.fixture
def story(tmp_path: Path) -> Iterator[Story]:
    s = Story(tmp_path / "queue.db", max_bytes=room_for(3))
    yield s
    s.close()


def test_a_batch_the_full_queue_refuses_is_acknowledged_once_deliveries_free_space(
    story: Story,
) -> None:
    story.store(batch("f", 0, 10, 20))
    assert story.receiver.acked_ids == ["f:0"]

    story.store(batch("f", 30, 40))  # no room: held, not acknowledged
    assert story.receiver.acked_ids == ["f:0"]
    assert story.ingest.blocked == {"logs": "max_bytes"}
    assert len(story.ingest.held["logs"]) == 1

    story.retry_at(T0 + 0.1)  # still full: the next try backs off
    assert story.receiver.acked_ids == ["f:0"]
    assert story.ingest.held["logs"].retry_at() == pytest.approx(T0 + 0.1 + 0.2)

    story.deliver_everything()
    story.retry_at(T0 + 0.3)
    assert story.receiver.acked_ids == ["f:0", "f:30"]
    assert story.ingest.blocked == {}
    assert not story.ingest.held["logs"]
    assert [r.record_id for r in story.queue.read("logs", after_seq=0, limit=10)] == [
        "f@30",
        "f@40",
    ]
    assert story.stored == ["logs", "logs"]


def test_retries_back_off_to_half_a_second_so_space_is_noticed_within_it(story: Story) -> None:
    story.store(batch("f", 0, 10, 20))
    story.store(batch("f", 30))
    now = T0
    waits = []
    for _ in range(5):
        at = story.ingest.held["logs"].retry_at()
        assert at is not None
        waits.append(round(at - now, 3))
        now = at
        story.retry_at(now)
    assert waits == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_batches_arriving_while_others_are_held_are_stored_behind_them_in_order(
    story: Story,
) -> None:
    story.store(batch("f", 0, 10, 20))
    story.store(batch("a", 0))
    story.deliver_everything()
    # Room now, but "a" waits: "b" must not overtake it.
    story.store(batch("b", 0))
    assert story.receiver.acked_ids == ["f:0"]

    story.retry_at(T0 + 0.1)
    assert story.receiver.acked_ids == ["f:0", "a:0", "b:0"]


def test_a_resent_held_batch_keeps_its_place_and_is_acknowledged_to_the_new_connection(
    story: Story,
) -> None:
    story.store(batch("f", 0, 10, 20))
    story.store(batch("a", 0, peer=b"old"))
    story.store(batch("b", 0, peer=b"old"))
    story.store(batch("a", 0, peer=b"new"))  # the producer reconnected and re-sent
    assert len(story.ingest.held["logs"]) == 2

    story.deliver_everything()
    story.retry_at(T0 + 0.1)
    assert story.receiver.acks[1:] == [
        (b"new", Ack(batch_id="a:0", status=AckStatus.STORED)),
        (b"old", Ack(batch_id="b:0", status=AckStatus.STORED)),
    ]


def test_a_full_logs_share_does_not_hold_back_metrics(tmp_path: Path) -> None:
    story = Story(tmp_path / "queue.db", max_bytes=room_for(6), other_output_reserve=0.5)
    try:
        story.store(batch("f", 0, 10, 20))
        story.store(batch("f", 30))  # the logs share (3 records) is used up
        story.store(batch("m", 0, stream="metrics"))
        assert story.receiver.acked_ids == ["f:0", "m:0"]
        assert story.ingest.blocked == {"logs": "output_share"}
    finally:
        story.close()


def test_a_queue_locked_by_another_process_is_waited_out(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    story = Story(path, max_bytes=room_for(100), busy_timeout_s=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # e.g. `killkrill-shipper replay` mid-transaction
        story.store(batch("f", 0))
        assert story.receiver.acked_ids == []
        assert story.ingest.blocked == {"logs": "busy"}

        other.execute("COMMIT")
        story.retry_at(T0 + 0.1)
        assert story.receiver.acked_ids == ["f:0"]
        assert story.ingest.blocked == {}
    finally:
        other.close()
        story.close()


def test_the_hold_is_bounded_and_what_does_not_fit_is_left_to_the_producer(
    tmp_path: Path,
) -> None:
    story = Story(tmp_path / "queue.db", max_bytes=room_for(1))
    story.ingest.held["logs"] = HeldBatches(max_batches=2)
    try:
        story.store(batch("f", 0))
        for source in "abc":
            story.store(batch(source, 0))
        assert len(story.ingest.held["logs"]) == 2
        refused = story.metrics.samples(outputs={}, buffer_size=0, buffer_capacity=0)
        assert any(
            s.name == "killkrill_agent_ingest_refused_total"
            and s.labels.get("reason") == "hold_full"
            for s in refused
        )
    finally:
        story.close()
