"""Producer batches the queue could not take yet, kept in memory until it can (sans-IO).

Theory of operation
-------------------
When the durable queue is full (or its file is locked by another process) a batch cannot be
stored, so it must not be acknowledged. Leaving it at that made the producer the one to
notice free space: it re-sends an unacknowledged batch after a doubling delay (up to a
minute), so reading stayed paused long after deliveries had made room.

Instead the shipper keeps the refused batch here and tries to store it again on a short
backoff (``first_retry_s`` doubling to a short ``max_retry_s``). A try on a full queue costs
one small read transaction, so retrying twice a second is cheap, and it needs no signal from
the deliveries: whatever frees space (deliveries, dead-lettering, an operator deleting the
file that filled the disk, a lock released) is noticed within one retry period. The
acknowledgement goes out as soon as the batch is stored, so the producer's window opens
within about half a second of the space returning.

Nothing here is durable, and it need not be: the producer keeps every unacknowledged batch
and re-sends it after a shipper restart. A re-send of a batch already held (same producer
and batch id) replaces the held copy's peer (the producer may have reconnected) and keeps
its place. Batches are stored in arrival order. The memory is bounded (``max_batches``,
``max_bytes``); a batch beyond the bound is not held and its producer re-sends it later, as
before.

Time is passed in; nothing here sleeps.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["HeldBatches"]

T = TypeVar("T")
BatchKey = tuple[str, str]
"""(producer, batch id): what names one batch across re-sends."""


class HeldBatches(Generic[T]):
    """Batches waiting for room in the queue, oldest first, with their retry schedule."""

    def __init__(
        self,
        *,
        max_batches: int = 256,
        max_bytes: int = 64 * 1024 * 1024,
        first_retry_s: float = 0.1,
        max_retry_s: float = 0.5,
    ) -> None:
        if max_batches < 1 or max_bytes < 1:
            raise ValueError("the hold must keep at least one batch and one byte")
        if first_retry_s <= 0 or max_retry_s < first_retry_s:
            raise ValueError("need 0 < first_retry_s <= max_retry_s")
        self._max_batches = max_batches
        self._max_bytes = max_bytes
        self._first_retry_s = first_retry_s
        self._max_retry_s = max_retry_s
        self._held: OrderedDict[BatchKey, tuple[T, int]] = OrderedDict()
        self._bytes = 0
        self._failures = 0
        self._retry_at: float | None = None
        self.since: float | None = None
        """When the hold last went from empty to non-empty (None while empty)."""

    def __len__(self) -> int:
        return len(self._held)

    def __bool__(self) -> bool:
        return bool(self._held)

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def hold(self, key: BatchKey, item: T, size: int, now: float) -> bool:
        """Keep ``item`` until it can be stored; False when over the bound (not kept).

        A batch already held under ``key`` is replaced in place (a re-send from the same
        producer, possibly over a new connection) and always accepted.
        """
        if key in self._held:
            _, old_size = self._held[key]
            self._held[key] = (item, size)
            self._bytes += size - old_size
            return True
        if self._held and (
            len(self._held) >= self._max_batches or self._bytes + size > self._max_bytes
        ):
            return False
        if not self._held:
            self.since = now
            self._failures = 0
            self._retry_at = now + self._first_retry_s
        self._held[key] = (item, size)
        self._bytes += size
        return True

    def first(self) -> T | None:
        """The oldest held batch, to try to store now (None when empty)."""
        for item, _ in self._held.values():
            return item
        return None

    def stored_first(self) -> None:
        """The oldest held batch is stored: forget it. The retry schedule restarts."""
        _, size = self._held.popitem(last=False)[1]
        self._bytes -= size
        self._failures = 0
        if not self._held:
            self.since = None
            self._retry_at = None

    def still_blocked(self, now: float) -> None:
        """Storing the oldest batch failed again at ``now``: wait longer before the next try."""
        self._failures += 1
        delay = min(self._first_retry_s * 2**self._failures, self._max_retry_s)
        self._retry_at = now + delay

    def retry_at(self) -> float | None:
        """When to try storing the oldest batch again; None while nothing is held."""
        return self._retry_at
