"""What the service knows about each source's scrapes, for telemetry and health (sans-IO)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from kk_common.envelope import MetricSample

__all__ = ["ScrapeOutcome", "SourceStatus"]


@dataclass(frozen=True, slots=True)
class ScrapeOutcome:
    """How one scrape of one source ended."""

    source: str
    started_at: float
    duration_s: float
    samples: int = 0
    dropped_non_finite: int = 0
    batches: int = 0
    error_reason: str = ""
    """Empty on success; else a short stable code (``http_401``, ``timeout``, ...)."""
    error: str = ""
    """Operator-facing description of the failure (never a secret)."""
    absent: bool = False
    """The source is not there (refused, 404): quiet for an ``optional`` source."""

    @property
    def ok(self) -> bool:
        return not self.error_reason


@dataclass(slots=True)
class SourceStatus:
    """Counters and the last outcome of one source."""

    name: str
    optional: bool = False
    scrapes: int = 0
    samples_total: int = 0
    dropped_non_finite: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    consecutive_failures: int = 0
    last_duration_s: float = 0.0
    last_samples: int = 0
    last_success_unix: float = 0.0
    last_error: str = ""
    absent: bool = False
    skipped: Counter[str] = field(default_factory=Counter)

    def record(self, outcome: ScrapeOutcome) -> None:
        self.scrapes += 1
        self.last_duration_s = outcome.duration_s
        self.dropped_non_finite += outcome.dropped_non_finite
        if outcome.ok:
            self.samples_total += outcome.samples
            self.last_samples = outcome.samples
            self.last_success_unix = outcome.started_at
            self.consecutive_failures = 0
            self.last_error = ""
            self.absent = False
            return
        self.errors[outcome.error_reason] += 1
        self.consecutive_failures += 1
        self.last_error = outcome.error
        self.absent = outcome.absent

    @property
    def quiet(self) -> bool:
        """An optional source that is not there: not a problem worth showing."""
        return self.optional and self.absent

    def problem(self) -> str | None:
        """What health should show about this source, or None."""
        if self.consecutive_failures == 0 or self.quiet:
            return None
        return (
            f"source {self.name!r}: {self.consecutive_failures} failed scrape(s) in a row: "
            f"{self.last_error}"
        )

    def samples(self) -> list[MetricSample]:
        labels = {"source": self.name}
        out = [
            MetricSample("killkrill_metrics_scrapes_total", "counter", self.scrapes, labels),
            MetricSample(
                "killkrill_metrics_scrape_duration_seconds", "gauge", self.last_duration_s, labels
            ),
            MetricSample("killkrill_metrics_scrape_samples", "gauge", self.last_samples, labels),
            MetricSample(
                "killkrill_metrics_samples_scraped_total", "counter", self.samples_total, labels
            ),
            MetricSample(
                "killkrill_metrics_last_success_timestamp_seconds",
                "gauge",
                self.last_success_unix,
                labels,
            ),
            MetricSample(
                "killkrill_metrics_source_up",
                "gauge",
                1 if self.consecutive_failures == 0 and self.scrapes else 0,
                labels,
            ),
            MetricSample(
                "killkrill_metrics_samples_dropped_total",
                "counter",
                self.dropped_non_finite,
                {**labels, "reason": "non_finite"},
            ),
        ]
        out += [
            MetricSample(
                "killkrill_metrics_scrape_errors_total",
                "counter",
                count,
                {**labels, "reason": reason},
            )
            for reason, count in sorted(self.errors.items())
        ]
        out += [
            MetricSample(
                "killkrill_metrics_scrapes_skipped_total",
                "counter",
                count,
                {**labels, "reason": reason},
            )
            for reason, count in sorted(self.skipped.items())
        ]
        return out
