"""The settings one output's delivery core runs with: plain values, validated once.

`OutputSettings` is what `OutputDelivery` needs to know about one output (logs or metrics),
already resolved: endpoint URLs built by `kk_common.urls.endpoint_url`, whether HTTP/3 may be
tried at all, the effective compression level. The app builds it from the validated
`AgentConfig` with `OutputSettings.from_config`; tests build it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from kk_common.urls import carries_http3, endpoint_url

from .. import __version__
from ..types import Kind

if TYPE_CHECKING:
    from kk_common.config import AgentConfig

__all__ = [
    "APPLICATION",
    "DEFAULT_COMPRESSION_LEVELS",
    "Compression",
    "Mode",
    "OutputSettings",
    "OutputType",
    "RetrySettings",
    "default_user_agent",
]

Compression = Literal["gzip", "zstd", "none"]
Mode = Literal["batch", "single"]
OutputType = Literal["http3", "http"]

APPLICATION = "killkrill-k8s-agent"
"""The ``application`` field of a log batch (receiver-api.md, "Log batch body")."""

DEFAULT_COMPRESSION_LEVELS: dict[str, tuple[int, int, int]] = {
    "gzip": (1, 9, 6),
    "zstd": (1, 19, 3),
}
"""``(lowest, highest, default)`` level per encoding; the same table as the config model's."""


