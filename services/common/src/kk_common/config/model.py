"""The typed, frozen configuration model of the agent.

``AgentConfig`` is the root; each service takes its own section (``config.logs``,
``config.metrics``, ``config.agent``, ``config.performance``, ``config.shipper``). Every
field carries its documentation as an attribute docstring right below it
(``use_attribute_docstrings``).

Adding a field is one line plus its docstring here, plus one line in
``docs/configuration.md`` (a test checks that every field is documented). Durations are
held as float seconds and sizes as int bytes even though the keys keep the product's names
(``flush_interval``, ``buffer_size``); the value types in :mod:`.value_types` parse them.

Build instances with :func:`kk_common.config.parse_config` or ``load_config``: they merge
the file and the environment, fill the node-specific default metric sources and turn
pydantic's errors into readable problems.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .kubernetes_objects import KubernetesObjectsConfig
from .metric_sources import SERVICE_ACCOUNT_CA_FILE, SERVICE_ACCOUNT_TOKEN_FILE
from .value_types import (
    AbsolutePath,
    ApiKey,
    HttpUrl,
    IpAddress,
    LicenseKey,
    LogLevel,
    NonEmptyText,
    Port,
    PositiveInt,
    Seconds,
    SecondsOrZero,
    SizeBytes,
)

__all__ = [
    "COMPRESSION_LEVELS",
    "DEFAULT_COMPRESSION",
    "MAX_SAMPLES_PER_SCRAPE",
    "AgentConfig",
    "AgentSettings",
    "Compression",
    "Credentials",
    "HealthConfig",
    "Http3Config",
    "KubernetesMetadataConfig",
    "KubernetesSource",
    "LogsConfig",
    "LogsOutputConfig",
    "LogsWindowConfig",
    "MetricSourceConfig",
    "MetricSourceFormat",
    "MetricsApiConfig",
    "MetricsConfig",
    "MetricsOutputConfig",
    "NodeExporterConfig",
    "NodeMetricsConfig",
    "OutputConfig",
    "OutputMode",
    "OutputType",
    "PerformanceConfig",
    "PodMetadataField",
    "PodMetricsConfig",
    "RetryConfig",
    "ShipperConfig",
    "SystemLogsConfig",
    "TlsConfig",
]

OutputType = Literal["http3", "http"]
Compression = Literal["gzip", "zstd", "none"]

DEFAULT_COMPRESSION: Compression = "zstd"
"""Measured on receiver-shaped log batches (docs/benchmarks.md): zstd at its default level 3
makes the same wire size as gzip 6 for about a ninth of the CPU; receivers accept both."""
OutputMode = Literal["batch", "single"]
PodMetadataField = Literal["namespace", "pod_name", "container_name", "labels", "annotations"]
KubernetesSource = Literal["api", "kubelet"]

MB = 1000 * 1000
KiB = 1024
MiB = 1024**2
GiB = 1024**3

COMPRESSION_LEVELS: dict[Compression, tuple[int, int, int]] = {
    "gzip": (1, 9, 6),
    "zstd": (1, 19, 3),
}
"""``(lowest, highest, default)`` compression level of each compressed encoding."""


class _Section(BaseModel):
    # hide_input_in_errors: even pydantic's own str(ValidationError) must never show a value
    # (it could be a secret); our messages are built in .value_types and .pydantic_errors.
    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, hide_input_in_errors=True
    )


class AgentSettings(_Section):
    """The ``agent`` section: who this agent is and where it keeps its runtime files."""

    node_name: NonEmptyText
    """The Kubernetes node this agent runs on (required; usually NODE_NAME from spec.nodeName)."""
    node_ip: IpAddress | None = None
    """The node's IP (NODE_IP from status.hostIP); the default metrics sources scrape it."""
    cluster_name: NonEmptyText = "default-cluster"
    """A name for the cluster, sent with every batch (``X-Cluster-Name``, ``source``)."""
    ipc_dir: AbsolutePath = "/run/killkrill"
    """Directory for the ZeroMQ sockets shared by the pod's containers (an emptyDir)."""
    state_dir: AbsolutePath = "/var/lib/killkrill"
    """Directory for file offsets and the shipper's queue (a hostPath, survives restarts)."""
    log_level: LogLevel = "info"
    """The agent's own log level: trace, debug, info, warn (or warning), error."""

    @property
    def source(self) -> str:
        """``<cluster>/<node>``: the ``source`` field of every batch sent to a receiver."""
        return f"{self.cluster_name}/{self.node_name}"


