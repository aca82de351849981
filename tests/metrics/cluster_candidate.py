"""One election candidate in its own process, for the failover tests.

    python cluster_candidate.py <api url> <identity>

Runs a `LeaderElector` (lease 1.5 s, renew deadline 1 s, retry 0.2 s) against the API
server and prints one line per round, ``<identity> leader`` or ``<identity> follower``,
until SIGTERM (then releases the Lease and exits 0) or SIGKILL (no release: the Lease
must expire).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from kubernetes import client

from kk_metrics.cluster.api import LeaseApi
from kk_metrics.cluster.election import Election, ElectionTiming
from kk_metrics.cluster.leader import LeaderElector

TIMING = ElectionTiming(lease_duration_s=1.5, renew_deadline_s=1.0, retry_period_s=0.2)


async def main(url: str, identity: str) -> None:
    configuration = client.Configuration(host=url)
    configuration.retries = False
    leases = LeaseApi(
        client.ApiClient(configuration), name="leader", namespace="killkrill-system", timeout_s=0.5
    )
    elector = LeaderElector(leases, Election(identity, TIMING))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        await elector.attempt()
        print(identity, "leader" if elector.is_leader() else "follower", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TIMING.retry_period_s)
    await elector.release()
    print(identity, "released", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
