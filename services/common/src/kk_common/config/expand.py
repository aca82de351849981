"""``${VAR}`` expansion in config file values.

Expansion runs on the parsed YAML tree, one string value at a time, so a variable can
change a value but never the document's structure (a variable holding ``"a: b\\n"`` stays
a string). Keys are never expanded.

Syntax, deliberately small:

- ``${NAME}``: the variable's value (an empty value stays empty); an unset variable is an
  error naming the key path and the variable.
- ``${NAME:-default}``: the default when ``NAME`` is unset *or empty* (as in the shell);
  the default is literal text and cannot contain ``}``.
- ``$$``: a literal ``$``.
- ``$NAME`` without braces is an error, because it is almost always a forgotten pair of
  braces; any other ``$`` (``"cost: 5$"``) is kept as it is.

The secret variables (``KILLKRILL_LICENSE_KEY``, ``KILLKRILL_API_KEY``) cannot be expanded:
a value copied into an ordinary field could be echoed in an error message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import ConfigProblem
from .paths import KeyPath, format_path

__all__ = ["ExpansionResult", "expand_variables"]

_TOKEN = re.compile(
    r"""
    \$\$                                                   # escaped dollar
    | \$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}
    | (?P<bad_brace>\$\{[^}]*\}?)                          # ${...} that is not a reference
    | (?P<bare>\$[A-Za-z_][A-Za-z0-9_]*)                   # $NAME: forgotten braces
    """,
    re.VERBOSE,
)


class ExpansionResult:
    """The expanded document, the problems found and the paths whose values failed.

    ``failed_paths`` lets the caller suppress follow-on errors (a URL that still reads
    ``${RECEIVER}`` is not worth a second "not a URL" message).
    """

    def __init__(self) -> None:
        self.problems: list[ConfigProblem] = []
        self.failed_paths: set[KeyPath] = set()


def expand_variables(
    document: Any,
    environ: Mapping[str, str],
    *,
    forbidden: frozenset[str] = frozenset(),
) -> tuple[Any, ExpansionResult]:
    """Return a copy of ``document`` with every string value expanded, plus the problems.

    ``forbidden`` names variables that may not be referenced (the secrets).
    """
    result = ExpansionResult()

    def walk(node: Any, path: KeyPath) -> Any:
        if isinstance(node, dict):
            return {key: walk(value, (*path, key)) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item, (*path, index)) for index, item in enumerate(node)]
        if isinstance(node, str) and "$" in node:
            return _expand_string(node, path, environ, forbidden, result)
        return node

    return walk(document, ()), result


def _expand_string(
    text: str,
    path: KeyPath,
    environ: Mapping[str, str],
    forbidden: frozenset[str],
    result: ExpansionResult,
) -> str:
    def fail(message: str) -> str:
        result.problems.append(ConfigProblem(format_path(path), message))
        result.failed_paths.add(path)
        return ""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "$$":  # noqa: S105 - a syntax token, not a password
            return "$"
        if match.group("bare"):
            return fail(f"'{token}' is not expanded: write '${{{token[1:]}}}' (or '$$' for '$')")
        if match.group("bad_brace"):
            return fail(f"'{token}' is not a valid reference: use ${{NAME}} or ${{NAME:-default}}")
        name = match.group("name")
        if name in forbidden:
            return fail(f"${{{name}}} is a secret and cannot be used in the config file")
        value = environ.get(name)
        default = match.group("default")
        if default is not None and not value:
            return default
        if value is None:
            return fail(
                f"${{{name}}} is not set and has no default (write ${{{name}:-value}} for one)"
            )
        return value

    return _TOKEN.sub(replace, text)
