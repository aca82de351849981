"""Key paths: how a location in the config is written in messages."""

from __future__ import annotations

__all__ = ["KeyPath", "format_path"]

KeyPath = tuple[str | int, ...]
"""A location in the document: keys and list indices, e.g. ``("metrics", "sources", 1)``."""


def format_path(path: KeyPath) -> str:
    """``("metrics", "sources", 1, "name")`` -> ``"metrics.sources[1].name"``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "<document>"
