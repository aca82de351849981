"""Wiring: build the shipper from the configuration and run it until SIGTERM.

``build`` is the only place that turns configuration into objects; ``Shipper.run`` owns
the event loop's tasks: ingest (producers -> durable queue), one delivery loop per enabled
output, and telemetry. On stop, ingest closes first (producers keep their unacknowledged
batches), then each output drains within ``shipper.drain_timeout``; what is left stays in
the durable queue for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import zmq.asyncio

from kk_common.config import AgentConfig
from kk_common.envelope import ComponentStatus, Telemetry
from kk_common.heartbeat import touch_heartbeat
from kk_common.ipc import (
    SHIPPER_INGEST_SOCKET,
    TELEMETRY_SOCKET,
    BatchReceiver,
    TelemetryPublisher,
    ipc_endpoint,
)
from kk_common.jsonlog import log_event
from kk_common.memory import release_free_memory
from kk_common.process_metrics import process_samples
from kk_common.startup import secrets_of
from kk_shipper import __version__
from kk_shipper.core import OutputDelivery, OutputSettings
from kk_shipper.ingest import Ingest, StorageThread
from kk_shipper.pipeline import OutputPipeline
from kk_shipper.storage import DurableQueue, QueueBusy, QueueStats
from kk_shipper.telemetry import OutputGauges, ShipperMetrics
from kk_shipper.transport import H1Transport, H3Transport, verification_skipped
from kk_shipper.types import Kind, Protocol, RecordRun, TlsSettings, Transport

__all__ = ["Shipper", "build", "queue_path"]

_log = logging.getLogger("kk.shipper")


NOT_BLOCKING = frozenset({"dead_letter"})
"""Problems an operator should see that do not make the shipper unready: dead letters are
kept and counted, and delivery goes on."""


def queue_path(config: AgentConfig) -> Path:
    """Where the durable queue lives: ``<state_dir>/shipper/queue.db``."""
    return Path(config.agent.state_dir) / "shipper" / "queue.db"


def _tls_settings(config: AgentConfig, kind: Kind) -> TlsSettings:
    tls = (config.logs.output if kind == "logs" else config.metrics.output).tls
    return TlsSettings(
        ca_file=tls.ca_file,
        cert_file=tls.cert_file,
        key_file=tls.key_file,
        insecure_skip_verify=tls.insecure_skip_verify,
    )


def _transports(
    config: AgentConfig, kind: Kind, settings: OutputSettings
) -> dict[Protocol, Transport]:
    output = config.logs.output if kind == "logs" else config.metrics.output
    tls = _tls_settings(config, kind)
    transports: dict[Protocol, Transport] = {
        Protocol.H1: H1Transport(
            tls=tls,
            pool_size=max(config.performance.connection_pool_size, output.max_in_flight),
            connect_timeout=min(output.request_timeout, 10.0),
        )
    }
    if settings.http3_enabled:
        url = urlsplit(settings.url)
        host = url.hostname or ""
        transports[Protocol.H3] = H3Transport(
            host,
            url.port or 443,
            server_name=host,
            tls=tls,
            handshake_timeout=output.http3.handshake_timeout,
            max_streams=output.max_in_flight,
            path_timeout=output.http3.path_timeout,
        )
    return transports


@dataclass
class Shipper:
    """The running shipper's parts (see `build`)."""

    config: AgentConfig
    queue: DurableQueue
    storage: StorageThread
    receiver: BatchReceiver
    telemetry: TelemetryPublisher
    pipelines: dict[Kind, OutputPipeline]
    transports: list[Transport]
    metrics: ShipperMetrics
    ingest: Ingest
    clock: Callable[[], float] = time.time
    tls_skipped: dict[Kind, bool] = field(default_factory=dict)
    """Outputs whose TLS verification is switched off (insecure_skip_verify)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then drain and close."""
        for kind, pipeline in self.pipelines.items():
            settings = pipeline.delivery.status()
            if not settings.http3_enabled:
                log_event(
                    _log,
                    logging.WARNING,
                    "http3_disabled",
                    output=kind,
                    detail="the receiver URL or output type allows HTTP/1.1 only",
                )
        for kind in self.pipelines:
            if self.tls_skipped[kind]:
                log_event(
                    _log,
                    logging.WARNING,
                    "tls_verification_skipped",
                    output=kind,
                    detail="tls.insecure_skip_verify is set: receivers are not verified",
                )
        ingest = asyncio.create_task(self.ingest.run(), name="ingest")
        delivery = [
            asyncio.create_task(p.run(), name=f"deliver-{k}") for k, p in self.pipelines.items()
        ]
        publisher = asyncio.create_task(self._publish_telemetry(), name="telemetry")
        log_event(
            _log,
            logging.INFO,
            "shipper_started",
            outputs=sorted(self.pipelines),
            queue=str(queue_path(self.config)),
        )
        watched = [ingest, *delivery, publisher]
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopping, *watched], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t is not stopping and t.exception() is not None]
        for task in [ingest, *delivery, stopping]:
            task.cancel()
        await asyncio.gather(ingest, *delivery, stopping, return_exceptions=True)
        # Producers keep what was not acknowledged; close ingest before draining.
        self.receiver.close()
        budget = self.config.shipper.drain_timeout
        await asyncio.gather(*(p.drain(budget) for p in self.pipelines.values()))
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)
        self._publish_once()
        await self.close()
        log_event(_log, logging.INFO, "shipper_stopped")
        if failed:
            raise failed[0].exception()  # type: ignore[misc]

    async def close(self) -> None:
        for transport in self.transports:
            with contextlib.suppress(Exception):
                await transport.aclose()
        self.telemetry.close()
        await self.storage.call(self.queue.close)
        self.storage.close()

    async def _publish_telemetry(self) -> None:
        while True:
            touch_heartbeat(self.config.agent.ipc_dir, "shipper")  # the liveness probe's file
            await asyncio.sleep(self.config.shipper.telemetry_interval)
            await self._publish_snapshot()
            release_free_memory()

    async def _publish_snapshot(self) -> None:
        try:
            stats = await self.storage.call(self.queue.stats, now=self.clock())
        except QueueBusy:
            return  # locked by another process: the next tick reports (telemetry is lossy)
        self.telemetry.publish(self._telemetry(stats))

    def _publish_once(self) -> None:
        with contextlib.suppress(Exception):
            self.telemetry.publish(self._telemetry(self.queue.stats(now=self.clock())))

    def _telemetry(self, stats: QueueStats) -> Telemetry:
        outputs = {}
        problems: list[str] = []
        blocking = False
        for kind, pipeline in self.pipelines.items():
            kind_stats = stats.kinds[kind]
            outputs[kind] = OutputGauges(
                queued_records=kind_stats.queued_records,
                oldest_age_s=kind_stats.oldest_age_s or 0.0,
                current_protocol=str(pipeline.delivery.protocol),
                dead_letters=kind_stats.dead_letters,
                tls_verification_skipped=self.tls_skipped[kind],
                http3_enabled=pipeline.delivery.status().http3_enabled,
            )
            problems.extend(pipeline.problems.values())
            blocking = blocking or any(k not in NOT_BLOCKING for k in pipeline.problems)
        if self.ingest.queue_full:
            problems.append("durable queue full: producers are not acknowledged")
            blocking = True
        samples = self.metrics.samples(
            outputs=outputs,
            buffer_size=stats.used_bytes,
            buffer_capacity=stats.max_bytes,
        )
        samples += process_samples(version=__version__)
        return Telemetry(
            component="shipper",
            node=self.config.agent.node_name,
            sent_at_unix=self.clock(),
            status=ComponentStatus(
                ready=not blocking, detail="; ".join(problems[:3]), problems=tuple(problems)
            ),
            samples=tuple(samples),
        )


