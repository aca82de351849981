"""The Lease election, driven by hand: two candidates share one simulated Lease, time is
passed in, and the "API server" is a dict that answers 409 to a stale resourceVersion."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from kk_metrics.cluster.election import Election, ElectionTiming, LeaseRecord

TIMING = ElectionTiming(lease_duration_s=15.0, renew_deadline_s=10.0, retry_period_s=2.0)
WALL = 1_800_000_000.0


class SimulatedLease:
    """One Lease with optimistic concurrency, like the API server's."""

    def __init__(self) -> None:
        self.current: LeaseRecord | None = None
        self._rv = 100

    def write(self, wanted: LeaseRecord) -> LeaseRecord | None:
        """The written Lease, or None for 409 (exists already, or stale resourceVersion)."""
        expected = self.current.resource_version if self.current else ""
        if wanted.resource_version != expected:
            return None
        self._rv += 1
        self.current = replace(wanted, resource_version=str(self._rv))
        return self.current


def round_of(candidate: Election, lease: SimulatedLease, now: float) -> None:
    """What the adapter does each round: read, decide, write, report."""
    wanted = candidate.observe(lease.current, now, WALL + now)
    if wanted is None:
        return
    written = lease.write(wanted)
    if written is None:
        candidate.write_failed(now, conflict=True)
    else:
        candidate.wrote(written, now)


def candidates() -> tuple[Election, Election, SimulatedLease]:
    rng = random.Random(1)
    return (
        Election("agent-a", TIMING, rng=rng),
        Election("agent-b", TIMING, rng=rng),
        SimulatedLease(),
    )


def test_the_first_candidate_creates_the_lease_and_the_second_follows() -> None:
    a, b, lease = candidates()

    round_of(a, lease, now=0.0)
    round_of(b, lease, now=0.5)

    assert lease.current is not None and lease.current.holder == "agent-a"
    assert lease.current.transitions == 0 and lease.current.duration_s == 15
    assert a.is_leader(0.5) and not b.is_leader(0.5)
    assert b.holder == "agent-a"


def test_a_renewing_leader_keeps_the_lease_however_long_it_runs() -> None:
    a, b, lease = candidates()
    for step in range(60):
        now = step * 2.0
        round_of(a, lease, now)
        round_of(b, lease, now + 1.0)
        assert a.is_leader(now + 1.0) and not b.is_leader(now + 1.0)
    assert lease.current is not None and lease.current.transitions == 0


def test_when_the_leader_stops_renewing_it_steps_down_then_the_other_takes_over() -> None:
    a, b, lease = candidates()
    round_of(a, lease, now=0.0)
    round_of(b, lease, now=1.0)
    round_of(a, lease, now=2.0)  # a's last renew: the Lease changes for the last time
    round_of(b, lease, now=3.0)  # b sees that change at 3.0

    # a goes silent. It leads until its renew deadline (2 + 10), then not at all:
    assert a.is_leader(11.9)
    assert not a.is_leader(12.0)
    # b keeps asking and waits the full lease duration from when it saw the last change.
    for now in (5.0, 10.0, 15.0, 17.9):
        round_of(b, lease, now)
        assert not b.is_leader(now), now
    round_of(b, lease, now=18.0)

    assert b.is_leader(18.0)
    assert lease.current is not None and lease.current.holder == "agent-b"
    assert lease.current.transitions == 1
    # At no time did both lead: a stopped at 12, b started at 18.


def test_a_racing_write_gets_a_conflict_and_the_loser_follows() -> None:
    a, b, lease = candidates()
    # Both read "no Lease" before either writes.
    wanted_a = a.observe(None, 0.0, WALL)
    wanted_b = b.observe(None, 0.0, WALL)
    assert wanted_a is not None and wanted_b is not None

    written = lease.write(wanted_a)
    assert written is not None
    a.wrote(written, 0.0)
    assert lease.write(wanted_b) is None  # 409: exists already
    b.write_failed(0.0, conflict=True)

    assert a.is_leader(0.1) and not b.is_leader(0.1)
    assert b.conflicts == 1
    round_of(b, lease, now=2.0)  # reads again: a holds it, fresh
    assert not b.is_leader(2.0) and b.holder == "agent-a"


def test_a_stale_renew_is_refused_and_does_not_overwrite_the_new_holder() -> None:
    a, b, lease = candidates()
    round_of(a, lease, now=0.0)
    round_of(b, lease, now=0.0)
    stale = a.observe(lease.current, 1.0, WALL + 1)  # a reads, then stalls before writing
    round_of(b, lease, now=16.0)  # b takes over once the Lease expired
    assert lease.current is not None and lease.current.holder == "agent-b"

    assert stale is not None and lease.write(stale) is None  # 409: the resourceVersion moved
    a.write_failed(17.0, conflict=True)

    assert lease.current.holder == "agent-b"
    round_of(a, lease, now=18.0)
    assert not a.is_leader(18.0) and b.is_leader(18.0)


def test_a_leader_that_cannot_reach_the_api_server_steps_down_at_its_deadline() -> None:
    a, _, lease = candidates()
    round_of(a, lease, now=0.0)
    for now in (2.0, 4.0, 6.0, 8.0):
        a.read_failed(now)
        assert a.is_leader(now)
    a.read_failed(10.0)
    assert not a.is_leader(10.0)
    assert a.failures == 5


def test_a_released_lease_is_taken_over_at_once() -> None:
    a, b, lease = candidates()
    round_of(a, lease, now=0.0)
    round_of(b, lease, now=0.5)
    release = a.release_record()
    assert release is not None and release.holder == "" and release.duration_s == 1
    written = lease.write(release)
    assert written is not None
    a.released()
    assert not a.is_leader(1.0)

    round_of(b, lease, now=1.0)

    assert b.is_leader(1.0)
    assert lease.current is not None and lease.current.holder == "agent-b"


def test_a_restarted_agent_with_the_same_identity_resumes_its_own_lease() -> None:
    a, _, lease = candidates()
    round_of(a, lease, now=0.0)
    restarted = Election("agent-a", TIMING)

    round_of(restarted, lease, now=3.0)

    assert restarted.is_leader(3.0)
    assert lease.current is not None and lease.current.transitions == 0


def test_followers_retry_with_jitter_and_leaders_on_the_period() -> None:
    a, b, lease = candidates()
    round_of(a, lease, now=0.0)
    round_of(b, lease, now=0.0)
    assert a.next_attempt_at(0.0) == 2.0
    follower_next = b.next_attempt_at(0.0)
    assert 2.0 <= follower_next < 2.4


@pytest.mark.parametrize(
    ("timing", "problem"),
    [
        (ElectionTiming(10.0, 10.0, 2.0), "lease_duration must be longer than renew_deadline"),
        (ElectionTiming(15.0, 2.0, 2.0), "renew_deadline must be longer than 1.2 x retry_period"),
    ],
)
def test_timings_that_could_give_two_leaders_are_refused(
    timing: ElectionTiming, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        Election("agent-a", timing)