class Http3Config(_Section):
    """``<pipeline>.output.http3``: when to give up on HTTP/3 and when to try it again."""

    handshake_timeout: Seconds = 1.0
    """Fall back to HTTP/1.1 when the QUIC handshake takes longer (a blocked UDP path)."""
    probe_interval: Seconds = 300.0
    """While on the HTTP/1.1 fallback, try HTTP/3 again this often (default ``5m``)."""
    path_timeout: Seconds = 1.0
    """A live connection that hears nothing (QUIC PINGs unanswered) this long while requests
    wait is lost: its requests move to HTTP/1.1 at once."""


class RetryConfig(_Section):
    """``<pipeline>.output.retry``: backoff, batch splitting and dead-lettering."""

    initial_backoff: Seconds = 1.0
    """Wait before the first retry of a failed request; the wait grows up to max_backoff."""
    max_backoff: Seconds = 60.0
    """Longest wait between retries; at least initial_backoff (Retry-After may ask for more)."""
    max_retry_after: Seconds = 300.0
    """A receiver's ``Retry-After`` is honoured up to this long (default ``5m``)."""
    attempts_before_split: PositiveInt = 3
    """Failed attempts (5xx) of a batch before it is split in two to isolate a poison record."""
    record_retry_budget: PositiveInt = 5
    """Failed attempts of a single record before it is moved to the dead letter store."""
    check_interval: Seconds = 1.0
    """While the receiver is unreachable, check this often whether it is back (a TCP/TLS
    connect and a QUIC handshake, no payload), so delivery resumes that soon after it returns."""


class TlsConfig(_Section):
    """``<pipeline>.output.tls``: how receivers are verified, and the optional client cert."""

    ca_file: AbsolutePath | None = None
    """CA bundle that verifies the receiver's certificate; none: the system trust store."""
    cert_file: AbsolutePath | None = None
    """Client certificate (PEM) for mutual TLS; needs key_file."""
    key_file: AbsolutePath | None = None
    """Private key (PEM) of cert_file; needs cert_file."""
    insecure_skip_verify: bool = False
    """Skip verifying the receiver's certificate (logged at startup and exported as a metric)."""


