"""Turning `RunResult`s into the tables a person reads and the JSON line a script reads.

Per record figures divide by the records delivered (distinct tokens stored). "cores" is CPU
seconds per second of the run: a service near 1.0 is saturated (each service is one Python
process, so mostly one core), which tells which process limits the throughput.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kkbench.delivery import percentile
from kkbench.scenarios import SERVICES, RunResult

AGENT = ("logs", "shipper")


def _per_million(cpu_s: float, records: int) -> float:
    return cpu_s / records * 1e6 if records else float("nan")


def latency(result: RunResult, group: str, share: float) -> float | None:
    return percentile(result.delivery.latencies.get(group, []), share)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def run_table(result: RunResult) -> str:
    """The human-readable block for one run."""
    d = result.delivery
    s = result.scenario
    lines = [
        f"== {s.name} ({result.codec}, metadata: {result.metadata}): {s.description}",
        f"   {d.delivered:,} of {result.records:,} records in {result.elapsed_s:.2f} s = "
        f"{result.records_per_s:,.0f} records/s end to end; "
        f"wire {d.wire_bytes / max(d.delivered, 1):.1f} bytes/record "
        f"({d.requests:,} requests, statuses {d.statuses})",
    ]
    if s.steady:
        text = (
            f"   latency write -> stored: p50 {_seconds(latency(result, 'all', 0.5))}, "
            f"p99 {_seconds(latency(result, 'all', 0.99))}, "
            f"max {_seconds(latency(result, 'all', 1.0))}"
        )
        if "quiet" in d.latencies:
            text += (
                f"; quiet pods p50 {_seconds(latency(result, 'quiet', 0.5))}, "
                f"p99 {_seconds(latency(result, 'quiet', 0.99))}"
            )
        lines.append(text)
    lines.append(
        f"   delivery: lost {d.lost:,}, duplicates {d.duplicates:,} (stored twice "
        f"{d.stored_duplicates:,}, re-sends dropped by the receiver {d.resends_dropped:,}), "
        f"rejected {d.rejected:,}, unknown {d.unknown:,}"
    )
    lines.append(
        f"   {'':14}{'CPU s/1M rec':>13}{'cores':>8}{'peak RSS MiB':>14}{'idle RSS MiB':>14}"
    )
    rows = [(name, [result.services[name]]) for name in AGENT]
    rows.append(("agent total", [result.services[name] for name in AGENT]))
    rows.append(("receiver", [result.services["receiver"]]))
    for label, figures in rows:
        cpu = sum(f.cpu_s for f in figures)
        lines.append(
            f"   {label:14}{_per_million(cpu, d.delivered):13.1f}"
            f"{cpu / result.elapsed_s:8.2f}"
            f"{sum(f.peak_rss_mib for f in figures):14.1f}"
            f"{sum(f.idle_rss_mib for f in figures):14.1f}"
        )
    harness = ", ".join(f"{name} {cpu:.1f}" for name, cpu in result.harness_cpu_s.items())
    lines.append(
        f"   harness CPU-s: {harness}; before start: load average {result.load_before:.2f}, "
        f"{result.busy_before:.2f} cores busy; "
        f"other CPU during the run {result.foreign_cpu_s:.1f} s"
    )
    lines.extend(f"   NOTE: {note}" for note in result.notes)
    return "\n".join(lines)


def summary_table(results: Sequence[RunResult]) -> str:
    """One row per run: the figures of docs/benchmarks.md."""
    header = (
        f"{'scenario':10}{'codec':6}{'records':>11}{'rec/s':>9}"
        f"{'CPU s/1M logs/ship/agent/recv':>32}{'peak MiB agent':>15}{'idle MiB agent':>15}"
        f"{'B/rec':>7}{'p50':>7}{'p99':>7}{'quiet p99':>10}{'lost':>6}{'dup':>5}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        d = r.delivery
        cpu = [_per_million(r.services[n].cpu_s, d.delivered) for n in SERVICES]
        agent_cpu = cpu[0] + cpu[1]
        p50, p99, quiet = (
            latency(r, "all", 0.5),
            latency(r, "all", 0.99),
            latency(r, "quiet", 0.99),
        )
        rows.append(
            f"{r.scenario.name:10}{r.codec:6}{d.delivered:>11,}{r.records_per_s:>9,.0f}"
            f"{f'{cpu[0]:.0f}/{cpu[1]:.0f}/{agent_cpu:.0f}/{cpu[2]:.0f}':>32}"
            f"{sum(r.services[n].peak_rss_mib for n in AGENT):>15.0f}"
            f"{sum(r.services[n].idle_rss_mib for n in AGENT):>15.0f}"
            f"{d.wire_bytes / max(d.delivered, 1):>7.1f}"
            f"{'-' if p50 is None else f'{p50:.2f}':>7}"
            f"{'-' if p99 is None else f'{p99:.2f}':>7}"
            f"{'-' if quiet is None else f'{quiet:.2f}':>10}"
            f"{d.lost:>6}{d.duplicates:>5}"
        )
    return "\n".join(rows)


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def run_document(result: RunResult) -> dict[str, Any]:
    """One run as a JSON-ready dict."""
    d = result.delivery
    services = result.services
    agent_cpu = sum(services[n].cpu_s for n in AGENT)
    return {
        "scenario": result.scenario.name,
        "description": result.scenario.description,
        "codec": result.codec,
        "metadata": result.metadata,
        "started": result.started,
        "records": d.delivered,
        "generated": result.records,
        "elapsed_s": _rounded(result.elapsed_s),
        "records_per_s": round(result.records_per_s),
        "cpu_s_per_million": {
            **{n: _rounded(_per_million(services[n].cpu_s, d.delivered), 1) for n in SERVICES},
            "agent": _rounded(_per_million(agent_cpu, d.delivered), 1),
        },
        "cpu_s": {n: _rounded(services[n].cpu_s, 2) for n in SERVICES},
        "peak_rss_mib": {
            **{n: _rounded(services[n].peak_rss_mib, 1) for n in SERVICES},
            "agent": _rounded(sum(services[n].peak_rss_mib for n in AGENT), 1),
        },
        "idle_rss_mib": {
            **{n: _rounded(services[n].idle_rss_mib, 1) for n in SERVICES},
            "agent": _rounded(sum(services[n].idle_rss_mib for n in AGENT), 1),
        },
        "wire_bytes_per_record": _rounded(d.wire_bytes / max(d.delivered, 1), 1),
        "requests": d.requests,
        "p50_latency_s": _rounded(latency(result, "all", 0.5)),
        "p99_latency_s": _rounded(latency(result, "all", 0.99)),
        "quiet_p99_latency_s": _rounded(latency(result, "quiet", 0.99)),
        "lost": d.lost,
        "duplicates": d.duplicates,
        "stored_duplicates": d.stored_duplicates,
        "resends_dropped": d.resends_dropped,
        "rejected": d.rejected,
        "unknown": d.unknown,
        "complete": result.complete,
        "load_before": result.load_before,
        "busy_before": _rounded(result.busy_before, 2),
        "foreign_cpu_s": _rounded(result.foreign_cpu_s, 2),
        "harness_cpu_s": {k: _rounded(v, 2) for k, v in result.harness_cpu_s.items()},
        "notes": result.notes,
    }


def final_json(results: Sequence[RunResult], default_codec: str, context: dict[str, Any]) -> str:
    """The one-line summary: the catch-up run with the default codec as the headline (the
    p50/p99 latency come from the steady run with the same codec, the scenario that
    measures latency), every run under ``scenarios``."""
    documents = [run_document(r) for r in results]

    def find(scenario: str) -> dict[str, Any] | None:
        for doc in documents:
            if doc["scenario"] == scenario and doc["codec"] == default_codec:
                return doc
        return None

    headline = find("catch-up") or (documents[0] if documents else {})
    steady = find("steady")
    summary = {
        "scenario": headline.get("scenario"),
        "codec": headline.get("codec"),
        "records": headline.get("records"),
        "records_per_s": headline.get("records_per_s"),
        "cpu_s_per_million": headline.get("cpu_s_per_million"),
        "peak_rss_mib": headline.get("peak_rss_mib"),
        "idle_rss_mib": headline.get("idle_rss_mib"),
        "wire_bytes_per_record": headline.get("wire_bytes_per_record"),
        "p50_latency_s": steady["p50_latency_s"] if steady else None,
        "p99_latency_s": steady["p99_latency_s"] if steady else None,
        "lost": headline.get("lost"),
        "duplicates": headline.get("duplicates"),
        "all_runs_exactly_once": all(d["lost"] == 0 and d["duplicates"] == 0 for d in documents),
        **context,
        "scenarios": documents,
    }
    return json.dumps(summary, separators=(",", ":"))
