"""Events through a leader change: the new leader resumes from the checkpoint the old one
left in the Lease, so nothing committed before it is sent again (fake API server, real
sockets, each agent with its own client, spool and election)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_apiserver import CLUSTER_RESOURCES, api_for, make_event

from kk_common.config.kubernetes_objects import KubernetesObjectsConfig
from kk_common.k8s.watcher import WatchSettings
from kk_metrics.cluster.api import LeaseApi, ObjectLists, lease_from_dict
from kk_metrics.cluster.election import Election, ElectionTiming
from kk_metrics.cluster.event_watch import EventForwarder, EventWatch
from kk_metrics.cluster.events import EventTracker
from kk_metrics.cluster.leader import LeaderElector
from kk_metrics.cluster.service import KubernetesObjects
from kk_metrics.spool import ScrapeSpool, SpooledBatch
from tests.logs.fake_apiserver import FakeApiServer, eventually

TIMING = ElectionTiming(lease_duration_s=1.5, renew_deadline_s=1.0, retry_period_s=0.2)


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    with FakeApiServer(resources=CLUSTER_RESOURCES) as server:
        yield server


class Agent:
    """One agent's events part: election, watch, forwarder, its own spool."""

    def __init__(self, fake: FakeApiServer, identity: str, directory: Path) -> None:
        api = api_for(fake)
        lists = ObjectLists(api, timeout_s=5)
        leases = LeaseApi(api, name="leader", namespace="killkrill-system", timeout_s=0.5)
        self.elector = LeaderElector(leases, Election(identity, TIMING))
        watch = EventWatch(
            api, EventTracker(cluster="prod", node=identity), settings=WatchSettings(5)
        )
        forwarder = EventForwarder(
            watch, self.elector, producer=f"metrics@{identity}", flush_interval_s=0.05
        )
        self.objects = KubernetesObjects(
            KubernetesObjectsConfig(events={"enabled": True}),
            node_name=identity,
            lists=lists,
            elector=self.elector,
            events=forwarder,
        )
        self.spool = ScrapeSpool(directory / identity)
        self.batches: list[SpooledBatch] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        self.objects.start(self.spool, self.batches.extend)

    def records(self) -> list[dict[str, Any]]:
        found = []
        for spooled in list(self.batches):
            batch = self.spool.load(spooled)
            assert batch is not None and batch.stream == "logs"
            found += [json.loads(body) for body in batch.record_bodies()]
        return found

    def sent(self) -> list[tuple[str, str]]:
        """(event name, count) of every record, in order."""
        return [
            (r["labels"]["k8s_object_name"], r["labels"]["k8s_event_count"]) for r in self.records()
        ]


def checkpoint_in_lease(fake: FakeApiServer) -> str:
    stored = fake.get("leases", "killkrill-system", "leader")
    return lease_from_dict(stored).checkpoint if stored else ""


async def wait_for(predicate: Any, what: str) -> None:
    await asyncio.to_thread(eventually, predicate, what, 20)


def event(name: str, **fields: Any) -> dict[str, Any]:
    return make_event(f"{name}.1", pod=name, **fields)


def test_the_next_leader_sends_only_what_the_first_did_not(
    fake: FakeApiServer, tmp_path: Path
) -> None:
    first = fake.add("events", event("alpha"))
    fake.add("events", event("beta", count=2))
    a, b = Agent(fake, "agent-a", tmp_path), Agent(fake, "agent-b", tmp_path)

    async def story() -> None:
        a.start()
        await wait_for(lambda: len(a.sent()) == 2, "agent-a to send the two events it found")
        fake.add("events", event("gamma"))
        fake.modify("events", "shop", "alpha.1", lambda e: e.update(deprecatedCount=2))
        await wait_for(lambda: len(a.sent()) == 4, "agent-a to send the new occurrences")
        rv = fake.resource_version
        await wait_for(
            lambda: checkpoint_in_lease(fake).split(" ")[0] == str(rv),
            "the checkpoint to reach the Lease",
        )
        b.start()
        await a.objects.close()  # releases the Lease, checkpoint included
        await wait_for(b.elector.is_leader, "agent-b to take over")
        fake.add("events", event("delta"))
        await wait_for(lambda: len(b.sent()) >= 1, "agent-b to send the next event")
        await b.objects.close()

    asyncio.run(story())

    assert sorted(a.sent()) == [("alpha", "1"), ("alpha", "2"), ("beta", "2"), ("gamma", "1")]
    assert b.sent() == [("delta", "1")]
    assert first["metadata"]["uid"] in {r["labels"]["k8s_event_uid"] for r in a.records()}


def test_after_a_compacted_history_the_next_leader_resends_only_from_the_checkpoints_time(
    fake: FakeApiServer, tmp_path: Path
) -> None:
    fake.add("events", event("old", last="2026-12-02T09:00:00Z"))
    fake.add("events", event("newest", last="2026-12-02T10:00:00Z"))
    a, b = Agent(fake, "agent-a", tmp_path), Agent(fake, "agent-b", tmp_path)

    async def story() -> None:
        a.start()
        await wait_for(lambda: len(a.sent()) == 2, "agent-a to send both")
        rv = fake.resource_version
        await wait_for(lambda: checkpoint_in_lease(fake).split(" ")[0] == str(rv), "the checkpoint")
        await a.objects.close()
        fake.add("events", event("later", last="2026-12-02T11:00:00Z"))
        fake.compact()  # the checkpoint's resourceVersion is now too old to watch from
        b.start()
        await wait_for(lambda: len(b.sent()) >= 2, "agent-b to send from the checkpoint's time")
        await b.objects.close()

    asyncio.run(story())

    # "newest" is as new as the checkpoint's time, so it is sent again, with the same id
    # (receivers drop it by id); "old" is older and is not.
    assert sorted(b.sent()) == [("later", "1"), ("newest", "1")]
    ids_a = {r["labels"]["k8s_object_name"]: r["id"] for r in a.records()}
    ids_b = {r["labels"]["k8s_object_name"]: r["id"] for r in b.records()}
    assert ids_b["newest"] == ids_a["newest"]
