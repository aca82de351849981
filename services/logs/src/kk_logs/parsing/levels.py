"""Log level extraction: a message's text -> one of ``trace debug info warn error fatal``.

Rules, first match wins (the order is the order of confidence):

1. A JSON object message: the ``level``, ``severity``, ``lvl`` or ``log.level`` key of the
   top-level object (in that order of preference), or a nested ``{"log": {"level": ...}}``
   (ECS). Numeric pino/bunyan levels (10..60) too. A JSON object without such a key is
   ``info``: its text is data, not a prefix to search.
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

**JSON is scanned, not parsed.** A message that starts with ``{"`` (or ``{}``) and ends
with ``}`` is read as a JSON object without validating it: parsing a whole object to read
one key was the most expensive part of level detection, and a deeply nested message made
``json.loads`` raise ``RecursionError``. One regex search finds the candidate keys; in valid
JSON ``"level":`` can only be a key (quotes inside strings are escaped), so what is left is
its depth: a key counts only in the top-level object. When no bracket lies between the
previous key and this one (the common case: the level comes first, after scalar fields)
four substring tests say so; otherwise the brackets are counted in that text with its
strings cut out. Only the value's own text is decoded. Text that looks like an object but
is not valid JSON (``{"a": oops}``) is read the same way; loggers do not write that.

Level words (rules 3 and 4) are ASCII letters in any case: ``[\\u0131nfo]`` (a dotless i)
is not ``info``.

Cost: every line pays a few C-level tests (``"=" in``, ``"[" in``, its first character)
that decide which rules can apply; only those run their regex. A JSON object that starts
with its ``level`` key (zap, logrus, pino) is read by one anchored match; any other JSON
message costs a few C-level scans of its text, however deep or long it is. The patterns
cannot backtrack (no ambiguous nested quantifiers), and no input can make this module
raise.
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
_WORD_LEVELS: Final[Mapping[str, str]] = {word: _ALIASES[word] for word in _WORDS.split("|")}
_WORD_INITIALS: Final = frozenset(
    case(word[0]) for word in _WORD_LEVELS for case in (str.lower, str.upper)
)
_LOGFMT = re.compile(r"(?:^|[\s,;])(?:level|lvl|severity)=[\"']?([A-Za-z]+)")
# Rules 3 and 4 match any run of ASCII letters and look it up in `_WORD_LEVELS`, lower
# cased: a case-insensitive alternation of the words cost more than the rest of the
# function, and under Unicode case folding matched "\u0131nfo" (dotless i), which no table
# holds. A bracketed run that is not a level word does not end the search for one.
_BRACKET = re.compile(r"\[\s?([A-Za-z]+)\s?\]")
# Both match the message without its leading white space (``str.lstrip`` and ``\s`` agree
# on what that is). A klog line's letter is followed by a digit, which ends no word.
_LEADING_WORD = re.compile(r"([A-Za-z]+)(?=[\s:\[\]|,]|$)")
_KLOG_PREFIX = re.compile(r"[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6}\s")
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


# Rule 1. Keys and values are matched on the raw text; see "JSON is scanned" above.
_JSON_WS = "[ \t\r\n]*"
_JSON_OBJECT = re.compile(rf'{_JSON_WS}\{{{_JSON_WS}["}}]')
# ``log`` is only a candidate for the nested ECS form, ``{"log": {"level": ...}}``. A
# string value without escapes, the usual kind, is captured on the way.
_KEY_VALUE = rf'{_JSON_WS}:{_JSON_WS}(?:"([^"\\]*)")?'
_JSON_KEY = re.compile(rf'"(level|severity|lvl|log\.level|log)"{_KEY_VALUE}')
# The most common object of all (zap, logrus, pino) starts with its level: then the first
# key is the answer, at the top level and the most preferred, with no scan at all.
_JSON_LEVEL_FIRST = re.compile(rf'\{{{_JSON_WS}"(level)"{_KEY_VALUE}')
_KEY_PREFERENCE: Final[Mapping[str, int]] = {"level": 0, "severity": 1, "lvl": 2, "log.level": 3}
_NESTED_PREFERENCE: Final = 4
# A string, its closing quote optional (for text cut short). This is the unrolled
# ``"(?:[^"\\]|\\.)*"``: its parts cannot match the same character, so it never backtracks.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?')
_NOT_BRACKETS = re.compile(r"[^{}\[\]]+")
_STRING_VALUE = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"')
_NUMBER_VALUE = re.compile(r"-?(\d+)(\.\d+)?([eE][+-]?\d+)?", re.ASCII)
_MAX_JSON_KEYS: Final = 1000
"""Candidate keys looked at per message, which bounds the work on one made of thousands."""
_MAX_NESTED_BRACKETS: Final = 4096
"""Brackets walked to tell whether a ``level`` key is directly inside ``"log": {...}``."""


def _outside_strings(segment: str) -> str:
    """``segment`` (which starts outside a string) without its JSON strings."""
    if "\\" in segment:
        return _STRING.sub("", segment)  # escaped quotes: the exact, slower way
    # Without escapes every other piece between quotes is outside the strings.
    return "".join(segment.split('"')[::2])


def _depth_change(text: str, start: int, stop: int) -> int:
    """How much deeper ``text[stop]`` is nested than ``text[start]`` (both outside strings)."""
    segment = text[start:stop]
    # Four memchr-speed tests; a regex character class would look at every character.
    if "{" not in segment and "[" not in segment and "}" not in segment and "]" not in segment:
        return 0  # the common case: only scalars in between
    skeleton = _outside_strings(segment)  # brackets inside strings do not count
    opened = skeleton.count("{") + skeleton.count("[")
    return opened - skeleton.count("}") - skeleton.count("]")


def _directly_inside(text: str, opening: int, key_at: int) -> bool:
    """Whether the key at ``key_at`` belongs to the object whose ``{`` is at ``opening``."""
    brackets = _NOT_BRACKETS.sub("", _outside_strings(text[opening + 1 : key_at]))
    if len(brackets) > _MAX_NESTED_BRACKETS:
        return False
    depth = 0
    for char in brackets:
        depth += 1 if char in "{[" else -1
        if depth < 0:
            return False  # the object closed before the key
    return depth == 0


def _json_value_level(text: str, key: re.Match[str]) -> str:
    """The level named by the value of the JSON key that ``key`` matched."""
    simple = key.group(2)
    if simple is not None:
        return normalize_level(simple)
    at = key.end()
    if text[at : at + 1] == '"':
        m = _STRING_VALUE.match(text, at)
        if m is None:
            return DEFAULT_LEVEL
        try:
            # A lone string literal with escapes: no nesting, so no recursion.
            return normalize_level(json.loads(m.group(0)))
        except ValueError:
            return DEFAULT_LEVEL
    m = _NUMBER_VALUE.match(text, at)
    # Only small integers name a level (pino's 10..60); a fraction or an exponent makes
    # a float, which never does. Long digit strings never reach int().
    if m is None or m.group(2) or m.group(3) or len(m.group(1)) > 4:
        return DEFAULT_LEVEL  # true, false, null, an object, an array or a float
    return normalize_level(int(m.group(0)))


def _json_level(text: str) -> str:
    """Rule 1 for ``text``, which starts with ``{`` (see "JSON is scanned" above)."""
    best: re.Match[str] | None = None
    preference = _NESTED_PREFERENCE + 1
    depth, scanned = 1, 1  # the depth at text[scanned]; text[0] is the top-level "{"
    log_object = -1  # where the top-level "log" key's object starts, if there is one
    for count, m in enumerate(_JSON_KEY.finditer(text)):
        if count == _MAX_JSON_KEYS:
            break
        key_at = m.start()
        depth += _depth_change(text, scanned, key_at)
        scanned = key_at
        key = m.group(1)
        if depth == 1:
            if key == "log":
                log_object = m.end() if text[m.end() : m.end() + 1] == "{" else -1
            elif _KEY_PREFERENCE[key] < preference:
                best, preference = m, _KEY_PREFERENCE[key]
                if preference == 0:
                    break
        elif depth == 2 and key == "level" and log_object >= 0 and preference > _NESTED_PREFERENCE:
            # At depth 2 a key is directly inside the "log" object unless it has closed.
            if _directly_inside(text, log_object, key_at):
                best, preference = m, _NESTED_PREFERENCE
            else:
                log_object = -1  # closed: later keys are not inside it either
    return DEFAULT_LEVEL if best is None else _json_value_level(text, best)


def detect_level(message: str) -> str:
    """The receiver level of ``message`` by the rules in the module docstring."""
    stripped = message.lstrip()
    first = stripped[:1]
    if first == "{" and stripped.rstrip()[-1:] == "}":
        level_key = _JSON_LEVEL_FIRST.match(stripped)
        if level_key is not None:
            return _json_value_level(stripped, level_key)
        if _JSON_OBJECT.match(stripped):
            return _json_level(stripped)
    # C-level substring tests keep the regex off the common line that has no "=", or
    # an "=" (a URL query, key=value pairs) but no level key. logfmt keys are lower case.
    if "=" in message and ("level=" in message or "lvl=" in message or "severity=" in message):
        m = _LOGFMT.search(message)
        if m is not None:  # letters only: `normalize_level` without its strip()
            return _ALIASES.get(m.group(1).lower(), DEFAULT_LEVEL)
    # A memchr-speed test first; the search itself skips to each "[" the same way.
    m = _BRACKET.search(message, 0, _BRACKET_SCAN) if "[" in message else None
    while m is not None:
        level = _WORD_LEVELS.get(m.group(1).lower())
        if level is not None:
            return level
        m = _BRACKET.search(message, m.end(), _BRACKET_SCAN)
    if first in _KLOG and _KLOG_PREFIX.match(stripped) is not None:
        return _KLOG[first]
    if first in _WORD_INITIALS:  # a cheap test first: most lines start otherwise
        m = _LEADING_WORD.match(stripped)
        if m is not None:
            return _WORD_LEVELS.get(m.group(1).lower(), DEFAULT_LEVEL)
    return DEFAULT_LEVEL
