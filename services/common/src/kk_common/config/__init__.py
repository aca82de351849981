"""The KillKrill agent's configuration: one typed, frozen model for every container.

Load it once at startup::

    from kk_common.config import ConfigError, load_config

    config = load_config()          # defaults < /etc/killkrill/config.yaml < environment
    config.logs.output.batch_size   # each service reads its own section

``parse_config(text, environ)`` is the same without IO. Both raise :class:`ConfigError`
listing every problem at once. The reference for every key and variable is
``docs/configuration.md``.
"""

from .checks import config_notes
from .environment import DEFAULT_CONFIG_PATH, ENVIRONMENT_VARIABLES, EnvironmentVariable
from .errors import ConfigError, ConfigProblem
from .files import tls_file_problems
from .load import config_file_path, load_config, parse_config
from .metric_sources import default_kubelet_url, default_metric_sources
from .model import (
    COMPRESSION_LEVELS,
    AgentConfig,
    AgentSettings,
    Compression,
    Credentials,
    HealthConfig,
    Http3Config,
    KubernetesMetadataConfig,
    KubernetesSource,
    LogsConfig,
    LogsOutputConfig,
    LogsWindowConfig,
    MetricsConfig,
    MetricSourceConfig,
    MetricsOutputConfig,
    NodeMetricsConfig,
    OutputConfig,
    OutputMode,
    OutputType,
    PerformanceConfig,
    PodMetadataField,
    RetryConfig,
    ShipperConfig,
    SystemLogsConfig,
    TlsConfig,
)
from .units import UnitError, format_duration, format_size, parse_duration, parse_size

__all__ = [
    "COMPRESSION_LEVELS",
    "DEFAULT_CONFIG_PATH",
    "ENVIRONMENT_VARIABLES",
    "AgentConfig",
    "AgentSettings",
    "Compression",
    "ConfigError",
    "ConfigProblem",
    "Credentials",
    "EnvironmentVariable",
    "HealthConfig",
    "Http3Config",
    "KubernetesMetadataConfig",
    "KubernetesSource",
    "LogsConfig",
    "LogsOutputConfig",
    "LogsWindowConfig",
    "MetricSourceConfig",
    "MetricsConfig",
    "MetricsOutputConfig",
    "NodeMetricsConfig",
    "OutputConfig",
    "OutputMode",
    "OutputType",
    "PerformanceConfig",
    "PodMetadataField",
    "RetryConfig",
    "ShipperConfig",
    "SystemLogsConfig",
    "TlsConfig",
    "UnitError",
    "config_file_path",
    "config_notes",
    "default_kubelet_url",
    "default_metric_sources",
    "format_duration",
    "format_size",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_size",
    "tls_file_problems",
]
