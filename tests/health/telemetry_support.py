"""Fake telemetry shaped like the real components' (the shipper's `ShipperMetrics.samples`,
the logs service's `snapshot`), and the health core built around it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from kk_common.envelope import ComponentStatus, MetricSample, Telemetry
from kk_health.app import create_app
from kk_health.book import AgentHealth, AgentIdentity
from kk_health.exposition import TelemetryCollector
from kk_shipper.telemetry import DURATION_BUCKETS, SIZE_BUCKETS, OutputGauges, ShipperMetrics

IDENTITY = AgentIdentity(version="9.9.9", node="node-a", cluster="prod", started_at=1000.0)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def report(
    component: str,
    *,
    at: float,
    ready: bool = True,
    problems: Sequence[str] = (),
    samples: Sequence[MetricSample] = (),
) -> Telemetry:
    """One component's telemetry, its status detail made as the services make it."""
    status = ComponentStatus(ready=ready, detail="; ".join(problems), problems=tuple(problems))
    return Telemetry(component, "node-a", at, status, tuple(samples))


def shipper_telemetry(
    *,
    at: float,
    sent: int = 0,
    received: int = 0,
    failed: int = 0,
    rejected: int = 0,
    responses: Sequence[float] = (),
    buffer_size: int = 0,
    buffer_capacity: int = 1000,
    protocol: str = "http/3",
    ready: bool = True,
    problems: Sequence[str] = (),
    oldest_age_s: float = 0.0,
) -> Telemetry:
    """The shipper's telemetry, made by the shipper's own `ShipperMetrics`."""
    metrics = ShipperMetrics()
    if received:
        metrics.inc("killkrill_agent_records_received_total", received, type="logs")
    if sent:
        metrics.inc("killkrill_agent_sent_messages_total", sent, type="logs", status="success")
        metrics.observe("killkrill_agent_batch_size", sent, SIZE_BUCKETS, type="logs")
    if failed:
        metrics.inc(
            "killkrill_agent_sent_messages_total", failed, type="logs", status="dead_letter"
        )
        metrics.inc("killkrill_agent_dead_letters_total", failed, type="logs", reason="http_400")
    if protocol == "http/1.1":
        metrics.inc("killkrill_agent_protocol_fallbacks_total", type="logs", reason="timeout")
    if rejected:
        metrics.inc("killkrill_agent_rejected_total", rejected, type="logs", reason="http_400")
    for seconds in responses:
        metrics.observe(
            "killkrill_agent_send_duration_seconds",
            seconds,
            DURATION_BUCKETS,
            type="logs",
            protocol=protocol,
        )
    samples = metrics.samples(
        outputs={
            "logs": OutputGauges(
                queued_records=buffer_size // 100,
                oldest_age_s=oldest_age_s,
                current_protocol=protocol,
                dead_letters=failed,
                tls_verification_skipped=False,
                http3_enabled=True,
            )
        },
        buffer_size=buffer_size,
        buffer_capacity=buffer_capacity,
    )
    return report("shipper", at=at, ready=ready, problems=problems, samples=samples)


def logs_telemetry(
    *,
    at: float,
    records: int = 0,
    acknowledged: int = 0,
    ready: bool = True,
    problems: Sequence[str] = (),
    lag: dict[tuple[str, str], int] | None = None,
) -> Telemetry:
    """The logs service's telemetry: counters without HELP, per-pod lag gauges."""
    samples = [
        MetricSample("killkrill_logs_records_read_total", "counter", float(records)),
        MetricSample("killkrill_logs_records_acknowledged_total", "counter", float(acknowledged)),
        MetricSample("killkrill_logs_files_tailed", "gauge", 3.0),
        MetricSample("killkrill_logs_lag_bytes", "gauge", float(sum((lag or {}).values()))),
    ]
    samples.extend(
        MetricSample(
            "killkrill_logs_pod_lag_bytes", "gauge", float(b), {"namespace": ns, "pod": pod}
        )
        for (ns, pod), b in (lag or {}).items()
    )
    return report("logs", at=at, ready=ready, problems=problems, samples=samples)


def registry_for(health: AgentHealth, clock: Clock) -> tuple[CollectorRegistry, TelemetryCollector]:
    registry = CollectorRegistry(auto_describe=False)
    collector = TelemetryCollector(health, IDENTITY, clock=clock, refused={"malformed": 2})
    registry.register(collector)
    return registry, collector


def get(health: AgentHealth, clock: Clock, path: str) -> httpx.Response:
    """``GET path`` on the app, through httpx's ASGI transport (no socket)."""
    registry, _ = registry_for(health, clock)
    app = create_app(health, IDENTITY, registry, clock=clock)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://health") as client:
            return await client.get(path)

    return asyncio.run(call())


def json_of(response: httpx.Response) -> Any:
    return response.json()


def scrape(health: AgentHealth, clock: Clock) -> dict[str, Metric]:
    registry, _ = registry_for(health, clock)
    text = generate_latest(registry).decode()
    families: dict[str, Metric] = {}
    for family in text_string_to_metric_families(text):
        # A gauge X and a counter X_total both parse as "X": keep them apart by type.
        key = family.name if family.type != "counter" else f"{family.name}_total"
        assert key not in families, f"{key} exposed twice"
        families[key] = family
    return families


def series_over_time(first: dict[str, Metric], second: dict[str, Metric]) -> list[dict]:
    """promtool input: every series at its first-scrape value, then growing each minute by
    what it grew between the two scrapes."""
    later = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in second.values()
        for s in family.samples
    }
    series = []
    for family in first.values():
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            if key not in later:
                continue
            labels = ", ".join(f'{k}="{v}"' for k, v in key[1])
            step = later[key] - sample.value
            sign = "+" if step >= 0 else "-"
            values = f"{sample.value!r}{sign}{abs(step)!r}x20"
            series.append({"series": f"{sample.name}{{{labels}}}", "values": values})
    return series
