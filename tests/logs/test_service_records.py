"""The service's record path without a shipper: chunks in, `EncodedRecords` out.

A `LogsService` with its sender replaced by one that keeps each message as the shipper
would read it (encoded, then decoded). Times are fixed; nothing is sent over a socket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq.asyncio

from kk_common.config import AgentConfig
from kk_common.envelope import EncodedRecords, decode, encode, log_record_id
from kk_common.ipc import PendingBatches
from kk_common.k8s.events import Added, Modified
from kk_common.k8s.model import pod_from_dict
from kk_logs.app import LogsService
from kk_logs.metadata import PodCache
from kk_logs.tailing import Chunk, FileIdentity
from tests.logs.fake_apiserver import make_pod

LICENSE_KEY = "PENG-A1B2-C3D4-E5F6-G7H8-J9K0"
UID = "0b5e6f9c-1111-2222-3333-444455556666"
PATH = f"/var/log/pods/shop_checkout-1_{UID}/app/0.log"
FILE = FileIdentity(dev=2049, ino=42, fingerprint="9f86d081884c7d65", head_len=61)
TS = "2026-12-02T10:00:00.123456789Z"


def reading_config(tmp_path: Path, glob: str) -> AgentConfig:
    """A configuration that reads ``glob`` without Kubernetes metadata, state under
    ``tmp_path``."""
    return AgentConfig.model_validate(
        {
            "agent": {
                "node_name": "node-1",
                "cluster_name": "prod",
                "state_dir": str(tmp_path / "state"),
                "ipc_dir": str(tmp_path),
            },
            "credentials": {"license_key": LICENSE_KEY},
            "logs": {"paths": [glob], "kubernetes": {"enabled": False}},
        }
    )


class RecordingSender:
    """Stands in for `BatchSender`: keeps every message as the shipper would decode it."""

    def __init__(self) -> None:
        self.sent: list[EncodedRecords] = []
        self.pending = PendingBatches()  # never filled: the window always has room

    async def send(self, batch: Any, context: Any = None) -> None:
        message = decode(encode(batch))
        assert isinstance(message, EncodedRecords)
        self.sent.append(message)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LogsService]:
    config = AgentConfig.model_validate(
        {
            "agent": {
                "node_name": "node-1",
                "cluster_name": "prod",
                "state_dir": str(tmp_path),
                "ipc_dir": str(tmp_path),
            },
            "credentials": {"license_key": LICENSE_KEY},
        }
    )
    pods = PodCache()
    pods.apply(Added(pod_from_dict(make_pod("checkout-1", namespace="shop", uid=UID))), now=0.0)
    context = zmq.asyncio.Context()
    logs = LogsService(
        config, context=context, pods=pods, clock=lambda: 1_800_000_000.0, monotonic=lambda: 10.0
    )
    real_sender = logs.sender
    logs.sender = RecordingSender()  # type: ignore[assignment]
    yield logs
    real_sender.close()
    logs.telemetry.close()
    logs.offsets.close()
    context.destroy(linger=0)


def cri(stream: str, tag: str, content: str) -> bytes:
    return f"{TS} {stream} {tag} {content}\n".encode()


def feed(service: LogsService, offset: int, data: bytes) -> list[EncodedRecords]:
    """Feed one chunk, send what is due (forced) and return the messages sent for it."""
    sender: RecordingSender = service.sender  # type: ignore[assignment]
    before = len(sender.sent)
    service.handle_chunk(Chunk(FILE, PATH, offset, data))
    asyncio.run(service.send_due_batches(force=True))
    return sender.sent[before:]


def records(message: EncodedRecords) -> list[dict[str, Any]]:
    return [json.loads(body) for body in message.record_bodies()]


def test_a_batch_claims_exactly_the_physical_lines_its_records_were_made_of(
    service: LogsService,
) -> None:
    """A stdout P is still open when the stderr line after it ships: its bytes stay
    unclaimed until the batch that carries the joined stdout line claims both halves."""
    first_half = cri("stdout", "P", "first half, ")
    stderr = cri("stderr", "F", "[ERROR] in between")
    second_half = cri("stdout", "F", "second half")
    a, b = len(first_half), len(first_half) + len(stderr)
    c = b + len(second_half)

    (message,) = feed(service, 0, first_half + stderr)
    assert message.sources == [FILE.key]
    assert message.record_ids() == [log_record_id(FILE.key, a)]
    assert (list(message.positions), list(message.claims)) == ([(0, a)], [(0, a, b)])
    (record,) = records(message)
    assert (record["message"], record["log_level"]) == ("[ERROR] in between", "error")
    assert record["labels"]["k8s_pod"] == "checkout-1"

    (message,) = feed(service, b, second_half)
    assert message.record_ids() == [log_record_id(FILE.key, 0)]
    assert (list(message.positions), list(message.claims)) == ([(0, 0)], [(0, 0, a), (0, b, c)])
    (record,) = records(message)
    assert record["message"] == "first half, second half"


def test_new_pod_metadata_makes_a_new_encoder_and_the_same_metadata_reuses_it(
    service: LogsService,
) -> None:
    """Labels are encoded once per file and pod version, and follow a changed pod."""
    one = cri("stdout", "F", "one")
    (message,) = feed(service, 0, one)
    encoder = service.files[FILE.key].encoder
    assert "label_team" not in records(message)[0]["labels"]

    two = cri("stdout", "F", "two")
    feed(service, len(one), two)
    assert service.files[FILE.key].encoder is encoder

    relabelled = make_pod("checkout-1", namespace="shop", uid=UID, labels={"team": "payments"})
    service.pods.apply(Modified(pod_from_dict(relabelled)), now=11.0)
    (message,) = feed(service, len(one) + len(two), cri("stdout", "F", "three"))
    assert service.files[FILE.key].encoder is not encoder
    (record,) = records(message)
    assert (record["message"], record["labels"]["label_team"]) == ("three", "payments")


def test_records_of_an_excluded_pod_are_not_sent_and_claim_nothing(service: LogsService) -> None:
    """Exclusion drops the lines; only their offset moves (no message to the shipper)."""
    excluded = make_pod(
        "checkout-1", namespace="shop", uid=UID, annotations={"killkrill.io/exclude": "true"}
    )
    service.pods.apply(Modified(pod_from_dict(excluded)), now=11.0)
    assert feed(service, 0, cri("stdout", "F", "secret")) == []
    assert service.counters.excluded_lines == 1


def test_a_step_reads_at_most_its_budget_across_all_files(tmp_path: Path) -> None:
    """A catch-up step turns everything it read into records before sending: reading 256
    KiB from each of many files at once held tens of thousands of records in memory. Each
    step reads at most READ_ROUND_BUDGET_BYTES, and the steps together read everything."""
    from kk_logs.app import READ_ROUND_BUDGET_BYTES

    pods_dir = tmp_path / "pods"
    line = cri("stdout", "F", "x" * 200)
    per_file = (600 * 1024 // len(line)) * len(line)
    files = 8  # one unbounded round: 8 x 256 KiB, twice the budget
    for n in range(files):
        log = pods_dir / f"shop_p{n}_{UID[:-1]}{n}" / "app" / "0.log"
        log.parent.mkdir(parents=True)
        log.write_bytes(line * (per_file // len(line)))
    config = reading_config(tmp_path, str(pods_dir / "*/*/*.log"))
    context = zmq.asyncio.Context()
    logs = LogsService(config, context=context, clock=lambda: 1_800_000_000.0)
    try:
        real_sender, recording = logs.sender, RecordingSender()
        recording.pending = real_sender.pending  # type: ignore[attr-defined]  # empty: room
        logs.sender = recording  # type: ignore[assignment]
        reads = []
        while logs.counters.bytes_read < files * per_file and len(reads) < 100:
            before = logs.counters.bytes_read
            asyncio.run(logs.step())
            reads.append(logs.counters.bytes_read - before)
        assert max(reads) <= READ_ROUND_BUDGET_BYTES
        assert sum(reads) == files * per_file
        assert len(reads) >= files * per_file // READ_ROUND_BUDGET_BYTES
    finally:
        real_sender.close()
        logs.telemetry.close()
        logs.offsets.close()
        context.destroy(linger=0)


class Clocks:
    """A wall clock and a monotonic clock that tests move separately."""

    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 100.0


def test_a_backward_wall_clock_step_does_not_hold_a_partial_batch(tmp_path: Path) -> None:
    """Batching waits are durations: after the wall clock steps back an hour (NTP), a
    partial batch still leaves ``batch_max_wait`` after it opened, not an hour later."""
    clocks = Clocks()
    context = zmq.asyncio.Context()
    logs = LogsService(
        reading_config(tmp_path, str(tmp_path / "*.log")),
        context=context,
        clock=lambda: clocks.wall,
        monotonic=lambda: clocks.mono,
    )
    real_sender, recording = logs.sender, RecordingSender()
    logs.sender = recording  # type: ignore[assignment]
    try:
        logs.handle_chunk(Chunk(FILE, PATH, 0, cri("stdout", "F", "one line")))
        asyncio.run(logs.send_due_batches())
        assert recording.sent == []  # the batch is open: 200 ms to fill up

        clocks.wall -= 3600.0
        clocks.mono += 0.25
        asyncio.run(logs.send_due_batches())

        assert [len(message) for message in recording.sent] == [1]
        (record,) = records(recording.sent[0])
        assert record["message"] == "one line"
    finally:
        real_sender.close()
        logs.telemetry.close()
        logs.tailer.close()
        logs.offsets.close()
        context.destroy(linger=0)
