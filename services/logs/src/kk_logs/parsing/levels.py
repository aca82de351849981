"""Log level extraction: a message's text -> one of ``trace debug info warn error fatal``.

Rules, first match wins (the order is the order of confidence):

1. A JSON object message: the ``level``, ``severity``, ``lvl`` or ``log.level`` key, or a
   nested ``{"log": {"level": ...}}`` (ECS). Numeric pino/bunyan levels (10..60) too. A
   JSON object without such a key is ``info``: its text is data, not a prefix to search.
2. logfmt: ``level=``/``lvl=``/``severity=`` anywhere (logrus, zerolog console, Go slog).
3. A bracketed level word in the first 256 characters: ``[ERROR]``, ``[warn]``.
4. A leading level word: ``ERROR ...``, ``WARN: ...``, ``error: ...``, ``WARN[0000] ...``.
5. A klog prefix: ``E1126 10:00:00.000000 ...`` (``I``/``W``/``E``/``F``).

Mapping (receiver-api.md): ``warning``->``warn``; ``critical``, ``crit``, ``panic``,
``emerg``, ``alert``->``fatal``; ``err``->``error``; ``notice``->``info``; a level value
that is present but unknown -> ``info``; no level found -> ``info``.

**stderr alone does not mean error.** Python's logging, klog, nginx, and most CLIs
write *all* their output to stderr, so promoting stderr to ``error`` would make most
``info`` lines look like errors. The stream is kept in the ``stream`` label instead.

Cost: most lines are short and plain; they pay three ``in`` tests and one anchored
``match`` that fails on the first character. JSON is only parsed when the message looks
like an object. The patterns have no nested quantifiers (no backtracking traps) and the
searches are bounded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Final

__all__ = ["DEFAULT_LEVEL", "LEVELS", "detect_level", "normalize_level"]

LEVELS: Final = ("trace", "debug", "info", "warn", "error", "fatal")
"""The receiver's levels, least to most severe."""
DEFAULT_LEVEL: Final = "info"

_ALIASES: Final[Mapping[str, str]] = {
    "trace": "trace",
    "trc": "trace",
    "debug": "debug",
    "dbg": "debug",
    "info": "info",
    "inf": "info",
    "information": "info",
    "informational": "info",
    "notice": "info",
    "warn": "warn",
    "warning": "warn",
    "wrn": "warn",
    "error": "error",
    "err": "error",
    "dpanic": "error",  # zap: panics only in development, an error in production
    "fatal": "fatal",
    "critical": "fatal",
    "crit": "fatal",
    "panic": "fatal",
    "emerg": "fatal",
    "emergency": "fatal",
    "alert": "fatal",
}
# pino and bunyan write numbers.
_NUMERIC: Final[Mapping[int, str]] = {
    10: "trace",
    20: "debug",
    30: "info",
    40: "warn",
    50: "error",
    60: "fatal",
}
_KLOG: Final[Mapping[str, str]] = {"I": "info", "W": "warn", "E": "error", "F": "fatal"}

# Words recognised in free text (rules 3 and 4). Longer words first, so that e.g.
# "warning" is not read as "warn" followed by garbage.
_WORDS = (
    r"trace|debug|dbg|informational|information|info|notice|warning|warn|"
    r"error|err|fatal|critical|crit|panic|emergency|emerg|alert"
)
_LOGFMT = re.compile(r"(?:^|[\s,;])(?:level|lvl|severity)=[\"']?([A-Za-z]+)")
_BRACKET = re.compile(rf"\[\s?({_WORDS})\s?\]", re.IGNORECASE)
_LEADING = re.compile(
    rf"\s*(?:(?i:({_WORDS}))(?=[\s:\[\]|,]|$)|([IWEF])\d{{4}} \d\d:\d\d:\d\d\.\d{{6}}\s)"
)
_BRACKET_SCAN: Final = 256


def normalize_level(value: object) -> str:
    """Map a level value (a string such as ``WARNING`` or a pino number) to a receiver level.

    Unknown values map to ``info`` (receiver-api.md).
    """
    if isinstance(value, str):
        return _ALIASES.get(value.strip().lower(), DEFAULT_LEVEL)
    if isinstance(value, int) and not isinstance(value, bool):
        return _NUMERIC.get(value, DEFAULT_LEVEL)
    return DEFAULT_LEVEL


def _from_json(obj: Mapping[str, object]) -> str:
    for key in ("level", "severity", "lvl", "log.level"):
        if key in obj:
            return normalize_level(obj[key])
    nested = obj.get("log")
    if isinstance(nested, Mapping) and "level" in nested:
        return normalize_level(nested["level"])
    return DEFAULT_LEVEL


def detect_level(message: str) -> str:
    """The receiver level of ``message`` by the rules in the module docstring."""
    stripped = message.lstrip()
    if stripped[:1] == "{" and stripped.rstrip()[-1:] == "}":
        try:
            obj = json.loads(stripped)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            return _from_json(obj)
    # Three C-level substring tests keep the regex off the common line that has an "="
    # (a URL query, key=value pairs) but no level key. logfmt keys are lower case.
    if "level=" in message or "lvl=" in message or "severity=" in message:
        m = _LOGFMT.search(message)
        if m is not None:
            return normalize_level(m.group(1))
    head = message[:_BRACKET_SCAN]
    if "[" in head:
        m = _BRACKET.search(head)
        if m is not None:
            return _ALIASES[m.group(1).lower()]
    m = _LEADING.match(message)
    if m is not None:
        word, klog = m.groups()
        return _ALIASES[word.lower()] if word is not None else _KLOG[klog]
    return DEFAULT_LEVEL
