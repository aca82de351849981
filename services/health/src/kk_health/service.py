"""Wiring: build the health container from the configuration and run it until SIGTERM.

Three tasks share one event loop: the telemetry receiver (`TelemetrySubscriber` ->
`AgentHealth.receive`), the HTTP server (uvicorn on the socket bound by `build`), and a
tick every ``shipper.telemetry_interval`` that records the container's own process metrics
as the ``health`` component and touches its heartbeat file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import uvicorn
import zmq.asyncio
from prometheus_client import CollectorRegistry

from kk_common.config import AgentConfig
from kk_common.envelope import ComponentStatus, Telemetry
from kk_common.heartbeat import touch_heartbeat
from kk_common.ipc import TELEMETRY_SOCKET, TelemetrySubscriber, ipc_endpoint
from kk_common.jsonlog import log_event
from kk_common.process_metrics import process_samples
from kk_health import __version__
from kk_health.app import create_app
from kk_health.book import AgentHealth, AgentIdentity, expected_components
from kk_health.exposition import TelemetryCollector

__all__ = ["COMPONENT", "HealthService", "build", "stale_after"]

COMPONENT = "health"
STALE_INTERVALS = 3
"""Without ``health.stale_after``, a component is stale after missing this many reports."""

_log = logging.getLogger("kk.health")


def stale_after(config: AgentConfig) -> float:
    """``health.stale_after``, or three telemetry intervals (30 s by default)."""
    configured = config.health.stale_after
    return (
        configured
        if configured is not None
        else STALE_INTERVALS * config.shipper.telemetry_interval
    )


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `run_until_signalled` owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class HealthService:
    config: AgentConfig
    health: AgentHealth
    subscriber: TelemetrySubscriber
    listener: socket.socket
    server: _Server
    clock: Callable[[], float]

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.listener.getsockname()[:2]
        return host, port

    async def run(self, stop: asyncio.Event) -> None:
        self._tick()
        receiving = asyncio.create_task(self._receive(), name="telemetry")
        ticking = asyncio.create_task(self._tick_forever(), name="tick")
        serving = asyncio.create_task(self.server.serve(sockets=[self.listener]), name="http")
        host, port = self.address
        log_event(
            _log,
            logging.INFO,
            "health_listening",
            address=host,
            port=port,
            expected=list(self.health.expected),
            stale_after_s=self.health.stale_after_s,
        )
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait(
            [stopping, receiving, ticking, serving], return_when=asyncio.FIRST_COMPLETED
        )
        self.server.should_exit = True
        for task in (receiving, ticking, stopping):
            task.cancel()
        await asyncio.gather(receiving, ticking, stopping, serving, return_exceptions=True)
        self.subscriber.close()
        self.listener.close()
        log_event(_log, logging.INFO, "health_stopped")
        failed = [t for t in done if t is not stopping and not t.cancelled() and t.exception()]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]

    async def _receive(self) -> None:
        while True:
            telemetry = await self.subscriber.receive()
            self.health.receive(telemetry, now=self.clock())

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.shipper.telemetry_interval)
            self._tick()

    def _tick(self) -> None:
        touch_heartbeat(self.config.agent.ipc_dir, COMPONENT)
        now = self.clock()
        own = Telemetry(
            component=COMPONENT,
            node=self.config.agent.node_name,
            sent_at_unix=now,
            status=ComponentStatus(ready=True),
            samples=tuple(process_samples(version=__version__)),
        )
        self.health.receive(own, now=now)


def build(
    config: AgentConfig,
    *,
    context: zmq.asyncio.Context,
    clock: Callable[[], float] = time.time,
) -> HealthService:
    """Bind the telemetry socket and the HTTP port; nothing runs until `HealthService.run`.

    Raises `kk_common.ipc.IpcSetupError` for the socket and `OSError` for the port.
    """
    health = AgentHealth(
        expected=expected_components(
            logs_enabled=config.logs.enabled, metrics_enabled=config.metrics.enabled
        ),
        stale_after_s=stale_after(config),
    )
    identity = AgentIdentity(
        version=__version__,
        node=config.agent.node_name,
        cluster=config.agent.cluster_name,
        started_at=clock(),
    )
    subscriber = TelemetrySubscriber(context, ipc_endpoint(config.agent.ipc_dir, TELEMETRY_SOCKET))
    try:
        listener = _listen(config.health.listen_address, config.health.port)
    except OSError:
        subscriber.close()
        raise
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TelemetryCollector(health, identity, clock=clock, refused=subscriber.refused))
    app = create_app(health, identity, registry, clock=clock)
    server = _Server(
        uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=2
        )
    )
    return HealthService(config, health, subscriber, listener, server, clock)


def _listen(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.create_server((address, port), family=family, backlog=64)
