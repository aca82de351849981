"""Prometheus text exposition into `RawSample`s (sans-IO): prometheus-client's grammar, with a
fast path for the plain sample lines that make up nearly all of a cAdvisor page.

Why not prometheus-client's ``text_fd_to_metric_families`` as it is: it walks every line
character by character in Python (to find unquoted braces, commas and spaces), about 52 µs
for a typical 390-byte cAdvisor line; a busy node's 100,000-series page then costs 5.2
CPU-seconds, five times the budget (benchmarks/metrics_scrape_cost.py). No faster parser
on PyPI is well kept, so this module keeps prometheus-client as the definition of the
format and only takes a shortcut where the answer cannot differ:

* A sample line that matches `_PLAIN` (a legacy name, optional ``{name="value",...}`` whose
  values have no backslash, a value and an optional timestamp separated by spaces, no label
  name starting ``__``, no repeated label name) is read by one regular expression and
  converted with the same `int`/`float` rules prometheus-client uses. Everything else (escaped
  values, exemplars, tabs, quoted UTF-8 names, anything wrong) goes to prometheus-client's
  own sample parser, which returns the same sample or raises the same error.
* ``# HELP`` / ``# TYPE`` lines (a few per family) are split by prometheus-client's helpers.
* Samples are grouped into families exactly as ``text_fd_to_metric_families`` does (the
  state machine below mirrors it line for line: which sample names a TYPE allows, untyped
  singletons, counters' ``_total``), and each family is checked by building its `Metric`.

The helpers used are private to prometheus-client; requirements/ pins its version and
tests/metrics/test_exposition_fast_path.py compares this parser with
``text_fd_to_metric_families`` on kubelet/cAdvisor pages and generated input, so an upgrade
that changes them fails there first.

Memory stays bounded by the largest family, not by the page (lines are read lazily).

Flattening, as receiver-api.md says: a histogram's ``_bucket`` (with ``le``), ``_count``
and ``_sum`` series are counters; a summary's quantile series are gauges and its ``_count``
and ``_sum`` counters; ``_created`` series are gauges (a time, not a count); ``untyped``
(``unknown``), ``info``, ``stateset`` and gauge-histograms become gauges.

A line the parser refuses ends the scrape with `MalformedExposition`, naming the line's
number and (shortened) text: a page that is wrong in one place may be wrong anywhere, so
none of it is shipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from operator import methodcaller

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import (
    _parse_sample,
    _replace_help_escaping,
    _split_quoted,
    _unquote_unescape,
)
from prometheus_client.validation import _is_valid_legacy_metric_name

from kk_metrics.samples import RawSample, SampleKind

__all__ = ["MalformedExposition", "parse_exposition"]

_SHOWN_LINE_CHARS = 120

_COUNTER_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", ""),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
}
_ALLOWED_SUFFIXES: dict[str, tuple[str, ...]] = {
    "summary": ("_count", "_sum", ""),
    "histogram": ("_count", "_sum", "_bucket"),
}

_LABEL = r'(?!__)[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"'
_PLAIN = re.compile(
    rf"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{{((?:{_LABEL}(?:,{_LABEL})*,?)?)\}})? +(\S+)(?: +(\S+))?"
)


_KEY_OF_PIECE = methodcaller("strip", ",=")
"""``,name=`` (the text between two label values) -> ``name``; names have no , or =."""


class MalformedExposition(ValueError):
    """The page is not valid Prometheus text exposition."""


def _number(text: str) -> int | float | None:
    """prometheus-client's value rule (int if it is one, else float; no ``_``), or None.

    Decided without raising where it can: an exception per float value costs more than the
    rest of the line.
    """
    if "_" in text or not text.isascii():
        return None  # refused, or Unicode digits: prometheus-client decides
    digits = text[1:] if text[0] in "+-" else text
    if digits.isdigit():
        try:
            return int(text)
        except ValueError:  # more digits than int() takes: prometheus-client's float
            pass
    try:
        return float(text)
    except ValueError:
        return None


def _plain_sample(line: str) -> tuple[str, dict[str, str], float, float | None] | None:
    """The sample of a plain line, or None when prometheus-client must read it."""
    match = _PLAIN.fullmatch(line)
    if match is None:
        return None
    name, label_text, value_text, stamp_text = match.groups()
    value = _number(value_text)
    if value is None:
        return None
    stamp = None
    if stamp_text is not None:
        millis = _number(stamp_text)
        if millis is None:
            return None
        stamp = millis / 1000
    if not label_text:
        return name, {}, value, stamp
    # The pattern has checked the shape, and values hold no quote: split at the quotes.
    pieces = label_text.split('"')
    labels = dict(zip(map(_KEY_OF_PIECE, pieces[0::2]), pieces[1::2], strict=False))
    if len(labels) != label_text.count('="'):
        return None  # a repeated label name (an error), or '="' inside a value
    return name, labels, value, stamp


def _sample(line: str) -> tuple[str, dict[str, str], float, float | None]:
    plain = _plain_sample(line)
    if plain is not None:
        return plain
    sample = _parse_sample(line)
    stamp = sample.timestamp
    return sample.name, sample.labels, sample.value, None if stamp is None else float(stamp)


def _kind(family_type: str, family_name: str, sample_name: str) -> SampleKind:
    suffixes = _COUNTER_SUFFIXES.get(family_type)
    if suffixes is None or sample_name.endswith("_created"):
        return "gauge"
    return "counter" if sample_name[len(family_name) :] in suffixes else "gauge"


_Parsed = tuple[str, dict[str, str], float, float | None]


def _family(name: str, help_text: str, typ: str, samples: list[_Parsed]) -> Iterator[RawSample]:
    # As prometheus-client's build_metric: counters are named without ``_total``, and
    # their samples get it when the family's name had none.
    rename = False
    if typ == "counter":
        if name.endswith("_total"):
            name = name[:-6]
        else:
            rename = True
    metric = Metric(name, help_text, typ)  # validates the name and the type
    kinds: dict[str, SampleKind] = {}
    for sample_name, labels, value, stamp in samples:
        if rename:
            sample_name += "_total"
        kind = kinds.get(sample_name)
        if kind is None:
            kind = kinds[sample_name] = _kind(metric.type, metric.name, sample_name)
        yield RawSample(sample_name, kind, value, labels, stamp, help_text)


class _Position:
    """The line being read, for error messages."""

    number = 0
    text = ""


def _families(lines: Iterable[str], at: _Position) -> Iterator[RawSample]:
    """prometheus-client's text_fd_to_metric_families, samples read by `_sample`."""
    name, documentation, typ = "", "", "untyped"
    samples: list[_Parsed] = []
    allowed: tuple[str, ...] = ()
    for at.number, at.text in enumerate(lines, 1):  # where a refused line is, for errors
        line = at.text.strip()
        if not line:
            continue
        if line[0] == "#":
            parts = _split_quoted(line, None, 3)
            if len(parts) < 2:
                continue
            candidate = ""
            if len(parts) > 2:
                if parts[1] != "TYPE" and parts[1] != "HELP":
                    continue
                candidate, quoted = _unquote_unescape(parts[2])
                if not quoted and not _is_valid_legacy_metric_name(candidate):
                    raise ValueError(f"invalid metric name {candidate!r}")
            if parts[1] == "HELP":
                if candidate != name:
                    if name != "":
                        yield from _family(name, documentation, typ, samples)
                    name, typ, samples, allowed = candidate, "untyped", [], (candidate,)
                documentation = _replace_help_escaping(parts[3]) if len(parts) == 4 else ""
            elif parts[1] == "TYPE":
                if len(parts) < 4:
                    raise ValueError("a TYPE line without a type")
                if candidate != name:
                    if name != "":
                        yield from _family(name, documentation, typ, samples)
                    name, documentation, samples = candidate, "", []
                typ = parts[3]
                allowed = tuple(name + suffix for suffix in _ALLOWED_SUFFIXES.get(typ, ("",)))
            continue
        sample = _sample(line)
        if sample[0] in allowed:
            samples.append(sample)
            continue
        if name != "":
            yield from _family(name, documentation, typ, samples)
        # A sample of no announced family: an untyped family of its own, at once.
        name, documentation, typ, samples, allowed = "", "", "untyped", [], ()
        yield from _family(sample[0], "", "untyped", [sample])
    if name != "":
        yield from _family(name, documentation, typ, samples)


def parse_exposition(lines: Iterable[str]) -> Iterator[RawSample]:
    """Every sample of the page, flattened and typed counter or gauge."""
    at = _Position()
    try:
        yield from _families(lines, at)
    except Exception as exc:  # the parser raises ValueError, IndexError, KeyError...
        shown = at.text.rstrip("\n")
        if len(shown) > _SHOWN_LINE_CHARS:
            shown = shown[:_SHOWN_LINE_CHARS] + "..."
        raise MalformedExposition(
            f"line {at.number}: {exc} ({type(exc).__name__}) in {shown!r}"
        ) from None
