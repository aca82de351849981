"""What reached the receiver, checked token by token, read from its SQLite store.

The store (``kk_receiver.store``) keeps every accepted record with the wall-clock time its
request was handled (``received_at``), a counter table, and one entry per ingest request
with the compressed body size (``body_bytes``); the benchmark starts the receiver with a
request log long enough to keep them all. It is read after the receiver has stopped.

Figures:

* **lost** = tokens generated - distinct tokens stored.
* **duplicates** = stored duplicates + re-sends dropped: a token stored under two record
  ids (a line shipped twice, e.g. re-read from another offset, or a join that went wrong)
  plus the receiver's ``duplicates`` counter (a record id sent again and dropped there).
* **wire bytes** = the sum of the compressed request bodies as received, re-sends
  included (HTTP/3, QUIC and TLS framing not counted).
* **latency** = ``received_at`` - the time the writer's ``write()`` of that line returned.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kkbench.loglines import TOKEN_PATTERN


@dataclass
class Delivery:
    """The delivery check of one run."""

    generated: int
    delivered: int
    """Distinct generated tokens stored."""
    stored_records: int
    stored_duplicates: int
    resends_dropped: int
    rejected: int
    unknown: int
    """Stored records that carry no generated token (should be 0)."""
    requests: int
    wire_bytes: int
    statuses: dict[str, int]
    first_received: float
    last_received: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    """Sorted latencies (s) per group, e.g. ``all`` and ``quiet``."""

    @property
    def lost(self) -> int:
        return self.generated - self.delivered

    @property
    def duplicates(self) -> int:
        return self.stored_duplicates + self.resends_dropped


def percentile(sorted_values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` = 0.99 for p99); None for no values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def check_delivery(
    database: Path,
    generated: int,
    written_at: Sequence[float] | None = None,
    groups: dict[str, Callable[[int], bool]] | None = None,
) -> Delivery:
    """Read the receiver's store and account for tokens ``0 .. generated - 1``.

    With ``written_at`` (per token), latencies are collected for ``all`` tokens and for each
    named group in ``groups`` (a predicate on the token).
    """
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    connection.text_factory = bytes
    try:
        seen = bytearray(generated)
        unknown = stored = duplicates = 0
        first, last = math.inf, 0.0
        latencies: dict[str, list[float]] = {"all": []}
        predicates = groups or {}
        for name in predicates:
            latencies[name] = []
        rows = connection.execute("SELECT received_at, record FROM records WHERE kind = 'logs'")
        for received_at, record in rows:
            stored += 1
            first, last = min(first, received_at), max(last, received_at)
            match = TOKEN_PATTERN.search(record)
            token = int(match.group(1)) if match else -1
            if not 0 <= token < generated:
                unknown += 1
                continue
            if seen[token]:
                duplicates += 1
                continue
            seen[token] = 1
            if written_at is not None:
                latency = received_at - written_at[token]
                latencies["all"].append(latency)
                for name, belongs in predicates.items():
                    if belongs(token):
                        latencies[name].append(latency)
        counters = dict(
            connection.execute(
                "SELECT name, SUM(value) FROM counters WHERE kind = 'logs' GROUP BY name"
            )
        )
        wire_bytes = requests = 0
        statuses: dict[str, int] = {}
        for (entry,) in connection.execute("SELECT entry FROM requests"):
            document = json.loads(entry)
            requests += 1
            wire_bytes += document.get("body_bytes") or 0
            status = str(document.get("status"))
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        connection.close()
    for values in latencies.values():
        values.sort()
    return Delivery(
        generated=generated,
        delivered=generated - seen.count(0),
        stored_records=stored,
        stored_duplicates=duplicates,
        resends_dropped=int(counters.get(b"duplicates", 0)),
        rejected=int(counters.get(b"rejected", 0)),
        unknown=unknown,
        requests=requests,
        wire_bytes=wire_bytes,
        statuses=statuses,
        first_received=first if stored else 0.0,
        last_received=last,
        latencies=latencies if written_at is not None else {},
    )
