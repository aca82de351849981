"""Values returned by the durable queue (pure data, no IO)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kk_shipper.types import Kind, RecordRun

__all__ = ["AppendResult", "DeadLetter", "KindStats", "QueueStats"]


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What `DurableQueue.append` did with a batch (all of it is durable on return)."""

    stored: int
    """Records newly queued."""
    duplicates: int
    """Records not queued because the queue had stored them already (their position in their
    source was covered: see ``storage/coverage.py``)."""
    runs: tuple[RecordRun, ...] = field(default=(), compare=False, repr=False)
    """The stored records as `DurableQueue.read_runs` would give them (a run per row,
    bodies uncompressed), so a reader that has read everything before them can take them
    from here instead of reading them back from the file."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that left the queue without being delivered, kept for inspection and replay."""

    kind: Kind
    record_id: str
    body: bytes
    reason: str
    """Why it was dead-lettered, as the caller put it (e.g. ``"rejected: 400 bad record"``)."""
    dead_lettered_at: float
    """Unix time it was moved to the dead-letter store."""


@dataclass(frozen=True, slots=True)
class KindStats:
    """One output's share of the store. Byte counts are accounted sizes (see `record_size`)."""

    queued_records: int
    queued_bytes: int
    oldest_queued_at: float | None
    """``queued_at`` of the next record to deliver (lowest seq); None when empty."""
    oldest_age_s: float | None
    """``now - oldest_queued_at``: how far delivery lags; None when empty."""
    last_seq: int
    """The highest seq ever assigned (0 = none yet)."""
    dedup_sources: int
    """Sources (log files, scrapes) whose stored ranges are remembered for dedup."""
    duplicates_dropped: int
    """Records not queued as duplicates, since the file was created."""
    dead_letters: int
    dead_letter_bytes: int
    dead_letters_evicted: int
    """Dead letters removed to keep the dead-letter store under its bound, since creation."""


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A snapshot of the whole store; counters are persisted and survive restarts."""

    used_bytes: int
    """Queued bytes of all outputs together; `DurableQueue.append` keeps it <= max_bytes."""
    max_bytes: int
    dead_letter_bytes: int
    dead_letter_max_bytes: int
    kinds: Mapping[Kind, KindStats]

    @property
    def dead_letters(self) -> int:
        """Dead letters held, all outputs."""
        return sum(k.dead_letters for k in self.kinds.values())

    @property
    def dead_letters_evicted(self) -> int:
        """Dead letters evicted to respect the bound, all outputs."""
        return sum(k.dead_letters_evicted for k in self.kinds.values())

    @property
    def duplicates_dropped(self) -> int:
        """Duplicates not queued, all outputs."""
        return sum(k.duplicates_dropped for k in self.kinds.values())
