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
from .model import AgentConfig, OutputMode
from .paths import KeyPath, format_path

__all__ = ["config_notes", "cross_field_problems"]

_INVALID = object()
_ABSENT = object()
_PIPELINES = ("logs", "metrics")


def cross_field_problems(
    document: dict[str, Any],
    *,
    default_sources: DefaultSources,
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
    problems += _duplicate_source_names(document)
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
        ):
            problems.append(
                ConfigProblem("metrics.sources", "metrics are enabled but no sources are listed")
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
    if (
        config.metrics.enabled
        and config.metrics.sources
        and not any(source.enabled for source in config.metrics.sources)
    ):
        notes.append(
            ConfigProblem("metrics.sources", "every source is disabled: nothing to scrape")
        )
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