class OutputConfig(_Section):
    """Where and how a pipeline sends its batches (fields shared by logs and metrics)."""

    type: OutputType = "http3"
    """``http3``: HTTP/3 first, HTTP/1.1 fallback; ``http``: HTTP/1.1 only."""
    url: HttpUrl | None = None
    """Receiver base URL (``/api/v1/<kind>`` is appended if it has no path); required if enabled."""
    compression: Compression = DEFAULT_COMPRESSION
    """Request body encoding: zstd, gzip or none (``none`` is the default in single mode)."""
    mode: OutputMode = "batch"
    """``batch``: the documented batch API; ``single``: one uncompressed record per request."""
    fallback_url: HttpUrl | None = None
    """Receiver base URL for the HTTP/1.1 fallback; none: ``url`` over TCP."""
    allow_plaintext_fallback: bool = False
    """Allow an ``http://`` fallback_url behind an ``https://`` url (credentials in clear)."""
    max_request_bytes: SizeBytes = 4 * MB
    """Uncompressed body limit per request; a batch closes before a record would exceed it."""
    compression_level: PositiveInt | None = None
    """gzip 1-9 or zstd 1-19; none: the encoding's default (gzip 6, zstd 3)."""
    max_in_flight: PositiveInt = 4
    """Concurrent requests (HTTP/3 streams or HTTP/1.1 connections) of this output."""
    request_timeout: Seconds = 30.0
    """Time allowed for one request, from sending it to the end of the response."""
    http3: Http3Config = Field(default_factory=Http3Config)
    """HTTP/3 handshake timeout and re-probing while on the HTTP/1.1 fallback."""
    retry: RetryConfig = Field(default_factory=RetryConfig)
    """Backoff, batch splitting and dead-lettering of failed requests."""
    tls: TlsConfig = Field(default_factory=TlsConfig)
    """Receiver certificate verification and the optional client certificate."""

    @property
    def effective_fallback_url(self) -> str | None:
        """The HTTP/1.1 base URL: ``fallback_url`` if set, else ``url``."""
        return self.fallback_url or self.url

    @property
    def effective_compression_level(self) -> int | None:
        """``compression_level`` or the encoding's default; None with compression none."""
        if self.compression == "none":
            return None
        return self.compression_level or COMPRESSION_LEVELS[self.compression][2]

    @model_validator(mode="before")
    @classmethod
    def _single_mode_defaults_to_no_compression(cls, data: object) -> object:
        # Single-record receivers don't decode gzip, so "single" changes the *default*
        # compression; an explicit conflicting value is reported by the cross-field checks.
        if isinstance(data, dict) and data.get("mode") == "single" and "compression" not in data:
            return {**data, "compression": "none"}
        return data


class LogsOutputConfig(OutputConfig):
    """``logs.output``: the log pipeline's receiver and batching."""

    batch_size: PositiveInt = 1000
    """Maximum records per batch."""
    flush_interval: Seconds = 5.0
    """Send a partial batch after this long (seconds; written as a duration, e.g. ``5s``)."""


class MetricsOutputConfig(OutputConfig):
    """``metrics.output``: the metrics pipeline's receiver and batching."""

    batch_size: PositiveInt = 500
    """Maximum samples per batch."""
    flush_interval: Seconds = 30.0
    """Send a partial batch after this long (seconds; written as a duration, e.g. ``30s``)."""


ALL_POD_METADATA: tuple[PodMetadataField, ...] = (
    "namespace",
    "pod_name",
    "container_name",
    "labels",
    "annotations",
)


class KubernetesMetadataConfig(_Section):
    """``logs.kubernetes``: enrichment of log records with pod metadata."""

    enabled: bool = True
    """Add Kubernetes metadata to each record."""
    pod_metadata: tuple[PodMetadataField, ...] = ALL_POD_METADATA
    """Which pod metadata to add: namespace, pod_name, container_name, labels, annotations."""
    source: KubernetesSource = "api"
    """``api``: list+watch the API server for this node's pods; ``kubelet``: poll its /pods."""
    kubelet_url: HttpUrl | None = None
    """Kubelet base URL for source kubelet; the loader's default is https://<node IP>:10250."""
    kubelet_poll_interval: Seconds = 10.0
    """Time between polls of the kubelet's /pods (source kubelet)."""
    token_file: AbsolutePath = SERVICE_ACCOUNT_TOKEN_FILE
    """Bearer token for the API server or the kubelet (re-read, as projected tokens rotate)."""
    ca_file: AbsolutePath = SERVICE_ACCOUNT_CA_FILE
    """CA bundle that verifies the API server's or the kubelet's certificate."""
    deleted_pod_retention: Seconds = 300.0
    """Deleted pods stay in the cache this long, so their last lines are still enriched."""
    metadata_wait: SecondsOrZero = 2.0
    """A new pod's lines wait this long for its metadata, then ship with path fields (0s: none)."""
    services: bool = True
    """Watch Services to add each pod's Services (needs cluster-wide list/watch on services)."""


class LogsWindowConfig(_Section):
    """``logs.window``: what may be sent to the shipper and not yet acknowledged."""

    max_batches: PositiveInt = 64
    """Unacknowledged batches to the shipper; reading pauses while the window is full."""
    max_bytes: SizeBytes = 8 * MiB
    """Unacknowledged bytes to the shipper; reading pauses while the window is full."""


