"""Wiring of the metrics service: schedule -> fetch -> parse -> spool -> shipper -> forget.

1. `ScrapeSchedule` says which sources are due; each due source is scraped in its own task,
   so sources run concurrently and a slow or failing one never delays the others. A scrape
   has a deadline (the source's timeout, always shorter than the interval) that covers the
   fetch (cancelled) and the processing (which looks at the clock as it goes).
2. The body is streamed to a scratch file (`SourceFetcher`), then read on a worker thread:
   parsed, encoded into records and cut into batches (`read_and_spool`), each batch written
   to the `ScrapeSpool` as soon as it is full, so memory holds one batch and one metric
   family, not the page. A scrape that fails anywhere is thrown away whole; one that
   succeeds is committed to the spool.
3. Committed batches are sent to the shipper in order, at most a window of them
   unacknowledged (`BatchSender`, which re-sends after a timeout or a shipper restart). A
   batch's spool file is deleted when the shipper acknowledges it as stored; what is not
   acknowledged when the process stops or dies is sent again at the next start.
4. While the spool holds more than ``metrics.spool_max_size`` (the shipper has not been
   acknowledging for a long time), scrapes are skipped and counted: the backlog on disk is
   bounded, and what was read is never dropped.
5. Every ``shipper.telemetry_interval`` the per-source counters go to the health container.

Kubernetes: one API connection (`kk_common.k8s.connect.api_client`: in-cluster, else
$KUBECONFIG) serves every part that asks the API server (this node's pods when
``logs.kubernetes.source`` is ``api``, the object metrics, the Lease, the events), and one
`PodCache` of this node's pods serves cAdvisor's labels, annotated pods, the metrics API's
pod filter and the ``kubernetes_node`` counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import zmq.asyncio

from kk_common.config import AgentConfig, MetricSourceConfig
from kk_common.config.metrics_checks import NODE_SOURCE_NAME
from kk_common.envelope import Ack, ComponentStatus, MetricSample, Telemetry
from kk_common.heartbeat import touch_heartbeat
from kk_common.ipc import (
    SHIPPER_INGEST_SOCKET,
    TELEMETRY_SOCKET,
    BatchSender,
    PendingBatch,
    PendingBatches,
    TelemetryPublisher,
    ipc_endpoint,
)
from kk_common.jsonlog import log_event
from kk_common.k8s.cache import PodCache
from kk_common.k8s.connect import KubernetesApiUnavailable, api_client, pod_metadata_source
from kk_common.k8s.model import PodMeta
from kk_common.memory import release_free_memory
from kk_common.process_metrics import process_samples
from kk_common.startup import secrets_of
from kk_metrics import __version__
from kk_metrics.api_fetch import ApiFetcher
from kk_metrics.cluster.service import Collect, KubernetesObjects
from kk_metrics.errors import ScrapeError
from kk_metrics.fetch import SourceFetcher
from kk_metrics.pods import CadvisorPodLabels, PodTarget, scrape_targets, url_host
from kk_metrics.records import ExtraLabels
from kk_metrics.schedule import ScrapeSchedule
from kk_metrics.scrape import ScrapeContext, read_and_spool
from kk_metrics.sources.node import NodeReader
from kk_metrics.spool import ScrapeSpool, SpooledBatch
from kk_metrics.status import ScrapeOutcome, SourceStatus

__all__ = [
    "METRICS_API_NODE_SOURCE",
    "METRICS_API_PODS_SOURCE",
    "NODE_EXPORTER_SOURCE",
    "NODE_SOURCE",
    "MetricsService",
    "metrics_api_paths",
    "optional_sources",
    "spool_path",
]

_log = logging.getLogger("kk.metrics")

NODE_SOURCE = NODE_SOURCE_NAME
"""The source name of the node's own metrics (/proc and /sys)."""

WINDOW_BATCHES = 16
"""Batches sent to the shipper and not yet acknowledged. Scrapes come in bursts every
interval, and the spool (not memory) holds the rest, so a small window is enough."""
WINDOW_BYTES = 16 * 1024 * 1024

