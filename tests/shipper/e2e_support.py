"""Real-process harness for the shipper's end-to-end tests.

`ShipperProcess` runs ``killkrill-shipper`` with a config written for the test (short IPC
directory, its own state directory, pointed at a `ReceiverProcess`); `Producer` plays a
logs/metrics container: a `BatchSender` on its own event loop thread that keeps every
unacknowledged batch and re-sends it, exactly as the real producers do.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import yaml
import zmq.asyncio

from kk_common.envelope import Ack, EncodedRecords, RecordBatch, encode_record_json, log_record_id
from kk_common.ipc import SHIPPER_INGEST_SOCKET, BatchSender, PendingBatches, ipc_endpoint
from kk_receiver.testing import ReceiverProcess, wait_until

LICENSE_KEY = "PENG-TEST-E2E0-0000-0000-0001"
SHIPPER = Path(sys.executable).with_name("killkrill-shipper")


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated recursively with ``extra``."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def log_records(count: int, *, file_identity: str = "f1", message: str = "hello") -> list[dict]:
    """Receiver-shaped log records with deterministic ids."""
    return [
        {
            "id": log_record_id(file_identity, offset * 100),
            "timestamp": "2026-11-26T10:00:00.123456789Z",
            "log_level": "info",
            "message": f"{message} {offset}",
            "service_name": "checkout",
            "hostname": "node-e2e",
            "ecs_version": "8.0",
            "labels": {"k8s_namespace": "shop", "stream": "stdout"},
            "tags": [],
        }
        for offset in range(count)
    ]


class ShipperProcess:
    """``killkrill-shipper`` as a subprocess with a test configuration."""

    def __init__(
        self,
        receiver: ReceiverProcess,
        *,
        output: Mapping[str, Any] | None = None,
        shipper: Mapping[str, Any] | None = None,
        url: str | None = None,
    ) -> None:
        self.receiver = receiver
        # ipc:// paths are limited to 107 bytes: keep the directory short.
        self.dir = Path(tempfile.mkdtemp(prefix="kks", dir="/tmp"))
        self.ipc_dir = self.dir / "ipc"
        self.ipc_dir.mkdir()
        self.state_dir = self.dir / "state"
        self.log_path = self.dir / "shipper.log"
        self.endpoint = ipc_endpoint(self.ipc_dir, SHIPPER_INGEST_SOCKET)
        logs_output = merge(
            {
                "url": url or receiver.https_url,
                "flush_interval": "200ms",
                "tls": {"ca_file": str(receiver.ca_file)},
                "retry": {"initial_backoff": "100ms", "max_backoff": "1s"},
            },
            output or {},
        )
        self.config = {
            "agent": {
                "node_name": "node-e2e",
                "cluster_name": "e2e",
                "ipc_dir": str(self.ipc_dir),
                "state_dir": str(self.state_dir),
                "log_level": "debug",
            },
            "logs": {"output": logs_output},
            "metrics": {"enabled": False},
            "shipper": merge({"telemetry_interval": "1s", "drain_timeout": "5s"}, shipper or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        weakref.finalize(self, shutil.rmtree, self.dir, True)

    def env(self) -> dict[str, str]:
        config_path = self.dir / "config.yaml"
        config_path.write_text(yaml.safe_dump(self.config))
        keep = {k: v for k, v in os.environ.items() if not k.startswith("KILLKRILL_")}
        return {**keep, "KILLKRILL_CONFIG": str(config_path), "KILLKRILL_LICENSE_KEY": LICENSE_KEY}

    def start(self) -> ShipperProcess:
        socket_file = self.ipc_dir / SHIPPER_INGEST_SOCKET
        socket_file.unlink(missing_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([str(SHIPPER)], env=self.env(), stdout=log, stderr=log)
        log.close()
        wait_until(lambda: socket_file.exists() or self.process.poll() is not None, timeout=20)
        if self.process.poll() is not None:
            raise RuntimeError(f"shipper exited at start:\n{self.log_tail()}")
        return self

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The shipper's JSON log lines (optionally only events called ``name``)."""
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if name is None or line.get("event") == name:
                lines.append(line)
        return lines

    def log_tail(self, count: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-count:])

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SHIPPER), *args], env=self.env(), capture_output=True, text=True, check=False
        )

    def close(self) -> None:
        """Stop the process (SIGKILL if still running). The directory stays until this
        object is collected, so a test can still read logs or run the CLI on its state."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> ShipperProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class Producer:
    """A producer container: sends batches, keeps them until acknowledged, re-sends."""

    def __init__(
        self,
        endpoint: str,
        *,
        resend_after_s: float = 1.0,
        max_resend_after_s: float = 2.0,
        window: int = 64,
    ) -> None:
        self.acked: list[Ack] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._sequence = 0
        self._position = 0

        async def create() -> BatchSender:
            self._context = zmq.asyncio.Context()
            sender = BatchSender(
                self._context,
                endpoint,
                pending=PendingBatches(
                    resend_after_s=resend_after_s,
                    max_resend_after_s=max(max_resend_after_s, resend_after_s),
                    max_batches=window,
                ),
                on_ack=lambda ack, _: self.acked.append(ack),
            )
            self._runner = asyncio.ensure_future(sender.run())
            return sender

        self._sender = self._call(create())

    def _call(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(30)

    def send(self, records: list[dict], stream: str = "logs") -> str:
        """Send one batch (waits while the window is full); returns its batch id."""
        self._sequence += 1
        batch_id = f"producer:{self._sequence}"
        batch = RecordBatch(batch_id=batch_id, producer="producer", stream=stream, records=records)
        self._call(self._sender.send(batch))
        return batch_id

    def send_encoded(self, records: list[dict], *, source: str = "f1") -> str:
        """Send one batch as a current producer does (envelope v2, records encoded once):
        record ``i`` of this producer's stream is at position ``i`` of ``source``."""
        self._sequence += 1
        batch_id = f"producer:{self._sequence}"
        first = self._position
        self._position += len(records)
        batch = EncodedRecords(
            batch_id=batch_id,
            producer="producer",
            stream="logs",
            ids=[record["id"] for record in records],
            bodies=b"".join(encode_record_json(record) + b"\n" for record in records),
            sources=[source],
            positions=[(0, first + index) for index in range(len(records))],
            claims=[(0, first, self._position)],
        )
        self._call(self._sender.send(batch))
        return batch_id

    def send_soon(self, records: list[dict]) -> Future[Any]:
        """Like `send`, without waiting for room in the window."""
        self._sequence += 1
        batch = RecordBatch(f"producer:{self._sequence}", "producer", "logs", records)
        return asyncio.run_coroutine_threadsafe(self._sender.send(batch), self._loop)

    @property
    def pending(self) -> int:
        return len(self._sender.pending)

    @property
    def resent(self) -> int:
        """Batches this producer has re-sent (on reconnection or at a re-send deadline)."""
        return self._sender.resent

    def acked_ids(self) -> set[str]:
        return {ack.batch_id for ack in self.acked}

    def close(self) -> None:
        async def stop() -> None:
            self._runner.cancel()
            self._sender.close()
            self._context.term()

        self._call(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RelayThread:
    """A `UdpRelay` (a UDP path that can be cut) on its own event loop thread, for tests
    whose other parts are processes."""

    def __init__(self, target_port: int) -> None:
        from udp_relay import UdpRelay

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.relay = asyncio.run_coroutine_threadsafe(
            UdpRelay(("127.0.0.1", target_port)).start(), self._loop
        ).result(10)

    @property
    def port(self) -> int:
        return self.relay.port

    def block(self) -> None:
        self._loop.call_soon_threadsafe(setattr, self.relay, "dropping", True)

    def unblock(self) -> None:
        self._loop.call_soon_threadsafe(setattr, self.relay, "dropping", False)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.relay.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TelemetryListener:
    """Plays the health container: binds the telemetry socket and keeps the latest
    `Telemetry` of each component (on its own event loop thread)."""

    def __init__(self, ipc_dir: Path) -> None:
        from kk_common.ipc import TELEMETRY_SOCKET, TelemetrySubscriber

        self.latest: Any = None
        self.by_component: dict[str, Any] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def create() -> TelemetrySubscriber:
            self._context = zmq.asyncio.Context()
            return TelemetrySubscriber(self._context, ipc_endpoint(ipc_dir, TELEMETRY_SOCKET))

        self._subscriber = asyncio.run_coroutine_threadsafe(create(), self._loop).result(10)

        async def listen() -> None:
            while True:
                self.latest = await self._subscriber.receive()
                self.by_component[self.latest.component] = self.latest

        self._task = asyncio.run_coroutine_threadsafe(listen(), self._loop)

    def sample(self, name: str, *, component: str | None = None, **labels: str) -> float | None:
        """The value of ``name`` with ``labels`` in the latest telemetry (of ``component``)."""
        latest = self.latest if component is None else self.by_component.get(component)
        if latest is None:
            return None
        for sample in latest.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
        return None

    def close(self) -> None:
        """Stop listening and release the socket and its context (a ZeroMQ context left to
        the garbage collector blocks in term() while a socket is open)."""
        self._task.cancel()

        async def shut() -> None:
            self._subscriber.close()
            self._context.term()

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