class SystemLogsConfig(_Section):
    """``logs.system_logs``: the node's own system logs, read as plain text lines."""

    enabled: bool = False
    """Also collect the node's system logs (opt-in)."""
    paths: tuple[AbsolutePath, ...] = ("/var/log/syslog", "/var/log/messages")
    """System log files to read, each line a record."""


class LogsConfig(_Section):
    """The ``logs`` section: container log collection."""

    enabled: bool = True
    """Collect container logs."""
    paths: tuple[AbsolutePath, ...] = ("/var/log/pods/*/*/*.log", "/var/log/containers/*.log")
    """Glob patterns of the log files to tail."""
    exclude_paths: tuple[AbsolutePath, ...] = ()
    """Glob patterns of files not to read, even when ``paths`` matches them."""
    ignore_older: Seconds | None = None
    """Files not modified for this long are not read; none: every file is read."""
    max_line_size: SizeBytes = MiB
    """A merged line (CRI P...F parts, docker split lines) longer than this ships in pieces."""
    partial_timeout: Seconds = 5.0
    """An unterminated partial line (the writer died mid-line) is shipped after this long."""
    read_slice: SizeBytes = 256 * KiB
    """Bytes read from one file per round, so that one busy file cannot starve the others."""
    deleted_file_grace: Seconds = 60.0
    """A deleted file still open is read to its end for at most this long, then closed."""
    rescan_interval: Seconds = 10.0
    """Full rescan of the globs this often: the safety net (inotify reports new, renamed,
    deleted and written files in between)."""
    max_open_files: PositiveInt | None = None
    """Log files held open at once (idle ones are closed beyond, and reopened when they
    change); none: the descriptor limit less a reserve for sockets, SQLite and inotify."""
    window: LogsWindowConfig = Field(default_factory=LogsWindowConfig)
    """Batches and bytes sent to the shipper and not yet acknowledged (back-pressure)."""
    batch_max_records: PositiveInt = 1000
    """Records per batch handed to the shipper (not ``output.batch_size``: the receiver's)."""
    batch_max_wait: Seconds = 0.2
    """Hand a partial batch to the shipper after this long."""
    system_logs: SystemLogsConfig = Field(default_factory=SystemLogsConfig)
    """The node's system logs (opt-in)."""
    kubernetes: KubernetesMetadataConfig = Field(default_factory=KubernetesMetadataConfig)
    """Kubernetes metadata enrichment."""
    output: LogsOutputConfig = Field(default_factory=LogsOutputConfig)
    """Where log batches go."""


MetricSourceFormat = Literal["prometheus", "kubelet_summary", "metrics_api"]

MAX_SAMPLES_PER_SCRAPE = 1_000_000
"""The highest ``sample_limit``: a scrape's samples are numbered within a slot of 2**20
positions for the shipper's dedup (see kk_metrics.batches)."""


class MetricSourceConfig(_Section):
    """One entry of ``metrics.sources``: an endpoint to scrape."""

    name: NonEmptyText
    """Unique name; becomes the ``source`` label of its samples."""
    url: HttpUrl
    """The endpoint to scrape."""
    format: MetricSourceFormat = "prometheus"
    """``prometheus`` (text), ``kubelet_summary`` (/stats/summary) or ``metrics_api`` (JSON)."""
    enabled: bool = True
    """Scrape this source."""
    optional: bool = False
    """An absent source (connection refused, 404) stays quiet: no error log, not unhealthy."""
    bearer_token_file: AbsolutePath | None = None
    """File holding a bearer token for the scrape (re-read when it changes, as tokens rotate)."""
    ca_file: AbsolutePath | None = None
    """CA bundle to verify the source's TLS certificate; none: the system trust store."""
    cert_file: AbsolutePath | None = None
    """Client certificate (PEM) for the scrape; needs key_file."""
    key_file: AbsolutePath | None = None
    """Private key (PEM) of cert_file; needs cert_file."""
    insecure_skip_verify: bool = False
    """Skip verifying this source's certificate (logged at startup); prefer ca_file."""
    timeout: Seconds | None = None
    """Time allowed for one scrape of this source; none: metrics.timeout."""
    sample_limit: PositiveInt | None = None
    """Most samples one scrape of this source may give; none: metrics.sample_limit."""


