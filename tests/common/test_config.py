"""The config model: defaults, precedence, secrets, notes, loading and documentation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from kk_common.config import (
    DEFAULT_CONFIG_PATH,
    ENVIRONMENT_VARIABLES,
    AgentConfig,
    ConfigError,
    ConfigProblem,
    config_notes,
    load_config,
    parse_config,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "config"
DOCS = REPO / "docs" / "configuration.md"

LICENSE_KEY = "PENG-A1B2-C3D4-E5F6-G7H8-J9K0"
API_KEY = "api-key-0123456789-secret"
TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

DELIVERY_DEFAULTS: dict[str, Any] = {
    "fallback_url": None,
    "allow_plaintext_fallback": False,
    "max_request_bytes": 4_000_000,
    "compression_level": None,
    "max_in_flight": 4,
    "request_timeout": 30.0,
    "http3": {"handshake_timeout": 1.0, "probe_interval": 300.0, "path_timeout": 1.0},
    "retry": {
        "initial_backoff": 1.0,
        "max_backoff": 60.0,
        "max_retry_after": 300.0,
        "attempts_before_split": 3,
        "record_retry_budget": 5,
        "check_interval": 1.0,
    },
    "tls": {
        "ca_file": None,
        "cert_file": None,
        "key_file": None,
        "insecure_skip_verify": False,
    },
}
"""The delivery keys shared by logs.output and metrics.output, at their defaults."""
LOGS_READING_DEFAULTS: dict[str, Any] = {
    "exclude_paths": (),
    "ignore_older": None,
    "max_line_size": 1024**2,
    "partial_timeout": 5.0,
    "read_slice": 256 * 1024,
    "deleted_file_grace": 60.0,
    "rescan_interval": 10.0,
    "max_open_files": None,
    "window": {"max_batches": 64, "max_bytes": 8 * 1024**2},
    "batch_max_records": 1000,
    "batch_max_wait": 0.2,
    "system_logs": {"enabled": False, "paths": ("/var/log/syslog", "/var/log/messages")},
}
"""The logs keys about reading files and handing batches to the shipper, at their defaults."""
METADATA_SOURCE_DEFAULTS: dict[str, Any] = {
    "source": "api",
    "kubelet_poll_interval": 10.0,
    "token_file": TOKEN,
    "ca_file": CA,
    "deleted_pod_retention": 300.0,
    "metadata_wait": 2.0,
    "services": True,
}
"""The logs.kubernetes keys about the metadata source, at their defaults (but kubelet_url)."""
SHIPPER_DEFAULTS: dict[str, Any] = {
    "queue_max_size": 1024**3,
    "dedup_window": 3600.0,
    "dedup_max_sources": 100_000,
    "dead_letter_max_size": 100_000_000,
    "drain_timeout": 20.0,
    "telemetry_interval": 10.0,
    "ack_timeout": 5.0,
    "outage_summary_interval": 60.0,
}


def required_env(**extra: str) -> dict[str, str]:
    """The smallest valid environment, plus ``extra``."""
    return {
        "NODE_NAME": "node-a",
        "NODE_IP": "10.1.2.3",
        "KILLKRILL_LICENSE_KEY": LICENSE_KEY,
        "KILLKRILL_LOG_RECEIVER_URL": "https://logs:8443",
        "KILLKRILL_METRICS_RECEIVER_URL": "https://metrics:8443",
        **extra,
    }


SOURCE_DEFAULTS = {
    "enabled": True,
    "optional": False,
    "cert_file": None,
    "key_file": None,
    "insecure_skip_verify": False,
    "timeout": None,
    "sample_limit": None,
}
METRICS_SCRAPE_DEFAULTS = {
    "timeout": None,
    "sample_limit": 200_000,
    "max_scrape_size": 64 * 1024**2,
    "batch_max_records": 1000,
    "spool_max_size": 256 * 1024**2,
    "node": {
        "enabled": True,
        "proc_path": "/host/proc",
        "sys_path": "/host/sys",
        "rootfs_path": "/host/root",
    },
    "pods": {
        "enabled": True,
        "cadvisor_labels": True,
        "scrape_annotated": True,
        "sample_limit": 10_000,
        "ca_file": None,
        "insecure_skip_verify": False,
    },
    "node_exporter": {"enabled": False, "url": None},
    "metrics_api": {"enabled": False},
}


def problems_of(file_text: str | None, environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(file_text, environ)
    return [str(problem) for problem in caught.value.problems]


# -- defaults ----------------------------------------------------------------------------


def test_required_env_alone_gives_the_documented_defaults() -> None:
    config = parse_config(None, required_env())
    agent, logs, metrics, performance = (
        config.agent,
        config.logs,
        config.metrics,
        config.performance,
    )
    assert (agent.node_name, agent.node_ip, agent.cluster_name) == (
        "node-a",
        "10.1.2.3",
        "default-cluster",
    )
    assert (agent.ipc_dir, agent.state_dir, agent.log_level) == (
        "/run/killkrill",
        "/var/lib/killkrill",
        "info",
    )
    assert logs.enabled and logs.kubernetes.enabled
    assert logs.paths == ("/var/log/pods/*/*/*.log", "/var/log/containers/*.log")
    assert logs.model_dump(include=set(LOGS_READING_DEFAULTS)) == LOGS_READING_DEFAULTS
    assert logs.kubernetes.model_dump() == {
        "enabled": True,
        "pod_metadata": ("namespace", "pod_name", "container_name", "labels", "annotations"),
        **METADATA_SOURCE_DEFAULTS,
        "kubelet_url": "https://10.1.2.3:10250",
    }
    assert logs.output.model_dump() == {
        "type": "http3",
        "url": "https://logs:8443",
        "compression": "zstd",
        "mode": "batch",
        **DELIVERY_DEFAULTS,
        "batch_size": 1000,
        "flush_interval": 5.0,
    }
    assert logs.output.effective_fallback_url == "https://logs:8443"
    assert logs.output.effective_compression_level == 3
    assert metrics.enabled and metrics.interval == 30.0
    assert metrics.output.model_dump() == {
        "type": "http3",
        "url": "https://metrics:8443",
        "compression": "zstd",
        "mode": "batch",
        **DELIVERY_DEFAULTS,
        "batch_size": 500,
        "flush_interval": 30.0,
    }
    assert [source.model_dump() for source in metrics.sources] == [
        {
            **SOURCE_DEFAULTS,
            "name": name,
            "url": f"https://10.1.2.3:10250{path}",
            "format": source_format,
            "bearer_token_file": TOKEN,
            "ca_file": CA,
        }
        for name, path, source_format in (
            ("kubelet", "/metrics", "prometheus"),
            ("cadvisor", "/metrics/cadvisor", "prometheus"),
            ("resource", "/metrics/resource", "prometheus"),
            ("summary", "/stats/summary", "kubelet_summary"),
        )
    ]
    assert metrics.model_dump(include=set(METRICS_SCRAPE_DEFAULTS)) == METRICS_SCRAPE_DEFAULTS
    assert metrics.effective_timeout == 10.0
    assert performance.model_dump() == {
        "worker_threads": 2,
        "buffer_size": 32_000_000,
        "queue_size": 10000,
        "connection_pool_size": 4,
    }
    assert config.health.model_dump() == {
        "listen_address": "0.0.0.0",
        "port": 8080,
        "stale_after": None,
    }
    assert config.shipper.model_dump() == SHIPPER_DEFAULTS
    assert config.credentials.license_key.get_secret_value() == LICENSE_KEY
    assert config.credentials.api_key is None
    assert config_notes(config) == []


def test_default_sources_put_an_ipv6_node_ip_in_brackets() -> None:
    config = parse_config(None, required_env(NODE_IP="fd00::7"))
    assert config.metrics.sources[0].url == "https://[fd00::7]:10250/metrics"


def test_listed_sources_replace_the_defaults_entirely() -> None:
    text = "metrics:\n  sources:\n    - {name: exporter, url: 'http://10.1.2.3:9100/metrics'}\n"
    config = parse_config(text, required_env())
    assert [source.name for source in config.metrics.sources] == ["exporter"]


def test_the_empty_environment_is_invalid() -> None:
    with pytest.raises(ConfigError):
        parse_config(None, {})


def test_the_models_are_frozen() -> None:
    config = parse_config(None, required_env())
    with pytest.raises(ValidationError):
        config.logs.output.batch_size = 5  # type: ignore[misc]


def test_the_full_fixture_sets_every_key() -> None:
    text = (FIXTURES / "good_full.yaml").read_text(encoding="utf-8")
    config = parse_config(
        text, {"KILLKRILL_LICENSE_KEY": LICENSE_KEY, "KILLKRILL_API_KEY": API_KEY}
    )
    expected: dict[str, Any] = {
        "agent": {
            "node_name": "worker-7",
            "node_ip": "192.168.10.7",
            "cluster_name": "prod-eu",
            "ipc_dir": "/run/kk",
            "state_dir": "/var/lib/kk",
            "log_level": "debug",
        },
        "logs": {
            "enabled": True,
            "paths": ("/var/log/pods/*/*/*.log",),
            **LOGS_READING_DEFAULTS,
            "kubernetes": {
                "enabled": True,
                "pod_metadata": ("namespace", "pod_name", "labels"),
                **METADATA_SOURCE_DEFAULTS,
                "kubelet_url": "https://192.168.10.7:10250",
            },
            "output": {
                "type": "http",
                "url": "https://logs.example.com:8443/ingest?tenant=a",
                "compression": "zstd",
                "mode": "batch",
                **DELIVERY_DEFAULTS,
                "batch_size": 200,
                "flush_interval": 90.0,
            },
        },
        "metrics": {
            "enabled": True,
            "interval": 15.0,
            "sources": (
                {
                    **SOURCE_DEFAULTS,
                    "name": "node-exporter",
                    "url": "http://192.168.10.7:9100/metrics",
                    "format": "prometheus",
                    "optional": True,
                    "bearer_token_file": None,
                    "ca_file": None,
                    "timeout": 2.0,
                    "sample_limit": 5000,
                },
                {
                    **SOURCE_DEFAULTS,
                    "name": "kubelet",
                    "url": "https://192.168.10.7:10250/metrics",
                    "format": "prometheus",
                    "enabled": False,
                    "bearer_token_file": TOKEN,
                    "ca_file": "/etc/kk/kubelet-ca.crt",
                    "cert_file": "/etc/kk/client.crt",
                    "key_file": "/etc/kk/client.key",
                },
                {
                    **SOURCE_DEFAULTS,
                    "name": "summary",
                    "url": "https://192.168.10.7:10250/stats/summary",
                    "format": "kubelet_summary",
                    "bearer_token_file": TOKEN,
                    "ca_file": None,
                    "insecure_skip_verify": True,
                },
            ),
            "timeout": 5.0,
            "sample_limit": 50_000,
            "max_scrape_size": 32_000_000,
            "batch_max_records": 250,
            "spool_max_size": 100_000_000,
            "node": {
                "enabled": False,
                "proc_path": "/proc2",
                "sys_path": "/sys2",
                "rootfs_path": "/rootfs",
            },
            "kubernetes": {
                "enabled": True,
                "cluster_counts": False,
                "lease_name": "kk-leader",
                "lease_namespace": "monitoring",
                "identity": "agent-7",
                "lease_duration": 30.0,
                "renew_deadline": 20.0,
                "retry_period": 4.0,
                "events": {"enabled": True},
            },
            "pods": {
                "enabled": True,
                "cadvisor_labels": False,
                "scrape_annotated": False,
                "sample_limit": 500,
                "ca_file": "/etc/pods-ca.pem",
                "insecure_skip_verify": True,
            },
            "node_exporter": {"enabled": False, "url": "http://192.168.10.7:9100/metrics"},
            "metrics_api": {"enabled": True},
            "output": {
                "type": "http3",
                "url": "https://metrics.example.com",
                "compression": "none",
                "mode": "single",
                **DELIVERY_DEFAULTS,
                "batch_size": 100,
                "flush_interval": 0.5,
            },
        },
        "performance": {
            "worker_threads": 8,
            "buffer_size": 1024**3,
            "queue_size": 50000,
            "connection_pool_size": 16,
        },
        "shipper": SHIPPER_DEFAULTS,
        "health": {"listen_address": "127.0.0.1", "port": 9090, "stale_after": 45.0},
    }
    assert config.model_dump(exclude={"credentials"}) == expected
    assert config.credentials.api_key is not None
    assert config.credentials.api_key.get_secret_value() == API_KEY


def test_the_shipper_fixture_sets_every_delivery_and_shipper_key() -> None:
    text = (FIXTURES / "good_shipper.yaml").read_text(encoding="utf-8")
    environ = required_env()
    del environ["KILLKRILL_LOG_RECEIVER_URL"], environ["KILLKRILL_METRICS_RECEIVER_URL"]
    config = parse_config(text, environ)
    delivery = set(DELIVERY_DEFAULTS)
    assert config.logs.output.model_dump(include=delivery) == {
        "fallback_url": "https://logs-h1.example.com:443/ingest/logs",
        "allow_plaintext_fallback": False,
        "max_request_bytes": 8 * 1024**2,
        "compression_level": 19,
        "max_in_flight": 16,
        "request_timeout": 60.0,
        "http3": {"handshake_timeout": 0.5, "probe_interval": 900.0, "path_timeout": 1.5},
        "retry": {
            "initial_backoff": 0.25,
            "max_backoff": 120.0,
            "max_retry_after": 600.0,
            "attempts_before_split": 2,
            "record_retry_budget": 8,
            "check_interval": 2.0,
        },
        "tls": {
            "ca_file": "/etc/kk/tls/ca.crt",
            "cert_file": "/etc/kk/tls/client.crt",
            "key_file": "/etc/kk/tls/client.key",
            "insecure_skip_verify": False,
        },
    }
    assert config.metrics.output.model_dump(include=delivery) == {
        "fallback_url": "http://metrics.example.com:8080",
        "allow_plaintext_fallback": True,
        "max_request_bytes": 1_000_000,
        "compression_level": 1,
        "max_in_flight": 1,
        "request_timeout": 10.0,
        "http3": {"handshake_timeout": 2.0, "probe_interval": 3600.0, "path_timeout": 3.0},
        "retry": {
            "initial_backoff": 5.0,
            "max_backoff": 5.0,
            "max_retry_after": 60.0,
            "attempts_before_split": 1,
            "record_retry_budget": 1,
            "check_interval": 0.5,
        },
        "tls": {
            "ca_file": "/etc/kk/metrics-tls/ca.crt",
            "cert_file": "/etc/kk/metrics-tls/client.crt",
            "key_file": "/etc/kk/metrics-tls/client.key",
            "insecure_skip_verify": True,
        },
    }
    assert config.shipper.model_dump() == {
        "queue_max_size": 512 * 1024**2,
        "dedup_window": 1800.0,
        "dedup_max_sources": 25_000,
        "dead_letter_max_size": 1_000_000_000,
        "drain_timeout": 25.0,
        "telemetry_interval": 60.0,
        "ack_timeout": 2.0,
        "outage_summary_interval": 300.0,
    }
    assert config.logs.output.effective_fallback_url == (
        "https://logs-h1.example.com:443/ingest/logs"
    )
    assert config.metrics.output.effective_fallback_url == "http://metrics.example.com:8080"
    assert config.metrics.output.effective_compression_level == 1
    notes = [note.path for note in config_notes(config)]
    assert notes == ["metrics.output.tls.insecure_skip_verify"]
    assert config.logs.output.effective_compression_level == 19


def test_the_logs_fixture_sets_every_reading_and_metadata_source_key() -> None:
    text = (FIXTURES / "good_logs.yaml").read_text(encoding="utf-8")
    environ = required_env()
    del environ["NODE_IP"]
    logs = parse_config(text, environ).logs
    assert logs.model_dump(include=set(LOGS_READING_DEFAULTS)) == {
        "exclude_paths": (
            "/var/log/pods/kube-system_*/*/*.log",
            "/var/log/containers/*_istio-proxy-*.log",
        ),
        "ignore_older": 86400.0,
        "max_line_size": 256 * 1024,
        "partial_timeout": 2.0,
        "read_slice": 64_000,
        "deleted_file_grace": 300.0,
        "rescan_interval": 30.0,
        "max_open_files": 2000,
        "window": {"max_batches": 16, "max_bytes": 4 * 1024**2},
        "batch_max_records": 250,
        "batch_max_wait": 0.05,
        "system_logs": {"enabled": True, "paths": ("/var/log/syslog", "/var/log/kern.log")},
    }
    assert logs.kubernetes.model_dump(exclude={"enabled", "pod_metadata"}) == {
        "source": "kubelet",
        "kubelet_url": "https://node-a.internal:10250",
        "kubelet_poll_interval": 15.0,
        "token_file": "/var/run/secrets/kk/token",
        "ca_file": "/etc/kk/kubelet-ca.crt",
        "deleted_pod_retention": 600.0,
        "metadata_wait": 0.0,
        "services": False,
    }


def _leaf_paths(node: Any, prefix: str = "") -> set[str]:
    if isinstance(node, dict):
        return {p for key, value in node.items() for p in _leaf_paths(value, f"{prefix}{key}.")}
    if isinstance(node, list) and node and all(isinstance(item, dict) for item in node):
        return {p for item in node for p in _leaf_paths(item, prefix[:-1] + "[].")}
    return {prefix[:-1]}


def test_the_full_shipper_and_logs_fixtures_together_set_every_key() -> None:
    """A new field must be added to one of the three fixtures (and compared above)."""
    written: set[str] = set()
    for name in ("good_full.yaml", "good_shipper.yaml", "good_logs.yaml"):
        written |= _leaf_paths(yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8")))
    schema = {p for p in _key_paths(AgentConfig) if not p.startswith("credentials.")}
    assert schema - written == set()


def test_source_is_cluster_slash_node() -> None:
    config = parse_config(None, required_env(CLUSTER_NAME="prod"))
    assert config.agent.source == "prod/node-a"


# -- precedence --------------------------------------------------------------------------

FILE_SETTING_EVERY_OVERRIDABLE_KEY = """
agent:
  node_name: file-node
  node_ip: 192.168.0.1
  cluster_name: file-cluster
  log_level: error
  ipc_dir: /file/ipc
  state_dir: /file/state