STOP_ACK_WAIT_S = 5.0
"""On SIGTERM, how long to wait for acknowledgements in flight (the rest stays spooled)."""

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


NODE_EXPORTER_SOURCE = "node-exporter"
METRICS_API_NODE_SOURCE = "metrics-api-node"
METRICS_API_PODS_SOURCE = "metrics-api-pods"
NODE_EXPORTER_PORT = 9100


METRICS_API = "/apis/metrics.k8s.io/v1beta1"


def optional_sources(config: AgentConfig) -> list[MetricSourceConfig]:
    """The HTTP source that ``metrics.node_exporter`` switches on."""
    metrics, agent = config.metrics, config.agent
    sources = []
    exporter = metrics.node_exporter
    if exporter.enabled:
        url = exporter.url
        if url is None and agent.node_ip:
            url = f"http://{url_host(agent.node_ip)}:{NODE_EXPORTER_PORT}/metrics"
        if url is not None:  # else refused by the configuration checks
            sources.append(MetricSourceConfig(name=NODE_EXPORTER_SOURCE, url=url))
    return sources


def metrics_api_paths(config: AgentConfig) -> dict[str, str]:
    """The API server paths that ``metrics.metrics_api`` reads, by source name."""
    metrics = config.metrics
    if not metrics.metrics_api.enabled:
        return {}
    paths = {METRICS_API_NODE_SOURCE: f"{METRICS_API}/nodes/{config.agent.node_name}"}
    if metrics.pods.enabled:  # the API's pod list is the cluster's: keep this node's
        paths[METRICS_API_PODS_SOURCE] = f"{METRICS_API}/pods"
    return paths


def _is_cadvisor(source: MetricSourceConfig) -> bool:
    return source.name == "cadvisor" or source.url.rstrip("/").endswith("/metrics/cadvisor")


def _names_a_pod(source: MetricSourceConfig) -> bool:
    """cAdvisor's series and the metrics API's pods name their pod: they get its labels."""
    return _is_cadvisor(source) or source.format == "metrics_api"


def _fixed(labels: Any) -> ExtraLabels:
    return lambda _sample_labels: labels


def spool_path(config: AgentConfig) -> Path:
    return Path(config.agent.state_dir) / "metrics" / "spool"


@dataclass
class _Source:
    name: str
    kind: str
    """``prometheus``, ``kubelet_summary``, ``node`` or ``pod`` (an annotated pod: text)."""
    timeout_s: float
    sample_limit: int
    optional: bool
    fetcher: SourceFetcher | ApiFetcher | None
    status: SourceStatus
    collect: Collect | None = None
    """Scrapes without fetching (the Kubernetes objects, `kk_metrics.cluster`)."""
    extra_labels: Callable[[], ExtraLabels] | None = None
    """Makes, per scrape, what adds the pod's labels to a sample (cAdvisor, pod targets)."""
    url: str = ""


