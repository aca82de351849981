"""Small helpers that every error message uses, so messages look alike."""

from __future__ import annotations

from typing import Any

__all__ = ["describe_type", "show_value"]

# Long values are cut so that each problem stays on one readable line.
_MAX_SHOWN = 80


def show_value(value: Any) -> str:
    """Render a (non-secret) input for "got ..." in a message: quoted, escaped, bounded."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict | list | tuple):
        return describe_type(value)
    text = repr(str(value))
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 4] + "...'"
    return text


def describe_type(value: Any) -> str:
    """Name the YAML kind of a value ("a list", "a mapping"), for type mismatch messages."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__
