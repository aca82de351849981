"""Level extraction: every rule, in order, and every mapping."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kk_logs.parsing import detect_level, normalize_level
from kk_logs.parsing.levels import LEVELS


@pytest.mark.parametrize(
    ("message", "level"),
    [
        # 1. JSON keys, in order level, severity, lvl, log.level, nested log.level.
        ('{"level":"error","msg":"boom"}', "error"),
        ('{"severity":"WARNING","message":"disk 91%"}', "warn"),
        ('{"lvl":"dbug"}', "info"),  # present but unknown -> info
        ('{"lvl":"debug"}', "debug"),
        ('{"log.level":"critical"}', "fatal"),
        ('{"log":{"level":"panic"},"message":"ecs"}', "fatal"),
        ('{"level":50,"msg":"pino"}', "error"),
        ('{"level":10}', "trace"),
        ('{"level":true}', "info"),
        ('  {"level":"warn"}  ', "warn"),
        # A JSON object without a level key is info even if its text has level words.
        ('{"msg":"ERROR level=error [ERROR]"}', "info"),
        # Only the top-level object's keys count, by preference, wherever they are.
        ('{"severity":"debug","msg":"x","level":"error"}', "error"),
        ('{"ctx":{"level":"debug"},"level":"error"}', "error"),
        ('{"data":{"level":"error"},"items":[{"severity":"fatal"}]}', "info"),
        ('{"msg":"[{ \\"level\\": \\"error\\" }]","lvl":"warn"}', "warn"),
        ('{ "level" :\t"error" }', "error"),
        ('{"level":"err\\u006fr"}', "error"),  # escapes in the value are decoded
        ('{"level":"\\x"}', "info"),  # an invalid escape is an unknown value
        ('{"level":30.0}', "info"),  # only integers are pino levels
        ('{"level":5e1}', "info"),
        ('{"level":' + "9" * 5000 + "}", "info"),
        ('{"level":null}', "info"),
        ('{"level":{"name":"error"}}', "info"),
        # The nested ECS form: only the "log" object's own "level".
        ('{"log":{"origin":{"file":"a.go"},"level":"warn"}}', "warn"),
        ('{"log":{"logger":"x"},"other":{"level":"error"}}', "info"),
        ('{"log":"text","x":{"level":"error"}}', "info"),
        # Not valid JSON: falls through to the text rules.
        ('{"msg": broken [ERROR] x', "error"),
        # 2. logfmt.
        ('time=2026-11-26T10:00:00Z level=warning msg="slow"', "warn"),
        ("ts=1 lvl=eror msg=x", "info"),
        ('level="ERROR" msg=x', "error"),
        ("msg=x severity=crit", "fatal"),
        ("a=b,level=debug", "debug"),
        ("GET /search?q=level=error 200", "info"),  # "level=" must start a field
        ("[ERROR] level=info wins by order", "info"),
        # 3. Bracketed words, anywhere in the first 256 characters.
        ("[ERROR] db down", "error"),
        ("2026-11-26 10:00:00,123 [warn] retrying", "warn"),
        ("[ Info ] spaced", "info"),
        ("[notice] nginx", "info"),
        ("[err] short", "error"),
        ("[emerg] nginx", "fatal"),
        ("x" * 300 + " [ERROR] too far", "info"),
        ("[ERRORS] not a level word", "info"),
        ("[main] [worker-3] [Error] a bracket that is no level word is passed over", "error"),
        ("[\u0131nfo] [warn] dotless i: not the ASCII word", "warn"),
        # 4. Leading words.
        ("ERROR could not connect", "error"),
        ("WARN: deprecated flag", "warn"),
        ("Warning: something", "warn"),
        ("error: lowercase too", "error"),
        ("  INFO indented", "info"),
        ("DEBUG", "debug"),
        ("TRACE|pipe separated", "trace"),
        ("FATAL config missing", "fatal"),
        ("panic: runtime error: index out of range", "fatal"),
        ("CRITICAL:root:python logging", "fatal"),
        ("WARN[0000] logrus text", "warn"),
        ("Errors were found", "info"),  # a word that only starts with a level
        ("debugger attached", "info"),
        ("\u00a0\u2003WARN: Unicode white space before the word", "warn"),
        ("\u0130NFO: a dotted capital I only folds to i under Unicode rules", "info"),
        ("warn\u0131ng: a dotless i", "info"),
        ('{"level":"warn","msg":"level first: read without a scan"}', "warn"),
        ('{ "level" : 40 }', "warn"),
        # 5. klog.
        ("E1126 10:00:00.000000       1 reflector.go:123] failed", "error"),
        ("I1126 10:00:00.000000       1 main.go:1] started", "info"),
        ("W0101 00:00:00.123456 7 x.go:1] careful", "warn"),
        ("F1126 10:00:00.000000 1 x.go:1] dead", "fatal"),
        ("E1126 10:00:00 no microseconds", "info"),
        ("X1126 10:00:00.000000 unknown letter", "info"),
        # Nothing recognisable.
        ("GET /api/items 200 12ms", "info"),
        ("", "info"),
    ],
)
def test_level_rules(message: str, level: str) -> None:
    """Each rule finds the level it should, and no more."""
    assert detect_level(message) == level


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("trace", "trace"),
        ("debug", "debug"),
        ("info", "info"),
        ("notice", "info"),
        ("warn", "warn"),
        ("warning", "warn"),
        ("WARNING", "warn"),
        ("error", "error"),
        ("err", "error"),
        ("fatal", "fatal"),
        ("critical", "fatal"),
        ("panic", "fatal"),
        (" Error ", "error"),
        ("verbose", "info"),
        (30, "info"),
        (40, "warn"),
        (60, "fatal"),
        (99, "info"),
        (None, "info"),
        (4.0, "info"),
    ],
)
def test_level_mapping(value: object, level: str) -> None:
    """Values map per receiver-api.md; anything unknown is info."""
    assert normalize_level(value) == level


def test_stderr_is_not_a_level() -> None:
    """Level comes from the text only: the function does not even see the stream."""
    assert detect_level("Starting server on :8080") == "info"


def test_no_backtracking_trap_on_long_adversarial_input() -> None:
    """Long runs of near-matches stay linear (this would take minutes if they did not)."""
    for message in ("[" * 200_000, "level" * 100_000, " " * 200_000 + "x", "[ERRO" * 50_000):
        assert detect_level(message) == "info"


def test_deeply_nested_json_never_raises() -> None:
    """json.loads raised RecursionError on these; the key scan reads them in linear time."""
    depth = 100_000
    assert detect_level('{"a":' * depth + "1" + "}" * depth) == "info"
    assert detect_level('{"a":' * depth + '{"level":"error"}' + "}" * depth) == "info"
    assert detect_level('{"a":' + "[" * depth + "]" * depth + ',"level":"error"}') == "error"
    assert detect_level('{"log":' + "[" * depth + '{"level":"error"}' + "]" * depth + "}") == "info"
    assert detect_level('{"' + "\\" * depth + "}") == "info"


def _level_of_parsed_object(obj: Mapping[str, object]) -> str:
    """Rule 1 read from the parsed object: what detect_level did with json.loads."""
    for key in ("level", "severity", "lvl", "log.level"):
        if key in obj:
            return normalize_level(obj[key])
    nested = obj.get("log")
    if isinstance(nested, Mapping) and "level" in nested:
        return normalize_level(nested["level"])
    return "info"


_keys = st.sampled_from(["level", "severity", "lvl", "log.level", "log", "msg", 'q"', "\\"])
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-100, 100)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["error", " WARN ", "crit", "x", "{", "]", '"level":"error"', "\\"])
    | st.text(max_size=8)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys | st.text(max_size=4), inner),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    obj=st.dictionaries(_keys | st.text(max_size=5), _values, max_size=6),
    compact=st.booleans(),
    ascii_only=st.booleans(),
)
def test_any_json_object_gets_the_level_its_parsed_form_names(
    obj: dict[str, object], compact: bool, ascii_only: bool
) -> None:
    """Scanning the text agrees with parsing it, for every valid JSON object."""
    separators = (",", ":") if compact else (", ", ": ")
    text = json.dumps(obj, separators=separators, ensure_ascii=ascii_only)
    assert detect_level(text) == _level_of_parsed_object(obj)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_no_text_makes_detection_raise(message: str) -> None:
    """Any text gets one of the six levels (Unicode case folding once raised KeyError)."""
    assert detect_level(message) in LEVELS
    assert detect_level("[" + message + "]") in LEVELS
