"""When a batch closes, and which records it holds.

A batch closes at whichever comes first (the issue's batching rule):

* ``batch_size`` records;
* the byte limit: the next record would push the *uncompressed* body (envelope included) past
  ``max_request_bytes``. The limit is on the uncompressed size because that is the size we
  know before compressing, and the receiver bounds the decoded size too (receiver-api.md);
* the flush interval: the oldest record of either lane (live runs are pending in front
  of catch-up runs: delivery.py) has been queued for ``flush_interval_s``
  (``RecordRun.queued_at``, which `OutputDelivery.offer` has carried over to the core's
  monotonic clock, so records that waited across a restart go at once and a step of the
  wall clock moves no deadline).

A record larger than the byte limit on its own still forms a batch of one: the limit is ours,
and only the receiver's 413 can tell that it is really too large (then it is dead-lettered).
In ``single`` mode every record is its own request and is due as soon as it is offered.

Pending records are runs (`RecordRun`: a stored batch's records as its joined bytes), so a
batch is taken by whole runs; only the last run it takes may be split, by one scan of its
bytes. Sizes come from the joined bytes: a run's ``len(bodies)`` is its records plus one
separator each, exactly what they add to a request body with the commas between them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from ..types import RecordRun
from .settings import OutputSettings

__all__ = ["batch_due", "next_flush_deadline", "take_batch"]


def _bytes_budget(settings: OutputSettings, envelope_bytes: int) -> int:
    """The most bytes of runs' ``bodies`` one request may hold: each record brings one
    separator, and a body has one comma fewer than records."""
    return settings.max_request_bytes - envelope_bytes + 1


def take_batch(
    pending: deque[RecordRun], settings: OutputSettings, envelope_bytes: int
) -> list[RecordRun]:
    """Take the next batch's records from the front of ``pending`` (none if it is empty).

    Whole runs while they fit; the run that does not is split and its rest stays in front.
    """
    limit = 1 if settings.mode == "single" else settings.batch_size
    room = _bytes_budget(settings, envelope_bytes)
    taken: list[RecordRun] = []
    while pending and limit:
        run = pending[0]
        if run.count <= limit and len(run.bodies) <= room:
            taken.append(pending.popleft())
            limit -= run.count
            room -= len(run.bodies)
            continue
        count = min(limit, run.fitting(room))
        if not count:
            if taken:
                break
            count = 1  # a record over the limit on its own still goes, alone
        if count == run.count:
            taken.append(pending.popleft())
        else:
            head, pending[0] = run.split(count)
            taken.append(head)
        break
    return taken


def batch_due(
    pending: Sequence[RecordRun],
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
    count = size = 0
    budget = _bytes_budget(settings, envelope_bytes)
    for run in pending:  # stops at the first batch's worth: pending may hold many runs
        count += run.count
        size += len(run.bodies)
        if count >= settings.batch_size or (count > 1 and size > budget):
            return True  # closed by size or bytes
    deadline = next_flush_deadline(pending, settings)
    return deadline is not None and deadline <= now


def next_flush_deadline(pending: Sequence[RecordRun], settings: OutputSettings) -> float | None:
    """When the oldest pending record's batch closes by age, or None with nothing pending."""
    if not pending:
        return None
    oldest = pending[0].queued_at
    if pending[-1].catch_up:  # catch-up runs are last: the first of them is its lane's oldest
        for run in pending:  # (past the live runs, which are few)
            if run.catch_up:
                oldest = min(oldest, run.queued_at)
                break
    return oldest + settings.flush_interval_s
