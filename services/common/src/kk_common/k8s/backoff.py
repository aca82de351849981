"""Sans-IO exponential backoff with full jitter, for calls to the API server and kubelet.

Every node runs one agent, so after an API server outage thousands of agents
reconnect at once. Full jitter (a delay drawn uniformly from ``[0, cap]``) spreads
them out; the cap bounds how long one agent stays stale once the server is back.
This is the opposite of a retry storm (fluent/fluent-bit#11134: >2,000 req/s).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delay before the next attempt after ``failures`` consecutive failures."""

    initial_s: float = 0.5
    max_s: float = 30.0
    multiplier: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def failed(self, retry_after_s: float | None = None) -> float:
        """Record a failure; return how long to wait before trying again.

        A server's ``Retry-After`` (429, 503) is a floor: we never come back sooner
        than asked, but never later than ``max_s`` either.
        """
        self.failures += 1
        ceiling = min(self.max_s, self.initial_s * self.multiplier ** (self.failures - 1))
        # Full jitter, but never a zero delay: a tight loop is what we are avoiding.
        delay = max(self.rng.uniform(0.0, ceiling), min(self.initial_s, ceiling) / 10)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_s))
        return delay

    def succeeded(self) -> None:
        """Reset after a successful call."""
        self.failures = 0
