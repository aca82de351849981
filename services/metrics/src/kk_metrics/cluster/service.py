"""The metrics service's Kubernetes objects: two scrape sources and the leader election.

* ``kubernetes_node`` (every agent): this node's pods, counted from the service's pod cache
  (`kk_common.k8s`: one list+watch of ``spec.nodeName=<node>`` for every use of this
  node's pods), so a scrape costs no request. Until the pods are listed the scrape fails
  with reason ``not_synced`` rather than report an empty node.
* ``kubernetes_cluster`` (the leader only): cluster-wide counts. On the other agents the
  scrape does nothing and succeeds with 0 samples; the leader re-checks that it still
  leads after counting, so a scrape that straddles a failover is thrown away rather than
  reported by two agents.

Both are ordinary sources of `kk_metrics.app.MetricsService`: scheduled, spooled, sent and
shown in health like the HTTP ones. Their collect functions run on a worker thread.
All API calls go through the service's one connection (`kk_common.k8s.connect`).
``start`` joins the election (when cluster counts or events are on) and, with events on,
runs the `EventForwarder`, which commits event batches to the same spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kk_common.config import AgentConfig
from kk_common.config.kubernetes_objects import (
    CLUSTER_OBJECTS_SOURCE,
    NODE_OBJECTS_SOURCE,
    KubernetesObjectsConfig,
)
from kk_common.envelope import MetricSample
from kk_common.k8s.model import PodMeta
from kk_metrics.cluster.api import LeaseApi, ObjectLists, own_namespace
from kk_metrics.cluster.election import Election, ElectionTiming
from kk_metrics.cluster.event_watch import EventForwarder, EventWatch
from kk_metrics.cluster.events import EventTracker
from kk_metrics.cluster.leader import LeaderElector
from kk_metrics.cluster.objects import CLUSTER_KINDS, ClusterCounts, cluster_samples, node_samples
from kk_metrics.errors import ScrapeError
from kk_metrics.samples import RawSample
from kk_metrics.scrape import ProcessedScrape, ScrapeContext, process_samples
from kk_metrics.spool import ScrapeSpool, SpooledBatch

__all__ = [
    "CLUSTER_SOURCE",
    "NODE_SOURCE",
    "Collect",
    "KubernetesObjects",
    "NodePods",
    "spool_samples",
]

NODE_SOURCE = NODE_OBJECTS_SOURCE
CLUSTER_SOURCE = CLUSTER_OBJECTS_SOURCE

Collect = Callable[[ScrapeContext, ScrapeSpool, float, threading.Event], ProcessedScrape]
"""A source's scrape on a worker thread: (context, spool, monotonic deadline, stopping)."""

NodePods = Callable[[], Iterable[PodMeta]]
"""This node's pods now, from the pod cache; raises `ScrapeError` while they are not listed."""

STOP_WAIT_S = 5.0
"""On stop, how long the election may take to write its release."""


def spool_samples(
    samples: Iterable[RawSample],
    context: ScrapeContext,
    spool: ScrapeSpool,
    deadline: float,
    stopping: threading.Event,
) -> ProcessedScrape:
    """Encode, batch and commit one scrape's samples, or throw the scrape away whole."""

    def past_deadline() -> bool:
        return time.monotonic() > deadline or stopping.is_set()

    def checked(pages: Iterable[RawSample]) -> Iterator[RawSample]:
        yield from pages
        if past_deadline():
            raise ScrapeError("timeout", "listing took longer than the source's timeout")

    writer = spool.begin(context.source, context.scrape_ms)
    try:
        accepted, dropped = process_samples(
            checked(samples), context, writer.write, past_deadline=past_deadline
        )
        batches = writer.commit()
    except BaseException:
        writer.abort()
        raise
    return ProcessedScrape(samples=accepted, dropped_non_finite=dropped, batches=batches)


