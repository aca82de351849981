"""The latest telemetry of every component, and what follows from it. Sans-IO.

`AgentHealth` is fed `Telemetry` messages with the time they arrived (``receive``) and
answers questions at an explicit ``now``: each component's state (`components`), whether
the agent is ready (`readiness`), and rates between a component's last two reports. It
reads no clock and opens nothing; the service (`kk_health.service`) drives it.

A component is *stale* when its last report arrived more than ``stale_after_s`` ago
(judged on arrival time, so a container's clock never matters), and *missing* when it is
expected (enabled in the configuration) but has never reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from kk_common.envelope import MetricSample, Telemetry

__all__ = [
    "RECEIVER_REACHED_SERIES",
    "AgentHealth",
    "AgentIdentity",
    "ComponentState",
    "ComponentView",
    "Readiness",
    "expected_components",
]

SHIPPER = "shipper"

RECEIVER_REACHED_SERIES = "killkrill_agent_send_duration_seconds_count"
"""The shipper observes a send duration for every HTTP response it gets, whatever its
status, and for nothing else: a non-zero count means a receiver answered at least once."""


class ComponentState(StrEnum):
    READY = "ready"
    NOT_READY = "not_ready"
    STALE = "stale"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    """Who this agent is, for ``killkrill_agent_info`` and the status view."""

    version: str
    node: str
    cluster: str
    started_at: float
    """When the health container started: ``killkrill_agent_start_time_seconds``."""


@dataclass(frozen=True, slots=True)
class _Report:
    telemetry: Telemetry
    received_at: float


@dataclass(frozen=True, slots=True)
class ComponentView:
    """One component as seen at one moment."""

    name: str
    state: ComponentState
    latest: Telemetry | None
    received_at: float | None
    previous: Telemetry | None
    age_s: float | None

    @property
    def fresh(self) -> bool:
        return self.state in (ComponentState.READY, ComponentState.NOT_READY)

    def samples(self, name: str) -> list[MetricSample]:
        """The latest report's samples called ``name``."""
        if self.latest is None:
            return []
        return [s for s in self.latest.samples if s.name == name]

    def total(self, name: str, **labels: str) -> float | None:
        """Sum of the latest samples ``name`` whose labels include ``labels``."""
        return _total(self.latest, name, labels)

    def rate(self, name: str, **labels: str) -> float | None:
        """Per-second increase of counter ``name`` between the last two reports.

        None until there are two reports, when their send times do not advance, or when the
        counter went down (the component restarted: one report more gives a rate again).
        """
        if self.latest is None or self.previous is None:
            return None
        elapsed = self.latest.sent_at_unix - self.previous.sent_at_unix
        now, before = _total(self.latest, name, labels), _total(self.previous, name, labels)
        if elapsed <= 0 or now is None or before is None or now < before:
            return None
        return (now - before) / elapsed


def _total(telemetry: Telemetry | None, name: str, labels: Mapping[str, str]) -> float | None:
    if telemetry is None:
        return None
    values = [
        s.value
        for s in telemetry.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(values) if values else None


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reasons: tuple[str, ...]


def expected_components(*, logs_enabled: bool, metrics_enabled: bool) -> tuple[str, ...]:
    """The components ``/ready`` waits for: the shipper and every enabled collector."""
    names = [SHIPPER]
    if logs_enabled:
        names.append("logs")
    if metrics_enabled:
        names.append("metrics")
    return tuple(names)


@dataclass
class AgentHealth:
    """Every component's last two reports; readiness derived from them."""

    expected: Sequence[str]
    stale_after_s: float
    _reports: dict[str, _Report] = field(default_factory=dict)
    _previous: dict[str, Telemetry] = field(default_factory=dict)
    received: Counter[str] = field(default_factory=Counter)
    """Reports received, by component."""
    receiver_reached: bool = False
    """Whether the shipper has had an answer from a receiver since this process started.
    It stays true across a shipper restart: readiness should not flap while a restarted
    shipper waits for its first batch."""

    def receive(self, telemetry: Telemetry, *, now: float) -> None:
        name = telemetry.component
        last = self._reports.get(name)
        if last is not None:
            self._previous[name] = last.telemetry
        self._reports[name] = _Report(telemetry, now)
        self.received[name] += 1
        if name == SHIPPER and (_total(telemetry, RECEIVER_REACHED_SERIES, {}) or 0) > 0:
            self.receiver_reached = True

    def components(self, *, now: float) -> list[ComponentView]:
        """Expected components first (in order), then any other that reported, by name."""
        names = [*self.expected, *sorted(set(self._reports) - set(self.expected))]
        return [self._view(name, now) for name in names]

    def _view(self, name: str, now: float) -> ComponentView:
        report = self._reports.get(name)
        if report is None:
            return ComponentView(name, ComponentState.MISSING, None, None, None, None)
        age = max(0.0, now - report.received_at)
        if age > self.stale_after_s:
            state = ComponentState.STALE
        elif report.telemetry.status.ready:
            state = ComponentState.READY
        else:
            state = ComponentState.NOT_READY
        return ComponentView(
            name, state, report.telemetry, report.received_at, self._previous.get(name), age
        )

    def readiness(self, *, now: float) -> Readiness:
        """Ready when every expected component reports in time and says it is ready, and
        the shipper has reached a receiver at least once; otherwise every reason why."""
        views = {view.name: view for view in self.components(now=now)}
        reasons = list(_reasons((views[name] for name in self.expected), self.stale_after_s))
        if SHIPPER in self.expected and not self.receiver_reached:
            reasons.append("shipper: has not reached a receiver yet")
        return Readiness(ready=not reasons, reasons=tuple(reasons))


def _reasons(views: Iterable[ComponentView], stale_after_s: float) -> Iterable[str]:
    for view in views:
        if view.state is ComponentState.MISSING:
            yield f"{view.name}: no telemetry received yet"
        elif view.state is ComponentState.STALE:
            yield (
                f"{view.name}: no telemetry for {view.age_s:.0f} s "
                f"(stale after {stale_after_s:g} s)"
            )
        elif view.state is ComponentState.NOT_READY:
            assert view.latest is not None
            status = view.latest.status
            problems = list(status.problems) or [status.detail or "reports not ready"]
            yield from (f"{view.name}: {problem}" for problem in problems)