class NodeMetricsConfig(_Section):
    """``metrics.node``: the node's own metrics, read from the host's /proc and /sys."""

    enabled: bool = True
    """Collect node metrics (CPU, memory, load, disk I/O, filesystems, network, processes)."""
    proc_path: AbsolutePath = "/host/proc"
    """Where the host's /proc is mounted in the container."""
    sys_path: AbsolutePath = "/host/sys"
    """Where the host's /sys is mounted in the container."""
    rootfs_path: AbsolutePath = "/host/root"
    """Where the host's / is mounted (read-only), to measure filesystem usage."""


class PodMetricsConfig(_Section):
    """``metrics.pods``: this node's pods, for cAdvisor's workload labels and annotated pods."""

    enabled: bool = True
    """Keep this node's pods (from where logs.kubernetes.source says) for the two below."""
    cadvisor_labels: bool = True
    """Give cAdvisor series of a pod its k8s_namespace, k8s_pod, k8s_container, k8s_workload."""
    scrape_annotated: bool = True
    """Scrape pods annotated ``prometheus.io/scrape: "true"`` (port, path, scheme annotations)."""
    sample_limit: PositiveInt = 10_000
    """Most samples one scrape of one pod may give; a larger scrape fails as a whole."""
    ca_file: AbsolutePath | None = None
    """CA bundle that verifies pods served over https; none: the system trust store."""
    insecure_skip_verify: bool = False
    """Skip verifying the certificates of pods served over https (logged at startup)."""


class NodeExporterConfig(_Section):
    """``metrics.node_exporter``: a node-exporter on the node, scraped as source node-exporter."""

    enabled: bool = False
    """Scrape it (off by default: the node source already reads /proc and /sys)."""
    url: HttpUrl | None = None
    """Its metrics URL; none: ``http://<agent.node_ip>:9100/metrics``."""


class MetricsApiConfig(_Section):
    """``metrics.metrics_api``: the metrics.k8s.io API (metrics-server), where it runs."""

    enabled: bool = False
    """Read this node's and its pods' usage from it (sources metrics-api-node, -pods),
    through the agent's API server connection (in-cluster, else $KUBECONFIG)."""


class MetricsConfig(_Section):
    """The ``metrics`` section: node and container metrics collection."""

    enabled: bool = True
    """Collect metrics (the metrics container scrapes; the shipper delivers them)."""
    interval: Seconds = 30.0
    """Time between scrapes (seconds; written as a duration, e.g. ``30s``)."""
    timeout: Seconds | None = None
    """Time allowed for one scrape of a source; none: half the interval, at most 10s."""
    sample_limit: PositiveInt = 200_000
    """Most samples one scrape of a source may give; a larger scrape fails as a whole."""
    max_scrape_size: SizeBytes = 64 * MiB
    """Largest response body of one scrape (after decompression); a larger one fails."""
    batch_max_records: PositiveInt = 1000
    """Samples per batch handed to the shipper (not ``output.batch_size``: the receiver's)."""
    spool_max_size: SizeBytes = 256 * MiB
    """Disk for scrapes not yet acknowledged by the shipper; while full, scrapes are skipped."""
    sources: tuple[MetricSourceConfig, ...] = ()
    """Endpoints to scrape; the loader's default is the node's kubelet endpoints."""
    node: NodeMetricsConfig = Field(default_factory=NodeMetricsConfig)
    """The node's own metrics from the host's /proc and /sys."""
    kubernetes: KubernetesObjectsConfig = Field(default_factory=KubernetesObjectsConfig)
    """Kubernetes object metrics (pods, containers, cluster counts) and events."""
    pods: PodMetricsConfig = Field(default_factory=PodMetricsConfig)
    """This node's pods: workload labels for cAdvisor, metrics of annotated pods."""
    node_exporter: NodeExporterConfig = Field(default_factory=NodeExporterConfig)
    """An optional node-exporter endpoint."""
    metrics_api: MetricsApiConfig = Field(default_factory=MetricsApiConfig)
    """The optional metrics.k8s.io source."""
    output: MetricsOutputConfig = Field(default_factory=MetricsOutputConfig)
    """Where metric batches go."""

    @property
    def effective_timeout(self) -> float:
        """``timeout``, or half the interval capped at 10 s: always shorter than the interval."""
        return self.timeout if self.timeout is not None else min(10.0, self.interval / 2)


