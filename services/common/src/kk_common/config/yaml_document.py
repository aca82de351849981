"""Reading the config file's YAML into plain Python data, strictly.

Strict in two ways PyYAML is not by default: a key repeated in one mapping is an error
(PyYAML silently keeps the last one, so the first setting would be ignored), and the top
level must be a mapping of sections. Messages give line and column but never quote the
document, which is written by the operator and may be long.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import ConfigProblem
from .messages import describe_type

__all__ = ["read_yaml_mapping"]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys."""


def _construct_unique_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        # Merge keys (<<) may legitimately be overridden by explicit keys; skip them.
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, str | int | float | bool) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        if isinstance(key, str | int | float | bool):
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,  # type: ignore[arg-type]
)


def read_yaml_mapping(text: str, source: str) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """Parse ``text``; return its top-level mapping (empty for an empty file) or problems."""
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        return {}, [ConfigProblem(source, f"not valid YAML: {_describe_yaml_error(error)}")]
    if document is None:
        return {}, []
    if not isinstance(document, dict):
        return {}, [
            ConfigProblem(
                source,
                "expected a mapping of sections (agent, logs, metrics, performance, shipper), "
                f"got {describe_type(document)}",
            )
        ]
    return document, []


def _describe_yaml_error(error: yaml.YAMLError) -> str:
    problem = getattr(error, "problem", None) or "cannot parse"
    mark = getattr(error, "problem_mark", None)
    if mark is None:
        return str(problem)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
