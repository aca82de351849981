"""One scrape after its body is fetched: samples -> records -> batches -> spool.

`process_samples` is the sans-IO heart (samples in, batches out through a callback, time
checked through a callback); `read_and_spool` runs it on a worker thread over a fetched
body (or the node's files) and commits the scrape to the spool, or throws it away whole.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from kk_common.envelope import EncodedRecords
from kk_metrics.batches import ScrapeBatches
from kk_metrics.errors import ScrapeError
from kk_metrics.exposition import MalformedExposition, parse_exposition
from kk_metrics.records import ExtraLabels, SampleLimitExceeded, ScrapeEncoder
from kk_metrics.samples import RawSample
from kk_metrics.sources.metrics_api import metrics_api_samples
from kk_metrics.sources.node import NodeMetricsUnavailable, NodeReader
from kk_metrics.sources.summary import summary_samples
from kk_metrics.spool import ScrapeSpool, SpooledBatch

__all__ = ["ProcessedScrape", "ScrapeContext", "process_samples", "read_and_spool"]

DEADLINE_CHECK_EVERY = 1024
"""Samples between two looks at the clock while processing."""


@dataclass(frozen=True, slots=True)
class ScrapeContext:
    """What one scrape needs to know besides its samples."""

    source: str
    producer: str
    node: str
    cluster: str
    scrape_time_s: float
    sample_limit: int
    batch_max_records: int
    extra_labels: ExtraLabels | None = None
    """Labels to add to a sample, from its own (the pod's: `kk_metrics.pods`)."""
    on_this_node: Callable[[str, str], bool] = lambda _namespace, _name: False
    """Whether the pod (namespace, name) runs on this node (for the metrics API's pods)."""

    @property
    def scrape_ms(self) -> int:
        return round(self.scrape_time_s * 1000)


@dataclass(frozen=True, slots=True)
class ProcessedScrape:
    samples: int
    dropped_non_finite: int
    batches: list[SpooledBatch]


def process_samples(
    samples: Iterable[RawSample],
    context: ScrapeContext,
    emit: Callable[[EncodedRecords], None],
    *,
    past_deadline: Callable[[], bool] = lambda: False,
) -> tuple[int, int]:
    """Encode and batch every sample; ``emit`` each batch. Returns (samples, dropped).

    Raises `ScrapeError` (``malformed``, ``sample_limit``, ``timeout``); what was emitted
    before is then the caller's to throw away.
    """
    encoder = ScrapeEncoder(
        source=context.source,
        node=context.node,
        cluster=context.cluster,
        scrape_time_s=context.scrape_time_s,
        sample_limit=context.sample_limit,
        extra_labels=context.extra_labels,
    )
    batches = ScrapeBatches(
        producer=context.producer,
        source=context.source,
        scrape_ms=context.scrape_ms,
        max_records=context.batch_max_records,
    )
    seen = 0
    try:
        for sample in samples:
            seen += 1
            if seen % DEADLINE_CHECK_EVERY == 0 and past_deadline():
                raise ScrapeError(
                    "timeout", f"processing took longer than the timeout ({seen:,} samples read)"
                )
            encoded = encoder.encode(sample)
            if encoded is not None:
                batch = batches.add(*encoded)
                if batch is not None:
                    emit(batch)
    except SampleLimitExceeded as exc:
        raise ScrapeError("sample_limit", str(exc)) from None
    except MalformedExposition as exc:
        raise ScrapeError("malformed", f"not valid Prometheus text: {exc}") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise ScrapeError("malformed", f"{type(exc).__name__}: {exc}") from None
    for batch in batches.finish():
        emit(batch)
    return encoder.accepted, encoder.dropped_non_finite


def _prometheus_lines(body: Path) -> Iterator[str]:
    # errors="replace": one invalid byte must not end the scrape (it shows as U+FFFD).
    with body.open("r", encoding="utf-8", errors="replace", newline="\n") as lines:
        yield from lines


def _json(body: Path, what: str) -> object:
    try:
        return orjson.loads(body.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ScrapeError("malformed", f"{what} is not JSON: {exc}") from None


def _summary(body: Path) -> Iterator[RawSample]:
    yield from summary_samples(_json(body, "the summary"))


def _metrics_api(body: Path, on_this_node: Callable[[str, str], bool]) -> Iterator[RawSample]:
    yield from metrics_api_samples(_json(body, "the metrics API's answer"), on_this_node)


def read_and_spool(
    kind: str,
    *,
    body: Path | None,
    node: NodeReader | None,
    context: ScrapeContext,
    spool: ScrapeSpool,
    deadline: float,
    stopping: threading.Event | None = None,
) -> ProcessedScrape:
    """Process one scrape (on a worker thread) and commit it to the spool, or discard it."""
    if kind == "node":
        assert node is not None
        samples: Iterable[RawSample] = node.read()
    elif kind == "kubelet_summary":
        assert body is not None
        samples = _summary(body)
    elif kind == "metrics_api":
        assert body is not None
        samples = _metrics_api(body, context.on_this_node)
    else:
        assert body is not None
        samples = parse_exposition(_prometheus_lines(body))
    writer = spool.begin(context.source, context.scrape_ms)
    try:
        accepted, dropped = process_samples(
            samples,
            context,
            writer.write,
            past_deadline=lambda: (
                time.monotonic() > deadline or (stopping is not None and stopping.is_set())
            ),
        )
        batches = writer.commit()
    except NodeMetricsUnavailable as exc:
        writer.abort()
        raise ScrapeError("unavailable", str(exc)) from None
    except BaseException:
        writer.abort()
        raise
    return ProcessedScrape(samples=accepted, dropped_non_finite=dropped, batches=batches)
