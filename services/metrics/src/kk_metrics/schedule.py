"""When each source is scraped (sans-IO: time is passed in, nothing sleeps).

Every source is scraped once per ``interval`` on a fixed grid, ``first + k * interval``,
so scrapes do not drift and the samples of consecutive scrapes are one interval apart. The
grid starts at ``start + jitter * interval`` (``jitter`` in ``[0, 1)``, drawn once per
process by the caller): the agents of a cluster, started together by a rollout, do not all
scrape their kubelets and hit the receiver in the same second.

A source whose previous scrape is still running when its turn comes is not started twice:
that turn is skipped and counted (``overruns``). Turns missed because the process could
not run (a paused container, a blocked loop) are skipped too (``missed``): metrics are
about now, and catching up would send a burst of identical scrapes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ScrapeSchedule", "SourceTurns"]


@dataclass(slots=True)
class SourceTurns:
    """One source's place on the grid."""

    next_due: float
    running: bool = False
    overruns: int = 0
    missed: int = 0


class ScrapeSchedule:
    """The scrape grid of every source."""

    def __init__(
        self, names: Iterable[str], *, interval_s: float, start: float, jitter: float
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        self.interval_s = interval_s
        self.first = start + jitter * interval_s
        self.sources = {name: SourceTurns(next_due=self.first) for name in names}

    def add(self, name: str, now: float) -> None:
        """A source that appeared (an annotated pod): its first turn is the grid's next."""
        if name in self.sources:
            return
        turns = int(max(0.0, now - self.first) // self.interval_s) + (now > self.first)
        self.sources[name] = SourceTurns(next_due=self.first + turns * self.interval_s)

    def remove(self, name: str) -> None:
        """A source that went away; a scrape of it still running just ends."""
        self.sources.pop(name, None)

    def due(self, now: float) -> list[str]:
        """The sources to start scraping at ``now``; they are marked running."""
        started = []
        for name, turns in self.sources.items():
            if turns.next_due > now:
                continue
            self._advance(turns, now)
            if turns.running:
                turns.overruns += 1
                continue
            turns.running = True
            started.append(name)
        return started

    def _advance(self, turns: SourceTurns, now: float) -> None:
        turns.next_due += self.interval_s
        if turns.next_due <= now:
            behind = int((now - turns.next_due) // self.interval_s) + 1
            turns.missed += behind
            turns.next_due += behind * self.interval_s

    def finished(self, name: str) -> None:
        """The scrape of ``name`` ended (whatever its outcome)."""
        turns = self.sources.get(name)
        if turns is not None:
            turns.running = False

    def next_deadline(self) -> float:
        """When `due` will next return something (infinity: no source yet)."""
        return min((turns.next_due for turns in self.sources.values()), default=float("inf"))
