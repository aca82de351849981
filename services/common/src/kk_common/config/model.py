"""The typed, frozen configuration model of the agent.

``AgentConfig`` is the root; each service takes its own section (``config.logs``,
``config.metrics``, ``config.agent``, ``config.performance``). Every field carries its
documentation as an attribute docstring right below it (``use_attribute_docstrings``).

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

from .value_types import (
    AbsolutePath,
    ApiKey,
    HttpUrl,
    IpAddress,
    LicenseKey,
    LogLevel,
    NonEmptyText,
    PositiveInt,
    Seconds,
    SizeBytes,
)

__all__ = [
    "AgentConfig",
    "AgentSettings",
    "Compression",
    "Credentials",
    "KubernetesMetadataConfig",
    "LogsConfig",
    "LogsOutputConfig",
    "MetricSourceConfig",
    "MetricsConfig",
    "MetricsOutputConfig",
    "OutputConfig",
    "OutputMode",
    "OutputType",
    "PerformanceConfig",
    "PodMetadataField",
]

OutputType = Literal["http3", "http"]
Compression = Literal["gzip", "zstd", "none"]
OutputMode = Literal["batch", "single"]
PodMetadataField = Literal["namespace", "pod_name", "container_name", "labels", "annotations"]

MB = 1000 * 1000


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


class OutputConfig(_Section):
    """Where and how a pipeline sends its batches (fields shared by logs and metrics)."""

    type: OutputType = "http3"
    """``http3``: HTTP/3 first, HTTP/1.1 fallback; ``http``: HTTP/1.1 only."""
    url: HttpUrl | None = None
    """Receiver base URL (``/api/v1/<kind>`` is appended if it has no path); required if enabled."""
    compression: Compression = "gzip"
    """Request body encoding: gzip, zstd or none (``none`` is the default in single mode)."""
    mode: OutputMode = "batch"
    """``batch``: the documented batch API; ``single``: one uncompressed record per request."""

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


class LogsConfig(_Section):
    """The ``logs`` section: container log collection."""

    enabled: bool = True
    """Collect container logs."""
    paths: tuple[AbsolutePath, ...] = ("/var/log/pods/*/*/*.log", "/var/log/containers/*.log")
    """Glob patterns of the log files to tail."""
    kubernetes: KubernetesMetadataConfig = Field(default_factory=KubernetesMetadataConfig)
    """Kubernetes metadata enrichment."""
    output: LogsOutputConfig = Field(default_factory=LogsOutputConfig)
    """Where log batches go."""


class MetricSourceConfig(_Section):
    """One entry of ``metrics.sources``: a Prometheus endpoint to scrape."""

    name: NonEmptyText
    """Unique name; becomes the ``source`` label of its samples."""
    url: HttpUrl
    """The endpoint to scrape."""
    enabled: bool = True
    """Scrape this source."""
    bearer_token_file: AbsolutePath | None = None
    """File holding a bearer token for the scrape (re-read on change by the scraper)."""
    ca_file: AbsolutePath | None = None
    """CA bundle to verify the source's TLS certificate."""


class MetricsConfig(_Section):
    """The ``metrics`` section: node and container metrics collection."""

    enabled: bool = True
    """Collect metrics."""
    interval: Seconds = 30.0
    """Time between scrapes (seconds; written as a duration, e.g. ``30s``)."""
    sources: tuple[MetricSourceConfig, ...] = ()
    """Endpoints to scrape; the loader's default is the node's kubelet and cAdvisor."""
    output: MetricsOutputConfig = Field(default_factory=MetricsOutputConfig)
    """Where metric batches go."""


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


class Credentials(_Section):
    """Secrets, read only from the environment (never from the config file)."""

    license_key: LicenseKey
    """The PenguinTech license key (KILLKRILL_LICENSE_KEY), sent as the bearer token."""
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
    credentials: Credentials
    """Secrets from the environment; ``repr``/``str``/dumps show ``**********``."""
