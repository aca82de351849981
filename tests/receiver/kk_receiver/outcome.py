"""What the core hands to its store, and the store protocol the core depends on.

Pure data: the core builds an :class:`IngestOutcome` per ingest request and the store persists
it atomically. Keeping these types here (not in ``store``) keeps the core free of SQLite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class AcceptedRecord:
    """A valid record to store: its id (the dedup key) and its JSON text."""

    record_id: str
    record_json: str


@dataclass(frozen=True)
class IngestOutcome:
    """Everything the core decided about one ingest request.

    Attributes:
        protocol: ``http/3`` or ``http/1.1``.
        kind: ``logs`` or ``metrics``.
        received_at: Wall-clock time (seconds since the epoch) passed to the core.
        status: The status answered, or None when the connection was dropped.
        records: Valid records to store; ids already stored count as duplicates.
        rejected: Invalid records, counted per reason code.
        log_entry: Request metadata for ``GET /api/v1/requests`` (no credentials).
    """

    protocol: str
    kind: str
    received_at: float
    status: int | None
    records: Sequence[AcceptedRecord] = ()
    rejected: Mapping[str, int] = field(default_factory=dict)
    log_entry: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CommitResult:
    """How many of an outcome's records were new (stored) and how many were already known."""

    stored: int
    duplicates: int


@dataclass(frozen=True)
class StoredRecord:
    """A stored record as ``GET /api/v1/records`` lists it."""

    seq: int
    kind: str
    record_id: str
    protocol: str
    received_at: float
    record_json: str


class Store(Protocol):
    """What :class:`~kk_receiver.core.ReceiverCore` needs from persistence."""

    def commit(self, outcome: IngestOutcome) -> CommitResult:
        """Persist one request's outcome atomically; dedup by (kind, record id)."""
        ...

    def counter_rows(self) -> list[tuple[str, str, str, int]]:
        """All counters as ``(protocol, kind, name, value)``."""
        ...

    def rejection_rows(self) -> list[tuple[str, str, int]]:
        """Rejected-record counts as ``(kind, reason, count)``."""
        ...

    def records(
        self, kind: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[StoredRecord]:
        """Stored records in arrival order."""
        ...

    def recent_requests(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` ingest requests' log entries, oldest first."""
        ...
