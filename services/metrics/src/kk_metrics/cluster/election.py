"""Leader election over a ``coordination.k8s.io/v1`` Lease (sans-IO).

Theory of operation
-------------------
This is client-go's ``leaderelection`` algorithm with the IO taken out. Every agent runs
one `Election`; its adapter (`kk_metrics.cluster.lease`) reads the Lease, shows it to
`Election.observe`, writes what `observe` asks for, and reports how the write went. Time is
passed in (``now``, monotonic seconds): the core never reads a clock.

* **Acquire.** No Lease: create one naming us. A Lease held by another candidate is taken
  over only when it has not changed for ``lease_duration_s`` *as we observed it*: expiry is
  measured from the local time at which we last saw the record change (its
  resourceVersion), never from the ``renewTime`` written by another node's clock, so clock
  skew between nodes does not matter, only clock rate.
* **Renew.** The holder rewrites the Lease (new ``renewTime``) every ``retry_period_s``.
  Every write carries the resourceVersion it read: if another candidate wrote in between,
  the API server answers 409 Conflict and nothing is overwritten (`write_failed` with
  ``conflict=True``); the next round reads again.
* **Step down.** The holder leads only until ``renew_deadline_s`` after its last
  successful renew. ``renew_deadline_s < lease_duration_s``, so a leader that cannot renew
  (API server unreachable, process stalled) stops reporting *before* any other candidate
  may take over: at no moment do two agents lead. Seeing the Lease held by someone else
  ends leadership at once.
* **Release.** On a clean stop the holder writes an empty holder with a one-second
  duration (client-go's ``ReleaseOnCancel``), so the next candidate takes over in about a
  second instead of a lease duration.

A takeover increments ``leaseTransitions`` and sets ``acquireTime``; a renew keeps both.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

__all__ = ["Election", "ElectionTiming", "LeaseRecord"]

JITTER_FACTOR = 1.2
"""client-go's: followers retry after ``retry_period * [1, 1.2)``, so they do not all ask at
once, and ``renew_deadline`` must leave room for that."""


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The parts of a Lease the election reads and writes.

    Times are wall-clock Unix seconds as written in the Lease (informational: expiry is
    judged on the local monotonic clock, see the module docstring).
    """

    holder: str
    duration_s: int
    acquired_at: float | None = None
    renewed_at: float | None = None
    transitions: int = 0
    resource_version: str = ""
    """Empty for a Lease not created yet."""
    checkpoint: str = ""
    """What the holder wants its successor to know (the events' checkpoint, see
    `kk_metrics.cluster.events`); carried over by every write, set by the adapter."""


@dataclass(frozen=True, slots=True)
class ElectionTiming:
    """client-go's three durations; defaults are client-go's (15 s, 10 s, 2 s)."""

    lease_duration_s: float = 15.0
    """How long a non-renewed Lease keeps other candidates waiting."""
    renew_deadline_s: float = 10.0
    """How long the holder keeps leading without a successful renew."""
    retry_period_s: float = 2.0
    """Time between two attempts (renew or acquire)."""

    def problems(self) -> list[str]:
        """Why these durations cannot give a single leader (empty when they can)."""
        found = []
        if not self.lease_duration_s > self.renew_deadline_s:
            found.append("lease_duration must be longer than renew_deadline")
        if not self.renew_deadline_s > JITTER_FACTOR * self.retry_period_s:
            found.append(f"renew_deadline must be longer than {JITTER_FACTOR} x retry_period")
        if self.retry_period_s <= 0:
            found.append("retry_period must be positive")
        return found


