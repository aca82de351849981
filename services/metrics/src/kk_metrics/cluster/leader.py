"""IO adapter: runs an `Election` against the API server's Lease until told to stop.

Each round reads the Lease, lets the `Election` decide, writes what it asks for and tells
it how that went; then it waits until the election's next attempt (or ``stop``). The calls
are blocking (the official client) and run on a thread; each has a timeout shorter than the
renew deadline, so a hung API server cannot keep a leader leading. On stop, a leader writes
the release (empty holder), so another agent takes over within a second or two.

Times: ``monotonic`` drives the election (expiry, deadlines); ``wall`` is only written into
the Lease's ``acquireTime``/``renewTime`` for people reading it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from kk_common.envelope import MetricSample
from kk_common.jsonlog import log_event
from kk_metrics.cluster.api import LeaseApi, LeaseConflict, LeaseUnavailable
from kk_metrics.cluster.election import Election

__all__ = ["LeaderElector"]

_log = logging.getLogger("kk.metrics")


class LeaderElector:
    """Keeps one candidate in the election; ``is_leader()`` says whether it leads now."""

    def __init__(
        self,
        leases: LeaseApi,
        election: Election,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        checkpoint: Callable[[], str] | None = None,
    ) -> None:
        self.leases = leases
        self.checkpoint = checkpoint
        """What to leave in the Lease for a successor (the events' position), if anything."""
        self.election = election
        self._monotonic = monotonic
        self._wall = wall
        self._leading = False
        self.last_error = ""
        self.failing_since_round = 0
        """Rounds in a row that could not read or write the Lease (a conflict is not one)."""
        self.errors: dict[str, int] = {}

    def is_leader(self) -> bool:
        """Whether this agent leads right now (checked at the moment of asking)."""
        return self.election.is_leader(self._monotonic())

    async def run(self, stop: asyncio.Event) -> None:
        """Take part in the election until ``stop`` is set, then release the Lease."""
        log_event(
            _log,
            logging.INFO,
            "leader_election_started",
            lease=f"{self.leases.namespace}/{self.leases.name}",
            identity=self.election.identity,
        )
        try:
            while not stop.is_set():
                await self.attempt()
                wait = self.election.next_attempt_at(self._monotonic()) - self._monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, wait))
        finally:
            await self.release()

    async def attempt(self) -> None:
        """One round: read, decide, write."""
        now = self._monotonic()
        try:
            lease = await asyncio.to_thread(self.leases.read)
        except LeaseUnavailable as exc:
            self._failed(exc)
            self.election.read_failed(now)
            self._notice()
            return
        self._succeeded()
        wanted = self.election.observe(lease, self._monotonic(), self._wall())
        if wanted is not None and wanted.holder and self.checkpoint is not None:
            wanted = replace(wanted, checkpoint=self.checkpoint() or wanted.checkpoint)
        if wanted is not None:
            try:
                written = await asyncio.to_thread(self.leases.write, wanted)
            except LeaseUnavailable as exc:
                self._failed(exc)
                self.election.write_failed(now, conflict=isinstance(exc, LeaseConflict))
            else:
                # ``now`` is from before the read: the leader's deadline counts from before
                # its write landed, so it always ends before any follower's expiry.
                self.election.wrote(written, now)
        self._notice()

    async def release(self) -> None:
        """Give the Lease up, if we hold it (best effort: it expires anyway)."""
        record = self.election.release_record()
        if record is None:
            return
        if self.checkpoint is not None:
            record = replace(record, checkpoint=self.checkpoint() or record.checkpoint)
        try:
            await asyncio.to_thread(self.leases.write, record)
        except LeaseUnavailable as exc:
            self._failed(exc)
        else:
            self.election.released()
            log_event(_log, logging.INFO, "leader_released", identity=self.election.identity)
        self._notice()

    def _failed(self, exc: LeaseUnavailable) -> None:
        self.errors[exc.reason] = self.errors.get(exc.reason, 0) + 1
        if isinstance(exc, LeaseConflict):
            return  # the normal outcome of a race: the next round reads again
        self.failing_since_round += 1
        if str(exc) != self.last_error:
            # Once per new error, not every retry_period.
            log_event(_log, logging.WARNING, "lease_call_failed", reason=exc.reason, error=str(exc))
        self.last_error = str(exc)

    def _succeeded(self) -> None:
        if self.failing_since_round:
            log_event(
                _log, logging.INFO, "lease_reachable_again", failed_rounds=self.failing_since_round
            )
        self.failing_since_round = 0
        self.last_error = ""

    def problem(self) -> str | None:
        """What health should show: the Lease unreachable for a few rounds in a row."""
        if self.failing_since_round < 3:
            return None
        return (
            f"leader election: the Lease {self.leases.namespace}/{self.leases.name} could not "
            f"be read or written {self.failing_since_round} times in a row: {self.last_error} "
            "(check the Role that grants get/create/update on leases)"
        )

    def _notice(self) -> None:
        leading = self.is_leader()
        if leading != self._leading:
            self._leading = leading
            log_event(
                _log,
                logging.INFO,
                "became_leader" if leading else "stopped_leading",
                identity=self.election.identity,
                lease=f"{self.leases.namespace}/{self.leases.name}",
            )

    def samples(self) -> list[MetricSample]:
        """The election's state for the health container."""
        labels = {"lease": f"{self.leases.namespace}/{self.leases.name}"}
        out = [
            MetricSample("killkrill_metrics_leader", "gauge", 1 if self.is_leader() else 0, labels),
            MetricSample(
                "killkrill_metrics_lease_conflicts_total",
                "counter",
                self.election.conflicts,
                labels,
            ),
        ]
        out += [
            MetricSample(
                "killkrill_metrics_lease_errors_total", "counter", count, {**labels, "reason": r}
            )
            for r, count in sorted(self.errors.items())
        ]
        return out