def enabled_outputs(config: AgentConfig) -> list[Kind]:
    kinds: list[Kind] = []
    if config.logs.enabled:
        kinds.append("logs")
    if config.metrics.enabled:
        kinds.append("metrics")
    return kinds


def build(
    config: AgentConfig,
    *,
    context: zmq.asyncio.Context,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.time,
) -> Shipper:
    """Create every part of the shipper; nothing runs until `Shipper.run`."""
    rng = rng or random.Random()  # noqa: S311 - jitter, not security
    path = queue_path(config)
    shipper_config = config.shipper
    queue = DurableQueue(
        path,
        max_bytes=shipper_config.queue_max_size,
        dedup_window_s=shipper_config.dedup_window,
        dedup_max_sources=shipper_config.dedup_max_sources,
        dead_letter_max_bytes=shipper_config.dead_letter_max_size,
    )
    storage = StorageThread()
    metrics = ShipperMetrics()
    pipelines: dict[Kind, OutputPipeline] = {}
    all_transports: list[Transport] = []
    for kind in enabled_outputs(config):
        settings = OutputSettings.from_config(config, kind)
        transports = _transports(config, kind, settings)
        all_transports.extend(transports.values())
        output = config.logs.output if kind == "logs" else config.metrics.output
        pipelines[kind] = OutputPipeline(
            kind,
            OutputDelivery(settings, rng=rng),
            queue,
            storage,
            transports,
            request_timeout_s=output.request_timeout,
            metrics=metrics,
            clock=clock,
        )
    ipc_dir = config.agent.ipc_dir
    receiver = BatchReceiver(context, ipc_endpoint(ipc_dir, SHIPPER_INGEST_SOCKET))
    telemetry = TelemetryPublisher(
        context, ipc_endpoint(ipc_dir, TELEMETRY_SOCKET), secrets=secrets_of(config)
    )

    def records_stored(kind: Kind, runs: tuple[RecordRun, ...]) -> None:
        pipelines[kind].records_stored(runs)

    ingest = Ingest(
        receiver,
        queue,
        storage,
        enabled=list(pipelines),
        on_stored=records_stored,
        metrics=metrics,
        clock=clock,
    )
    return Shipper(
        config=config,
        queue=queue,
        storage=storage,
        receiver=receiver,
        telemetry=telemetry,
        pipelines=pipelines,
        transports=all_transports,
        metrics=metrics,
        ingest=ingest,
        clock=clock,
        tls_skipped={kind: verification_skipped(_tls_settings(config, kind)) for kind in pipelines},
    )