class Election:
    """One candidate's view of the election; see the module docstring.

    Inputs: `observe` (the Lease as read, or None), `wrote` / `write_failed` (how the write
    `observe` asked for went), `released`. Outputs: the record to write (from `observe`),
    `is_leader(now)`, `next_attempt_at(now)`, `release_record()`.
    """

    def __init__(
        self, identity: str, timing: ElectionTiming, *, rng: random.Random | None = None
    ) -> None:
        if not identity:
            raise ValueError("identity is required: it names the holder in the Lease")
        problems = timing.problems()
        if problems:
            raise ValueError("; ".join(problems))
        self.identity = identity
        self.timing = timing
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._observed: LeaseRecord | None = None
        self._observed_at: float | None = None
        self._renewed_at: float | None = None
        """Local time of our last successful write as holder."""
        self._last_attempt: float | None = None
        self.transitions_seen = 0
        self.conflicts = 0
        self.failures = 0

    # -- inputs ---------------------------------------------------------------------

    def observe(self, lease: LeaseRecord | None, now: float, wall: float) -> LeaseRecord | None:
        """The Lease as just read (None: it does not exist). Returns what to write, if anything.

        The returned record carries the resourceVersion it replaces ("" means create).
        ``wall`` is the Unix time to write into ``renewTime``/``acquireTime``.
        """
        self._last_attempt = now
        if lease is None:
            self._observed, self._observed_at = None, now
            return LeaseRecord(
                holder=self.identity,
                duration_s=self._duration(),
                acquired_at=wall,
                renewed_at=wall,
                transitions=0,
            )
        if self._observed is None or lease.resource_version != self._observed.resource_version:
            self._observed, self._observed_at = lease, now
        if lease.holder == self.identity:
            return replace(lease, duration_s=self._duration(), renewed_at=wall)
        # Someone else's (or nobody's, after a release). We no longer lead, whatever our
        # deadline says: the Lease is the truth.
        self._renewed_at = None
        if lease.holder and not self._expired(lease, now):
            return None
        return replace(
            lease,
            holder=self.identity,
            duration_s=self._duration(),
            acquired_at=wall,
            renewed_at=wall,
            transitions=lease.transitions + 1,
        )

    def wrote(self, written: LeaseRecord, now: float) -> None:
        """The write `observe` asked for succeeded; ``written`` has the new resourceVersion."""
        if self._observed is not None and self._observed.holder != written.holder:
            self.transitions_seen += 1
        self._observed, self._observed_at = written, now
        if written.holder == self.identity:
            self._renewed_at = now

    def write_failed(self, now: float, *, conflict: bool) -> None:
        """The write failed: 409 Conflict (someone wrote first) or any other error.

        Leadership is not lost here: it runs out at the renew deadline unless a later renew
        succeeds. A conflict means our read is stale: the next round reads again.
        """
        if conflict:
            self.conflicts += 1
        else:
            self.failures += 1

    def read_failed(self, now: float) -> None:
        """The Lease could not be read at all."""
        self._last_attempt = now
        self.failures += 1

    def released(self) -> None:
        """Our release was written: we are no longer the holder."""
        self._renewed_at = None

    # -- outputs --------------------------------------------------------------------

    def is_leader(self, now: float) -> bool:
        """Whether to act as the leader at ``now``: held by us and renewed recently enough."""
        return (
            self._renewed_at is not None and now < self._renewed_at + self.timing.renew_deadline_s
        )

    @property
    def observed_checkpoint(self) -> str:
        """The checkpoint in the Lease as last seen or written ("" when none)."""
        return self._observed.checkpoint if self._observed is not None else ""

    @property
    def holder(self) -> str:
        """The holder as last seen ("" when unknown or released)."""
        return self._observed.holder if self._observed is not None else ""

    def next_attempt_at(self, now: float) -> float:
        """When the adapter should read the Lease again."""
        if self._last_attempt is None:
            return now
        period = self.timing.retry_period_s
        if not self.is_leader(now):
            period *= 1 + (JITTER_FACTOR - 1) * self._rng.random()
        return self._last_attempt + period

    def release_record(self) -> LeaseRecord | None:
        """What to write on a clean stop (None when we do not hold the Lease)."""
        lease = self._observed
        if lease is None or lease.holder != self.identity or self._renewed_at is None:
            return None
        return replace(lease, holder="", duration_s=1)

    # -- internals ------------------------------------------------------------------

    def _duration(self) -> int:
        return max(1, round(self.timing.lease_duration_s))

    def _expired(self, lease: LeaseRecord, now: float) -> bool:
        assert self._observed_at is not None
        return now >= self._observed_at + lease.duration_s
