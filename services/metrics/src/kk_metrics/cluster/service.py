"""The metrics service's Kubernetes objects: two scrape sources and the leader election.

* ``kubernetes_node`` (every agent): this node's pods, listed with the field selector
  ``spec.nodeName=<node>`` (an indexed field: each agent reads only its own pods).
* ``kubernetes_cluster`` (the leader only): cluster-wide counts. On the other agents the
  scrape does nothing and succeeds with 0 samples; the leader re-checks that it still
  leads after counting, so a scrape that straddles a failover is thrown away rather than
  reported by two agents.

Both are ordinary sources of `kk_metrics.app.MetricsService`: scheduled, spooled, sent and
shown in health like the HTTP ones. Their collect functions run on a worker thread.
``start`` joins the election (when cluster counts or events are on) and, with events on,
runs the `EventForwarder`, which commits event batches to the same spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import Any

from kk_common.config import AgentConfig
from kk_common.config.kubernetes_objects import (
    CLUSTER_OBJECTS_SOURCE,
    NODE_OBJECTS_SOURCE,
    KubernetesObjectsConfig,
)
from kk_common.envelope import MetricSample
from kk_common.jsonlog import log_event
from kk_metrics.cluster.api import (
    KubernetesApiUnavailable,
    LeaseApi,
    ObjectLists,
    api_client,
    own_namespace,
)
from kk_metrics.cluster.election import Election, ElectionTiming
from kk_metrics.cluster.event_watch import EventForwarder, EventWatch
from kk_metrics.cluster.events import EventTracker
from kk_metrics.cluster.leader import LeaderElector
from kk_metrics.cluster.objects import CLUSTER_KINDS, ClusterCounts, cluster_samples, node_samples
from kk_metrics.errors import ScrapeError
from kk_metrics.samples import RawSample
from kk_metrics.scrape import ProcessedScrape, ScrapeContext, process_samples
from kk_metrics.spool import ScrapeSpool, SpooledBatch

__all__ = ["CLUSTER_SOURCE", "NODE_SOURCE", "Collect", "KubernetesObjects", "spool_samples"]

_log = logging.getLogger("kk.metrics")

NODE_SOURCE = NODE_OBJECTS_SOURCE
CLUSTER_SOURCE = CLUSTER_OBJECTS_SOURCE

Collect = Callable[[ScrapeContext, ScrapeSpool, float, threading.Event], ProcessedScrape]
"""A source's scrape on a worker thread: (context, spool, monotonic deadline, stopping)."""

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
    ) -> None:
        self.settings = settings
        self.node_name = node_name
        self.lists = lists
        self.elector = elector
        self.events = events
        if events is not None and elector is not None:
            elector.checkpoint = events.current_checkpoint
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_config(cls, config: AgentConfig, *, api: Any = None) -> KubernetesObjects | None:
        """None when ``metrics.kubernetes.enabled`` is off or there is no API server."""
        settings = config.metrics.kubernetes
        if not settings.enabled:
            return None
        if api is None:
            try:
                api = api_client()
            except KubernetesApiUnavailable as exc:
                log_event(
                    _log,
                    logging.WARNING,
                    "kubernetes_objects_unavailable",
                    detail=f"{exc}: no object metrics; set metrics.kubernetes.enabled: false "
                    "to silence this outside Kubernetes",
                )
                return None
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
            events = EventForwarder(
                EventWatch(api, lists, tracker), elector, producer=f"metrics@{node}"
            )
        return cls(
            settings, node_name=config.agent.node_name, lists=lists, elector=elector, events=events
        )

    # -- sources ----------------------------------------------------------------------

    def collectors(self) -> dict[str, Collect]:
        """The scrape sources, by name."""
        found: dict[str, Collect] = {NODE_SOURCE: self.collect_node}
        if self.elector is not None and self.settings.cluster_counts:
            found[CLUSTER_SOURCE] = self.collect_cluster
        return found

    def collect_node(
        self, context: ScrapeContext, spool: ScrapeSpool, deadline: float, stopping: threading.Event
    ) -> ProcessedScrape:
        pods = chain.from_iterable(
            self.lists.pages("pods", field_selector=f"spec.nodeName={self.node_name}")
        )
        return spool_samples(node_samples(pods), context, spool, deadline, stopping)

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
        problem = self.elector.problem() if self.elector is not None else None
        return [problem] if problem else []

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
                for r, n in sorted(self.events.events.errors.items())
            ]
        return out
