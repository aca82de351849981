"""What configuration loading reports when something is wrong.

There is one exception, :class:`ConfigError`. It carries *every* problem found in one pass
(like OTel's ``errors.Join``), so an operator fixes a config in one round trip instead of
one error per restart. Each problem names where it comes from: a key path in the file
(``logs.output.batch_size``), an environment variable (``METRICS_INTERVAL``) or the file
itself.

Messages are built by this package, never copied from pydantic's ``str(ValidationError)``,
because pydantic appends ``input_value=...`` and that would print secrets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ConfigError", "ConfigProblem"]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with (or, for notes, worth knowing about) the configuration."""

    path: str
    """Where: a dotted key path (``metrics.sources[1].name``), a variable name or a file."""
    message: str
    """What was expected and, unless the value is secret, what was found."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(ValueError):
    """The configuration is invalid; ``problems`` lists every reason, in document order.

    ``str()`` is the full list, one ``path: message`` per line, ready to print.
    """

    problems: tuple[ConfigProblem, ...]

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        # dict.fromkeys drops repeats but keeps the first-seen order.
        self.problems = tuple(dict.fromkeys(problems))
        if not self.problems:
            raise ValueError("ConfigError needs at least one problem")
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)

    def __repr__(self) -> str:
        return f"ConfigError({len(self.problems)} problem(s))"
