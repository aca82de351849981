"""The status view: a ``/status`` document as a plain-text table (like ``vector top``). Pure.

`render_status` returns the same text for a terminal and for a pipe; the command line only
adds clearing the screen between refreshes when it writes to a terminal.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

__all__ = ["render_status"]

_COLUMNS = (
    "COMPONENT",
    "STATE",
    "IN/s",
    "OUT/s",
    "PROTOCOL",
    "QUEUE",
    "OLDEST",
    "VERSION",
    "UPTIME",
    "REPORTED",
)
_RIGHT_ALIGNED = {"IN/s", "OUT/s", "QUEUE", "OLDEST", "UPTIME", "REPORTED"}


def render_status(document: dict[str, Any]) -> str:
    """The status table, the reasons the agent is not ready, and the top lagging pods."""
    verdict = "ready" if document["ready"] else "NOT READY"
    generated = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(document["generated_at_unix"]))
    lines = [
        f"KillKrill agent {document['version']} on {document['node']} "
        f"(cluster {document['cluster']}): {verdict}    {generated}",
        "",
    ]
    rows = [_row(component) for component in document["components"]]
    lines.extend(_table(_COLUMNS, rows))
    if document["reasons"]:
        lines.extend(["", "Not ready because:"])
        lines.extend(f"  - {reason}" for reason in document["reasons"])
    for component in document["components"]:
        problems = component["problems"] if component["state"] == "ready" else []
        for problem in problems:  # reported by a ready component: worth seeing, not blocking
            lines.append(f"  note: {component['name']}: {problem}")
    pods = [
        pod for component in document["components"] for pod in component["top_lagging_pods"] or []
    ]
    if pods:
        lines.extend(["", "Top lagging pods (bytes written, not read yet):"])
        lines.extend(
            _table(
                ("POD", "LAG"),
                [(f"{p['namespace']}/{p['pod']}", _bytes(p["lag_bytes"])) for p in pods],
                right={"LAG"},
            )
        )
    return "\n".join(lines) + "\n"


def _row(component: dict[str, Any]) -> tuple[str, ...]:
    protocols = component["protocols"]
    return (
        component["name"],
        component["state"].replace("_", " "),
        _rate(component["records_in_per_s"]),
        _rate(component["records_out_per_s"]),
        " ".join(f"{kind} {protocol}" for kind, protocol in sorted(protocols.items()))
        if protocols
        else "-",
        f"{component['queue_fill'] * 100:.1f}%" if component["queue_fill"] is not None else "-",
        _duration(component["oldest_queued_record_age_s"]),
        component["version"] or "-",
        _duration(component["uptime_s"]),
        f"{_duration(component['last_report_age_s'])} ago"
        if component["last_report_age_s"] is not None
        else "never",
    )


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: set[str] = _RIGHT_ALIGNED
) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    out = []
    for cells in (header, *rows):
        parts = [
            str(cell).rjust(width) if name in right else str(cell).ljust(width)
            for name, cell, width in zip(header, cells, widths, strict=True)
        ]
        out.append("  ".join(parts).rstrip())
    return out


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 120:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 120:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"
