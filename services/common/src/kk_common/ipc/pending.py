"""The producer's record of batches the shipper has not acknowledged yet (sans-IO).

Theory of operation
-------------------
A producer (logs, metrics) sends a batch and keeps it here until an `Ack` names it.
ZeroMQ gives no delivery guarantee across a peer restart: a batch can sit in a pipe
to a shipper that then dies. So every kept batch is re-sent

* at once when the connection to the shipper is (re-)established, and
* when it has waited ``resend_after_s`` without an answer; each further wait doubles,
  up to ``max_resend_after_s``, so a shipper that is alive but full (and therefore
  not acknowledging) is not flooded with copies.

Re-sending is always safe: the shipper drops record ids it already holds and
acknowledges again.

An ack with status ``rejected`` (the shipper will not store this stream, e.g. its output
is disabled in the shipper's configuration) is *not* a reason to forget the batch: the
records were not stored, and committing past them would drop logs silently over a
configuration mismatch between containers. The batch stays in the window, marked
``refused``, and is offered again every ``max_resend_after_s`` (the shipper may be
reconfigured and restarted); a window full of refused batches pauses reading.

The window (``max_batches``, ``max_bytes``) is the producer's backpressure: while it is
full the producer stops reading. An empty window always has room, so one batch larger
than ``max_bytes`` can still be sent.

Time is passed in (``now``, seconds on a monotonic clock); nothing here sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kk_common.envelope import Ack

__all__ = ["PendingBatch", "PendingBatches"]


@dataclass(slots=True)
class PendingBatch:
    """One sent, unacknowledged batch."""

    batch_id: str
    frames: list[bytes]
    records: int
    first_sent_at: float
    last_sent_at: float
    attempts: int = 1
    context: Any = None
    """The producer's own bookkeeping (e.g. the file offsets the batch covers)."""
    refused: str = ""
    """Why the shipper last refused to store the batch (empty unless it did)."""

    @property
    def size_bytes(self) -> int:
        return sum(len(frame) for frame in self.frames)


class PendingBatches:
    """Unacknowledged batches of one producer, in the order they were first sent."""

    def __init__(
        self,
        *,
        resend_after_s: float = 5.0,
        max_resend_after_s: float = 60.0,
        max_batches: int = 64,
        max_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        if resend_after_s <= 0 or max_resend_after_s < resend_after_s:
            raise ValueError("need 0 < resend_after_s <= max_resend_after_s")
        if max_batches < 1 or max_bytes < 1:
            raise ValueError("the window must hold at least one batch and one byte")
        self._resend_after_s = resend_after_s
        self._max_resend_after_s = max_resend_after_s
        self._max_batches = max_batches
        self._max_bytes = max_bytes
        self._batches: dict[str, PendingBatch] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._batches)

    def __iter__(self) -> Iterator[PendingBatch]:
        return iter(self._batches.values())

    @property
    def bytes_pending(self) -> int:
        return self._bytes

    @property
    def records_pending(self) -> int:
        return sum(batch.records for batch in self._batches.values())

    def has_room(self) -> bool:
        """Whether another batch may be sent now."""
        if not self._batches:
            return True
        return len(self._batches) < self._max_batches and self._bytes < self._max_bytes

    def sent(
        self, batch_id: str, frames: list[bytes], *, records: int, now: float, context: Any = None
    ) -> PendingBatch:
        """Record that a new batch was (or is about to be) sent at ``now``."""
        if batch_id in self._batches:
            raise ValueError(f"batch {batch_id!r} is already pending")
        batch = PendingBatch(
            batch_id=batch_id,
            frames=frames,
            records=records,
            first_sent_at=now,
            last_sent_at=now,
            context=context,
        )
        self._batches[batch_id] = batch
        self._bytes += batch.size_bytes
        return batch

    def acknowledged(self, ack: Ack) -> PendingBatch | None:
        """Forget the stored batch ``ack`` names and return it; None for an unknown or
        repeated ack. Use `refused` for an ack that is not ``stored``."""
        batch = self._batches.pop(ack.batch_id, None)
        if batch is not None:
            self._bytes -= batch.size_bytes
        return batch

    def refused(self, ack: Ack, now: float) -> PendingBatch | None:
        """The shipper answered ``ack`` (not stored) for a kept batch: keep it, note why, and
        offer it again only after the longest wait. None for an unknown batch."""
        batch = self._batches.get(ack.batch_id)
        if batch is None:
            return None
        batch.refused = ack.reason or str(ack.status)
        batch.last_sent_at = now
        batch.attempts = max(batch.attempts, self._attempts_at_cap())
        return batch

    def refusals(self) -> list[str]:
        """The distinct reasons of the kept batches the shipper refused, oldest first."""
        return list(dict.fromkeys(b.refused for b in self._batches.values() if b.refused))

    def _attempts_at_cap(self) -> int:
        attempts = 1
        while self._resend_after_s * 2 ** (attempts - 1) < self._max_resend_after_s:
            attempts += 1
        return attempts

    def _wait_after(self, batch: PendingBatch) -> float:
        return min(self._resend_after_s * 2 ** (batch.attempts - 1), self._max_resend_after_s)

    def due(self, now: float) -> list[PendingBatch]:
        """The batches to re-send at ``now``; they are marked as re-sent."""
        ready = [b for b in self._batches.values() if b.last_sent_at + self._wait_after(b) <= now]
        for batch in ready:
            batch.last_sent_at = now
            batch.attempts += 1
        return ready

    def reconnected(self, now: float) -> list[PendingBatch]:
        """Every kept batch, to re-send after a (re)connection; the backoff restarts."""
        for batch in self._batches.values():
            batch.last_sent_at = now
            batch.attempts = 1
        return list(self._batches.values())

    def next_deadline(self) -> float | None:
        """When `due` will next return something, or None with nothing pending."""
        if not self._batches:
            return None
        return min(b.last_sent_at + self._wait_after(b) for b in self._batches.values())

    def oldest_age(self, now: float) -> float:
        """Seconds since the oldest pending batch was first sent (0 when empty)."""
        if not self._batches:
            return 0.0
        return now - min(b.first_sent_at for b in self._batches.values())
