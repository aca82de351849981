"""Checks that span several fields, and notes (warnings) about a valid config.

The cross-field checks read the *merged raw document* rather than the validated model, so
they run even when some unrelated field is invalid: "logs.output.url is required" is
reported together with "logs.output.batch_size: expected a whole number", not after it
is fixed. A check whose inputs are themselves invalid is skipped; those inputs already
have their own problem.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ..urls import carries_http3
from .environment import variable_for_path
from .errors import ConfigProblem
from .metric_sources import KUBELET_PORT, DefaultSources
from .metrics_checks import metrics_source_notes, metrics_source_problems
from .model import (
    COMPRESSION_LEVELS,
    DEFAULT_COMPRESSION,
    AgentConfig,
    Compression,
    KubernetesSource,
    OutputMode,
    RetryConfig,
)
from .paths import KeyPath, format_path
from .units import format_duration
from .value_types import PositiveInt, Seconds

__all__ = ["config_notes", "cross_field_problems"]

_INVALID = object()
_ABSENT = object()
_PIPELINES = ("logs", "metrics")


def cross_field_problems(
    document: dict[str, Any],
    *,
    default_sources: DefaultSources,
    default_kubelet_url: DefaultSources,
    skip: Collection[KeyPath] = (),
) -> list[ConfigProblem]:
    """Every cross-field problem of the merged document (before model validation)."""
    problems: list[ConfigProblem] = []
    for pipeline in _PIPELINES:
        section, output = _get(document, (pipeline,)), _get(document, (pipeline, "output"))
        if not isinstance(section, dict) or (
            output is not _ABSENT and not isinstance(output, dict)
        ):
            continue  # not a mapping: reported by validation; nothing to cross-check
        if _read(document, (pipeline, "enabled"), bool, default=True) is True:
            problems += _enabled_pipeline_problems(document, pipeline, default_sources, skip)
        problems += _single_mode_problems(document, pipeline)
        problems += _compression_level_problems(document, pipeline)
        problems += _backoff_problems(document, pipeline)
        problems += _client_certificate_problems(document, pipeline, skip)
        problems += _plaintext_fallback_problems(document, pipeline, skip)
    problems += _logs_input_problems(document, default_kubelet_url, skip)
    problems += _duplicate_source_names(document)
    problems += metrics_source_problems(document, skip)
    return problems


def _enabled_pipeline_problems(
    document: dict[str, Any],
    pipeline: str,
    default_sources: DefaultSources,
    skip: Collection[KeyPath],
) -> list[ConfigProblem]:
    problems = []
    url_path: KeyPath = (pipeline, "output", "url")
    if _get(document, url_path) in (None, _ABSENT) and url_path not in skip:
        variable = variable_for_path(url_path)
        variable_name = variable.name if variable else "it"
        problems.append(
            ConfigProblem(
                format_path(url_path),
                f"required while {pipeline} are enabled: set {variable_name} or "
                f"{format_path(url_path)} (or {pipeline}.enabled: false)",
            )
        )
    if pipeline == "logs" and _get(document, ("logs", "paths")) == []:
        problems.append(ConfigProblem("logs.paths", "logs are enabled but no paths are listed"))
    if pipeline == "metrics":
        if default_sources is DefaultSources.NODE_IP_MISSING:
            problems.append(
                ConfigProblem(
                    "NODE_IP",
                    "required by the default metrics sources (kubelet and cAdvisor on "
                    f"https://<node IP>:{KUBELET_PORT}): set NODE_IP from the downward API "
                    "(status.hostIP) or agent.node_ip, or list metrics.sources",
                )
            )
        elif (
            default_sources is DefaultSources.EXPLICIT
            and _get(document, ("metrics", "sources")) == []
            and _read(document, ("metrics", "node", "enabled"), bool, default=True) is False
            and not _scrapes_annotated_pods(document)
            and _read(document, ("metrics", "kubernetes", "enabled"), bool, default=True) is False
            and not any(
                _read(document, ("metrics", section, "enabled"), bool, default=False) is True
                for section in ("node_exporter", "metrics_api")
            )
        ):
            problems.append(
                ConfigProblem(
                    "metrics.sources",
                    "metrics are enabled but no sources are listed, node metrics are off, "
                    "annotated pods are not scraped and the Kubernetes object metrics are off",
                )
            )
        if (
            _read(document, ("metrics", "kubernetes", "enabled"), bool, default=True) is True
            and _read(document, ("metrics", "kubernetes", "events", "enabled"), bool, default=False)
            is True
            and _read(document, ("logs", "enabled"), bool, default=True) is False
        ):
            problems.append(
                ConfigProblem(
                    "metrics.kubernetes.events.enabled",
                    "Kubernetes events are sent as log records through the shipper's log "
                    "output, which is off (logs.enabled: false): enable logs, or set "
                    "metrics.kubernetes.events.enabled: false",
                )
            )
    return problems


def _scrapes_annotated_pods(document: dict[str, Any]) -> bool:
    return all(
        _read(document, ("metrics", "pods", key), bool, default=True) is True
        for key in ("enabled", "scrape_annotated")
    )


def _logs_input_problems(
    document: dict[str, Any], default_kubelet_url: DefaultSources, skip: Collection[KeyPath]
) -> list[ConfigProblem]:
    # What the logs service reads besides the container logs: the system logs and the pod
    # metadata. Like the output URL, only an enabled part needs its inputs.
    if _read(document, ("logs", "enabled"), bool, default=True) is not True:
        return []
    problems = []
    if (
        _read(document, ("logs", "system_logs", "enabled"), bool, default=False) is True
        and _get(document, ("logs", "system_logs", "paths")) == []
    ):
        problems.append(
            ConfigProblem(
                "logs.system_logs.paths", "system logs are enabled but no paths are listed"
            )
        )
    url_path: KeyPath = ("logs", "kubernetes", "kubelet_url")
    if (
        _read(document, ("logs", "kubernetes", "enabled"), bool, default=True) is True
        and _read(document, ("logs", "kubernetes", "source"), KubernetesSource, default="api")
        == "kubelet"
        and _get(document, url_path) in (None, _ABSENT)
        and default_kubelet_url is not DefaultSources.NODE_IP_INVALID
        and url_path not in skip
    ):
        default = f"https://<node IP>:{KUBELET_PORT}"
        if default_kubelet_url is DefaultSources.NODE_IP_MISSING:
            fix = (
                f"set NODE_IP from the downward API (status.hostIP) or agent.node_ip for the "
                f"default {default}, or set logs.kubernetes.kubelet_url, or use source api"
            )
        else:  # written as null
            fix = f"set it, or remove it for the default {default}, or use source api"
        problems.append(
            ConfigProblem(
                format_path(url_path), f"required when logs.kubernetes.source is kubelet: {fix}"
            )
        )
    return problems


def _single_mode_problems(document: dict[str, Any], pipeline: str) -> list[ConfigProblem]:
    # Single-record receivers don't decode compressed bodies (receiver-api.md), so an
    # explicit gzip/zstd with mode: single can only be a mistake.
    mode = _read(document, (pipeline, "output", "mode"), OutputMode, default="batch")
    compression = _get(document, (pipeline, "output", "compression"))
    if mode == "single" and compression in ("gzip", "zstd"):
        return [
            ConfigProblem(
                f"{pipeline}.output.compression",
                f"mode 'single' sends each record uncompressed, got {compression!r}: "
                "remove compression or set it to none",
            )
        ]
    return []


def _compression_level_problems(document: dict[str, Any], pipeline: str) -> list[ConfigProblem]:
    output: KeyPath = (pipeline, "output")
    level = _read(document, (*output, "compression_level"), PositiveInt, default=None)
    mode = _read(document, (*output, "mode"), OutputMode, default="batch")
    # Absent compression is the default, which single mode changes to none (see the model).
    default_compression = "none" if mode == "single" else DEFAULT_COMPRESSION
    compression = _read(document, (*output, "compression"), Compression, default=None)
    if compression is None and mode is not _INVALID:
        compression = default_compression
    if level is None or level is _INVALID or compression is None or compression is _INVALID:
        return []
    path = format_path((*output, "compression_level"))
    if compression == "none" and mode == "single":
        message = "mode 'single' sends each record uncompressed, so there is no level to set"
        return [ConfigProblem(path, f"{message}: remove compression_level")]
    if compression == "none":
        message = "compression is none, so there is no level to set"
        fix = "remove compression_level or set compression to gzip or zstd"
        return [ConfigProblem(path, f"{message}: {fix}")]
    lowest, highest, _ = COMPRESSION_LEVELS[compression]
    if not lowest <= level <= highest:
        return [
            ConfigProblem(
                path,
                f"expected a whole number from {lowest} to {highest} for {compression}, "
                f"got {level}",
            )
        ]
    return []


def _backoff_problems(document: dict[str, Any], pipeline: str) -> list[ConfigProblem]:
    defaults = RetryConfig()
    retry: KeyPath = (pipeline, "output", "retry")
    initial = _read(document, (*retry, "initial_backoff"), Seconds, default=None)
    maximum = _read(document, (*retry, "max_backoff"), Seconds, default=None)
    if initial is _INVALID or maximum is _INVALID or (initial is None and maximum is None):
        return []
    if (maximum or defaults.max_backoff) >= (initial or defaults.initial_backoff):
        return []
    if maximum is None:
        # Only initial_backoff is written: it is the key to fix.
        return [
            ConfigProblem(
                format_path((*retry, "initial_backoff")),
                "expected a duration no longer than max_backoff "
                f"({format_duration(defaults.max_backoff)}, the default), "
                f"got {format_duration(initial)}",
            )
        ]
    shown_initial = format_duration(initial or defaults.initial_backoff)
    default_note = "" if initial is not None else ", the default"
    return [
        ConfigProblem(
            format_path((*retry, "max_backoff")),
            f"expected a duration at least as long as initial_backoff "
            f"({shown_initial}{default_note}), got {format_duration(maximum)}",
        )
    ]


def _client_certificate_problems(
    document: dict[str, Any], pipeline: str, skip: Collection[KeyPath]
) -> list[ConfigProblem]:
    # A client certificate is useless without its key and the other way round.
    tls: KeyPath = (pipeline, "output", "tls")
    cert_path, key_path = (*tls, "cert_file"), (*tls, "key_file")
    if cert_path in skip or key_path in skip:
        return []
    has_cert = _get(document, cert_path) not in (None, _ABSENT)
    has_key = _get(document, key_path) not in (None, _ABSENT)
    if has_cert == has_key:
        return []
    present, missing = ("cert_file", key_path) if has_cert else ("key_file", cert_path)
    return [
        ConfigProblem(
            format_path(missing),
            f"required when tls.{present} is set: mutual TLS needs both the client "
            "certificate (cert_file) and its private key (key_file), or neither",
        )
    ]


def _plaintext_fallback_problems(
    document: dict[str, Any], pipeline: str, skip: Collection[KeyPath]
) -> list[ConfigProblem]:
    # Every request carries the license key: an https receiver with an http fallback would
    # send it in clear after any QUIC error, which is what an attacker on the path can cause.
    output: KeyPath = (pipeline, "output")
    url_path, fallback_path = (*output, "url"), (*output, "fallback_url")
    if url_path in skip or fallback_path in skip:
        return []
    url, fallback = _get(document, url_path), _get(document, fallback_path)
    if not (isinstance(url, str) and isinstance(fallback, str)):
        return []
    if not (url.lower().startswith("https://") and fallback.lower().startswith("http://")):
        return []
    allowed = _read(document, (*output, "allow_plaintext_fallback"), bool, default=False)
    if allowed:
        return []
    return [
        ConfigProblem(
            format_path(fallback_path),
            "an http:// fallback behind an https:// url would send the license key unencrypted "
            "whenever HTTP/3 fails (which anyone on the path can cause): use an https:// "
            f"fallback_url, or set {format_path((*output, 'allow_plaintext_fallback'))}: true "
            "if that network is trusted",
        )
    ]


def _duplicate_source_names(document: dict[str, Any]) -> list[ConfigProblem]:
    sources = _get(document, ("metrics", "sources"))
    if not isinstance(sources, list):
        return []
    first_index: dict[str, int] = {}
    problems = []
    for index, source in enumerate(sources):
        name = source.get("name") if isinstance(source, dict) else None
        if not isinstance(name, str):
            continue
        if name in first_index:
            problems.append(
                ConfigProblem(
                    f"metrics.sources[{index}].name",
                    f"duplicate source name {name!r} (also metrics.sources[{first_index[name]}])",
                )
            )
        else:
            first_index[name] = index
    return problems


def config_notes(config: AgentConfig) -> list[ConfigProblem]:
    """Things worth saying once at startup about a valid config (not errors)."""
    notes = []
    for pipeline, section in (("logs", config.logs), ("metrics", config.metrics)):
        output = section.output
        if (
            section.enabled
            and output.type == "http3"
            and output.url
            and not carries_http3(output.url)
        ):
            notes.append(
                ConfigProblem(
                    f"{pipeline}.output.url",
                    "an http:// URL cannot carry HTTP/3 (QUIC needs TLS): "
                    "this output uses HTTP/1.1 only",
                )
            )
        if section.enabled and output.tls.insecure_skip_verify:
            notes.append(
                ConfigProblem(
                    f"{pipeline}.output.tls.insecure_skip_verify",
                    "the receiver's certificate is not verified, so anyone on the path can "
                    "read and change what is sent (the shipper also logs this at startup and "
                    "exports it as a metric): for a private CA, set tls.ca_file instead",
                )
            )
        if section.enabled and output.type == "http" and output.fallback_url:
            notes.append(
                ConfigProblem(
                    f"{pipeline}.output.fallback_url",
                    "type 'http' sends every request to url over HTTP/1.1: "
                    "fallback_url is not used",
                )
            )
    if (
        config.metrics.enabled
        and config.metrics.sources
        and not any(source.enabled for source in config.metrics.sources)
        and not config.metrics.node.enabled
        and not (config.metrics.pods.enabled and config.metrics.pods.scrape_annotated)
        and not config.metrics.kubernetes.enabled
    ):
        notes.append(
            ConfigProblem("metrics.sources", "every source is disabled: nothing to scrape")
        )
    notes += metrics_source_notes(config)
    return notes


def _get(document: Any, path: KeyPath) -> Any:
    node = document
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return _ABSENT
        node = node[key]
    return node


def _read(document: Any, path: KeyPath, annotation: Any, *, default: Any) -> Any:
    """The value at ``path`` validated as ``annotation``; the default if absent."""
    value = _get(document, path)
    if value is _ABSENT:
        return default
    try:
        return _adapter(annotation).validate_python(value)
    except ValidationError:
        return _INVALID


@cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)
