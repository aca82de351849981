"""When a producer's reading is paused by a full window, and when to say so (sans-IO).

A producer stops reading while its window of unacknowledged batches is full. During a fast
catch-up that happens for milliseconds at a time, many times a second: not worth a word. A
window that stays full for ``report_after_s`` means the shipper is not acknowledging (its
queue is full, or it is down), and the operator should hear about it once when it starts and
once when it ends, with how long it lasted.

Time is passed in; nothing here sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PauseEnded", "PauseStarted", "ReadingPause"]


@dataclass(frozen=True, slots=True)
class PauseStarted:
    """Reading has been paused since ``since`` (reported ``report_after_s`` later)."""

    since: float


@dataclass(frozen=True, slots=True)
class PauseEnded:
    """A reported pause ended after ``paused_s`` seconds."""

    paused_s: float


class ReadingPause:
    """Tracks the window's room over time; reports pauses that last."""

    def __init__(self, *, report_after_s: float = 1.0) -> None:
        if report_after_s < 0:
            raise ValueError("report_after_s must not be negative")
        self._report_after_s = report_after_s
        self._since: float | None = None
        self._reported = False
        self.pauses = 0
        """Reported pauses so far."""
        self.paused_seconds = 0.0
        """Total length of the reported pauses that ended."""

    def observe(self, has_room: bool, now: float) -> PauseStarted | PauseEnded | None:
        """The window has (or has no) room at ``now``; returns a change worth reporting."""
        if not has_room:
            if self._since is None:
                self._since = now
            if not self._reported and now - self._since >= self._report_after_s:
                self._reported = True
                self.pauses += 1
                return PauseStarted(self._since)
            return None
        since, reported = self._since, self._reported
        self._since, self._reported = None, False
        if since is not None and reported:
            self.paused_seconds += now - since
            return PauseEnded(now - since)
        return None

    def paused_for(self, now: float) -> float:
        """Seconds the current reported pause has lasted (0 when not paused or not yet
        reported)."""
        if self._since is None or not self._reported:
            return 0.0
        return now - self._since

    def next_report_at(self) -> float | None:
        """When an unreported pause becomes worth reporting (None otherwise)."""
        if self._since is None or self._reported:
            return None
        return self._since + self._report_after_s
