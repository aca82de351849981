"""``/metrics``: every component's latest telemetry as Prometheus metric families.

`TelemetryCollector` is a prometheus-client custom collector, registered on a registry the
caller owns (never the global one); the families are built at scrape time from
`AgentHealth`, so a scrape always shows the latest report of each component.

How telemetry samples become families (the samples say only ``counter`` or ``gauge``):

* ``X_bucket`` samples with an ``le`` label, together with ``X_sum`` and ``X_count``, form
  the histogram ``X`` (the shipper flattens its histograms that way), so
  ``histogram_quantile`` and the ``TYPE`` line are right.
* A counter called ``X_total`` is the counter ``X``; a counter without the ``_total``
  suffix keeps its name and is exposed untyped (the text format would otherwise rename it).
* Every series gets a ``component`` label (the container that sent it), replacing one the
  sample may carry, so the same process metric from two containers never collides.
* HELP is the sample's own text, or names the container that sent an undocumented metric.
* Only fresh components are exposed: the series of a stale component disappear, as those
  of a dead exporter would, and ``killkrill_agent_component_up`` turns 0.
* A sample that cannot be exposed (an invalid name or label, or a name already used with
  another type) is left out and counted in ``killkrill_health_samples_dropped_total``;
  one bad sample never breaks a scrape.

The collector adds the agent's own series: ``killkrill_agent_info``,
``killkrill_agent_start_time_seconds``, ``killkrill_agent_ready``, and per component
``killkrill_agent_component_up``, ``..._ready`` and ``..._last_report_timestamp_seconds``.
"""

from __future__ import annotations

import platform
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from kk_common.envelope import MetricSample
from kk_health.book import AgentHealth, AgentIdentity, ComponentState, ComponentView

__all__ = ["TelemetryCollector"]

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass
class _Family:
    metric: Metric
    series: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)


class TelemetryCollector(Collector):
    """Collects the agent's series and every fresh component's samples at scrape time."""

    def __init__(
        self,
        health: AgentHealth,
        identity: AgentIdentity,
        *,
        clock: Callable[[], float],
        refused: Mapping[str, int] | None = None,
    ) -> None:
        self._health = health
        self._identity = identity
        self._clock = clock
        self._refused = refused if refused is not None else {}
        self.dropped: Counter[str] = Counter()
        """Samples left out, by reason (cumulative)."""

    def collect(self) -> Iterable[Metric]:
        now = self._clock()
        views = self._health.components(now=now)
        families: dict[str, _Family] = {}
        for view in views:
            if view.fresh and view.latest is not None:
                self._add_component(families, view.name, view.latest.samples)
        yield from self._agent_families(views, now)
        for family in families.values():
            for (sample_name, labels), value in family.series.items():
                family.metric.add_sample(sample_name, dict(labels), value)
            yield family.metric
        yield from self._health_families()

    # -- the components' samples ---------------------------------------------------------

    def _add_component(
        self, families: dict[str, _Family], component: str, samples: Iterable[MetricSample]
    ) -> None:
        samples = list(samples)
        histograms = {
            s.name.removesuffix("_bucket")
            for s in samples
            if s.name.endswith("_bucket") and "le" in s.labels
        }
        for sample in samples:
            reason = _invalid(sample)
            if reason is not None:
                self.dropped[reason] += 1
                continue
            family_name, kind = _family_of(sample, histograms)
            # Keyed by the name the TYPE line shows: a gauge X and a counter X_total are
            # two families in the text format, though prometheus-client names both X.
            key = f"{family_name}_total" if kind == "counter" else family_name
            family = families.get(key)
            if family is None:
                help_text = sample.help or f"Sent by the {component} container (no description)."
                try:
                    family = _Family(Metric(family_name, help_text, kind))
                except ValueError:  # e.g. a sample called just "_total"
                    self.dropped["invalid_name"] += 1
                    continue
                families[key] = family
            elif family.metric.type != kind:
                self.dropped["type_conflict"] += 1
                continue
            labels = tuple(sorted({**sample.labels, "component": component}.items()))
            family.series[(sample.name, labels)] = sample.value

    # -- the agent's own series ----------------------------------------------------------

    def _agent_families(self, views: list[ComponentView], now: float) -> Iterator[Metric]:
        identity = self._identity
        where = {"node": identity.node, "cluster": identity.cluster}
        info = Metric("killkrill_agent_info", "The agent's version and place (value 1).", "gauge")
        info.add_sample(
            "killkrill_agent_info",
            {"version": identity.version, "python": platform.python_version(), **where},
            1.0,
        )
        yield info
        started = Metric(
            "killkrill_agent_start_time_seconds",
            "When the agent pod's health container started, in seconds since the epoch.",
            "gauge",
        )
        started.add_sample("killkrill_agent_start_time_seconds", where, identity.started_at)
        yield started
        ready = Metric(
            "killkrill_agent_ready", "1 when /ready answers 200 (see /ready for why not).", "gauge"
        )
        ready.add_sample("killkrill_agent_ready", {}, float(self._health.readiness(now=now).ready))
        yield ready
        up = Metric(
            "killkrill_agent_component_up",
            "1 while a component sends telemetry in time; 0 when stale or never seen.",
            "gauge",
        )
        component_ready = Metric(
            "killkrill_agent_component_ready", "1 when a fresh component says it is ready.", "gauge"
        )
        last_report = Metric(
            "killkrill_agent_component_last_report_timestamp_seconds",
            "When the health container last received a component's telemetry.",
            "gauge",
        )
        for view in views:
            labels = {"component": view.name}
            up.add_sample(up.name, labels, float(view.fresh))
            component_ready.add_sample(
                component_ready.name, labels, float(view.state is ComponentState.READY)
            )
            if view.received_at is not None:
                last_report.add_sample(last_report.name, labels, view.received_at)
        yield from (up, component_ready, last_report)

    def _health_families(self) -> Iterator[Metric]:
        received = Metric(
            "killkrill_health_telemetry_received",
            "Telemetry reports received, by component.",
            "counter",
        )
        for component, count in sorted(self._health.received.items()):
            received.add_sample(
                "killkrill_health_telemetry_received_total", {"component": component}, count
            )
        yield received
        refused = Metric(
            "killkrill_health_telemetry_refused",
            "Messages on the telemetry channel that could not be read, by reason.",
            "counter",
        )
        for reason, count in sorted(self._refused.items()):
            refused.add_sample(
                "killkrill_health_telemetry_refused_total", {"reason": reason}, count
            )
        yield refused
        dropped = Metric(
            "killkrill_health_samples_dropped",
            "Telemetry samples left out of /metrics, by reason.",
            "counter",
        )
        for reason, count in sorted(self.dropped.items()):
            dropped.add_sample("killkrill_health_samples_dropped_total", {"reason": reason}, count)
        yield dropped


def _invalid(sample: MetricSample) -> str | None:
    if not _METRIC_NAME.match(sample.name):
        return "invalid_name"
    if any(not _LABEL_NAME.match(k) or k.startswith("__") for k in sample.labels):
        return "invalid_label"
    return None


def _family_of(sample: MetricSample, histograms: set[str]) -> tuple[str, str]:
    for suffix in _HISTOGRAM_SUFFIXES:
        base = sample.name.removesuffix(suffix)
        if base != sample.name and base in histograms:
            return base, "histogram"
    if sample.kind == "gauge":
        return sample.name, "gauge"
    if sample.name.endswith("_total"):
        return sample.name.removesuffix("_total"), "counter"
    return sample.name, "unknown"
