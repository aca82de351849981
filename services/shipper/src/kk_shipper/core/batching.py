"""When a batch closes, and which records it holds.

A batch closes at whichever comes first (the issue's batching rule):

* ``batch_size`` records;
* the byte limit: the next record would push the *uncompressed* body (envelope included) past
  ``max_request_bytes``. The limit is on the uncompressed size because that is the size we
  know before compressing, and the receiver bounds the decoded size too (receiver-api.md);
* the flush interval: the oldest record has been queued for ``flush_interval_s``
  (``QueuedRecord.queued_at``, unix time, so records that waited across a restart go at once).

A record larger than the byte limit on its own still forms a batch of one: the limit is ours,
and only the receiver's 413 can tell that it is really too large (then it is dead-lettered).
In ``single`` mode every record is its own request and is due as soon as it is offered.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..types import QueuedRecord
from .settings import OutputSettings

__all__ = ["batch_due", "next_flush_deadline", "take_batch_size"]


def take_batch_size(
    pending: Sequence[QueuedRecord], settings: OutputSettings, envelope_bytes: int
) -> int:
    """How many records from the front of ``pending`` make the next batch (0 if none)."""
    if not pending:
        return 0
    if settings.mode == "single":
        return 1
    size = envelope_bytes
    count = 0
    for record in pending:
        if count == settings.batch_size:
            break
        added = len(record.body) + (1 if count else 0)  # the comma between records
        if count and size + added > settings.max_request_bytes:
            break
        size += added
        count += 1
    return count


def batch_due(
    pending: Sequence[QueuedRecord],
    settings: OutputSettings,
    envelope_bytes: int,
    now: float,
    *,
    flush_all: bool = False,
) -> bool:
    """Whether the front of ``pending`` forms a closed batch at ``now``.

    ``flush_all`` (graceful stop) sends partial batches without waiting for the interval.
    """
    if not pending:
        return False
    if flush_all or settings.mode == "single":
        return True
    count = take_batch_size(pending, settings, envelope_bytes)
    if count < len(pending):
        return True  # closed by size or bytes: records are left over for the next batch
    if count == settings.batch_size:
        return True
    deadline = next_flush_deadline(pending, settings)
    return deadline is not None and deadline <= now


def next_flush_deadline(pending: Sequence[QueuedRecord], settings: OutputSettings) -> float | None:
    """When the oldest pending record's batch closes by age, or None with nothing pending."""
    if not pending:
        return None
    return pending[0].queued_at + settings.flush_interval_s
