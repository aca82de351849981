"""Kubernetes timestamps: RFC 3339 in, RFC 3339 with microseconds out (sans-IO).

Shared by the pod model (``creationTimestamp``) and the metrics service's Lease and events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["micro_time", "parse_time"]


def parse_time(value: Any) -> float | None:
    """Unix seconds of a ``Time``/``MicroTime`` string; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def micro_time(seconds: float) -> str:
    """``2026-12-02T17:00:00.123456Z``: a ``MicroTime``, and a log record's timestamp."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