class PerformanceConfig(_Section):
    """The ``performance`` section: sizing knobs shared by the services."""

    worker_threads: PositiveInt = 2
    """Worker threads per service."""
    buffer_size: SizeBytes = 32 * MB
    """In-memory buffer per service (bytes; written as a size: ``32MB`` = 32,000,000)."""
    queue_size: PositiveInt = 10000
    """Maximum records waiting in a service's in-memory queue."""
    connection_pool_size: PositiveInt = 4
    """Connections kept open to each receiver."""


class ShipperConfig(_Section):
    """The ``shipper`` section: the durable queue, deduplication and shutdown."""

    queue_max_size: SizeBytes = GiB
    """Disk queue limit (in ``<state_dir>/shipper/``); when full, producers are slowed down."""
    dedup_window: Seconds = 3600.0
    """How long what a source (a log file) stored is remembered, to drop re-sent records."""
    dedup_max_sources: PositiveInt = 100_000
    """The most sources remembered for dedup at once, even within dedup_window."""
    dead_letter_max_size: SizeBytes = 100 * MB
    """Disk limit of the dead letter store (records that could not be delivered)."""
    drain_timeout: Seconds = 20.0
    """On SIGTERM, time to finish in-flight requests; the rest stays queued on disk."""
    telemetry_interval: Seconds = 10.0
    """How often the shipper sends its own metrics."""
    ack_timeout: Seconds = 5.0
    """How long a producer waits for the shipper's acknowledgement before re-sending."""
    outage_summary_interval: Seconds = 60.0
    """While an output is down, log one summary line this often (queued records, next try)."""


class HealthConfig(_Section):
    """The ``health`` section: where the health container serves its endpoints."""

    listen_address: IpAddress = "0.0.0.0"  # noqa: S104 - the metrics Service must reach it
    """Address the HTTP server binds (``/healthz``, ``/ready``, ``/metrics``, ``/status``)."""
    port: Port = 8080
    """TCP port of the HTTP server (the ``killkrill-agent-metrics`` Service targets it)."""
    stale_after: Seconds | None = None
    """A component with no telemetry for this long is stale; default three telemetry intervals."""


class Credentials(_Section):
    """Secrets, read only from the environment (never from the config file)."""

    license_key: LicenseKey | None = None
    """The PenguinTech license key (KILLKRILL_LICENSE_KEY), sent as the bearer token.

    Only the shipper talks to the receivers, so only it requires the key (`load_config`'s
    ``require_license_key``); the logs, metrics and health containers start without it."""
    api_key: ApiKey | None = None
    """Optional receiver API key (KILLKRILL_API_KEY), sent as ``X-API-Key``."""


class AgentConfig(_Section):
    """The whole, validated agent configuration: defaults < file < environment."""

    agent: AgentSettings
    """Agent identity and runtime directories."""
    logs: LogsConfig = Field(default_factory=LogsConfig)
    """Log collection."""
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    """Metrics collection."""
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    """Sizing knobs."""
    shipper: ShipperConfig = Field(default_factory=ShipperConfig)
    """The shipper's disk queue, deduplication and shutdown."""
    health: HealthConfig = Field(default_factory=HealthConfig)
    """The health container's HTTP server and staleness threshold."""
    credentials: Credentials
    """Secrets from the environment; ``repr``/``str``/dumps show ``**********``."""