def default_user_agent() -> str:
    """``killkrill-agent/<version>`` (receiver-api.md, "Headers")."""
    return f"killkrill-agent/{__version__}"


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """Backoff, splitting, dead-lettering and pausing of one output."""

    initial_backoff_s: float = 1.0
    """Upper bound of the first retry's (fully jittered) wait."""
    max_backoff_s: float = 60.0
    """Cap of the exponential backoff."""
    attempts_before_split: int = 3
    """5xx failures of a multi-record batch before it is split in halves (poison isolation)."""
    record_retry_budget: int = 5
    """5xx failures of a single-record batch before that record is dead-lettered."""
    max_retry_after_s: float = 300.0
    """A receiver's ``Retry-After`` is honoured up to this long."""
    pause_s: float = 60.0
    """First pause of the output after 401/403 or a contract mismatch; doubles per repeat."""
    max_pause_s: float = 300.0
    """Cap of that pause."""
    check_interval_s: float = 1.0
    """While the receiver is unreachable, a reachability check (no payload) runs this often."""

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.initial_backoff_s <= self.max_backoff_s:
            problems.append("need 0 < initial_backoff_s <= max_backoff_s")
        if self.attempts_before_split < 1 or self.record_retry_budget < 1:
            problems.append("attempts_before_split and record_retry_budget must be >= 1")
        if self.max_retry_after_s < 0:
            problems.append("max_retry_after_s must be >= 0")
        if not 0 < self.pause_s <= self.max_pause_s:
            problems.append("need 0 < pause_s <= max_pause_s")
        if self.check_interval_s <= 0:
            problems.append("check_interval_s must be > 0")
        if problems:
            raise ValueError("invalid retry settings: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class OutputSettings:
    """Everything the delivery core knows about one output.

    The license key and API key are kept out of ``repr``/``str`` (receiver-api.md: they never
    appear in logs, errors or metrics).
    """

    kind: Kind
    """``logs`` or ``metrics``: decides the body's array name and the endpoint path."""
    url: str
    """The endpoint URL (base URL already completed by `endpoint_url`); HTTP/3 goes here."""
    license_key: str = field(repr=False)
    """Sent as ``Authorization: Bearer <license key>``. Never shown."""
    source: str
    """``<cluster>/<node>``: the ``source`` field of every batch."""
    cluster_name: str
    node_name: str
    output_type: OutputType = "http3"
    """``http3``: HTTP/3 first with HTTP/1.1 fallback; ``http``: HTTP/1.1 only."""
    fallback_url: str | None = None
    """Endpoint URL for HTTP/1.1 when it differs from `url`."""
    api_key: str | None = field(default=None, repr=False)
    """Sent as ``X-API-Key`` when set. Never shown."""
    mode: Mode = "batch"
    compression: Compression = "zstd"
    compression_level: int | None = None
    """None: the encoding's default (gzip 6, zstd 3). Ignored for ``none``."""
    batch_size: int = 1000
    max_request_bytes: int = 4_000_000
    """Uncompressed body limit; a batch closes before a record would pass it."""
    flush_interval_s: float = 5.0
    """A partial batch is sent when its oldest record has been queued this long."""
    max_in_flight: int = 4
    user_agent: str = field(default_factory=default_user_agent)
    retry: RetrySettings = field(default_factory=RetrySettings)
    probe_interval_s: float = 300.0
    """While on the HTTP/1.1 fallback, the next batch after this long goes over HTTP/3."""
    outage_summary_interval_s: float = 60.0
    """While the output is down, an `OutputStillDown` summary comes this often."""

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in ("logs", "metrics"):
            problems.append(f"kind must be logs or metrics, not {self.kind!r}")
        if self.mode not in ("batch", "single"):
            problems.append(f"mode must be batch or single, not {self.mode!r}")
        if self.compression not in ("gzip", "zstd", "none"):
            problems.append(f"compression must be gzip, zstd or none, not {self.compression!r}")
        elif self.compression != "none" and self.compression_level is not None:
            low, high, _ = DEFAULT_COMPRESSION_LEVELS[self.compression]
            if not low <= self.compression_level <= high:
                problems.append(f"{self.compression} level must be {low}-{high}")
        if self.output_type not in ("http3", "http"):
            problems.append(f"output_type must be http3 or http, not {self.output_type!r}")
        if self.batch_size < 1 or self.max_in_flight < 1:
            problems.append("batch_size and max_in_flight must be >= 1")
        if self.max_request_bytes < 1024:
            problems.append("max_request_bytes must be >= 1024")
        if self.flush_interval_s < 0 or self.probe_interval_s <= 0:
            problems.append("flush_interval_s must be >= 0 and probe_interval_s > 0")
        if self.outage_summary_interval_s <= 0:
            problems.append("outage_summary_interval_s must be > 0")
        if problems:
            raise ValueError("invalid output settings: " + "; ".join(problems))

    @property
    def http3_enabled(self) -> bool:
        """Whether HTTP/3 is ever tried: ``type: http3`` and an ``https://`` URL."""
        return self.output_type == "http3" and carries_http3(self.url)

    @property
    def http3_unavailable_reason(self) -> str | None:
        """Why this output is HTTP/1.1 only (to say once at startup and in metrics), or None."""
        if self.output_type != "http3":
            return "output type is http"
        if not carries_http3(self.url):
            return "a plain http:// URL cannot carry HTTP/3 (QUIC needs TLS)"
        return None

    @property
    def h1_url(self) -> str:
        """Where HTTP/1.1 requests go: the explicit fallback URL, else `url` over TCP."""
        return self.fallback_url or self.url

    @property
    def content_encoding(self) -> Compression:
        """The body encoding actually used: single mode is always uncompressed."""
        return "none" if self.mode == "single" else self.compression

    @property
    def effective_compression_level(self) -> int | None:
        """The level handed to the compressor, or None when uncompressed."""
        encoding = self.content_encoding
        if encoding == "none":
            return None
        return self.compression_level or DEFAULT_COMPRESSION_LEVELS[encoding][2]

    @property
    def hold_limit(self) -> int:
        """How many records the app should keep offered at most (see `OutputDelivery.room`)."""
        return 2 * self.max_in_flight * self.live_reserve

    @property
    def live_reserve(self) -> int:
        """Records of `hold_limit` that catch-up records may not take: one request's worth,
        kept for live records (storage/queue.py, "Lanes")."""
        return 1 if self.mode == "single" else self.batch_size

    @classmethod
    def from_config(
        cls, config: AgentConfig, kind: Kind, *, user_agent: str | None = None
    ) -> OutputSettings:
        """The settings of ``config.<kind>.output`` (the pipeline must be enabled)."""
        output = config.logs.output if kind == "logs" else config.metrics.output
        if output.url is None:
            raise ValueError(f"{kind}.output.url is required to deliver {kind}")
        license_key = config.credentials.license_key
        if license_key is None:
            raise ValueError(f"the license key is required to deliver {kind}")
        fallback = output.fallback_url
        retry = output.retry
        api_key = config.credentials.api_key
        return cls(
            kind=kind,
            url=endpoint_url(str(output.url), kind),
            fallback_url=None if fallback is None else endpoint_url(str(fallback), kind),
            license_key=license_key.get_secret_value(),
            api_key=None if api_key is None else api_key.get_secret_value(),
            source=config.agent.source,
            cluster_name=config.agent.cluster_name,
            node_name=config.agent.node_name,
            output_type=output.type,
            mode=output.mode,
            compression=output.compression,
            compression_level=output.compression_level,
            batch_size=output.batch_size,
            max_request_bytes=output.max_request_bytes,
            flush_interval_s=output.flush_interval,
            max_in_flight=output.max_in_flight,
            user_agent=user_agent or default_user_agent(),
            retry=RetrySettings(
                initial_backoff_s=retry.initial_backoff,
                max_backoff_s=retry.max_backoff,
                attempts_before_split=retry.attempts_before_split,
                record_retry_budget=retry.record_retry_budget,
                max_retry_after_s=retry.max_retry_after,
                check_interval_s=retry.check_interval,
            ),
            probe_interval_s=output.http3.probe_interval,
            outage_summary_interval_s=config.shipper.outage_summary_interval,
        )
