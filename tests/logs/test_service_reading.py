"""When the service reads what inotify reported written, and how fairly: real files, the
service's steps driven by hand with clocks the test moves, a sender that keeps what it is
given (decoded as the shipper would read it) and always has room."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import zmq.asyncio

from kk_common.envelope import Ack, AckStatus
from kk_logs.app import CATCH_UP_BATCHES_IN_FLIGHT, READ_ROUND_BUDGET_BYTES, LogsService
from tests.logs.test_service_records import RecordingSender, reading_config

TS = "2026-12-02T10:00:00.123456789Z"


class Clocks:
    """A wall clock and a monotonic clock that the test moves."""

    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 100.0


def line(text: str) -> bytes:
    return f"{TS} stdout F {text}\n".encode()


def log_file(root: Path, pod: str, first: bytes) -> Path:
    path = root / "pods" / f"shop_{pod}_0b5e6f9c-1111-2222-3333-44445555{len(pod):04d}" / "app"
    path.mkdir(parents=True)
    (path / "0.log").write_bytes(first)
    return path / "0.log"


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def make_service(tmp_path: Path, clocks: Clocks) -> Iterator:
    made: list[tuple[LogsService, object, zmq.asyncio.Context]] = []

    def make(**logs: object) -> LogsService:
        config = reading_config(tmp_path, str(tmp_path / "pods" / "*" / "*" / "*.log"), **logs)
        context = zmq.asyncio.Context()
        service = LogsService(
            config, context=context, clock=lambda: clocks.wall, monotonic=lambda: clocks.mono
        )
        made.append((service, service.sender, context))
        service.sender = RecordingSender()  # type: ignore[assignment]
        return service

    yield make
    for service, real_sender, context in made:
        real_sender.close()  # type: ignore[attr-defined]
        service.telemetry.close()
        service.tailer.close()
        service.offsets.close()
        context.destroy(linger=0)


def sent_messages(service: LogsService) -> list[list[str]]:
    """The messages of the records in each batch sent so far."""
    sender: RecordingSender = service.sender  # type: ignore[assignment]
    return [
        [json.loads(body)["message"] for body in batch.record_bodies()] for batch in sender.sent
    ]


def written(service: LogsService, *paths: Path, at: float) -> None:
    """What the service's watch task does with an inotify wake-up naming ``paths``."""
    service.tailer.changed([os.path.realpath(p) for p in paths], at)


def test_a_quiet_write_is_read_when_the_open_batch_is_due(
    make_service, clocks: Clocks, tmp_path: Path
) -> None:
    """Lines read now would only wait in the open batch: a write to a quiet file while a
    batch is open is read at the batch's deadline, and its line still leaves with that
    batch. With no batch open, a write is read at once (its line opens one)."""
    a = log_file(tmp_path, "a", line("a0"))
    b = log_file(tmp_path, "b", line("b0"))
    logs = make_service()
    asyncio.run(logs.step())  # the first lines open a batch at 100.0 (200 ms to fill)
    assert sent_messages(logs) == []

    append(a, line("a1"))
    clocks.mono = 100.05
    written(logs, a, at=clocks.mono)
    assert not logs.read_writes_at_once([logs.tailer])

    clocks.mono = 100.2  # the open batch's deadline: the loop wakes and reads then
    asyncio.run(logs.step())
    assert sent_messages(logs) == [["a0", "b0", "a1"]]

    append(b, line("b1"))
    clocks.mono = 100.3
    written(logs, b, at=clocks.mono)
    assert logs.read_writes_at_once([logs.tailer])  # no batch open


def test_lines_read_late_wait_no_longer_than_from_when_they_were_written(
    make_service, clocks: Clocks, tmp_path: Path
) -> None:
    """A deferred read can bring more lines than the open batch holds: the batch they open
    is due ``batch_max_wait`` after their writes were noticed, not after they were read."""
    a = log_file(tmp_path, "a", line("a0"))
    b = log_file(tmp_path, "b", line("b0"))
    logs = make_service(batch_max_records=4)
    asyncio.run(logs.step())  # [a0, b0] open at 100.0

    append(a, line("a1") + line("a2"))
    append(b, line("b1") + line("b2"))
    clocks.mono = 100.1
    written(logs, a, b, at=clocks.mono)
    assert not logs.read_writes_at_once([logs.tailer])

    clocks.mono = 100.2
    asyncio.run(logs.step())
    assert sent_messages(logs) == [["a0", "b0", "a1", "a2"]]  # full, sent at its deadline
    assert logs.assembler.next_deadline() == pytest.approx(100.1 + 0.2)  # [b1, b2]

    clocks.mono = 100.3
    asyncio.run(logs.step())
    assert sent_messages(logs)[1:] == [["b1", "b2"]]