logs:
  output:
    url: https://file-logs
metrics:
  interval: 10s
  output:
    url: https://file-metrics
"""


def test_the_file_overrides_the_defaults() -> None:
    environ = {"KILLKRILL_LICENSE_KEY": LICENSE_KEY}
    config = parse_config(FILE_SETTING_EVERY_OVERRIDABLE_KEY, environ)
    assert (config.agent.node_name, config.agent.cluster_name) == ("file-node", "file-cluster")
    assert (config.agent.log_level, config.agent.ipc_dir) == ("error", "/file/ipc")
    assert config.agent.state_dir == "/file/state"
    assert config.logs.output.url == "https://file-logs"
    assert (config.metrics.interval, config.metrics.output.url) == (10.0, "https://file-metrics")
    assert config.metrics.sources[0].url == "https://192.168.0.1:10250/metrics"


def test_the_environment_overrides_the_file() -> None:
    environ = {
        "KILLKRILL_LICENSE_KEY": LICENSE_KEY,
        "NODE_NAME": "env-node",
        "NODE_IP": "10.9.9.9",
        "CLUSTER_NAME": "env-cluster",
        "LOG_LEVEL": "WARNING",
        "KILLKRILL_IPC_DIR": "/env/ipc",
        "KILLKRILL_STATE_DIR": "/env/state",
        "KILLKRILL_LOG_RECEIVER_URL": "https://env-logs",
        "METRICS_INTERVAL": "1m",
        "KILLKRILL_METRICS_RECEIVER_URL": "https://env-metrics",
    }
    config = parse_config(FILE_SETTING_EVERY_OVERRIDABLE_KEY, environ)
    assert (config.agent.node_name, config.agent.cluster_name) == ("env-node", "env-cluster")
    assert (config.agent.log_level, config.agent.ipc_dir) == ("warn", "/env/ipc")
    assert config.agent.state_dir == "/env/state"
    assert config.logs.output.url == "https://env-logs"
    assert (config.metrics.interval, config.metrics.output.url) == (60.0, "https://env-metrics")
    assert config.metrics.sources[0].url == "https://10.9.9.9:10250/metrics"


def test_every_variable_with_a_config_key_is_covered_by_the_precedence_test() -> None:
    """If a variable is added to the table, the precedence test above must learn it."""
    overriding = {v.name for v in ENVIRONMENT_VARIABLES if v.config_path and not v.secret}
    assert overriding == {
        "NODE_NAME",
        "NODE_IP",
        "CLUSTER_NAME",
        "LOG_LEVEL",
        "KILLKRILL_IPC_DIR",
        "KILLKRILL_STATE_DIR",
        "KILLKRILL_LOG_RECEIVER_URL",
        "METRICS_INTERVAL",
        "KILLKRILL_METRICS_RECEIVER_URL",
    }


def test_an_empty_variable_counts_as_unset() -> None:
    config = parse_config("agent:\n  cluster_name: file-cluster\n", required_env(CLUSTER_NAME=""))
    assert config.agent.cluster_name == "file-cluster"


def test_the_file_can_use_variables_and_the_environment_still_wins() -> None:
    text = "agent:\n  cluster_name: ${REGION:-eu}-cluster\n"
    assert parse_config(text, required_env()).agent.cluster_name == "eu-cluster"
    assert parse_config(text, required_env(REGION="us")).agent.cluster_name == "us-cluster"
    winner = parse_config(text, required_env(REGION="us", CLUSTER_NAME="env"))
    assert winner.agent.cluster_name == "env"


# -- cross-field rules and notes ---------------------------------------------------------


def test_single_mode_defaults_to_no_compression() -> None:
    config = parse_config("logs:\n  output:\n    mode: single\n", required_env())
    assert (config.logs.output.mode, config.logs.output.compression) == ("single", "none")


def test_single_mode_accepts_an_explicit_none() -> None:
    text = "logs:\n  output:\n    mode: single\n    compression: none\n"
    assert parse_config(text, required_env()).logs.output.compression == "none"


def test_a_disabled_pipeline_needs_no_url_and_no_sources() -> None:
    environ = required_env()
    del environ["KILLKRILL_LOG_RECEIVER_URL"], environ["NODE_IP"]
    config = parse_config(
        "logs:\n  enabled: false\nmetrics:\n  sources: []\n  enabled: false\n", environ
    )
    assert (config.logs.enabled, config.logs.output.url, config.metrics.sources) == (
        False,
        None,
        (),
    )


def test_an_enabled_pipeline_needs_something_to_read() -> None:
    text = (
        "logs:\n  paths: []\nmetrics:\n  sources: []\n  node: {enabled: false}\n"
        "  pods: {scrape_annotated: false}\n  kubernetes: {enabled: false}\n"
    )
    assert problems_of(text, required_env()) == [
        "logs.paths: logs are enabled but no paths are listed",
        "metrics.sources: metrics are enabled but no sources are listed, node metrics are off, "
        "annotated pods are not scraped and the Kubernetes object metrics are off",
    ]
    # The node's own metrics, annotated pods, or the Kubernetes objects are something to
    # collect on their own.
    parse_config("metrics:\n  sources: []\n", required_env())
    parse_config("metrics:\n  sources: []\n  node: {enabled: false}\n", required_env())
    parse_config(
        "metrics:\n  sources: []\n  node: {enabled: false}\n  pods: {enabled: false}\n",
        required_env(),
    )


def test_kubernetes_events_need_the_log_output() -> None:
    environ = required_env()
    del environ["KILLKRILL_LOG_RECEIVER_URL"]
    events_on = "metrics:\n  kubernetes:\n    events: {enabled: true}\n"
    assert problems_of("logs:\n  enabled: false\n" + events_on, environ) == [
        "metrics.kubernetes.events.enabled: Kubernetes events are sent as log records through "
        "the shipper's log output, which is off (logs.enabled: false): enable logs, or set "
        "metrics.kubernetes.events.enabled: false"
    ]
    # Events off, or the object metrics off altogether: nothing needs the log output.
    parse_config("logs:\n  enabled: false\n", environ)
    parse_config(
        "logs:\n  enabled: false\nmetrics:\n  kubernetes:\n    enabled: false\n"
        "    events: {enabled: true}\n",
        environ,
    )


def test_the_default_kubelet_url_puts_an_ipv6_node_ip_in_brackets() -> None:
    config = parse_config(None, required_env(NODE_IP="fd00::7"))
    assert config.logs.kubernetes.kubelet_url == "https://[fd00::7]:10250"


def test_without_a_node_ip_there_is_no_default_kubelet_url() -> None:
    environ = required_env()
    del environ["NODE_IP"]
    config = parse_config("metrics:\n  enabled: false\n", environ)
    assert (config.logs.kubernetes.source, config.logs.kubernetes.kubelet_url) == ("api", None)


def test_the_kubelet_source_uses_the_default_or_the_written_kubelet_url() -> None:
    text = "logs:\n  kubernetes:\n    source: kubelet\n"
    assert parse_config(text, required_env()).logs.kubernetes.kubelet_url == (
        "https://10.1.2.3:10250"
    )
    written = text + "    kubelet_url: https://127.0.0.1:10250\n"
    assert parse_config(written, required_env()).logs.kubernetes.kubelet_url == (
        "https://127.0.0.1:10250"
    )


@pytest.mark.parametrize(
    "text",
    [
        "logs:\n  enabled: false\n  kubernetes:\n    source: kubelet\n",
        "logs:\n  kubernetes:\n    enabled: false\n    source: kubelet\n",
    ],
)
def test_a_disabled_kubelet_source_needs_no_kubelet_url(text: str) -> None:
    environ = required_env()
    del environ["NODE_IP"]
    config = parse_config(text + "metrics:\n  enabled: false\n", environ)
    assert config.logs.kubernetes.kubelet_url is None


def test_a_null_kubelet_url_with_the_kubelet_source_is_an_error() -> None:
    text = "logs:\n  kubernetes:\n    source: kubelet\n    kubelet_url: null\n"
    assert problems_of(text, required_env()) == [
        "logs.kubernetes.kubelet_url: required when logs.kubernetes.source is kubelet: "
        "set it, or remove it for the default https://<node IP>:10250, or use source api"
    ]


def test_an_invalid_node_ip_is_reported_once_not_again_as_a_missing_kubelet_url() -> None:
    text = "logs:\n  kubernetes:\n    source: kubelet\n"
    assert problems_of(text, required_env(NODE_IP="10.1.2")) == [
        "NODE_IP: expected an IP address, got '10.1.2'"
    ]


def test_an_unknown_metadata_source_is_an_error() -> None:
    text = "logs:\n  kubernetes:\n    source: apiserver\n"
    assert problems_of(text, required_env()) == [
        "logs.kubernetes.source: expected 'api' or 'kubelet', got 'apiserver'"
    ]


def test_metadata_wait_may_be_zero_but_other_durations_may_not() -> None:
    text = "logs:\n  kubernetes:\n    metadata_wait: 0s\n"
    assert parse_config(text, required_env()).logs.kubernetes.metadata_wait == 0.0
    assert problems_of("logs:\n  ignore_older: 0s\n", required_env()) == [
        "logs.ignore_older: expected a duration greater than zero, got '0s'"
    ]
    assert problems_of("logs:\n  kubernetes:\n    metadata_wait: 0\n", required_env()) == [
        "logs.kubernetes.metadata_wait: expected a duration with a unit (ms, s, m or h), "
        "got 0; write e.g. '0s'"
    ]


def test_enabled_system_logs_need_paths() -> None:
    text = "logs:\n  system_logs:\n    enabled: true\n    paths: []\n"
    assert problems_of(text, required_env()) == [
        "logs.system_logs.paths: system logs are enabled but no paths are listed"
    ]
    disabled = text.replace("enabled: true", "enabled: false")
    assert parse_config(disabled, required_env()).logs.system_logs.paths == ()


def test_http3_with_an_http_url_is_a_note_not_an_error() -> None:
    config = parse_config(None, required_env(KILLKRILL_LOG_RECEIVER_URL="http://logs:8000"))
    assert config_notes(config) == [
        ConfigProblem(
            "logs.output.url",
            "an http:// URL cannot carry HTTP/3 (QUIC needs TLS): this output uses HTTP/1.1 only",
        )
    ]


def test_type_http_with_an_http_url_needs_no_note() -> None:
    text = "logs:\n  output:\n    type: http\n"
    config = parse_config(text, required_env(KILLKRILL_LOG_RECEIVER_URL="http://logs:8000"))
    assert config_notes(config) == []


@pytest.mark.parametrize(
    ("output", "level"),
    [("compression: gzip", 1), ("compression: gzip", 9), ("compression: zstd", 19), ("", 9)],
)
def test_compression_levels_at_the_ends_of_the_range_are_valid(output: str, level: int) -> None:
    text = f"logs:\n  output:\n    {output}\n    compression_level: {level}\n"
    config = parse_config(text, required_env())
    assert config.logs.output.compression_level == level
    assert config.logs.output.effective_compression_level == level


def test_the_default_compression_level_depends_on_the_compression() -> None:
    text = "logs:\n  output:\n    compression: zstd\nmetrics:\n  output:\n    mode: single\n"
    config = parse_config(text, required_env())
    assert config.logs.output.effective_compression_level == 3
    assert config.metrics.output.effective_compression_level is None


def test_an_invalid_compression_level_gets_one_problem_not_a_range_error_too() -> None:
    text = "logs:\n  output:\n    compression: brotli\n    compression_level: 0\n"
    assert problems_of(text, required_env()) == [
        "logs.output.compression: expected 'gzip', 'zstd' or 'none', got 'brotli'",
        "logs.output.compression_level: expected a whole number greater than 0, got 0",
    ]


def test_max_backoff_may_equal_initial_backoff() -> None:
    text = "logs:\n  output:\n    retry:\n      initial_backoff: 1m\n"
    assert parse_config(text, required_env()).logs.output.retry.initial_backoff == 60.0


def test_a_max_backoff_below_the_default_initial_backoff_is_an_error() -> None:
    text = "metrics:\n  output:\n    retry:\n      max_backoff: 500ms\n"
    assert problems_of(text, required_env()) == [
        "metrics.output.retry.max_backoff: expected a duration at least as long as "
        "initial_backoff (1s, the default), got 500ms"
    ]


def test_an_invalid_backoff_is_not_compared_with_the_other() -> None:
    text = "logs:\n  output:\n    retry:\n      initial_backoff: 10\n      max_backoff: 5s\n"
    assert problems_of(text, required_env()) == [
        "logs.output.retry.initial_backoff: expected a duration with a unit (ms, s, m or h), "
        "got 10; write e.g. '10s'"
    ]


def test_a_null_certificate_counts_as_unset() -> None:
    text = "logs:\n  output:\n    tls:\n      cert_file: null\n      key_file: null\n"
    assert parse_config(text, required_env()).logs.output.tls.cert_file is None


def test_skipping_certificate_verification_is_a_note() -> None:
    text = "logs:\n  output:\n    tls:\n      insecure_skip_verify: true\n"
    config = parse_config(text, required_env())
    assert config_notes(config) == [
        ConfigProblem(
            "logs.output.tls.insecure_skip_verify",
            "the receiver's certificate is not verified, so anyone on the path can read and "
            "change what is sent (the shipper also logs this at startup and exports it as a "
            "metric): for a private CA, set tls.ca_file instead",
        )
    ]
    disabled = parse_config(text + "  enabled: false\n", required_env())
    assert config_notes(disabled) == []


@pytest.mark.parametrize("pipeline", ["logs", "metrics"])
def test_an_http_fallback_behind_an_https_url_is_refused_unless_allowed(pipeline: str) -> None:
    """The license key goes with every request: a plain-text fallback would send it in clear
    after any QUIC error, which anyone on the path can cause."""
    text = f"{pipeline}:\n  output:\n    fallback_url: http://h1.example.com:8080\n"
    problems = problems_of(text, required_env())
    assert len(problems) == 1
    assert problems[0].startswith(f"{pipeline}.output.fallback_url: an http:// fallback")
    assert f"{pipeline}.output.allow_plaintext_fallback: true" in problems[0]
    allowed = text + "    allow_plaintext_fallback: true\n"
    assert parse_config(allowed, required_env())
    # http throughout is a choice made in the open, not a downgrade.
    plain = {f"KILLKRILL_{'LOG' if pipeline == 'logs' else 'METRICS'}_RECEIVER_URL": "http://r:80"}
    assert parse_config(text, required_env(**plain))


def test_a_fallback_url_with_type_http_is_a_note() -> None:
    text = "metrics:\n  output:\n    type: http\n    fallback_url: https://h1:8443\n"
    assert config_notes(parse_config(text, required_env())) == [
        ConfigProblem(
            "metrics.output.fallback_url",
            "type 'http' sends every request to url over HTTP/1.1: fallback_url is not used",
        )
    ]


def test_unknown_keys_are_reported_with_a_suggestion_inside_list_items() -> None:
    text = "metrics:\n  sources:\n    - {name: a, url: 'https://a', bearer_token: /t}\n"
    assert problems_of(text, required_env()) == [
        "metrics.sources[0].bearer_token: unknown key; did you mean 'bearer_token_file'?"
    ]


def test_license_key_whitespace_from_a_secret_file_is_ignored() -> None:
    config = parse_config(None, required_env(KILLKRILL_LICENSE_KEY=f" {LICENSE_KEY}\n"))
    assert config.credentials.license_key.get_secret_value() == LICENSE_KEY


@pytest.mark.parametrize("inner", ["\r", "\n", "\x00", "\x7f", "é"])
def test_an_api_key_a_header_cannot_carry_is_refused_without_being_shown(inner: str) -> None:
    key = f"api-key{inner}injected"
    problems = problems_of(None, required_env(KILLKRILL_API_KEY=key))
    assert len(problems) == 1
    assert "KILLKRILL_API_KEY" in problems[0] or "api_key" in problems[0]
    assert "control character" in problems[0]
    assert "injected" not in problems[0]


# -- secrets -----------------------------------------------------------------------------


def test_secrets_never_appear_in_repr_str_or_dumps() -> None:
    config = parse_config(None, required_env(KILLKRILL_API_KEY=API_KEY))
    rendered = [
        repr(config),
        str(config),
        repr(config.credentials),
        str(config.model_dump()),
        config.model_dump_json(),
        str(config.credentials.license_key),
    ]
    for text in rendered:
        assert LICENSE_KEY not in text
        assert API_KEY not in text
    assert config.credentials.api_key is not None
    assert config.credentials.api_key.get_secret_value() == API_KEY


@pytest.mark.parametrize(
    "bad_key",
    [
        "PENG-a1b2-C3D4-E5F6-G7H8-J9K0",
        "PENG-A1B2-C3D4-E5F6-G7H8",
        "peng-A1B2-C3D4-E5F6-G7H8-J9K0",
        "PENG-A1B2-C3D4-E5F6-G7H8-J9K0-EXTRA",
        "not-a-key-at-all-but-secret",
    ],
)
def test_a_malformed_license_key_is_never_echoed(bad_key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(None, required_env(KILLKRILL_LICENSE_KEY=bad_key, KILLKRILL_API_KEY=API_KEY))
    text = f"{caught.value}\n{caught.value!r}\n{caught.value.problems!r}"
    assert bad_key not in text and bad_key.strip() not in text
    assert API_KEY not in text
    assert "KILLKRILL_LICENSE_KEY: expected a license key of the form" in text
    # The ValidationError (whose text could show inputs) is not chained onto ConfigError.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_pydantic_errors_never_show_secret_inputs_either() -> None:
    """Even code that bypasses parse_config gets no input in pydantic's own message."""
    with pytest.raises(ValidationError) as caught:
        AgentConfig.model_validate(
            {"agent": {"node_name": "n"}, "credentials": {"license_key": "PENG-oops-secret"}}
        )
    assert "PENG-oops-secret" not in str(caught.value)


