"""Assembles records into IPC batches for the shipper, with the file offsets they cover.

A batch closes at ``max_records`` records or ``max_wait_s`` after its first record,
whichever comes first. With every batch goes, per file, the parser's *safe* offset after
the batch's lines: the offset to resume from once the shipper has acknowledged it (and
every batch before it). Offsets also move when lines produce no record (an excluded
container, a dropped empty flush); such an offset-only batch never goes to the shipper,
its offsets are committed in order with the others.

Batch ids are ``<producer>:<run>:<n>``: unique across restarts (the run token is random),
increasing within a run. Pure: time is passed in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BatchAssembler", "OutgoingBatch"]


@dataclass
class OutgoingBatch:
    """Records to send (possibly none) and the offsets they cover."""

    batch_id: str
    records: list[dict[str, Any]] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)
    opened_at: float = 0.0


class BatchAssembler:
    """Collects records and offsets; see the module docstring."""

    def __init__(self, producer: str, *, max_records: int, max_wait_s: float) -> None:
        if max_records < 1 or max_wait_s < 0:
            raise ValueError("need max_records >= 1 and max_wait_s >= 0")
        self._producer = producer
        self._run = secrets.token_hex(4)
        self._max_records = max_records
        self._max_wait_s = max_wait_s
        self._sequence = 0
        self._open: OutgoingBatch | None = None
        self._ready: list[OutgoingBatch] = []

    def _batch(self, now: float) -> OutgoingBatch:
        if self._open is None:
            self._sequence += 1
            self._open = OutgoingBatch(
                batch_id=f"{self._producer}:{self._run}:{self._sequence}", opened_at=now
            )
        return self._open

    def add(
        self, file_key: str, records: list[dict[str, Any]], safe_offset: int, now: float
    ) -> None:
        """Records read from ``file_key``; ``safe_offset`` is where to resume after them.

        A batch that reaches ``max_records`` is closed and queued; later records open the
        next one. Callers add at most ``max_records`` records at a time, so a batch holds
        less than twice that.
        """
        batch = self._batch(now)
        batch.records.extend(records)
        batch.offsets[file_key] = safe_offset
        if len(batch.records) >= self._max_records:
            self._ready.append(batch)
            self._open = None

    @property
    def max_records(self) -> int:
        return self._max_records

    def take(self, now: float, *, force: bool = False) -> OutgoingBatch | None:
        """The next due batch (full, old enough, or ``force``), oldest first; else None."""
        if self._ready:
            return self._ready.pop(0)
        batch = self._open
        if batch is None:
            return None
        due = force or now >= batch.opened_at + self._max_wait_s
        if not batch.records and batch.offsets:
            due = True  # offsets alone need no batching delay
        if not due:
            return None
        self._open = None
        return batch

    def next_deadline(self) -> float | None:
        if self._ready:
            return self._ready[0].opened_at
        if self._open is None:
            return None
        return self._open.opened_at + self._max_wait_s