class KubernetesObjects:
    """Object metrics and the election for one agent; see the module docstring."""

    def __init__(
        self,
        settings: KubernetesObjectsConfig,
        *,
        node_name: str,
        lists: ObjectLists,
        elector: LeaderElector | None,
        events: EventForwarder | None = None,
        node_pods: NodePods | None = None,
    ) -> None:
        self.settings = settings
        self.node_name = node_name
        self.node_pods = node_pods
        self.lists = lists
        self.elector = elector
        self.events = events
        if events is not None and elector is not None:
            elector.checkpoint = events.current_checkpoint
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_config(
        cls, config: AgentConfig, *, api: Any, node_pods: NodePods
    ) -> KubernetesObjects:
        """For ``metrics.kubernetes`` (enabled), with the service's API connection ``api``
        and its view of this node's pods."""
        settings = config.metrics.kubernetes
        timeout = config.metrics.effective_timeout
        lists = ObjectLists(api, timeout_s=timeout)
        elector = events = None
        if settings.cluster_counts or settings.events.enabled:
            timing = ElectionTiming(
                lease_duration_s=settings.lease_duration,
                renew_deadline_s=settings.renew_deadline,
                retry_period_s=settings.retry_period,
            )
            leases = LeaseApi(
                api,
                name=settings.lease_name,
                namespace=settings.lease_namespace or own_namespace(),
                # Shorter than the renew deadline: a hung call cannot outlast leadership.
                timeout_s=min(timeout, settings.renew_deadline / 2),
            )
            identity = settings.identity or socket.gethostname()
            elector = LeaderElector(leases, Election(identity, timing))
        if elector is not None and settings.events.enabled:
            node = config.agent.node_name
            tracker = EventTracker(cluster=config.agent.cluster_name, node=node)
            events = EventForwarder(EventWatch(api, tracker), elector, producer=f"metrics@{node}")
        return cls(
            settings,
            node_name=config.agent.node_name,
            lists=lists,
            elector=elector,
            events=events,
            node_pods=node_pods,
        )

    # -- sources ----------------------------------------------------------------------

    def collectors(self) -> dict[str, Collect]:
        """The scrape sources, by name."""
        found: dict[str, Collect] = {}
        if self.node_pods is not None:
            found[NODE_SOURCE] = self.collect_node
        if self.elector is not None and self.settings.cluster_counts:
            found[CLUSTER_SOURCE] = self.collect_cluster
        return found

    def collect_node(
        self, context: ScrapeContext, spool: ScrapeSpool, deadline: float, stopping: threading.Event
    ) -> ProcessedScrape:
        if self.node_pods is None:
            raise ScrapeError("not_synced", "this node's pods are not kept (no pod cache)")
        return spool_samples(node_samples(self.node_pods()), context, spool, deadline, stopping)

    def collect_cluster(
        self, context: ScrapeContext, spool: ScrapeSpool, deadline: float, stopping: threading.Event
    ) -> ProcessedScrape:
        if self.elector is None or not self.elector.is_leader():
            return ProcessedScrape(samples=0, dropped_non_finite=0, batches=[])
        counts = ClusterCounts()
        for kind in CLUSTER_KINDS:
            if time.monotonic() > deadline or stopping.is_set():
                raise ScrapeError("timeout", f"counting stopped at {kind}: past the timeout")
            if kind == "pods":
                for page in self.lists.pages("pods"):
                    counts.count_pods(page)
            else:
                counts.set_total(kind, self.lists.count(kind))
        if not self.elector.is_leader():
            # Leadership ended while we counted: another agent may report this interval.
            return ProcessedScrape(samples=0, dropped_non_finite=0, batches=[])
        return spool_samples(list(cluster_samples(counts)), context, spool, deadline, stopping)

    # -- lifecycle --------------------------------------------------------------------

    def start(self, spool: ScrapeSpool, deliver: Callable[[list[SpooledBatch]], None]) -> None:
        """Join the election (cluster counts, events); events are committed to ``spool``
        and their batches handed to ``deliver`` (the service's outbox)."""
        if self.elector is not None and not self._tasks:
            self._tasks.append(
                asyncio.create_task(self.elector.run(self._stop), name="leader-election")
            )
        if self.events is not None and len(self._tasks) == 1:
            self._tasks.append(
                asyncio.create_task(self.events.run(self._stop, spool, deliver), name="events")
            )

    async def close(self) -> None:
        """Stop the events and leave the election (releasing the Lease if we hold it)."""
        self._stop.set()
        for task in reversed(self._tasks):
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, STOP_WAIT_S)
        self._tasks = []

    def problems(self) -> list[str]:
        """What health should show (shown, not a reason to be unready)."""
        problems = []
        problem = self.elector.problem() if self.elector is not None else None
        if problem:
            problems.append(problem)
        watch = self.events.events.status() if self.events is not None else None
        if watch is not None and watch.consecutive_failures:
            problems.append(f"the events watch is failing: {watch.last_error}")
        return problems

    def samples(self) -> list[MetricSample]:
        """Telemetry for the health container."""
        out = self.elector.samples() if self.elector is not None else []
        if self.events is not None:
            out.append(
                MetricSample(
                    "killkrill_metrics_events_sent_total", "counter", self.events.records_committed
                )
            )
            out += [
                MetricSample(
                    "killkrill_metrics_events_watch_errors_total", "counter", n, {"reason": r}
                )
                for r, n in sorted(self.events.events.status().api_errors.items())
            ]
        return out