def test_an_unknown_killkrill_variable_value_is_never_echoed() -> None:
    problems = problems_of(None, required_env(KILLKRILL_LICENCE_KEY=LICENSE_KEY))
    assert problems == [
        "KILLKRILL_LICENCE_KEY: unknown KILLKRILL_* variable; did you mean KILLKRILL_LICENSE_KEY?"
    ]


# -- load_config -------------------------------------------------------------------------


def test_load_config_reads_the_file_named_by_killkrill_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("agent:\n  cluster_name: from-file\n", encoding="utf-8")
    config = load_config(required_env(KILLKRILL_CONFIG=str(path)))
    assert config.agent.cluster_name == "from-file"


def test_load_config_prefers_an_explicit_path_to_killkrill_config(tmp_path: Path) -> None:
    chosen, ignored = tmp_path / "chosen.yaml", tmp_path / "ignored.yaml"
    chosen.write_text("agent:\n  cluster_name: chosen\n", encoding="utf-8")
    ignored.write_text("agent:\n  cluster_name: ignored\n", encoding="utf-8")
    environ = required_env(KILLKRILL_CONFIG=str(ignored))
    assert load_config(environ, config_path=chosen).agent.cluster_name == "chosen"


def test_a_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(required_env(KILLKRILL_CONFIG=str(missing)))
    assert str(caught.value) == f"KILLKRILL_CONFIG: config file not found: {missing}"
    with pytest.raises(ConfigError) as caught:
        load_config(required_env(), config_path=missing)
    assert str(caught.value) == f"--config: config file not found: {missing}"