class MetricsService:
    """The metrics container: see the module docstring."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        context: zmq.asyncio.Context,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: float | None = None,
        kubernetes_api: Any = None,
        pods: PodCache | None = None,
        pod_source: Any = None,
    ) -> None:
        metrics = config.metrics
        self.config = config
        self.kubernetes_api = kubernetes_api
        """The one API server connection; made when first needed (see the module docstring)."""
        self.pods = pods
        """This node's pods (metrics.pods, metrics.kubernetes), kept current by
        ``pod_source`` (started in run; built from logs.kubernetes there when not given)."""
        if self.pods is None and (metrics.pods.enabled or metrics.kubernetes.enabled):
            self.pods = PodCache(retention_s=config.logs.kubernetes.deleted_pod_retention)
        self.pod_source = pod_source
        self.pod_source_error = ""
        self.pod_target_problems: dict[str, str] = {}
        self._clock = clock
        self._monotonic = monotonic
        self._node = config.agent.node_name
        self._producer = f"metrics@{self._node}"
        self.sources: dict[str, _Source] = {}
        for source in metrics.sources:
            if source.enabled:
                self.sources[source.name] = self._http_source(source)
        for source in optional_sources(config):
            self.sources[source.name] = self._http_source(source)
        for name, path in metrics_api_paths(config).items():
            self.sources[name] = self._api_source(name, path)
        self.node_reader: NodeReader | None = None
        if metrics.node.enabled:
            node = metrics.node
            self.node_reader = NodeReader(
                proc_path=node.proc_path, sys_path=node.sys_path, rootfs_path=node.rootfs_path
            )
            self.sources[NODE_SOURCE] = _Source(
                name=NODE_SOURCE,
                kind="node",
                timeout_s=metrics.effective_timeout,
                sample_limit=metrics.sample_limit,
                optional=False,
                fetcher=None,
                status=SourceStatus(NODE_SOURCE),
            )
        # Kubernetes object metrics and the leader election (kk_metrics.cluster).
        self.kubernetes = self._kubernetes_objects()
        for name, collect in (self.kubernetes.collectors() if self.kubernetes else {}).items():
            self.sources[name] = _Source(
                name=name,
                kind="kubernetes",
                timeout_s=metrics.effective_timeout,
                sample_limit=metrics.sample_limit,
                optional=False,
                fetcher=None,
                status=SourceStatus(name),
                collect=collect,
            )
        state = Path(config.agent.state_dir) / "metrics"
        self.scratch = state / "scratch"
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.spool = ScrapeSpool(spool_path(config))
        self.outbox: deque[SpooledBatch] = deque(self.spool.recover())
        self.recovered_batches = len(self.outbox)
        self.schedule = ScrapeSchedule(
            self.sources,
            interval_s=metrics.interval,
            start=monotonic(),
            jitter=random.random() if jitter is None else jitter,  # noqa: S311 - not crypto
        )
        ipc_dir = config.agent.ipc_dir
        self.sender = BatchSender(
            context,
            ipc_endpoint(ipc_dir, SHIPPER_INGEST_SOCKET),
            pending=PendingBatches(
                resend_after_s=config.shipper.ack_timeout,
                max_batches=WINDOW_BATCHES,
                max_bytes=WINDOW_BYTES,
            ),
            on_ack=self._acknowledged,
            on_refused=self._refused,
        )
        self.telemetry = TelemetryPublisher(
            context, ipc_endpoint(ipc_dir, TELEMETRY_SOCKET), secrets=secrets_of(config)
        )
        self.executor = ThreadPoolExecutor(
            max_workers=config.performance.worker_threads, thread_name_prefix="kk-scrape"
        )
        self._stopping = threading.Event()
        self._wake = asyncio.Event()
        self._scrapes: set[asyncio.Task[None]] = set()
        self._refusal_reported: str | None = None
        self._backlog_reported = False
        self.batches_sent = 0
        self.batches_acknowledged = 0
        self.samples_acknowledged = 0
        """Samples the shipper has stored: the service's records out (health's OUT/s)."""

    def _http_source(
        self,
        source: MetricSourceConfig,
        extra_labels: Callable[[], ExtraLabels] | None = None,
    ) -> _Source:
        metrics = self.config.metrics
        wants_labels = metrics.pods.enabled and metrics.pods.cadvisor_labels
        if extra_labels is None and _names_a_pod(source) and wants_labels:
            extra_labels = self._cadvisor_labels
        return _Source(
            name=source.name,
            kind=source.format,
            timeout_s=source.timeout or metrics.effective_timeout,
            sample_limit=source.sample_limit or metrics.sample_limit,
            optional=source.optional,
            fetcher=SourceFetcher(source, max_bytes=metrics.max_scrape_size),
            status=SourceStatus(source.name, optional=source.optional),
            extra_labels=extra_labels,
            url=source.url,
        )

    def _api_source(self, name: str, path: str) -> _Source:
        """A source read from the API server through the service's connection."""
        metrics = self.config.metrics
        pods = metrics.pods
        return _Source(
            name=name,
            kind="metrics_api",
            timeout_s=metrics.effective_timeout,
            sample_limit=metrics.sample_limit,
            optional=False,
            fetcher=ApiFetcher(
                self._api,
                path,
                name=name,
                max_bytes=metrics.max_scrape_size,
                timeout_s=metrics.effective_timeout,
            ),
            status=SourceStatus(name),
            extra_labels=self._cadvisor_labels if pods.enabled and pods.cadvisor_labels else None,
            url=path,
        )

    def _api(self) -> Any:
        """The service's API connection (raises `KubernetesApiUnavailable`)."""
        if self.kubernetes_api is None:
            self.kubernetes_api = api_client()
        return self.kubernetes_api

    def _kubernetes_objects(self) -> KubernetesObjects | None:
        if not self.config.metrics.kubernetes.enabled:
            return None
        try:
            api = self._api()
        except KubernetesApiUnavailable as exc:
            log_event(
                _log,
                logging.WARNING,
                "kubernetes_objects_unavailable",
                detail=f"{exc}: no object metrics; set metrics.kubernetes.enabled: false "
                "to silence this outside Kubernetes",
            )
            return None
        return KubernetesObjects.from_config(self.config, api=api, node_pods=self._listed_pods)

    def _listed_pods(self) -> list[PodMeta]:
        """This node's pods for ``kubernetes_node``; an error until they are listed."""
        pods = self.pods
        if pods is None or not pods.synced:
            why = self.pod_source_error or self._pod_source_error() or "waiting for the first list"
            raise ScrapeError("not_synced", f"this node's pods are not listed yet: {why}")
        return pods.live_pods()

    def _pod_source_error(self) -> str:
        if self.pod_source is None:
            return ""
        status = self.pod_source.status()
        status = status.get("pods") if isinstance(status, dict) else status
        return status.last_error if status is not None else ""

    def _on_this_node(self, namespace: str, name: str) -> bool:
        pods = self.pods
        return pods is not None and pods.get_by_name(namespace, name, self._monotonic()) is not None

    def _cadvisor_labels(self) -> ExtraLabels | None:
        pods = self.pods
        if pods is None:
            return None
        monotonic = self._monotonic
        return CadvisorPodLabels(lambda ns, name: pods.get_by_name(ns, name, monotonic()))

    # -- annotated pods ----------------------------------------------------------------

    def sync_pod_targets(self) -> None:
        """Start scraping annotated pods that appeared, stop those that went away."""
        settings = self.config.metrics.pods
        if self.pods is None or not (settings.enabled and settings.scrape_annotated):
            return
        found = scrape_targets(self.pods.live_pods())
        for name, problem in found.problems.items():
            if self.pod_target_problems.get(name) != problem:
                log_event(_log, logging.WARNING, "pod_not_scraped", source=name, reason=problem)
        self.pod_target_problems = found.problems
        for name in [name for name in self._pod_targets if name not in found.targets]:
            self._drop_pod_target(name)
        for name, target in found.targets.items():
            known = self.sources.get(name)
            if known is not None and known.url == target.url:
                continue
            if known is not None:  # the same name, another pod (or IP): start afresh
                self._drop_pod_target(name)
            self._add_pod_target(target)

    @property
    def _pod_targets(self) -> list[str]:
        return [name for name, source in self.sources.items() if source.kind == "pod"]

    def _add_pod_target(self, target: PodTarget) -> None:
        pods = self.config.metrics.pods
        config = MetricSourceConfig(
            name=target.source,
            url=target.url,
            ca_file=pods.ca_file,
            insecure_skip_verify=pods.insecure_skip_verify,
            sample_limit=pods.sample_limit,
        )
        source = self._http_source(config, extra_labels=lambda: _fixed(target.labels))
        source.kind = "pod"
        self.sources[target.source] = source
        self.schedule.add(target.source, self._monotonic())
        log_event(_log, logging.INFO, "pod_scrape_started", source=target.source, url=target.url)

    def _drop_pod_target(self, name: str) -> None:
        source = self.sources.pop(name)
        self.schedule.remove(name)
        if source.fetcher is not None:
            task = asyncio.get_running_loop().create_task(source.fetcher.close())
            self._scrapes.add(task)  # type: ignore[arg-type]
            task.add_done_callback(self._scrapes.discard)  # type: ignore[arg-type]
        log_event(_log, logging.INFO, "pod_scrape_stopped", source=name)

    def _start_pod_source(self) -> None:
        if self.pods is None:
            return
        try:
            if self.pod_source is None:
                kube = self.config.logs.kubernetes
                api = self._api() if kube.source == "api" else None
                self.pod_source = pod_metadata_source(kube, self._node, self.pods, api=api)
            self.pod_source.start()
        except Exception as exc:  # no credentials, a bad kubeconfig: scrape without pods
            self.pod_source = None
            self.pod_source_error = f"{type(exc).__name__}: {exc}"
            log_event(
                _log,
                logging.ERROR,
                "pod_metadata_unavailable",
                error=self.pod_source_error,
                detail="cAdvisor series go without workload labels, annotated pods are not "
                "scraped and kubernetes_node fails; set metrics.pods.enabled and "
                "metrics.kubernetes.enabled to false if that is intended",
            )

    # -- delivery ----------------------------------------------------------------------

    def _acknowledged(self, ack: Ack, batch: PendingBatch) -> None:
        if self._refusal_reported is not None and not self.sender.pending.refusals():
            log_event(_log, logging.INFO, "shipper_accepting_metrics_again")
            self._refusal_reported = None
        self.spool.remove(batch.context)
        self.batches_acknowledged += 1
        self.samples_acknowledged += batch.records
        self._wake.set()

    def _refused(self, ack: Ack, batch: PendingBatch) -> None:
        # Kept in the window and the spool: a shipper configured without the metrics
        # output must not make us drop samples. Said once per reason.
        if ack.reason != self._refusal_reported:
            self._refusal_reported = ack.reason
            log_event(
                _log,
                logging.ERROR,
                "batch_rejected_by_shipper",
                batch_id=ack.batch_id,
                reason=ack.reason,
                detail="the samples stay spooled and are offered again every minute; check "
                "that the shipper's metrics output is enabled",
            )

    async def send_spooled(self) -> None:
        """Send committed batches, oldest first, while the window has room."""
        while self.outbox and self.sender.pending.has_room():
            spooled = self.outbox.popleft()
            batch = self.spool.load(spooled)
            if batch is None:
                log_event(
                    _log,
                    logging.ERROR,
                    "spooled_batch_unreadable",
                    path=str(spooled.path),
                    detail="the file was removed; its samples are lost",
                )
                continue
            await self.sender.send(batch, context=spooled)
            self.batches_sent += 1

    # -- scraping ----------------------------------------------------------------------

    def start_due_scrapes(self) -> None:
        for name in self.schedule.due(self._monotonic()):
            task = asyncio.create_task(self.scrape(name), name=f"scrape-{name}")
            self._scrapes.add(task)
            task.add_done_callback(self._scrapes.discard)

    async def scrape(self, name: str) -> ScrapeOutcome:
        """Scrape ``name`` once, spool it and record the outcome (never raises)."""
        source = self.sources.get(name)
        if source is None:  # an annotated pod that went away since
            self.schedule.finished(name)
            return ScrapeOutcome(name, self._clock(), 0.0, error_reason="gone")
        started_wall, started = self._clock(), self._monotonic()
        try:
            if self.spool.bytes_used >= self.config.metrics.spool_max_size:
                self._skip_for_backlog(source)
                return ScrapeOutcome(name, started_wall, 0.0, error_reason="backlog")
            self._end_backlog()
            outcome = await self._scrape(source, started_wall, started)
        finally:
            self.schedule.finished(name)
        self._record(source, outcome)
        return outcome

    async def _scrape(self, source: _Source, started_wall: float, started: float) -> ScrapeOutcome:
        deadline = started + source.timeout_s
        body = self.scratch / f"{_SAFE.sub('_', source.name)}.body"
        context = ScrapeContext(
            source=source.name,
            producer=self._producer,
            node=self._node,
            cluster=self.config.agent.cluster_name,
            scrape_time_s=started_wall,
            sample_limit=source.sample_limit,
            batch_max_records=self.config.metrics.batch_max_records,
            extra_labels=source.extra_labels() if source.extra_labels is not None else None,
            on_this_node=self._on_this_node,
        )

        def elapsed() -> float:
            return self._monotonic() - started

        try:
            if source.fetcher is not None:
                async with asyncio.timeout(source.timeout_s):
                    await source.fetcher.fetch_to(body)
            work = partial(
                read_and_spool,
                "prometheus" if source.kind == "pod" else source.kind,
                body=body if source.fetcher is not None else None,
                node=self.node_reader,
                context=context,
                spool=self.spool,
                deadline=deadline,
                stopping=self._stopping,
            )
            if source.collect is not None:
                work = partial(source.collect, context, self.spool, deadline, self._stopping)
            processed = await asyncio.get_running_loop().run_in_executor(self.executor, work)
        except TimeoutError:
            return ScrapeOutcome(
                source.name,
                started_wall,
                elapsed(),
                error_reason="timeout",
                error=f"no complete answer within {source.timeout_s:g}s (the source's timeout)",
            )
        except ScrapeError as exc:
            return ScrapeOutcome(
                source.name,
                started_wall,
                elapsed(),
                error_reason=exc.reason,
                error=str(exc),
                absent=exc.absent,
            )
        except OSError as exc:
            return ScrapeOutcome(
                source.name,
                started_wall,
                elapsed(),
                error_reason="spool",
                error=f"cannot write the scrape to {self.spool.directory}: {exc}",
            )
        finally:
            body.unlink(missing_ok=True)
        self.outbox.extend(processed.batches)
        self._wake.set()
        return ScrapeOutcome(
            source.name,
            started_wall,
            elapsed(),
            samples=processed.samples,
            dropped_non_finite=processed.dropped_non_finite,
            batches=len(processed.batches),
        )

    def _record(self, source: _Source, outcome: ScrapeOutcome) -> None:
        status = source.status
        was_failing = status.consecutive_failures > 0
        status.record(outcome)
        if outcome.ok:
            if was_failing:
                log_event(_log, logging.INFO, "source_recovered", source=source.name)
            log_event(
                _log,
                logging.DEBUG,
                "scrape_done",
                source=source.name,
                samples=outcome.samples,
                dropped_non_finite=outcome.dropped_non_finite,
                batches=outcome.batches,
                duration_s=round(outcome.duration_s, 3),
            )
            return
        quiet = source.optional and outcome.absent
        log_event(
            _log,
            logging.DEBUG if quiet else logging.WARNING,
            "scrape_failed",
            source=source.name,
            reason=outcome.error_reason,
            error=outcome.error,
            consecutive_failures=status.consecutive_failures,
        )

    def _skip_for_backlog(self, source: _Source) -> None:
        source.status.skipped["backlog"] += 1
        if not self._backlog_reported:
            self._backlog_reported = True
            log_event(
                _log,
                logging.WARNING,
                "scrapes_skipped_backlog",
                spool_bytes=self.spool.bytes_used,
                spool_max_size=self.config.metrics.spool_max_size,
                detail="the shipper has not acknowledged the spooled scrapes; scraping "
                "resumes when it does",
            )

    def _end_backlog(self) -> None:
        if self._backlog_reported:
            self._backlog_reported = False
            log_event(_log, logging.INFO, "scrapes_resumed", spool_bytes=self.spool.bytes_used)

    # -- the loop ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then give acknowledgements in flight a moment."""
        sender = asyncio.create_task(self.sender.run(), name="ipc-sender")
        telemetry = asyncio.create_task(self._publish_telemetry(), name="telemetry")
        if self.kubernetes is not None:
            self.kubernetes.start(self.spool, self.outbox.extend)
        log_event(
            _log,
            logging.INFO,
            "metrics_started",
            sources=sorted(self.sources),
            interval_s=self.config.metrics.interval,
            first_scrape_in_s=round(max(0.0, self.schedule.first - self._monotonic()), 3),
            spooled_batches=self.recovered_batches,
        )
        self._start_pod_source()
        try:
            while not stop.is_set():
                self._wake.clear()
                self.sync_pod_targets()
                self.start_due_scrapes()
                await self.send_spooled()
                wait = max(0.0, min(1.0, self.schedule.next_deadline() - self._monotonic()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
            await self._stop_scrapes()
            await self.send_spooled()
            deadline = self._monotonic() + STOP_ACK_WAIT_S
            while len(self.sender.pending) and self._monotonic() < deadline:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.2)
        finally:
            if self.kubernetes is not None:
                await self.kubernetes.close()
            for task in (sender, telemetry):
                task.cancel()
            await asyncio.gather(sender, telemetry, return_exceptions=True)
            await self._stop_scrapes()
            if self.pod_source is not None:
                await asyncio.get_running_loop().run_in_executor(None, self.pod_source.stop)
            for source in self.sources.values():
                if source.fetcher is not None:
                    await source.fetcher.close()
            self.executor.shutdown(wait=True)
            self.sender.close()
            self.telemetry.close()
            log_event(
                _log,
                logging.INFO,
                "metrics_stopped",
                spooled_batches=len(self.outbox) + len(self.sender.pending),
            )

    async def _stop_scrapes(self) -> None:
        """Scrapes in progress are abandoned (their partial spool is removed)."""
        self._stopping.set()
        for task in list(self._scrapes):
            task.cancel()
        await asyncio.gather(*self._scrapes, return_exceptions=True)

    async def _publish_telemetry(self) -> None:
        while True:
            touch_heartbeat(self.config.agent.ipc_dir, "metrics")  # the liveness probe's file
            await asyncio.sleep(self.config.shipper.telemetry_interval)
            self.telemetry.publish(self.snapshot())
            release_free_memory()

    def snapshot(self) -> Telemetry:
        """The service's metrics and status for the health container."""
        problems = []
        if not self.sender.connected:
            problems.append("not connected to the shipper")
        problems += [
            f"the shipper refuses to store metrics: {reason}"
            for reason in self.sender.pending.refusals()
        ]
        ready = not problems
        samples: list[MetricSample] = []
        for name, source in self.sources.items():
            turns = self.schedule.sources[name]
            source.status.skipped["overrun"] = turns.overruns
            source.status.skipped["missed"] = turns.missed
            samples += source.status.samples()
            problem = source.status.problem()
            if problem:
                # Shown, but not a reason to be unready: the other sources still flow.
                problems.append(problem)
        problems += self.kubernetes.problems() if self.kubernetes else []
        if self.pod_source_error:
            problems.append(f"pod metadata unavailable: {self.pod_source_error}")
        if self.pod_source is not None:
            status = self.pod_source.status()
            status = status.get("pods") if isinstance(status, dict) else status
            if status is not None:
                samples.append(
                    MetricSample(
                        "killkrill_metrics_pod_metadata_synced", "gauge", float(status.synced)
                    )
                )
                if not status.synced and status.last_error:
                    problems.append(f"pod metadata (pods): {status.last_error}")
        problems += [
            f"annotated pod {name} not scraped: {why}"
            for name, why in sorted(self.pod_target_problems.items())
        ]
        pending = self.sender.pending
        samples += [
            MetricSample("killkrill_metrics_pod_targets", "gauge", len(self._pod_targets)),
            MetricSample("killkrill_metrics_window_batches", "gauge", len(pending)),
            MetricSample("killkrill_metrics_spool_bytes", "gauge", self.spool.bytes_used),
            MetricSample(
                "killkrill_metrics_spool_batches", "gauge", len(self.outbox) + len(pending)
            ),
            MetricSample("killkrill_metrics_batches_sent_total", "counter", self.batches_sent),
            MetricSample(
                "killkrill_metrics_batches_acknowledged_total",
                "counter",
                self.batches_acknowledged,
            ),
            MetricSample(
                "killkrill_metrics_samples_acknowledged_total",
                "counter",
                self.samples_acknowledged,
            ),
            MetricSample(
                "killkrill_metrics_spool_unreadable_total", "counter", self.spool.unreadable
            ),
            *process_samples(version=__version__),
            *(self.kubernetes.samples() if self.kubernetes else ()),
        ]
        return Telemetry(
            component="metrics",
            node=self._node,
            sent_at_unix=self._clock(),
            status=ComponentStatus(
                ready=ready, detail="; ".join(problems), problems=tuple(problems)
            ),
            samples=tuple(samples),
        )
