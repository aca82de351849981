"""Shape the store's counter rows into the ``GET /api/v1/stats`` document.

The document (every number starts at 0, so tests can compare without ``.get``)::

    {"mode": "batch",
     "requests": 3, "records_received": 10, "unique_ids": 7, "duplicates": 2, "rejected": 1,
     "responses": {"200": 2, "503": 1},          # "closed" counts dropped connections
     "rejected_reasons": {"logs": {"invalid_timestamp": 1}, "metrics": {}},
     "by_kind": {"logs": {<the five counters>, "responses": {...}}, "metrics": {...}},
     "by_protocol": {"http/3":   {<the five counters>, "responses": {...},
                                  "logs": {<five counters>}, "metrics": {<five counters>}},
                     "http/1.1": {...}}}

Invariant: ``records_received == unique_ids + duplicates + rejected``, at every level. Only
ingest requests (``POST /api/v1/logs``, ``POST /api/v1/metrics``) are counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .messages import PROTOCOLS
from .validation import KINDS

COUNTERS = ("requests", "records_received", "unique_ids", "duplicates", "rejected")


def build_stats(
    mode: str,
    counter_rows: Iterable[tuple[str, str, str, int]],
    rejection_rows: Iterable[tuple[str, str, int]],
) -> dict[str, Any]:
    """Aggregate ``(protocol, kind, name, value)`` rows into the stats document."""
    top = _zero_counters()
    by_kind = {kind: _zero_counters() for kind in KINDS}
    by_protocol: dict[str, dict[str, Any]] = {}
    for protocol in PROTOCOLS:
        by_protocol[protocol] = _zero_counters()
        for kind in KINDS:
            by_protocol[protocol][kind] = _zero_counters(with_responses=False)
    for protocol, kind, name, value in counter_rows:
        targets = [top, by_kind.setdefault(kind, _zero_counters())]
        per_protocol = by_protocol.setdefault(protocol, _zero_counters())
        targets.append(per_protocol)
        if name.startswith("status:"):
            for target in targets:
                responses = target["responses"]
                code = name.removeprefix("status:")
                responses[code] = responses.get(code, 0) + value
            continue
        targets.append(per_protocol.setdefault(kind, _zero_counters(with_responses=False)))
        for target in targets:
            target[name] = target.get(name, 0) + value
    reasons: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
    for kind, reason, count in rejection_rows:
        reasons.setdefault(kind, {})[reason] = count
    return {
        "mode": mode,
        **top,
        "rejected_reasons": reasons,
        "by_kind": by_kind,
        "by_protocol": by_protocol,
    }


def _zero_counters(with_responses: bool = True) -> dict[str, Any]:
    counters: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
    if with_responses:
        counters["responses"] = {}
    return counters
