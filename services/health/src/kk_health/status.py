"""``/status``: the agent's state as JSON for people and tools. Pure.

One object per component, with ``null`` wherever the component does not report the value
(the logs service has no queue; a component that sends no process metrics has no known
version or uptime). Values come from the component's latest telemetry; rates come from its
last two reports.
"""

from __future__ import annotations

from typing import Any

from kk_health.book import AgentHealth, AgentIdentity, ComponentView

__all__ = ["RECORD_COUNTERS", "TOP_LAGGING_PODS", "status_document"]

TOP_LAGGING_PODS = 5

RECORD_COUNTERS: dict[str, dict[str, tuple[str, dict[str, str]]]] = {
    "logs": {
        "in": ("killkrill_logs_records_read_total", {}),
        "out": ("killkrill_logs_records_acknowledged_total", {}),
    },
    "metrics": {
        "in": ("killkrill_metrics_samples_scraped_total", {}),
        "out": ("killkrill_metrics_samples_acknowledged_total", {}),
    },
    "shipper": {
        "in": ("killkrill_agent_records_received_total", {}),
        "out": ("killkrill_agent_sent_messages_total", {"status": "success"}),
    },
}
"""Which counter gives each component's records per second in and out (summed over labels):
the logs service reads records and hands them on (acknowledged by the shipper); the metrics
service scrapes samples (every source) and hands them on likewise; the shipper takes them in
(stored) and delivers them."""


def status_document(health: AgentHealth, identity: AgentIdentity, *, now: float) -> dict[str, Any]:
    readiness = health.readiness(now=now)
    return {
        "node": identity.node,
        "cluster": identity.cluster,
        "version": identity.version,
        "generated_at_unix": now,
        "ready": readiness.ready,
        "reasons": list(readiness.reasons),
        "stale_after_s": health.stale_after_s,
        "components": [_component(view, now) for view in health.components(now=now)],
    }


def _component(view: ComponentView, now: float) -> dict[str, Any]:
    latest = view.latest
    build = view.samples("killkrill_agent_build_info")
    started = view.total("process_start_time_seconds")
    counters = RECORD_COUNTERS.get(view.name, {})
    return {
        "name": view.name,
        "state": str(view.state),
        "detail": latest.status.detail if latest else "",
        "problems": list(latest.status.problems) if latest else [],
        "version": build[0].labels.get("version") if build else None,
        "uptime_s": max(0.0, now - started) if started is not None else None,
        "last_report_unix": latest.sent_at_unix if latest else None,
        "last_report_age_s": view.age_s,
        "records_in_per_s": _rate(view, counters.get("in")),
        "records_out_per_s": _rate(view, counters.get("out")),
        "protocols": {
            s.labels.get("type", ""): s.labels.get("protocol", "")
            for s in view.samples("killkrill_agent_current_protocol")
            if s.value == 1
        }
        or None,
        "queue_fill": _fill(view),
        "oldest_queued_record_age_s": _largest(
            view, "killkrill_agent_oldest_queued_record_age_seconds"
        ),
        "top_lagging_pods": _lagging_pods(view),
    }


def _rate(view: ComponentView, counter: tuple[str, dict[str, str]] | None) -> float | None:
    if counter is None:
        return None
    name, labels = counter
    return view.rate(name, **labels)


def _fill(view: ComponentView) -> float | None:
    used = view.total("killkrill_agent_buffer_size")
    capacity = view.total("killkrill_agent_buffer_capacity")
    if used is None or not capacity:
        return None
    return used / capacity


def _largest(view: ComponentView, name: str) -> float | None:
    values = [s.value for s in view.samples(name)]
    return max(values) if values else None


def _lagging_pods(view: ComponentView) -> list[dict[str, Any]] | None:
    samples = view.samples("killkrill_logs_pod_lag_bytes")
    if not samples and view.name != "logs":
        return None
    ranked = sorted(samples, key=lambda s: s.value, reverse=True)[:TOP_LAGGING_PODS]
    return [
        {
            "namespace": s.labels.get("namespace", ""),
            "pod": s.labels.get("pod", ""),
            "lag_bytes": int(s.value),
        }
        for s in ranked
    ]