def test_a_write_to_a_busy_file_is_read_at_once(
    make_service, clocks: Clocks, tmp_path: Path
) -> None:
    """A batch may fill before its deadline: writes are read at once when a busy file is
    among them (its reads bring at least BUSY_CHUNK_BYTES of late), not only quiet ones."""
    busy = log_file(tmp_path, "busy", b"".join(line(f"b{n} " + "x" * 200) for n in range(100)))
    quiet = log_file(tmp_path, "quiet", line("q0"))
    logs = make_service()
    asyncio.run(logs.step())  # everything read; a batch is open
    assert logs.assembler.next_deadline() is not None

    append(quiet, line("q1"))
    written(logs, quiet, at=clocks.mono)
    assert not logs.read_writes_at_once([logs.tailer])
    append(busy, line("b100"))
    written(logs, busy, at=clocks.mono)
    assert logs.read_writes_at_once([logs.tailer])


def test_writes_to_as_many_files_as_a_batch_holds_are_read_at_once(
    make_service, clocks: Clocks, tmp_path: Path
) -> None:
    """Each file written holds a line at least: when as many files wait as a batch holds
    records, the open batch would fill before its deadline, so they are read at once."""
    a = log_file(tmp_path, "a", line("a0"))
    b = log_file(tmp_path, "b", line("b0")[:-1])  # its first line is not complete yet
    logs = make_service(batch_max_records=2)
    asyncio.run(logs.step())  # [a0] open
    assert logs.assembler.next_deadline() is not None

    append(a, line("a1"))
    written(logs, a, at=clocks.mono)
    assert not logs.read_writes_at_once([logs.tailer])
    append(b, b"\n")
    written(logs, b, at=clocks.mono)
    assert logs.read_writes_at_once([logs.tailer])


def test_a_quiet_file_is_batched_within_two_steps_behind_a_noisy_backlog(
    make_service, clocks: Clocks, tmp_path: Path
) -> None:
    """Fairness at the service level: while a noisy file has megabytes unread, each line
    written to a quiet file is read in the next step and sent in a batch by the step
    after it at the latest; the noisy file is read a slice at a time meanwhile."""
    noisy = log_file(tmp_path, "noisy", b"".join(line(f"n{n} " + "y" * 200) for n in range(40_000)))
    quiet = log_file(tmp_path, "quiet", line("q0"))
    logs = make_service()
    asyncio.run(logs.step())
    for n in range(1, 6):
        append(quiet, line(f"q{n}"))
        written(logs, quiet, at=clocks.mono)
        assert logs.tailer.more_to_read  # the loop steps again at once, wake-up or not
        clocks.mono += 0.25  # every batch open before this step is due now
        asyncio.run(logs.step())
        clocks.mono += 0.25
        asyncio.run(logs.step())
        shipped = {message for batch in sent_messages(logs) for message in batch}
        assert f"q{n}" in shipped
        assert logs.tailer.more_to_read
    assert logs.counters.bytes_read <= 12 * READ_ROUND_BUDGET_BYTES
    assert noisy.stat().st_size > 8 * 1024 * 1024


def acknowledge_sent(service: LogsService, already: int) -> int:
    """What the shipper's acks do for every batch sent after the first ``already``; returns
    how many batches have been acknowledged now."""
    sender: RecordingSender = service.sender  # type: ignore[assignment]
    for message in sender.sent[already:]:
        ack = Ack(batch_id=message.batch_id, status=AckStatus.STORED)
        service._acknowledged(ack, SimpleNamespace(records=len(message)))  # type: ignore[arg-type]
    return len(sender.sent)


def test_a_noisy_backlog_is_sent_as_catch_up_and_a_quiet_file_as_live(
    make_service, clocks: Clocks, tmp_path: Path
) -> None:
    """Lines from a file whose read slice filled (a backlog) go in batches marked catch-up,
    which the shipper delivers after live ones; a quiet file's lines are never in them.
    At most CATCH_UP_BATCHES_IN_FLIGHT catch-up batches are unacknowledged at once; the
    others wait, built, until acks come. The backlog's last, short read is live again."""
    log_file(tmp_path, "noisy", b"".join(line(f"n{n} " + "y" * 200) for n in range(6_000)))
    quiet = log_file(tmp_path, "quiet", line("q0"))
    logs = make_service()
    sender: RecordingSender = logs.sender  # type: ignore[assignment]
    for _ in range(6):  # a slice of the backlog per step: more batches than may be out
        asyncio.run(logs.step())
    assert [m.catch_up for m in sender.sent].count(True) == CATCH_UP_BATCHES_IN_FLIGHT
    assert logs.assembler.catch_up_ready  # the rest of the backlog read so far waits, built
    append(quiet, line("q1"))
    written(logs, quiet, at=clocks.mono)

    acknowledged = 0
    for _ in range(40):
        acknowledged = acknowledge_sent(logs, acknowledged)
        clocks.mono += 0.25
        asyncio.run(logs.step())
    lanes = [
        (batch.catch_up, {json.loads(body)["message"][0] for body in batch.record_bodies()})
        for batch in sender.sent
    ]
    catch_up = [files for marked, files in lanes if marked]
    live = [files for marked, files in lanes if not marked]
    assert catch_up and all(files == {"n"} for files in catch_up)
    assert any("q" in files for files in live)
    assert any("n" in files for files in live)  # the short read at the end of the backlog
    shipped = [message for batch in sent_messages(logs) for message in batch]
    assert len(shipped) == 6_000 + 2  # every line once
    assert sum(message.startswith("n") for message in shipped) == 6_000
