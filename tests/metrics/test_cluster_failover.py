"""Two agents elect one leader through the fake API server's Lease, over real sockets.

The failover tests run each candidate in its own process (`cluster_candidate.py`), so a
SIGKILL is a real crash: nothing is released, and the other must wait for the Lease to
expire. The reporting test runs two `KubernetesObjects` in one process, each with its own
client and connections, and checks that only the leader's cluster scrape has samples.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_apiserver import CLUSTER_RESOURCES, api_for, make_named, pod_in_state

from kk_common.config.kubernetes_objects import KubernetesObjectsConfig
from kk_metrics.cluster.api import LeaseApi, ObjectLists, lease_from_dict
from kk_metrics.cluster.election import Election, ElectionTiming
from kk_metrics.cluster.leader import LeaderElector
from kk_metrics.cluster.service import KubernetesObjects
from kk_metrics.scrape import ScrapeContext
from kk_metrics.spool import ScrapeSpool
from tests.logs.fake_apiserver import FakeApiServer, eventually

CANDIDATE = Path(__file__).parent / "cluster_candidate.py"


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    with FakeApiServer(resources=CLUSTER_RESOURCES) as server:
        yield server


class Candidate:
    """A candidate process and the lines it printed."""

    def __init__(self, fake: FakeApiServer, identity: str) -> None:
        self.identity = identity
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, str(CANDIDATE), fake.url, identity],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.split()[-1])

    def rounds(self) -> int:
        return len(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def lease(fake: FakeApiServer):  # type: ignore[no-untyped-def]
    stored = fake.get("leases", "killkrill-system", "leader")
    return None if stored is None else lease_from_dict(stored)


@pytest.fixture
def two_candidates(fake: FakeApiServer) -> Iterator[tuple[Candidate, Candidate]]:
    a, b = Candidate(fake, "agent-a"), Candidate(fake, "agent-b")
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def elected(
    fake: FakeApiServer, candidates: tuple[Candidate, Candidate]
) -> tuple[Candidate, Candidate]:
    """Wait until one leads and both have seen it; returns (leader, follower)."""
    holder = eventually(lambda: (lease(fake) or None) and lease(fake).holder, "a Lease holder")
    leader, follower = candidates if candidates[0].identity == holder else candidates[::-1]
    eventually(lambda: leader.lines[-1:] == ["leader"], "the holder to say it leads")
    eventually(lambda: follower.rounds() >= 3, "the follower to look a few times")
    return leader, follower


def test_two_agents_elect_exactly_one_leader_that_keeps_the_lease(
    fake: FakeApiServer, two_candidates: tuple[Candidate, Candidate]
) -> None:
    leader, follower = elected(fake, two_candidates)
    rounds = follower.rounds()
    eventually(lambda: follower.rounds() >= rounds + 10, "ten more rounds of the follower", 20)

    assert "leader" not in follower.lines
    assert lease(fake).holder == leader.identity
    assert lease(fake).transitions == 0


def test_a_killed_leader_is_replaced_once_its_lease_expires(
    fake: FakeApiServer, two_candidates: tuple[Candidate, Candidate]
) -> None:
    leader, follower = elected(fake, two_candidates)
    leader.process.send_signal(signal.SIGKILL)
    leader.process.wait(10)
    seen_before_kill = follower.rounds()

    eventually(lambda: lease(fake).holder == follower.identity, "the follower to take over", 20)
    eventually(lambda: follower.lines[-1:] == ["leader"], "the follower to say it leads")

    after_kill = follower.lines[seen_before_kill:]
    # It did not grab the Lease at once: it first saw it held, then waited for expiry.
    assert after_kill[0] == "follower"
    assert after_kill.index("leader") >= 2
    assert lease(fake).transitions == 1


def test_a_stopping_leader_releases_the_lease_to_the_other(
    fake: FakeApiServer, two_candidates: tuple[Candidate, Candidate]
) -> None:
    leader, follower = elected(fake, two_candidates)
    leader.process.send_signal(signal.SIGTERM)

    assert leader.process.wait(10) == 0
    eventually(lambda: leader.lines[-1:] == ["released"], "the release to be written")
    eventually(lambda: lease(fake).holder == follower.identity, "the follower to take over", 20)
    assert lease(fake).transitions == 1


# -- only the leader reports the cluster's counts ------------------------------------


def agent(fake: FakeApiServer, identity: str) -> KubernetesObjects:
    api = api_for(fake)
    timing = ElectionTiming(lease_duration_s=1.5, renew_deadline_s=1.0, retry_period_s=0.2)
    leases = LeaseApi(api, name="leader", namespace="killkrill-system", timeout_s=0.5)
    return KubernetesObjects(
        KubernetesObjectsConfig(),
        node_name=f"node-{identity}",
        lists=ObjectLists(api, timeout_s=5),
        elector=LeaderElector(leases, Election(identity, timing)),
    )


def cluster_scrape(objects: KubernetesObjects, spool: ScrapeSpool, at: float) -> int:
    context = ScrapeContext(
        source="kubernetes_cluster",
        producer=f"metrics@{objects.node_name}",
        node=objects.node_name,
        cluster="test",
        scrape_time_s=at,
        sample_limit=1000,
        batch_max_records=100,
    )
    return objects.collect_cluster(context, spool, float("inf"), threading.Event()).samples


def test_only_the_leader_reports_cluster_counts_and_the_other_does_after_a_handover(
    fake: FakeApiServer, tmp_path: Path
) -> None:
    fake.add("nodes", make_named("node-a", namespace=None))
    fake.add("namespaces", make_named("default", namespace=None))
    fake.add("pods", pod_in_state("web-1", node="node-a"))
    a, b = agent(fake, "a"), agent(fake, "b")
    spool = ScrapeSpool(tmp_path / "spool")

    async def story() -> tuple[list[int], list[int]]:
        a.start(spool, lambda batches: None)
        b.start(spool, lambda batches: None)
        await asyncio.to_thread(
            eventually, lambda: a.elector.is_leader() or b.elector.is_leader(), "a leader"
        )
        leader, other = (a, b) if a.elector.is_leader() else (b, a)
        first = [await asyncio.to_thread(cluster_scrape, x, spool, 1.0) for x in (leader, other)]
        await leader.close()  # releases the Lease
        await asyncio.to_thread(eventually, other.elector.is_leader, "the other to lead", 20)
        second = [await asyncio.to_thread(cluster_scrape, x, spool, 2.0) for x in (leader, other)]
        await other.close()
        return first, second

    first, second = asyncio.run(story())

    # nodes, namespaces, pods ... 8 kinds, plus 5 pod phases
    assert first == [13, 0]
    assert second == [0, 13]
