"""Prometheus text exposition into `RawSample`s, with prometheus-client's parser (sans-IO).

The parser reads lines lazily and yields one metric family at a time, so memory is bounded
by the largest family, not by the page (a busy node's cAdvisor page is tens of MB).

Flattening, as receiver-api.md says: a histogram's ``_bucket`` (with ``le``), ``_count``
and ``_sum`` series are counters; a summary's quantile series are gauges and its ``_count``
and ``_sum`` counters; ``_created`` series are gauges (a time, not a count); ``untyped``
(``unknown``), ``info``, ``stateset`` and gauge-histograms become gauges.

A line the parser refuses ends the scrape with `MalformedExposition`, naming the line's
number and (shortened) text: a page that is wrong in one place may be wrong anywhere, so
none of it is shipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.parser import text_fd_to_metric_families

from kk_metrics.samples import RawSample, SampleKind

__all__ = ["MalformedExposition", "parse_exposition"]

_SHOWN_LINE_CHARS = 120

_COUNTER_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", ""),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
}


class MalformedExposition(ValueError):
    """The page is not valid Prometheus text exposition."""


class _CountedLines:
    """Iterates lines and remembers the last one, for error messages."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self.number = 0
        self.last = ""

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.number += 1
        self.last = line
        return line


def _kind(family_type: str, family_name: str, sample_name: str) -> SampleKind:
    suffixes = _COUNTER_SUFFIXES.get(family_type)
    if suffixes is None or sample_name.endswith("_created"):
        return "gauge"
    return "counter" if sample_name[len(family_name) :] in suffixes else "gauge"


def parse_exposition(lines: Iterable[str]) -> Iterator[RawSample]:
    """Every sample of the page, flattened and typed counter or gauge."""
    counted = _CountedLines(lines)
    families = text_fd_to_metric_families(counted)
    while True:
        try:
            family = next(families)
        except StopIteration:
            return
        except Exception as exc:  # the parser raises ValueError, IndexError, KeyError...
            shown = counted.last.rstrip("\n")
            if len(shown) > _SHOWN_LINE_CHARS:
                shown = shown[:_SHOWN_LINE_CHARS] + "..."
            raise MalformedExposition(
                f"line {counted.number}: {exc} ({type(exc).__name__}) in {shown!r}"
            ) from None
        family_type, family_name, help_text = family.type, family.name, family.documentation
        for sample in family.samples:
            yield RawSample(
                sample.name,
                _kind(family_type, family_name, sample.name),
                sample.value,
                sample.labels,
                sample.timestamp if sample.timestamp is None else float(sample.timestamp),
                help_text,
            )
