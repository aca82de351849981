"""Scrapes of a fake kubelet over HTTPS with bearer-token auth, through the service's own
path: fetch, parse, encode, spool. No shipper: the batches stay in the spool to look at."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import orjson
import pytest
from metrics_kubelet import MetricsKubelet, cadvisor_page, summary_document
from service_support import (
    TOKEN,
    kubelet_source,
    metrics_config,
    running_service,
    spooled_records,
)

from kk_common.ipc import TELEMETRY_SOCKET  # noqa: F401 - the service binds nothing itself
from tests.logs.fake_apiserver import make_tls_files

PROFILE = os.environ.get("KK_TEST_PROFILE", "ci")

EXPOSITION = """\
# HELP apiserver_request_duration_seconds Latency.
# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_bucket{verb="GET",le="0.1"} 10
apiserver_request_duration_seconds_bucket{verb="GET",le="+Inf"} 12
apiserver_request_duration_seconds_sum{verb="GET"} 0.9
apiserver_request_duration_seconds_count{verb="GET"} 12
# TYPE kubelet_pleg_relist_duration_seconds summary
kubelet_pleg_relist_duration_seconds{quantile="0.5"} NaN
kubelet_pleg_relist_duration_seconds_sum 3
kubelet_pleg_relist_duration_seconds_count 4
# TYPE kubelet_note untyped
kubelet_note{text="a \\"quoted\\" value\\nwith a newline"} 1
"""


@pytest.fixture
def kubelet(tmp_path: Path):
    with MetricsKubelet(tls=make_tls_files(tmp_path / "tls"), token=TOKEN) as fake:
        yield fake


def sources(kubelet: MetricsKubelet, tmp_path: Path, *names_paths: tuple[str, str], **extra):
    return [
        kubelet_source(name, kubelet.url(path), tmp_path, kubelet.tls.ca, **extra)
        for name, path in names_paths
    ]


def test_a_page_is_scraped_with_the_token_flattened_and_spooled(kubelet, tmp_path) -> None:
    kubelet.serve("/metrics", EXPOSITION)
    config = metrics_config(tmp_path, sources(kubelet, tmp_path, ("kubelet", "/metrics")))
    with running_service(config) as (service, loop):
        outcome = loop.run_until_complete(service.scrape("kubelet"))
        assert outcome.ok, outcome.error
        assert (outcome.samples, outcome.dropped_non_finite) == (7, 1)
        records = [
            orjson.loads(b) for batch in spooled_records(service) for b in batch.record_bodies()
        ]
    by_name = {}
    for record in records:
        by_name.setdefault(record["name"], []).append(record)
    assert [r["type"] for r in by_name["apiserver_request_duration_seconds_bucket"]] == [
        "counter"
    ] * 2
    assert by_name["kubelet_note"][0]["type"] == "gauge"
    assert by_name["kubelet_note"][0]["labels"]["text"] == 'a "quoted" value\nwith a newline'
    assert all(
        {"k8s_node": "node-a", "k8s_cluster": "test", "source": "kubelet"}.items()
        <= r["labels"].items()
        for r in records
    )


def test_a_wrong_token_is_reported_as_401_and_the_token_is_reread_when_it_rotates(
    kubelet, tmp_path
) -> None:
    kubelet.serve("/metrics", EXPOSITION)
    (tmp_path / "token").write_text("stale-token\n")
    config = metrics_config(tmp_path, sources(kubelet, tmp_path, ("kubelet", "/metrics")))
    with running_service(config) as (service, loop):
        failed = loop.run_until_complete(service.scrape("kubelet"))
        assert failed.error_reason == "http_401"
        assert "bearer_token_file" in failed.error
        status = service.sources["kubelet"].status
        assert status.errors == {"http_401": 1}
        assert "401" in service.snapshot().status.detail
        # The kubelet rotates the projected token: an atomic swap, as it does with ..data.
        rotated = tmp_path / "token.new"
        rotated.write_text(TOKEN)
        os.replace(rotated, tmp_path / "token")
        recovered = loop.run_until_complete(service.scrape("kubelet"))
        assert recovered.ok and recovered.samples == 7
        assert status.consecutive_failures == 0 and status.last_success_unix > 0


def test_malformed_text_fails_that_source_only_and_a_hung_one_delays_nobody(
    kubelet, tmp_path
) -> None:
    kubelet.serve("/metrics", EXPOSITION)
    kubelet.serve("/broken", "# TYPE x gauge\nx 1\nx{a=unquoted} 2\n")
    hung = kubelet.hold("/hung")
    config = metrics_config(
        tmp_path,
        sources(
            kubelet, tmp_path, ("kubelet", "/metrics"), ("broken", "/broken"), ("hung", "/hung")
        ),
        timeout="3s",
    )

    async def one_round(service):
        service.start_due_scrapes()  # all three are due at once (jitter 0)
        tasks = {task.get_name(): task for task in service._scrapes}
        done, _ = await asyncio.wait([tasks["scrape-kubelet"], tasks["scrape-broken"]], timeout=20)
        # Both finished while the hung source was still waiting for its answer.
        assert len(done) == 2 and not tasks["scrape-hung"].done()
        return (
            await tasks["scrape-kubelet"],
            await tasks["scrape-broken"],
            await tasks["scrape-hung"],
        )

    with running_service(config) as (service, loop):
        good, broken, slow = loop.run_until_complete(one_round(service))
    hung.set()
    assert good.ok and good.samples == 7
    assert broken.error_reason == "malformed"
    assert "line 3" in broken.error and "x{a=unquoted} 2" in broken.error
    assert slow.error_reason == "timeout" and "3s" in slow.error
    # Nothing of the failed scrapes was spooled.
    assert {batch.sources[0] for batch in spooled_records(service)} == {"metrics:kubelet"}


def test_an_optional_absent_source_stays_quiet(kubelet, tmp_path) -> None:
    config = metrics_config(
        tmp_path,
        [
            *sources(kubelet, tmp_path, ("exporter", "/not-here"), optional=True),
            {"name": "closed", "url": "http://127.0.0.1:9/metrics", "optional": True},
        ],
    )
    with running_service(config) as (service, loop):
        for name in ("exporter", "closed"):
            outcome = loop.run_until_complete(service.scrape(name))
            assert outcome.absent, outcome
            assert service.sources[name].status.errors  # counted...
        assert service.snapshot().status.problems == ("not connected to the shipper",)  # ...quiet


def test_the_summary_api_becomes_samples(kubelet, tmp_path) -> None:
    kubelet.serve("/stats/summary", json.dumps(summary_document()), json=True)
    config = metrics_config(
        tmp_path,
        sources(kubelet, tmp_path, ("summary", "/stats/summary"), format="kubelet_summary"),
    )
    with running_service(config) as (service, loop):
        outcome = loop.run_until_complete(service.scrape("summary"))
        assert outcome.ok and outcome.samples > 80
        names = {
            orjson.loads(b)["name"]
            for batch in spooled_records(service)
            for b in batch.record_bodies()
        }
    assert {
        "k8s_node_cpu_usage_cores",
        "k8s_pod_volume_usage_bytes",
        "k8s_container_memory_working_set_bytes",
    } <= names


def test_a_large_cadvisor_page_is_spooled_in_bounded_batches(kubelet, tmp_path) -> None:
    pods = 1700 if PROFILE == "full" else 400  # full: ~20 MB, 20,400 series x 4 families
    page = cadvisor_page(pods)
    kubelet.serve("/metrics/cadvisor", page)
    config = metrics_config(
        tmp_path,
        sources(kubelet, tmp_path, ("cadvisor", "/metrics/cadvisor")),
        batch_max_records=500,
    )
    with running_service(config) as (service, loop):
        outcome = loop.run_until_complete(service.scrape("cadvisor"))
        assert outcome.ok, outcome.error
        expected = pods * 3 * 4
        assert outcome.samples == expected
        batches = spooled_records(service)
    assert sum(len(b) for b in batches) == expected
    assert max(len(b) for b in batches) == 500
    ids = [i for b in batches for i in b.ids]
    assert len(set(ids)) == expected


def test_a_scrape_over_the_sample_limit_is_refused_whole(kubelet, tmp_path) -> None:
    kubelet.serve("/metrics/cadvisor", cadvisor_page(50))
    config = metrics_config(
        tmp_path,
        sources(kubelet, tmp_path, ("cadvisor", "/metrics/cadvisor"), sample_limit=100),
    )
    with running_service(config) as (service, loop):
        outcome = loop.run_until_complete(service.scrape("cadvisor"))
        assert outcome.error_reason == "sample_limit"
        assert "more than 100 samples in one scrape" in outcome.error
        assert not service.outbox and not list(service.spool.directory.iterdir())


def test_a_certificate_from_another_ca_is_a_tls_error_unless_skipped_explicitly(
    kubelet, tmp_path
) -> None:
    kubelet.serve("/metrics", EXPOSITION)
    other_ca = make_tls_files(tmp_path / "other").ca
    config = metrics_config(
        tmp_path,
        [
            kubelet_source("strict", kubelet.url("/metrics"), tmp_path, other_ca),
            kubelet_source(
                "lenient", kubelet.url("/metrics"), tmp_path, other_ca, insecure_skip_verify=True
            ),
        ],
    )
    with running_service(config) as (service, loop):
        strict = loop.run_until_complete(service.scrape("strict"))
        lenient = loop.run_until_complete(service.scrape("lenient"))
    assert strict.error_reason == "tls" and "ca_file" in strict.error
    assert lenient.ok
