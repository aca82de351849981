"""Record batches and telemetry over real ZeroMQ ipc:// sockets and real processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from kk_common.envelope import (
    Ack,
    AckStatus,
    ComponentStatus,
    RecordBatch,
    Telemetry,
    decode,
    encode,
)
from kk_common.ipc import (
    SHIPPER_INGEST_SOCKET,
    TELEMETRY_SOCKET,
    BatchReceiver,
    BatchSender,
    IpcEndpointInUse,
    IpcPathTooLong,
    PendingBatches,
    TelemetryPublisher,
    TelemetrySubscriber,
    ipc_endpoint,
)

PEER = Path(__file__).with_name("ipc_peer.py")


@pytest.fixture
def ipc_dir() -> Iterator[Path]:
    # Short on purpose: pytest's tmp_path can exceed the 107-byte socket path limit.
    path = Path(tempfile.mkdtemp(prefix="kk", dir="/tmp"))
    path.chmod(0o777)  # like the pod's emptyDir, shared by containers of any uid
    yield path
    shutil.rmtree(path, ignore_errors=True)


def batch(n: int, records: int = 3) -> RecordBatch:
    return RecordBatch(
        batch_id=f"logs@n1:{n}",
        producer="logs@n1",
        stream="logs",
        records=[{"id": f"r{n}-{i}", "message": "x"} for i in range(records)],
    )


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for ``predicate`` to hold, checking often; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@contextlib.contextmanager
def peer_process(
    endpoint: str, log: Path, *args: str, **popen: object
) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(
        [sys.executable, str(PEER), endpoint, str(log), *args],
        stdout=subprocess.PIPE,
        text=True,
        **popen,  # type: ignore[arg-type]
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_socket_path_over_the_os_limit_is_a_clear_error() -> None:
    long_dir = "/run/" + "k" * 100
    with pytest.raises(IpcPathTooLong) as error:
        ipc_endpoint(long_dir, SHIPPER_INGEST_SOCKET)
    message = str(error.value)
    assert "107" in message
    assert "KILLKRILL_IPC_DIR" in message
    assert ipc_endpoint("/run/killkrill", "shipper.sock") == "ipc:///run/killkrill/shipper.sock"


def test_batches_are_acknowledged_and_leave_the_window(ipc_dir: Path) -> None:
    async def story() -> None:
        ctx = zmq.asyncio.Context()
        endpoint = ipc_endpoint(ipc_dir, SHIPPER_INGEST_SOCKET)
        receiver = BatchReceiver(ctx, endpoint)
        acked: list[tuple[str, object]] = []
        sender = BatchSender(
            ctx,
            endpoint,
            pending=PendingBatches(),
            on_ack=lambda a, b: acked.append((a.batch_id, b.context)),
        )
        runner = asyncio.create_task(sender.run())

        async def shipper() -> None:
            while True:
                incoming = await receiver.receive()
                receiver.acknowledge(
                    incoming, Ack(batch_id=incoming.batch.batch_id, status=AckStatus.STORED)
                )

        serving = asyncio.create_task(shipper())
        for n in range(5):
            await sender.send(batch(n), context={"offset": n * 100})
        await until(lambda: len(acked) == 5)
        assert acked == [(f"logs@n1:{n}", {"offset": n * 100}) for n in range(5)]
        assert len(sender.pending) == 0
        runner.cancel()
        serving.cancel()
        sender.close()
        receiver.close()
        ctx.term()

    asyncio.run(story())


def test_socket_file_is_for_its_owner_and_group_only(ipc_dir: Path) -> None:
    ctx = zmq.asyncio.Context()
    receiver = BatchReceiver(ctx, ipc_endpoint(ipc_dir, SHIPPER_INGEST_SOCKET))
    mode = (ipc_dir / SHIPPER_INGEST_SOCKET).stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660
    receiver.close()
    ctx.term()


def test_a_socket_left_by_a_killed_predecessor_is_replaced(ipc_dir: Path) -> None:
    path = ipc_dir / SHIPPER_INGEST_SOCKET
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: as after a SIGKILL
    ctx = zmq.asyncio.Context()
    receiver = BatchReceiver(ctx, ipc_endpoint(ipc_dir, SHIPPER_INGEST_SOCKET))
    assert can_connect(path)
    receiver.close()
    ctx.term()


def test_a_live_listener_is_never_taken_over(ipc_dir: Path) -> None:
    endpoint = ipc_endpoint(ipc_dir, SHIPPER_INGEST_SOCKET)
    ctx = zmq.asyncio.Context()
    first = BatchReceiver(ctx, endpoint)
    with pytest.raises(IpcEndpointInUse, match="another process is listening"):
        BatchReceiver(ctx, endpoint)
    assert can_connect(ipc_dir / SHIPPER_INGEST_SOCKET)  # still the first one's
    first.close()
    ctx.term()


def test_a_path_that_is_not_a_socket_is_refused_not_deleted(ipc_dir: Path) -> None:
    path = ipc_dir / TELEMETRY_SOCKET
    path.write_text("an operator's file")
    ctx = zmq.asyncio.Context()
    with pytest.raises(IpcEndpointInUse, match="is not a socket"):
        TelemetrySubscriber(ctx, ipc_endpoint(ipc_dir, TELEMETRY_SOCKET))
    assert path.read_text() == "an operator's file"
    ctx.term()


def can_connect(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def test_shipper_killed_mid_stream_loses_no_batch(ipc_dir: Path) -> None:
    """The first shipper acknowledges 2 of 5 batches and is SIGKILLed; the producer
    re-sends exactly the other 3 to the next shipper, and all 5 end acknowledged."""
    endpoint = ipc_endpoint(ipc_dir, SHIPPER_INGEST_SOCKET)
    first_log, second_log = ipc_dir / "first.log", ipc_dir / "second.log"

    async def story() -> None:
        ctx = zmq.asyncio.Context()
        acked: list[str] = []
        sender = BatchSender(
            ctx,
            endpoint,
            pending=PendingBatches(resend_after_s=30),  # only the reconnect can explain a resend
            on_ack=lambda a, _: acked.append(a.batch_id),
        )
        runner = asyncio.create_task(sender.run())
        with peer_process(endpoint, first_log, "--ack-first", "2") as first:
            for n in range(5):
                await sender.send(batch(n))
            await until(lambda: len(lines(first_log)) == 5)
            await until(lambda: len(acked) == 2)
            first.send_signal(signal.SIGKILL)
            first.wait()
        with peer_process(endpoint, second_log):
            await until(lambda: len(acked) == 5)
        assert sorted(acked) == [f"logs@n1:{n}" for n in range(5)]
        assert sorted(lines(second_log)) == ["logs@n1:2", "logs@n1:3", "logs@n1:4"]
        assert len(sender.pending) == 0
        runner.cancel()
        sender.close()
        ctx.term()

    asyncio.run(story())


def test_unanswered_batch_is_resent_after_its_timeout(ipc_dir: Path) -> None:
    endpoint = ipc_endpoint(ipc_dir, SHIPPER_INGEST_SOCKET)
    log = ipc_dir / "peer.log"

    async def story() -> None:
        ctx = zmq.asyncio.Context()
        sender = BatchSender(
            ctx, endpoint, pending=PendingBatches(resend_after_s=0.2), on_ack=lambda a, b: None
        )
        runner = asyncio.create_task(sender.run())
        with peer_process(endpoint, log, "--ack-first", "0"):
            await sender.send(batch(1))
            await until(lambda: lines(log).count("logs@n1:1") >= 3)
        assert sender.resent >= 2
        assert len(sender.pending) == 1
        runner.cancel()
        sender.close()
        ctx.term()

    asyncio.run(story())


def test_full_window_holds_the_producer_until_an_ack(ipc_dir: Path) -> None:
    async def story() -> None:
        ctx = zmq.asyncio.Context()
        endpoint = ipc_endpoint(ipc_dir, SHIPPER_INGEST_SOCKET)
        receiver = BatchReceiver(ctx, endpoint)
        sender = BatchSender(
            ctx, endpoint, pending=PendingBatches(max_batches=2), on_ack=lambda a, b: None
        )
        runner = asyncio.create_task(sender.run())
        await sender.send(batch(1))
        await sender.send(batch(2))
        third = asyncio.create_task(sender.send(batch(3)))
        first = await receiver.receive()
        await receiver.receive()
        assert not third.done()
        assert len(sender.pending) == 2
        receiver.acknowledge(first, Ack(batch_id=first.batch.batch_id, status=AckStatus.STORED))
        await asyncio.wait_for(third, 10)
        assert [b.batch_id for b in sender.pending] == ["logs@n1:2", "logs@n1:3"]
        runner.cancel()
        sender.close()
        receiver.close()
        ctx.term()

    asyncio.run(story())


def test_unknown_major_version_is_counted_and_the_reader_carries_on(ipc_dir: Path) -> None:
    async def story() -> None:
        ctx = zmq.asyncio.Context()
        endpoint = ipc_endpoint(ipc_dir, SHIPPER_INGEST_SOCKET)
        receiver = BatchReceiver(ctx, endpoint)
        raw = ctx.socket(zmq.DEALER)
        raw.connect(endpoint)
        _, payload = encode(batch(1))
        await raw.send_multipart([b"kk.v3", payload])
        await raw.send_multipart([b"garbage"])
        await raw.send_multipart(encode(batch(2)))
        incoming = await asyncio.wait_for(receiver.receive(), 10)
        assert incoming.batch.batch_id == "logs@n1:2"
        assert receiver.refused == {"unsupported_version": 1, "malformed": 1}
        raw.close(linger=0)
        receiver.close()
        ctx.term()

    asyncio.run(story())


POD_FS_GROUP = 23456
"""Stands for the pod's fsGroup: the emptyDir's group, a supplementary group of every
container."""


def _producer_as_nobody(endpoint: str, socket_file: Path, groups: list[int]) -> None:
    """Child process body: drop to uid/gid 65534 with ``groups``, send one batch, exit 0 if
    stored, 3 if the socket refused the connection for permissions."""
    code = 1
    try:
        os.setgroups(groups)
        os.setgid(65534)
        os.setuid(65534)
        deadline = time.monotonic() + 15
        while not socket_file.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(socket_file))
        except PermissionError:
            os._exit(3)
        probe.close()
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.RCVTIMEO, 15000)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send_multipart(encode(RecordBatch("b-nobody", "p", "logs", [{"id": "x"}])))
        answer = decode(sock.recv_multipart())
        code = 0 if isinstance(answer, Ack) and answer.status is AckStatus.STORED else 2
    finally:
        os._exit(code)


def _pod_shared_dir(ipc_dir: Path) -> None:
    """Make ``ipc_dir`` look like an emptyDir under a pod fsGroup: group-owned, setgid."""
    os.chown(ipc_dir, 0, POD_FS_GROUP)
    ipc_dir.chmod(0o2770)


@pytest.mark.skipif(os.geteuid() != 0, reason="running a peer as another user needs root")
def test_producer_running_as_another_user_of_the_pod_reaches_the_shipper(ipc_dir: Path) -> None:
    """The shipper binds as root; a producer running as uid 65534 but sharing the pod's
    fsGroup connects and is answered.

    The producer is a forked child (not a new interpreter) so that it needs no access to
    the test's Python installation, only to the socket."""
    _pod_shared_dir(ipc_dir)
    endpoint = ipc_endpoint(ipc_dir, SHIPPER_INGEST_SOCKET)
    child = os.fork()
    if child == 0:
        _producer_as_nobody(endpoint, ipc_dir / SHIPPER_INGEST_SOCKET, [POD_FS_GROUP])

    async def story() -> None:
        ctx = zmq.asyncio.Context()
        receiver = BatchReceiver(ctx, endpoint)
        incoming = await asyncio.wait_for(receiver.receive(), 15)
        receiver.acknowledge(incoming, Ack(batch_id="b-nobody", status=AckStatus.STORED))
        _, status = await asyncio.to_thread(os.waitpid, child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        receiver.close()
        ctx.term()

    asyncio.run(story())


@pytest.mark.skipif(os.geteuid() != 0, reason="running a peer as another user needs root")
def test_a_process_outside_the_pod_cannot_connect(ipc_dir: Path) -> None:
    """Another user of the node, not in the pod's group, is refused by the file's mode, so
    it can neither inject records nor read acknowledgements. (The directory is opened to
    it on purpose: the socket's own mode must be enough.)"""
    _pod_shared_dir(ipc_dir)
    ipc_dir.chmod(0o2777)
    endpoint = ipc_endpoint(ipc_dir, SHIPPER_INGEST_SOCKET)
    ctx = zmq.asyncio.Context()
    receiver = BatchReceiver(ctx, endpoint)
    child = os.fork()
    if child == 0:
        _producer_as_nobody(endpoint, ipc_dir / SHIPPER_INGEST_SOCKET, [])
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 3
    receiver.close()
    ctx.term()


def test_telemetry_reaches_the_subscriber(ipc_dir: Path) -> None:
    async def story() -> None:
        ctx = zmq.asyncio.Context()
        endpoint = ipc_endpoint(ipc_dir, TELEMETRY_SOCKET)
        subscriber = TelemetrySubscriber(ctx, endpoint)
        publisher = TelemetryPublisher(ctx, endpoint)
        sample = Telemetry(
            component="shipper", node="n1", sent_at_unix=1.0, status=ComponentStatus(ready=True)
        )
        receiving = asyncio.create_task(subscriber.receive())
        # PUB/SUB drops until the subscription has propagated: publish until heard.
        deadline = time.monotonic() + 10
        while not receiving.done() and time.monotonic() < deadline:
            publisher.publish(sample)
            await asyncio.sleep(0.02)
        assert receiving.done()
        assert receiving.result() == sample
        publisher.close()
        subscriber.close()
        ctx.term()

    asyncio.run(story())


def test_published_problems_never_carry_a_secret(ipc_dir: Path) -> None:
    """Status problems quote error texts (a library's, a receiver's): the keys are redacted
    before they leave the container, in every form."""
    key = "PENG-AB12-CD34-EF56-GH78-IJ90"

    async def story() -> None:
        ctx = zmq.asyncio.Context()
        endpoint = ipc_endpoint(ipc_dir, TELEMETRY_SOCKET)
        subscriber = TelemetrySubscriber(ctx, endpoint)
        publisher = TelemetryPublisher(ctx, endpoint, secrets=[key])
        leaky = Telemetry(
            component="shipper",
            node="n1",
            sent_at_unix=1.0,
            status=ComponentStatus(
                ready=False,
                detail=f"Illegal header value b'Bearer {key}'",
                problems=(f"HTTP 401: bad token {key!r}", "queue full"),
            ),
        )
        receiving = asyncio.create_task(subscriber.receive())
        deadline = time.monotonic() + 10
        while not receiving.done() and time.monotonic() < deadline:
            publisher.publish(leaky)
            await asyncio.sleep(0.02)
        heard = receiving.result()
        assert key not in repr(heard)
        assert heard.status.detail == "Illegal header value b'Bearer [REDACTED]'"
        assert heard.status.problems == ("HTTP 401: bad token '[REDACTED]'", "queue full")
        publisher.close()
        subscriber.close()
        ctx.term()

    asyncio.run(story())
