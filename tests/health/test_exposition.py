"""``/metrics`` parsed back with prometheus-client's parser: names, types, labels, HELP; and
the product's PromQL examples (from the health README) evaluated on two scrapes by promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from telemetry_support import Clock, logs_telemetry, scrape, series_over_time, shipper_telemetry

from kk_common.envelope import ComponentStatus, MetricSample, Telemetry
from kk_health.book import AgentHealth

README = Path(__file__).parents[2] / "services" / "health" / "README.md"


def busy_agent(clock: Clock, *, minute: int = 1) -> AgentHealth:
    """A shipper that has sent ``600 * minute`` records, 20 requests a minute (19 fast, one
    slow), dead-lettered 60 a minute, with its queue a quarter full; a logs service."""
    health = AgentHealth(expected=("shipper", "logs"), stale_after_s=30.0)
    health.receive(
        shipper_telemetry(
            at=clock.now,
            sent=600 * minute,
            failed=60 * minute,
            responses=[0.02] * 19 * minute + [0.8] * minute,
            buffer_size=250,
            buffer_capacity=1000,
        ),
        now=clock.now,
    )
    health.receive(logs_telemetry(at=clock.now, records=700 * minute), now=clock.now)
    return health


def test_shipper_metrics_keep_their_names_types_labels_and_help() -> None:
    clock = Clock()
    families = scrape(busy_agent(clock), clock)

    sent = families["killkrill_agent_sent_messages_total"]
    assert sent.type == "counter"
    assert sent.documentation == "Records sent to receivers, by outcome."
    assert {(s.name, s.labels["status"], s.value) for s in sent.samples} == {
        ("killkrill_agent_sent_messages_total", "success", 600.0),
        ("killkrill_agent_sent_messages_total", "dead_letter", 60.0),
    }
    assert all(set(s.labels) == {"component", "type", "status"} for s in sent.samples)

    duration = families["killkrill_agent_send_duration_seconds"]
    assert duration.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in duration.samples if s.name.endswith("_bucket")}
    assert buckets["0.01"] == 0 and buckets["0.025"] == 19 and buckets["+Inf"] == 20
    count = [s for s in duration.samples if s.name == "killkrill_agent_send_duration_seconds_count"]
    assert [(s.labels, s.value) for s in count] == [
        ({"component": "shipper", "type": "logs", "protocol": "http/3"}, 20.0)
    ]

    assert families["killkrill_agent_buffer_size"].type == "gauge"
    assert families["killkrill_agent_buffer_capacity"].samples[0].value == 1000
    # A gauge and a counter that differ only by _total are two families.
    assert families["killkrill_agent_dead_letters"].type == "gauge"
    assert families["killkrill_agent_dead_letters_total"].type == "counter"
    protocol = families["killkrill_agent_current_protocol"]
    assert {(s.labels["protocol"], s.value) for s in protocol.samples} == {
        ("http/3", 1.0),
        ("http/1.1", 0.0),
    }


def test_the_agents_own_series_carry_node_and_cluster() -> None:
    clock = Clock()
    families = scrape(busy_agent(clock), clock)
    [info] = families["killkrill_agent_info"].samples
    assert set(info.labels) == {"version", "python", "node", "cluster"}
    assert (info.labels["version"], info.labels["node"], info.labels["cluster"]) == (
        "9.9.9",
        "node-a",
        "prod",
    )
    [started] = families["killkrill_agent_start_time_seconds"].samples
    assert (started.labels, started.value) == ({"node": "node-a", "cluster": "prod"}, 1000.0)
    [ready] = families["killkrill_agent_ready"].samples
    assert ready.value == 1.0
    up = {s.labels["component"]: s.value for s in families["killkrill_agent_component_up"].samples}
    assert up == {"shipper": 1.0, "logs": 1.0}
    refused = families["killkrill_health_telemetry_refused_total"].samples
    assert [(s.labels, s.value) for s in refused] == [({"reason": "malformed"}, 2.0)]


def test_metrics_sent_without_help_say_which_container_sent_them() -> None:
    clock = Clock()
    families = scrape(busy_agent(clock), clock)
    records = families["killkrill_logs_records_read_total"]
    assert records.type == "counter"
    assert records.documentation == "Sent by the logs container (no description)."
    assert records.samples[0].labels == {"component": "logs"}


def test_a_stale_components_series_leave_the_exposition() -> None:
    clock = Clock()
    health = busy_agent(clock)
    clock.now += 31
    health.receive(logs_telemetry(at=clock.now, records=5), now=clock.now)
    families = scrape(health, clock)
    assert "killkrill_agent_sent_messages_total" not in families
    assert "killkrill_logs_records_read_total" in families
    up = {s.labels["component"]: s.value for s in families["killkrill_agent_component_up"].samples}
    assert up == {"shipper": 0.0, "logs": 1.0}
    assert families["killkrill_agent_ready"].samples[0].value == 0.0


def test_samples_that_cannot_be_exposed_are_dropped_and_counted_never_fatal() -> None:
    clock = Clock()
    health = busy_agent(clock)
    odd = Telemetry(
        "metrics",
        "node-a",
        clock.now,
        ComponentStatus(ready=True),
        (
            MetricSample("bad-name", "gauge", 1.0),
            MetricSample("killkrill_ok", "gauge", 1.0, {"__reserved": "x"}),
            MetricSample("_total", "counter", 1.0),
            MetricSample("killkrill_agent_buffer_size", "counter", 5.0),  # a gauge elsewhere
            MetricSample("killkrill_metrics_scrapes", "counter", 3.0),  # no _total: untyped
            MetricSample("killkrill_metrics_note", "gauge", 1.0, {"text": 'a "quoted"\nline'}),
        ),
    )
    health.receive(odd, now=clock.now)
    families = scrape(health, clock)
    dropped = {
        s.labels["reason"]: s.value
        for s in families["killkrill_health_samples_dropped_total"].samples
    }
    assert dropped == {"invalid_name": 2.0, "invalid_label": 1.0, "type_conflict": 1.0}
    assert families["killkrill_metrics_scrapes"].type == "unknown"
    assert families["killkrill_metrics_note"].samples[0].labels["text"] == 'a "quoted"\nline'
    assert [s.value for s in families["killkrill_agent_buffer_size"].samples] == [250.0]


# -- the product's PromQL examples --------------------------------------------------------

EXPECTED_RESULTS = {
    # 600 records a minute delivered: 10 per second.
    "rate(killkrill_agent_sent_messages_total[5m])": [
        ('{component="shipper", status="success", type="logs"}', 10.0),
        ('{component="shipper", status="dead_letter", type="logs"}', 1.0),
    ],
    # 19 of 20 requests took 20 ms: the 95th percentile is the top of the 25 ms bucket.
    "histogram_quantile(0.95, rate(killkrill_agent_send_duration_seconds_bucket[5m]))": [
        ('{component="shipper", protocol="http/3", type="logs"}', 0.025),
    ],
    "killkrill_agent_buffer_size / killkrill_agent_buffer_capacity": [
        ('{component="shipper"}', 0.25),
    ],
    'rate(killkrill_agent_sent_messages_total{status!="success"}[5m])': [
        ('{component="shipper", status="dead_letter", type="logs"}', 1.0),
    ],
}


def readme_queries() -> list[str]:
    block = re.search(r"```promql\n(.*?)```", README.read_text(), re.S)
    assert block is not None, "the health README lost its PromQL examples"
    return [
        line.strip() for line in block.group(1).splitlines() if line.strip() and "#" not in line
    ]


def test_the_readme_shows_exactly_the_queries_this_test_evaluates() -> None:
    assert sorted(readme_queries()) == sorted(EXPECTED_RESULTS)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus)")
def test_the_readme_queries_give_the_expected_answers_on_two_scrapes(tmp_path: Path) -> None:
    clock = Clock()
    first = scrape(busy_agent(clock, minute=1), clock)
    clock.now += 60
    second = scrape(busy_agent(clock, minute=2), clock)
    tests = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series_over_time(first, second),
                "promql_expr_test": [
                    {
                        "expr": query,
                        "eval_time": "10m",
                        "exp_samples": [
                            {"labels": labels, "value": value} for labels, value in expected
                        ],
                    }
                    for query, expected in EXPECTED_RESULTS.items()
                ],
            }
        ],
    }
    path = tmp_path / "promql_test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        ["promtool", "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
