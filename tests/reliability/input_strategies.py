"""Hypothesis strategies shared by the bad-input property tests (tests/reliability)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

__all__ = ["json_documents", "key_paths", "replace_all", "replace_at", "yaml_scalars"]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_documents = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=25,
)
"""Any JSON value: nested lists and objects of scalars, integers beyond 64 bits included."""

yaml_scalars = st.sampled_from(
    [
        "",
        "~",
        "null",
        "yes",
        "no",
        "on",
        "off",
        "0",
        "1",
        "0x1F",
        "1e400",
        ".nan",
        "-.inf",
        "2026-11-26",
        "12:30:00",
        "!!binary aGVsbG8=",
        "*alias",
        "&anchor x",
        "'quoted'",
        '"\\x00"',
        "[",
        "{",
        "- a",
        "? x",
        "<<: *a",
        "|",
        ">",
        "%YAML 1.1",
        "@",
        "`",
    ]
)
"""YAML scalars that PyYAML reads as something surprising, or not at all."""


def key_paths(document: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path into ``document`` (list items by index), the root included."""
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found += key_paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += key_paths(value, (*prefix, index))
    return found


def replace_at(document: object, path: tuple, value: object) -> object:
    """A copy of ``document`` with the value at ``path`` replaced (the root: ``value``)."""
    if not path:
        return value
    copied = copy.deepcopy(document)
    parent: Any = copied
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return copied


def replace_all(document: object, replacements: list[tuple[tuple, object]]) -> object:
    """``replace_at`` for each, in order; a path an earlier one removed is passed over."""
    for path, value in replacements:
        try:
            document = replace_at(document, path, value)
        except (KeyError, IndexError, TypeError):
            continue
    return document