def test_a_missing_file_at_the_default_path_means_defaults_and_environment() -> None:
    if Path(DEFAULT_CONFIG_PATH).exists():
        pytest.skip(f"{DEFAULT_CONFIG_PATH} exists on this machine")
    assert load_config(required_env()).agent.cluster_name == "default-cluster"


def test_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(required_env(), config_path=tmp_path)  # a directory
    assert str(caught.value).startswith(f"{tmp_path}: cannot read the config file")


def test_file_problems_are_named_after_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("agent: [\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(required_env(), config_path=path)
    assert str(caught.value).startswith(f"{path}: not valid YAML: ")


# -- documentation -----------------------------------------------------------------------


def _key_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        nested = _nested(field.annotation)
        if nested is not None:
            item = "[]." if _is_sequence(field.annotation) else "."
            paths += _key_paths(nested, path + item)
        else:
            paths.append(path)
    return paths


def _nested(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        if isinstance(argument, type) and issubclass(argument, BaseModel):
            return argument
    return None


def _is_sequence(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) in (tuple, list)


def test_every_key_and_variable_is_documented() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    file_keys = [p for p in _key_paths(AgentConfig) if not p.startswith("credentials.")]
    assert len(file_keys) > 30
    undocumented = [key for key in file_keys if f"`{key}`" not in docs]
    assert undocumented == []
    missing_variables = [v.name for v in ENVIRONMENT_VARIABLES if f"`{v.name}`" not in docs]
    assert missing_variables == []


def test_every_field_has_a_docstring() -> None:
    def walk(model: type[BaseModel]) -> list[str]:
        missing = [
            f"{model.__name__}.{n}" for n, f in model.model_fields.items() if not f.description
        ]
        for field in model.model_fields.values():
            nested = _nested(field.annotation)
            if nested is not None:
                missing += walk(nested)
        return missing

    assert walk(AgentConfig) == []


def test_every_yaml_example_in_the_docs_is_valid() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    examples = re.findall(r"```yaml\n(.*?)```", docs, flags=re.DOTALL)
    assert len(examples) >= 2
    for example in examples:
        parse_config(example, required_env(LOG_RECEIVER="https://logs:8443"))


def test_a_broken_agent_section_is_reported_once_without_follow_on_errors() -> None:
    assert problems_of("agent: 5\n", required_env()) == [
        "agent: expected a mapping of keys, got a number"
    ]


def test_local_only_loading_needs_no_credentials_receivers_or_node(tmp_path: Path) -> None:
    """Reading the shipper's dead letters needs the state directory and the queue limits,
    not the license key or a receiver: those get inert stand-ins, the rest is read as the
    services read it."""
    config_file = tmp_path / "config.yaml"
    config_file.write_text("agent:\n  state_dir: /var/lib/kk\nshipper:\n  queue_max_size: 2GiB\n")
    with pytest.raises(ConfigError):
        load_config({}, config_path=config_file)

    config = load_config({}, config_path=config_file, local_only=True)

    assert config.agent.state_dir == "/var/lib/kk"
    assert config.shipper.queue_max_size == 2 * 1024**3
    # What is set still wins, and is still validated.
    set_key = load_config(
        {"KILLKRILL_LICENSE_KEY": LICENSE_KEY}, config_path=config_file, local_only=True
    )
    assert set_key.credentials.license_key.get_secret_value() == LICENSE_KEY
    with pytest.raises(ConfigError, match="queue_max_size"):
        config_file.write_text("shipper:\n  queue_max_size: lots\n")
        load_config({}, config_path=config_file, local_only=True)
