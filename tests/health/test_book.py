"""`AgentHealth`: readiness and staleness decided from telemetry received at explicit times."""

from __future__ import annotations

from telemetry_support import logs_telemetry, shipper_telemetry

from kk_common.envelope import ComponentStatus, Telemetry
from kk_health.book import AgentHealth, ComponentState, expected_components


def new_health() -> AgentHealth:
    return AgentHealth(expected=("shipper", "logs"), stale_after_s=30.0)


def states(health: AgentHealth, now: float) -> dict[str, ComponentState]:
    return {view.name: view.state for view in health.components(now=now)}


def test_the_collectors_expected_are_the_enabled_ones() -> None:
    assert expected_components(logs_enabled=True, metrics_enabled=False) == ("shipper", "logs")
    assert expected_components(logs_enabled=False, metrics_enabled=True) == ("shipper", "metrics")


def test_nothing_reported_yet_is_not_ready_with_every_reason() -> None:
    health = new_health()
    readiness = health.readiness(now=0.0)
    assert not readiness.ready
    assert readiness.reasons == (
        "shipper: no telemetry received yet",
        "logs: no telemetry received yet",
        "shipper: has not reached a receiver yet",
    )
    assert states(health, 0.0) == {"shipper": "missing", "logs": "missing"}


def test_ready_once_the_shipper_has_had_an_answer_from_a_receiver() -> None:
    health = new_health()
    health.receive(logs_telemetry(at=1.0), now=1.0)
    health.receive(shipper_telemetry(at=1.0), now=1.0)
    assert health.readiness(now=1.0).reasons == ("shipper: has not reached a receiver yet",)

    health.receive(shipper_telemetry(at=11.0, sent=10, responses=[0.02]), now=11.0)
    assert health.readiness(now=11.0).ready

    # A restarted shipper (counters back at zero) does not make the agent flap.
    health.receive(shipper_telemetry(at=21.0), now=21.0)
    assert health.readiness(now=21.0).ready


def test_a_component_that_says_it_is_not_ready_gives_its_problems() -> None:
    health = new_health()
    health.receive(logs_telemetry(at=1.0), now=1.0)
    health.receive(shipper_telemetry(at=1.0, responses=[0.1]), now=1.0)
    health.receive(
        shipper_telemetry(
            at=11.0,
            responses=[0.1],
            ready=False,
            problems=["durable queue full: producers are not acknowledged"],
        ),
        now=11.0,
    )
    readiness = health.readiness(now=11.0)
    assert readiness.reasons == ("shipper: durable queue full: producers are not acknowledged",)
    assert states(health, 11.0)["shipper"] == "not_ready"

    health.receive(shipper_telemetry(at=21.0, responses=[0.1]), now=21.0)
    assert health.readiness(now=21.0).ready


def test_a_component_that_stops_reporting_becomes_stale_and_unready() -> None:
    health = new_health()
    health.receive(shipper_telemetry(at=0.0, responses=[0.1]), now=0.0)
    health.receive(logs_telemetry(at=0.0), now=0.0)
    health.receive(shipper_telemetry(at=10.0, responses=[0.1]), now=10.0)
    assert health.readiness(now=30.0).ready  # logs reported 30 s ago: still within the limit

    assert states(health, 30.5) == {"shipper": "ready", "logs": "stale"}
    assert health.readiness(now=30.5).reasons == ("logs: no telemetry for 30 s (stale after 30 s)",)

    health.receive(logs_telemetry(at=31.0), now=31.0)
    assert health.readiness(now=31.0).ready


def test_staleness_is_judged_on_arrival_not_on_the_senders_clock() -> None:
    health = new_health()
    # A container whose clock is an hour behind is still fresh when its report just arrived.
    health.receive(shipper_telemetry(at=-3600.0, responses=[0.1]), now=100.0)
    assert states(health, 100.0)["shipper"] == "ready"


def test_other_components_are_shown_but_not_waited_for() -> None:
    health = new_health()
    health.receive(logs_telemetry(at=0.0), now=0.0)
    health.receive(shipper_telemetry(at=0.0, responses=[0.1]), now=0.0)
    unready_metrics = Telemetry("metrics", "node-a", 0.0, ComponentStatus(ready=False))
    health.receive(unready_metrics, now=0.0)
    assert [view.name for view in health.components(now=0.0)] == ["shipper", "logs", "metrics"]
    assert health.readiness(now=0.0).ready


def test_rates_come_from_the_last_two_reports() -> None:
    health = new_health()
    health.receive(logs_telemetry(at=100.0, records=1000), now=100.0)
    [logs] = [v for v in health.components(now=100.0) if v.name == "logs"]
    assert logs.rate("killkrill_logs_records_read_total") is None  # one report: no rate yet

    health.receive(logs_telemetry(at=110.0, records=3500), now=110.0)
    [logs] = [v for v in health.components(now=110.0) if v.name == "logs"]
    assert logs.rate("killkrill_logs_records_read_total") == 250.0

    health.receive(logs_telemetry(at=120.0, records=10), now=120.0)  # restarted
    [logs] = [v for v in health.components(now=120.0) if v.name == "logs"]
    assert logs.rate("killkrill_logs_records_read_total") is None
