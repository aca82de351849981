"""The Grafana dashboard and the Prometheus alert rules in deploy/: they parse, they use only
series the health container exposes, and (with promtool) the alerts fire on a troubled agent."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from telemetry_support import Clock, logs_telemetry, scrape, series_over_time, shipper_telemetry

from kk_common.envelope import ComponentStatus, Telemetry
from kk_common.process_metrics import process_samples
from kk_health.book import AgentHealth

DEPLOY = Path(__file__).parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "killkrill-agent-alerts.yaml"
DASHBOARD = DEPLOY / "grafana" / "killkrill-agent-dashboard.json"

ISSUE_ALERTS = frozenset(
    {
        "KillKrillAgentDown",
        "KillKrillAgentNotReady",
        "KillKrillAgentQueueAlmostFull",
        "KillKrillAgentHttp11Fallback",
        "KillKrillAgentRecordsRejected",
        "KillKrillAgentRecordsFailed",
    }
)
"""Agent down, not ready, queue over 80 %, HTTP/1.1 for 15 minutes, rejected, failed."""

PROMETHEUS_OWN = {"up"}
"""Series Prometheus makes itself for every target."""

_PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "sum", "max", "min", "count", "avg",
}  # fmt: skip


def alert_rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (not functions, keywords or labels)."""
    expr = re.sub(r'"[^"]*"', "", expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        following = expr[match.end() :].lstrip()
        if following.startswith("(") or match.group() in _PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def troubled_agent(clock: Clock, minute: int) -> AgentHealth:
    """The shipper on HTTP/1.1 with its queue 90 % full, records rejected and dead-lettered,
    not ready; ``minute`` scales the counters (one scrape a minute)."""
    health = AgentHealth(expected=("shipper", "logs"), stale_after_s=30.0)
    telemetry = shipper_telemetry(
        at=clock.now,
        sent=100 * minute,
        failed=5 * minute,
        rejected=2 * minute,
        responses=[0.1] * minute,
        buffer_size=900,
        buffer_capacity=1000,
        protocol="http/1.1",
        ready=False,
        problems=["durable queue full: producers are not acknowledged"],
    )
    health.receive(telemetry, now=clock.now)
    health.receive(logs_telemetry(at=clock.now, records=100 * minute), now=clock.now)
    own = Telemetry(
        "health", "node-a", clock.now, ComponentStatus(ready=True), process_samples(version="1")
    )
    health.receive(own, now=clock.now)
    return health


def every_exposed_name() -> set[str]:
    clock = Clock()
    families = scrape(troubled_agent(clock, 1), clock)
    return {sample.name for family in families.values() for sample in family.samples}


def test_every_alert_rule_is_complete_and_uses_only_exposed_series() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} == {*ISSUE_ALERTS, "KillKrillAgentComponentDown"}
    exposed = every_exposed_name() | PROMETHEUS_OWN
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        unknown = metric_names(rule["expr"]) - exposed
        assert unknown == set(), f"{rule['alert']} uses series nobody exposes: {unknown}"
    fallback = next(r for r in rules if r["alert"] == "KillKrillAgentHttp11Fallback")
    assert fallback["for"] == "15m"


def test_every_dashboard_query_uses_only_exposed_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "killkrill-agent"
    exposed = every_exposed_name()
    queries = dashboard_queries()
    assert len(queries) >= 10
    for query in queries:
        assert metric_names(query) - exposed == set(), query


def test_the_series_name_finder_sees_through_promql() -> None:
    assert metric_names(
        'sum by (le) (rate(a_bucket{x="b c"}[5m])) / on(instance) group_left(node) b_info'
    ) == {"a_bucket", "b_info"}


needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus)"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, check=False)


@needs_promtool
def test_promtool_accepts_the_rules_and_every_dashboard_query(tmp_path: Path) -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # promtool parses PromQL only inside rules: wrap each query in a recording rule.
    records = [
        {"record": f"dashboard:query{index}", "expr": query.replace("$node", ".*")}
        for index, query in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard_rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@needs_promtool
def test_the_alerts_fire_on_the_exposition_of_a_troubled_agent(tmp_path: Path) -> None:
    clock = Clock()
    first = scrape(troubled_agent(clock, 1), clock)
    clock.now += 60
    second = scrape(troubled_agent(clock, 2), clock)
    series = series_over_time(first, second)
    series.append({"series": 'up{job="killkrill-agent-metrics"}', "values": "0x20"})
    firing = ISSUE_ALERTS  # not KillKrillAgentComponentDown: every component reports
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        # 14 minutes in, the HTTP/1.1 fallback has not lasted 15 minutes yet.
                        "expr": 'max by (alertname) (ALERTS{alertstate="firing"})',
                        "eval_time": "14m",
                        "exp_samples": [
                            {"labels": f'{{alertname="{name}"}}', "value": 1}
                            for name in sorted(firing - {"KillKrillAgentHttp11Fallback"})
                        ],
                    },
                    {
                        "expr": 'max by (alertname) (ALERTS{alertstate="firing"})',
                        "eval_time": "17m",
                        "exp_samples": [
                            {"labels": f'{{alertname="{name}"}}', "value": 1}
                            for name in sorted(firing)
                        ],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "alerts_test.yaml"
    path.write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
