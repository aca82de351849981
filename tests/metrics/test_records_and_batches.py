"""Samples become receiver records with our labels and stable ids, cut into batches whose
positions and claims let the shipper drop a re-sent scrape."""

from __future__ import annotations

import itertools
import math

import orjson
import pytest

from kk_common.envelope import metric_record_id
from kk_metrics.batches import SLOT_BITS, ScrapeBatches
from kk_metrics.errors import ScrapeError
from kk_metrics.records import ScrapeEncoder
from kk_metrics.samples import RawSample
from kk_metrics.scrape import ScrapeContext, process_samples

SCRAPE_TIME = 1_795_000_000.25  # 2026-11-18T11:06:40.250Z


def encoder(limit: int = 100) -> ScrapeEncoder:
    return ScrapeEncoder(
        source="cadvisor", node="node-a", cluster="prod", scrape_time_s=SCRAPE_TIME,
        sample_limit=limit,
    )  # fmt: skip


def test_a_sample_gets_our_labels_the_scrape_time_and_an_id_of_series_and_time() -> None:
    sample = RawSample("cpu_total", "counter", 12.5, {"pod": "p", "source": "theirs"}, help="CPU")
    record_id, body = encoder().encode(sample)
    record = orjson.loads(body)
    labels = {
        "pod": "p",
        "exported_source": "theirs",
        "k8s_node": "node-a",
        "k8s_cluster": "prod",
        "source": "cadvisor",
    }
    assert record == {
        "id": record_id,
        "name": "cpu_total",
        "type": "counter",
        "value": 12.5,
        "labels": labels,
        "timestamp": "2026-11-18T11:06:40.250Z",
        "help": "CPU",
    }
    assert record_id == metric_record_id("cpu_total", labels, "2026-11-18T11:06:40.250Z")
    # The same sample in the same scrape, encoded again (a restart), has the same id.
    assert encoder().encode(sample)[0] == record_id


def test_the_source_timestamp_wins_and_invalid_names_are_made_valid() -> None:
    sample = RawSample("http.requests", "gauge", 1, {"a.b": "x"}, timestamp_s=1_795_000_000.5)
    record = orjson.loads(encoder().encode(sample)[1])
    assert record["name"] == "http_requests"
    assert record["labels"]["a_b"] == "x"
    assert record["timestamp"] == "2026-11-18T11:06:40.500Z"
    assert "help" not in record


def test_nan_and_infinities_are_dropped_and_counted() -> None:
    scrape = encoder()
    for value in (math.nan, math.inf, -math.inf, 1.0):
        scrape.encode(RawSample("g", "gauge", value, {}))
    assert (scrape.accepted, scrape.dropped_non_finite) == (1, 3)


def context(**overrides: object) -> ScrapeContext:
    fields = {
        "source": "cadvisor",
        "producer": "metrics@node-a",
        "node": "node-a",
        "cluster": "prod",
        "scrape_time_s": SCRAPE_TIME,
        "sample_limit": 1000,
        "batch_max_records": 4,
    }
    fields.update(overrides)
    return ScrapeContext(**fields)  # type: ignore[arg-type]


def samples(count: int) -> list[RawSample]:
    return [RawSample("s", "gauge", index, {"i": str(index)}) for index in range(count)]


@pytest.mark.parametrize("count", [1, 4, 9, 12])
def test_batches_claim_their_samples_and_the_last_one_the_rest_of_the_slot(count: int) -> None:
    emitted = []
    accepted, dropped = process_samples(samples(count), context(), emitted.append)
    assert (accepted, dropped) == (count, 0)
    slot = round(SCRAPE_TIME * 1000) << SLOT_BITS
    positions = [p for batch in emitted for _, p in batch.positions]
    assert positions == [slot + index for index in range(count)]
    assert [len(batch) for batch in emitted] == [min(4, count - i) for i in range(0, count, 4)]
    claims = [claim for batch in emitted for claim in batch.claims]
    # Contiguous from the slot's start to its end: one range in the shipper's coverage.
    assert claims[0][1] == slot and claims[-1][2] == slot + (1 << SLOT_BITS)
    assert all(a[2] == b[1] for a, b in itertools.pairwise(claims))
    assert [batch.batch_id for batch in emitted] == [
        f"metrics@node-a:cadvisor@{round(SCRAPE_TIME * 1000)}:{i}" for i in range(len(emitted))
    ]
    assert all(batch.sources == ["metrics:cadvisor"] for batch in emitted)
    ids = [i for batch in emitted for i in batch.ids]
    bodies = [orjson.loads(b) for batch in emitted for b in batch.record_bodies()]
    assert ids == [body["id"] for body in bodies] and len(set(ids)) == count


def test_a_scrape_over_its_sample_limit_fails_with_a_clear_error() -> None:
    with pytest.raises(ScrapeError, match=r"more than 10 samples in one scrape") as caught:
        process_samples(samples(11), context(sample_limit=10), lambda batch: None)
    assert caught.value.reason == "sample_limit"


@pytest.mark.parametrize("timestamp_s", [math.inf, 1e300, -1e17])
def test_a_timestamp_no_date_can_show_is_a_malformed_scrape(timestamp_s: float) -> None:
    """``m 1 1e400`` on a page once raised OverflowError (and ``-1e20`` an OSError, reported
    as a spool failure) out of the scrape instead of a ScrapeError."""
    odd = RawSample("m", "gauge", 1.0, {}, timestamp_s)
    with pytest.raises(ScrapeError, match="out of the range of dates") as caught:
        process_samples([odd], context(sample_limit=10), lambda batch: None)
    assert caught.value.reason == "malformed"


def test_processing_stops_at_the_deadline() -> None:
    with pytest.raises(ScrapeError) as caught:
        process_samples(
            samples(5000), context(sample_limit=10_000), lambda b: None, past_deadline=lambda: True
        )
    assert caught.value.reason == "timeout"


def test_scrape_batches_with_nothing_give_nothing() -> None:
    batches = ScrapeBatches(producer="p", source="s", scrape_ms=1, max_records=3)
    assert batches.finish() == []
