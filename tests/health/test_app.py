"""The endpoints through httpx's ASGI transport, with fake telemetry and a hand-moved clock."""

from __future__ import annotations

from telemetry_support import Clock, get, logs_telemetry, shipper_telemetry

from kk_health.book import AgentHealth


def healthy_agent(clock: Clock) -> AgentHealth:
    health = AgentHealth(expected=("shipper", "logs"), stale_after_s=30.0)
    health.receive(
        shipper_telemetry(at=clock.now - 10, sent=100, received=100, responses=[0.05]),
        now=clock.now - 10,
    )
    health.receive(
        logs_telemetry(at=clock.now - 10, records=100, acknowledged=100), now=clock.now - 10
    )
    health.receive(
        shipper_telemetry(
            at=clock.now,
            sent=600,
            received=650,
            responses=[0.05, 0.2],
            buffer_size=250,
            oldest_age_s=4.0,
        ),
        now=clock.now,
    )
    health.receive(
        logs_telemetry(
            at=clock.now, records=700, acknowledged=650, lag={("shop", "checkout-1"): 2048}
        ),
        now=clock.now,
    )
    return health


def test_healthz_answers_200_and_lists_every_components_state() -> None:
    clock = Clock()
    health = AgentHealth(expected=("shipper", "logs"), stale_after_s=30.0)
    health.receive(logs_telemetry(at=clock.now), now=clock.now)
    response = get(health, clock, "/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "components": {"shipper": "missing", "logs": "ready"},
    }


def test_ready_goes_from_503_to_200_and_back_when_a_component_goes_stale() -> None:
    clock = Clock()
    health = AgentHealth(expected=("shipper", "logs"), stale_after_s=30.0)
    first = get(health, clock, "/ready")
    assert first.status_code == 503
    assert first.json()["ready"] is False
    assert "shipper: no telemetry received yet" in first.json()["reasons"]

    health = healthy_agent(clock)
    assert get(health, clock, "/ready").status_code == 200
    assert get(health, clock, "/ready").json() == {"ready": True, "reasons": []}

    clock.now += 31  # nobody reports any more
    stale = get(health, clock, "/ready")
    assert stale.status_code == 503
    assert stale.json()["reasons"] == [
        "shipper: no telemetry for 31 s (stale after 30 s)",
        "logs: no telemetry for 31 s (stale after 30 s)",
    ]
    assert get(health, clock, "/healthz").json()["components"] == {
        "shipper": "stale",
        "logs": "stale",
    }


def test_status_has_every_field_per_component() -> None:
    clock = Clock()
    document = get(healthy_agent(clock), clock, "/status").json()
    assert (document["node"], document["cluster"], document["version"]) == (
        "node-a",
        "prod",
        "9.9.9",
    )
    assert document["ready"] is True and document["reasons"] == []
    shipper, logs = document["components"]
    assert shipper == {
        "name": "shipper",
        "state": "ready",
        "detail": "",
        "problems": [],
        "version": None,  # no process metrics in this made-up telemetry
        "uptime_s": None,
        "last_report_unix": clock.now,
        "last_report_age_s": 0.0,
        "records_in_per_s": 55.0,  # 550 records stored in 10 s
        "records_out_per_s": 50.0,  # 500 records delivered in 10 s
        "protocols": {"logs": "http/3"},
        "queue_fill": 0.25,
        "oldest_queued_record_age_s": 4.0,
        "top_lagging_pods": None,
    }
    assert (logs["records_in_per_s"], logs["records_out_per_s"]) == (60.0, 55.0)
    assert logs["queue_fill"] is None and logs["protocols"] is None
    assert logs["top_lagging_pods"] == [
        {"namespace": "shop", "pod": "checkout-1", "lag_bytes": 2048}
    ]


def test_status_shows_version_and_uptime_of_a_component_that_sends_process_metrics() -> None:
    from kk_common.envelope import ComponentStatus, Telemetry
    from kk_common.process_metrics import process_samples

    clock = Clock(now=4_000_000_000.0)  # after this process started, whatever the machine
    health = AgentHealth(expected=(), stale_after_s=30.0)
    health.receive(
        Telemetry(
            "health",
            "node-a",
            clock.now,
            ComponentStatus(ready=True),
            tuple(process_samples(version="1.2.3")),
        ),
        now=clock.now,
    )
    [component] = get(health, clock, "/status").json()["components"]
    assert component["version"] == "1.2.3"
    assert component["uptime_s"] > 0


def test_metrics_is_the_prometheus_text_format() -> None:
    clock = Clock()
    response = get(healthy_agent(clock), clock, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "killkrill_agent_sent_messages_total{" in response.text
