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

Memory stays bounded, not by the page nor by its largest family: lines are read lazily, a
family's samples are held as the lines they came from (label dicts are built as they go
out), and at most `FAMILY_SAMPLES_HELD` of them (a longer family goes out in parts).

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

FAMILY_SAMPLES_HELD = 1000
"""Samples of one family held before they are given out. A family's HELP and TYPE apply to
all its samples, and prometheus-client accepts them after the samples too (TYPE there breaks
the format's rules, HELP does not), so samples wait for their family's end; a cAdvisor
family has one sample per container, 25,000 and more on a busy node. A family longer than
this goes out in parts, and a HELP or TYPE line that would change the parts already out
makes the page malformed: no exporter writes one there."""

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


class _Position:
    """The line being read, for error messages."""

    number = 0
    text = ""


_Parsed = tuple[str, "dict[str, str] | str", float, float | None, int]
"""A sample line read but not yet turned into a `RawSample`: name, labels, value, timestamp
and line number. The labels of a plain line stay its text (a ``str``) until the family is
complete: a family of 25,000 cAdvisor series held as label dicts is about 55 MiB, as the
lines it was read from a fifth of that."""


def _plain_sample(line: str, number: int) -> _Parsed | None:
    """The sample of a plain line, labels left as the line, or None when prometheus-client
    must read it."""
    match = _PLAIN.fullmatch(line)
    if match is None:
        return None
    name, value_text, stamp_text = match.group(1, 3, 4)
    value = _number(value_text)
    if value is None:
        return None
    stamp = None
    if stamp_text is not None:
        millis = _number(stamp_text)
        if millis is None:
            return None
        stamp = millis / 1000
    if match.start(2) == match.end(2):  # no labels, or ``{}``
        return name, {}, value, stamp, number
    return name, line, value, stamp, number


def _plain_labels(line: str) -> dict[str, str] | None:
    """The labels of a line `_plain_sample` accepted; None for a repeated label name.

    The pattern has checked the shape and values hold no quote (nor ``}`` after the last
    value's quote): the labels are between the first ``{`` and the last ``}``, split at the
    quotes.
    """
    label_text = line[line.index("{") + 1 : line.rindex("}")]
    pieces = label_text.split('"')
    labels = dict(zip(map(_KEY_OF_PIECE, pieces[0::2]), pieces[1::2], strict=False))
    # Values hold no quote, so every label is exactly two pieces (`name=`, value); counting
    # `="` instead would also count a value that starts with `=` (`a="="`).
    if len(labels) != len(pieces) // 2:
        return None  # a repeated label name: prometheus-client refuses the line
    return labels


def _sample(line: str, number: int) -> _Parsed:
    plain = _plain_sample(line, number)
    if plain is not None:
        return plain
    sample = _parse_sample(line)
    stamp = sample.timestamp
    return (
        sample.name,
        sample.labels,
        sample.value,
        None if stamp is None else float(stamp),
        number,
    )


def _labels_of(parsed: _Parsed, at: _Position) -> dict[str, str]:
    labels = parsed[1]
    if not isinstance(labels, str):
        return labels
    checked = _plain_labels(labels)
    if checked is None:
        at.number, at.text = parsed[4], labels  # the error names this line
        _parse_sample(labels)  # raises prometheus-client's error for it
        raise ValueError("a repeated label name")  # unreachable while it refuses them
    return checked


def _check_labels(samples: list[_Parsed], at: _Position) -> None:
    """Raise for the first line of ``samples`` whose labels prometheus-client refuses.

    prometheus-client refuses such a line while reading it; here its labels are only split
    when the family is complete. Before an error of a later line (or of the family) is
    raised, this finds the earlier one, so the same line is named as prometheus-client would.
    """
    for parsed in samples:
        _labels_of(parsed, at)


def _kind(family_type: str, family_name: str, sample_name: str) -> SampleKind:
    suffixes = _COUNTER_SUFFIXES.get(family_type)
    if suffixes is None or sample_name.endswith("_created"):
        return "gauge"
    return "counter" if sample_name[len(family_name) :] in suffixes else "gauge"


def _family(
    name: str, help_text: str, typ: str, samples: list[_Parsed], at: _Position
) -> Iterator[RawSample]:
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
    for parsed in samples:
        sample_name = parsed[0]
        if rename:
            sample_name += "_total"
        kind = kinds.get(sample_name)
        if kind is None:
            kind = kinds[sample_name] = _kind(metric.type, metric.name, sample_name)
        yield RawSample(sample_name, kind, parsed[2], _labels_of(parsed, at), parsed[3], help_text)


def _too_late(what: str, name: str) -> str:
    return (
        f"a {what} line for {name!r} after more than {FAMILY_SAMPLES_HELD:,} of its samples "
        f"changes them (the {what} line belongs before the samples)"
    )


def _families(lines: Iterable[str], at: _Position) -> Iterator[RawSample]:
    """prometheus-client's text_fd_to_metric_families, samples read by `_sample`."""
    name, documentation, typ = "", "", "untyped"
    samples: list[_Parsed] = []
    allowed: tuple[str, ...] = ()
    streamed: tuple[str, str] | None = None
    """(help, type) the current family's first samples were given, once some are out."""
    try:
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
                            yield from _family(name, documentation, typ, samples, at)
                        name, typ, samples, allowed = candidate, "untyped", [], (candidate,)
                        streamed = None
                    documentation = _replace_help_escaping(parts[3]) if len(parts) == 4 else ""
                    if streamed is not None and documentation != streamed[0]:
                        raise ValueError(_too_late("HELP", name))
                elif parts[1] == "TYPE":
                    if len(parts) < 4:
                        raise ValueError("a TYPE line without a type")
                    if candidate != name:
                        if name != "":
                            yield from _family(name, documentation, typ, samples, at)
                        name, documentation, samples, streamed = candidate, "", [], None
                    typ = parts[3]
                    if streamed is not None and typ != streamed[1]:
                        raise ValueError(_too_late("TYPE", name))
                    allowed = tuple(name + suffix for suffix in _ALLOWED_SUFFIXES.get(typ, ("",)))
                continue
            sample = _sample(line, at.number)
            if sample[0] in allowed:
                samples.append(sample)
                if len(samples) >= FAMILY_SAMPLES_HELD:
                    # Bounded memory: a large family goes out in parts (see _too_late).
                    yield from _family(name, documentation, typ, samples, at)
                    samples, streamed = [], (documentation, typ)
                continue
            if name != "":
                yield from _family(name, documentation, typ, samples, at)
            # A sample of no announced family: an untyped family of its own, at once.
            name, documentation, typ, samples, allowed = "", "", "untyped", [], ()
            streamed = None
            yield from _family(sample[0], "", "untyped", [sample], at)
        if name != "":
            yield from _family(name, documentation, typ, samples, at)
    except Exception:
        _check_labels(samples, at)  # an earlier line's error comes first
        raise


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
