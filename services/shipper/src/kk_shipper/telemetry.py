"""The shipper's own metrics, kept as plain counters and turned into telemetry samples.

The health container owns the Prometheus registry and the ``/metrics`` endpoint; the
shipper only counts and sends `MetricSample`s over the telemetry channel. Names and
label sets are the product's (``killkrill_agent_*``). Pure: no clocks, no sockets.

The current protocol is exported as one series per protocol with value 1 for the one in
use and 0 for the other, not as a magic number.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kk_common.envelope import MetricSample

__all__ = ["DURATION_BUCKETS", "SIZE_BUCKETS", "OutputGauges", "ShipperMetrics"]

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000)

_HELP = {
    "killkrill_agent_sent_messages_total": "Records sent to receivers, by outcome.",
    "killkrill_agent_sent_bytes_total": "Request body bytes on the wire (after compression).",
    "killkrill_agent_send_duration_seconds": "Time from request start to response.",
    "killkrill_agent_batch_size": "Records per request.",
    "killkrill_agent_protocol_fallbacks_total": "Switches from HTTP/3 to HTTP/1.1, by reason.",
    "killkrill_agent_current_protocol": "1 for the protocol an output currently uses.",
    "killkrill_agent_buffer_size": "Bytes held in the durable queue.",
    "killkrill_agent_buffer_capacity": "Capacity of the durable queue in bytes.",
    "killkrill_agent_retries_total": "Request attempts that will be retried, by reason.",
    "killkrill_agent_rejected_total": "Records refused by a receiver, by reason.",
    "killkrill_agent_duplicates_dropped_total": "Records not queued again: id already held.",
    "killkrill_agent_oldest_queued_record_age_seconds": "Age of the oldest queued record.",
    "killkrill_agent_queued_records": "Records waiting in the durable queue.",
    "killkrill_agent_dead_letters": "Records in the dead-letter store.",
    "killkrill_agent_dead_letters_total": "Records moved to the dead-letter store.",
    "killkrill_agent_ingest_refused_total": "Producer batches not acknowledged, by reason.",
    "killkrill_agent_records_received_total": "Records producers handed over and the queue took.",
    "killkrill_agent_tls_verification_skipped": "1 when an output skips TLS verification.",
    "killkrill_agent_http3_enabled": "1 when an output may use HTTP/3 (https URL, type http3).",
}

Labels = tuple[tuple[str, str], ...]


def _labels(**labels: str) -> Labels:
    return tuple(sorted(labels.items()))


@dataclass
class _Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        self.total += value
        self.count += 1
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[index] += 1


@dataclass(frozen=True)
class OutputGauges:
    """Point-in-time values of one output, read when telemetry is sent."""

    queued_records: int
    oldest_age_s: float
    current_protocol: str
    dead_letters: int
    tls_verification_skipped: bool
    http3_enabled: bool


class ShipperMetrics:
    """Counters and histograms of the shipper, by output (``type`` = logs | metrics)."""

    def __init__(self) -> None:
        self._counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self._histograms: dict[str, dict[Labels, _Histogram]] = defaultdict(dict)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self._counters[name][_labels(**labels)] += amount

    def observe(self, name: str, value: float, bounds: tuple[float, ...], **labels: str) -> None:
        series = self._histograms[name]
        key = _labels(**labels)
        if key not in series:
            series[key] = _Histogram(bounds)
        series[key].observe(value)

    def counter_value(self, name: str, **labels: str) -> float:
        return self._counters[name].get(_labels(**labels), 0.0)

    def samples(
        self,
        *,
        outputs: Mapping[str, OutputGauges],
        buffer_size: int,
        buffer_capacity: int,
    ) -> list[MetricSample]:
        """Every series as telemetry samples (histograms flattened as Prometheus does)."""
        out: list[MetricSample] = []
        for name, series in self._counters.items():
            out.extend(
                MetricSample(name, "counter", value, dict(labels), _HELP.get(name, ""))
                for labels, value in series.items()
            )
        for name, series in self._histograms.items():
            for labels, histogram in series.items():
                out.extend(self._flatten(name, dict(labels), histogram))
        out.append(self._gauge("killkrill_agent_buffer_size", buffer_size))
        out.append(self._gauge("killkrill_agent_buffer_capacity", buffer_capacity))
        for kind, gauges in outputs.items():
            out.append(
                self._gauge("killkrill_agent_queued_records", gauges.queued_records, type=kind)
            )
            out.append(
                self._gauge(
                    "killkrill_agent_oldest_queued_record_age_seconds",
                    gauges.oldest_age_s,
                    type=kind,
                )
            )
            out.append(self._gauge("killkrill_agent_dead_letters", gauges.dead_letters, type=kind))
            out.append(
                self._gauge(
                    "killkrill_agent_tls_verification_skipped",
                    1.0 if gauges.tls_verification_skipped else 0.0,
                    type=kind,
                )
            )
            out.append(
                self._gauge(
                    "killkrill_agent_http3_enabled", 1.0 if gauges.http3_enabled else 0.0, type=kind
                )
            )
            out.extend(
                self._gauge(
                    "killkrill_agent_current_protocol",
                    1.0 if gauges.current_protocol == protocol else 0.0,
                    type=kind,
                    protocol=protocol,
                )
                for protocol in ("http/3", "http/1.1")
            )
        return out

    @staticmethod
    def _gauge(name: str, value: float, **labels: str) -> MetricSample:
        return MetricSample(name, "gauge", float(value), labels, _HELP.get(name, ""))

    @staticmethod
    def _flatten(
        name: str, labels: dict[str, str], histogram: _Histogram
    ) -> Iterable[MetricSample]:
        help_text = _HELP.get(name, "")
        for bound, count in zip(histogram.bounds, histogram.counts, strict=True):
            yield MetricSample(
                f"{name}_bucket", "counter", float(count), {**labels, "le": repr(bound)}, help_text
            )
        yield MetricSample(
            f"{name}_bucket", "counter", float(histogram.count), {**labels, "le": "+Inf"}, help_text
        )
        yield MetricSample(f"{name}_sum", "counter", histogram.total, labels, help_text)
        yield MetricSample(f"{name}_count", "counter", float(histogram.count), labels, help_text)
