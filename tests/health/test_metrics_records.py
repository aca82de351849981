"""The metrics service's samples in (scraped, every source) and out (stored by the shipper)
per second, in /status and so in the status view's IN/s and OUT/s."""

from __future__ import annotations

from telemetry_support import Clock, get, report

from kk_common.envelope import MetricSample, Telemetry
from kk_health.book import AgentHealth
from kk_health.status import RECORD_COUNTERS
from kk_metrics.status import ScrapeOutcome, SourceStatus


def metrics_telemetry(at: float, sources: list[SourceStatus], acknowledged: int) -> Telemetry:
    """Telemetry with the per-source counters the metrics service sends (its SourceStatus)."""
    samples = [sample for source in sources for sample in source.samples()]
    samples.append(
        MetricSample("killkrill_metrics_samples_acknowledged_total", "counter", acknowledged)
    )
    return report("metrics", at=at, samples=samples)


def test_the_metrics_service_has_samples_in_and_out_per_second() -> None:
    clock = Clock()
    cadvisor, node = SourceStatus("cadvisor"), SourceStatus("node")
    cadvisor.record(ScrapeOutcome("cadvisor", clock.now - 10, 0.5, samples=3000))
    node.record(ScrapeOutcome("node", clock.now - 10, 0.1, samples=500))
    health = AgentHealth(expected=("metrics",), stale_after_s=30.0)
    health.receive(metrics_telemetry(clock.now - 10, [cadvisor, node], 3000), now=clock.now - 10)
    # Ten seconds later: one more scrape of each, and the shipper stored 2,500 more samples.
    cadvisor.record(ScrapeOutcome("cadvisor", clock.now - 1, 0.5, samples=3000))
    node.record(ScrapeOutcome("node", clock.now - 1, 0.1, samples=500))
    health.receive(metrics_telemetry(clock.now, [cadvisor, node], 5500), now=clock.now)

    (metrics,) = get(health, clock, "/status").json()["components"]
    assert metrics["name"] == "metrics"
    assert (metrics["records_in_per_s"], metrics["records_out_per_s"]) == (350.0, 250.0)
    assert set(RECORD_COUNTERS["metrics"]) == {"in", "out"}
