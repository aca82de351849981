"""The election's adapter against the fake API server: a Lease it may not touch is shown
in health after a few rounds, said once in the log, and forgotten when it works again."""

from __future__ import annotations

import asyncio
import logging

import pytest
from cluster_apiserver import CLUSTER_RESOURCES, api_for

from kk_metrics.cluster.api import LeaseApi
from kk_metrics.cluster.election import Election, ElectionTiming
from kk_metrics.cluster.leader import LeaderElector
from tests.logs.fake_apiserver import FakeApiServer


def test_a_forbidden_lease_is_a_health_problem_until_it_is_granted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FakeApiServer(resources=CLUSTER_RESOURCES) as fake:
        leases = LeaseApi(api_for(fake), name="leader", namespace="killkrill-system", timeout_s=5)
        elector = LeaderElector(leases, Election("agent-a", ElectionTiming()))

        async def story() -> tuple[list[str | None], bool]:
            fake.fail(403)
            seen = []
            for _ in range(3):
                await elector.attempt()
                seen.append(elector.problem())
            fake.heal()
            await elector.attempt()
            seen.append(elector.problem())
            return seen, elector.is_leader()

        with caplog.at_level(logging.INFO, logger="kk.metrics"):
            seen, leading = asyncio.run(story())

    assert seen[:2] == [None, None]
    assert seen[2] is not None and "http_403" in seen[2] and "Role" in seen[2]
    assert seen[3] is None and leading
    failures = [r for r in caplog.records if "lease_call_failed" in r.getMessage()]
    assert len(failures) == 1
    assert elector.errors == {"http_403": 3}
