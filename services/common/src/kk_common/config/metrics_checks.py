"""Cross-field checks and notes of the ``metrics`` section (see checks.py for the rules
every check follows: read the merged raw document, skip inputs that are invalid anyway)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .errors import ConfigProblem
from .kubernetes_objects import KUBERNETES_SOURCE_NAMES
from .model import MAX_SAMPLES_PER_SCRAPE, AgentConfig, MetricsConfig
from .paths import KeyPath
from .units import format_duration
from .value_types import PositiveInt, Seconds

__all__ = ["NODE_SOURCE_NAME", "metrics_source_notes", "metrics_source_problems"]

NODE_SOURCE_NAME = "node"
"""The ``source`` label of the node metrics (metrics.node): no listed source may take it."""

_SECONDS = TypeAdapter(Seconds)
_POSITIVE = TypeAdapter(PositiveInt)


def _valid(adapter: TypeAdapter[Any], value: Any) -> Any:
    """The validated value, or None when absent, null or invalid (reported elsewhere)."""
    if value is None:
        return None
    try:
        return adapter.validate_python(value)
    except ValidationError:
        return None


BUILT_IN_SOURCE_NAMES = {
    "node": (NODE_SOURCE_NAME,),
    "node_exporter": ("node-exporter",),
    "metrics_api": ("metrics-api-node", "metrics-api-pods"),
    "kubernetes": KUBERNETES_SOURCE_NAMES,
}
"""The source names of the sections that add a source of their own."""
_ON_BY_DEFAULT = ("node", "kubernetes")


def _built_in_names(metrics: dict[str, Any]) -> dict[str, str]:
    """Source name -> the section that takes it, for the sections that are on."""
    taken = {}
    for section, names in BUILT_IN_SOURCE_NAMES.items():
        scope = metrics.get(section)
        on_by_default = section in _ON_BY_DEFAULT
        enabled = scope.get("enabled", on_by_default) if isinstance(scope, dict) else None
        if enabled is True or (enabled is None and on_by_default):
            taken.update({name: f"metrics.{section}" for name in names})
    return taken


def metrics_source_problems(
    document: dict[str, Any], skip: Collection[KeyPath] = ()
) -> list[ConfigProblem]:
    """Timeouts shorter than the interval, sample limits within the dedup slot, client
    certificates with their keys: for ``metrics`` and each of ``metrics.sources``."""
    metrics = document.get("metrics")
    if not isinstance(metrics, dict):
        return []
    interval = (
        _valid(_SECONDS, metrics["interval"])
        if "interval" in metrics
        else MetricsConfig.model_fields["interval"].default
    )
    scopes: list[tuple[str, dict[str, Any]]] = [("metrics", metrics)]
    sources = metrics.get("sources")
    if isinstance(sources, list):
        scopes += [
            (f"metrics.sources[{index}]", source)
            for index, source in enumerate(sources)
            if isinstance(source, dict)
        ]
    problems = []
    taken = _built_in_names(metrics)
    for prefix, scope in scopes[1:]:
        name = scope.get("name")
        # A name that is not a string (a list: unhashable) is the model's error to report.
        owner = taken.get(name) if isinstance(name, str) else None
        if owner is not None:
            problems.append(
                ConfigProblem(
                    f"{prefix}.name",
                    f"{scope['name']!r} is the source name of {owner}: choose another name",
                )
            )
    exporter = metrics.get("node_exporter")
    agent = document.get("agent")
    if (
        isinstance(exporter, dict)
        and exporter.get("enabled") is True
        and exporter.get("url") is None
        and not (isinstance(agent, dict) and agent.get("node_ip"))
    ):
        problems.append(
            ConfigProblem(
                "metrics.node_exporter.url",
                "required while node_exporter is enabled and no node IP is known: set it, "
                "or NODE_IP (the default is http://<node IP>:9100/metrics)",
            )
        )
    for prefix, scope in scopes:
        timeout = _valid(_SECONDS, scope.get("timeout"))
        if timeout is not None and interval is not None and timeout >= interval:
            problems.append(
                ConfigProblem(
                    f"{prefix}.timeout",
                    f"expected a duration shorter than metrics.interval "
                    f"({format_duration(interval)}), got {format_duration(timeout)}: a scrape "
                    "must end before the next one is due",
                )
            )
        limit = _valid(_POSITIVE, scope.get("sample_limit"))
        if limit is not None and limit > MAX_SAMPLES_PER_SCRAPE:
            problems.append(
                ConfigProblem(
                    f"{prefix}.sample_limit",
                    f"expected at most {MAX_SAMPLES_PER_SCRAPE:,} samples per scrape, "
                    f"got {limit:,}",
                )
            )
        if prefix != "metrics" and (f"{prefix}.cert_file", f"{prefix}.key_file") not in skip:
            has_cert = scope.get("cert_file") is not None
            has_key = scope.get("key_file") is not None
            if has_cert != has_key:
                present, missing = (
                    ("cert_file", "key_file") if has_cert else ("key_file", "cert_file")
                )
                problems.append(
                    ConfigProblem(
                        f"{prefix}.{missing}",
                        f"required when {present} is set: a client certificate needs its "
                        "private key, and the other way round",
                    )
                )
    return problems


def metrics_source_notes(config: AgentConfig) -> list[ConfigProblem]:
    """A source whose certificate is not verified is worth saying once at startup."""
    if not config.metrics.enabled:
        return []
    pods = config.metrics.pods
    notes = []
    if pods.enabled and pods.scrape_annotated and pods.insecure_skip_verify:
        notes.append(
            ConfigProblem(
                "metrics.pods.insecure_skip_verify",
                "the certificates of annotated pods served over https are not verified: set "
                "metrics.pods.ca_file to the CA that signs them instead",
            )
        )
    return notes + [
        ConfigProblem(
            f"metrics.sources[{index}].insecure_skip_verify",
            f"the certificate of source {source.name!r} is not verified, so anyone on the path "
            "can forge its samples and read its bearer token: set ca_file to the kubelet's CA "
            "instead (docs/configuration.md, 'The kubelet's certificate')",
        )
        for index, source in enumerate(config.metrics.sources)
        if source.enabled and source.insecure_skip_verify
    ]
