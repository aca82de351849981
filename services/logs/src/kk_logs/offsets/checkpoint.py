"""Which file offsets may be persisted, given the shipper's acknowledgements. Sans-IO.

Theory of operation
===================

The problem. The logs service reads lines from many files, packs their records into batches
and sends the batches to the shipper, which answers each with an `Ack` once the batch is
durably stored. Several batches are in flight at
once and their acks may come back in any order. After a crash or restart the service resumes
each file from its persisted offset, so that offset must never pass a line whose batch the
shipper does not hold: that would be a silent gap. Persisting too little is harmless, the
re-read lines are re-sent with the same deterministic record ids and the shipper drops them.
This is Datadog's auditor rule, "a crash can cause replay, but not a skipped log range", and
Vector's ``OrderedFinalizer``.

The rule. Batches form one sequence, the order in which the single producer called
`CheckpointTracker.emitted`. Offsets advance only over the *acknowledged contiguous prefix* of
that sequence: the batches from the oldest one still tracked up to, not including, the first
batch not yet acknowledged. An ack for a later batch is recorded but *held back* until every
earlier batch is acknowledged too; then the prefix jumps over all of them at once. The prefix
is over the whole sequence, not per file, although a batch may be the only one in flight for
some file: a batch can hold lines of several files, and one sequence is simple enough to be
obviously right. The cost is that one slow batch holds back every file's progress, which
only lengthens the replay window after a crash.

What a batch carries. For each file it has lines of, the batch records the parser's *safe*
offset after its records: the offset from which a fresh reader would re-read exactly the lines
not yet in this or an earlier batch. That is not the end of the last line: a pending partial
(CRI ``P``) or unterminated line is re-read after a restart rather than split, as Fluent Bit
stores "the resumable offset minus any buffered partial line". A file that a batch does not
mention keeps the offset of the latest batch that did. A batch that never goes to the shipper
(offsets only: lines that produced no record) is emitted and acknowledged at once by the
caller; it still waits its turn in the sequence.

Rejected batches. A ``rejected`` answer is not an acknowledgement: the records were not
stored. The producer keeps such a batch and offers it again (`PendingBatches.refused`), so
it never reaches this tracker until it is stored, and its offsets never advance before that.

Committing. `committable` returns, for each file whose offset advanced since it was last
committed, the offset of the latest batch in the prefix that mentioned it. It does not clear
anything: after the store's commit returns, the caller passes the same mapping to
`mark_committed`. If the commit fails, the next `committable` call returns the same offsets (or
newer ones), so a failed write loses nothing and needs no special handling.

Rewinds (copytruncate). Offsets of one file only grow, except when the file was truncated in
place and the tailer starts it again from 0 under the same identity. The tracker notices a
batch whose offset for a file is lower than the previous one emitted for it (or than the
``initial`` offset it was built with, i.e. the one loaded from the store), and once that batch
is in the prefix, `rewound` names the file: the store must accept that offset with
``reset``, since it otherwise never moves an offset backwards.

Acks that do not fit. An ack for a batch the tracker does not know (never emitted, or already
passed by the prefix) or one that repeats an ack is ignored and counted: the shipper may
re-acknowledge a re-sent batch, and a restarted producer may hear about batches of its previous
life.

Bounds. Memory is one entry per batch in flight plus one integer per file the tracker has seen
(until `forget`). The caller bounds batches in flight (`pending_batches`); `oldest_pending`
names the batch holding everything back, for a "stuck ack" report.

No IO, no clock, no asyncio: the caller drives it and persists with
`kk_logs.offsets.store.OffsetStore`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["CheckpointStats", "CheckpointTracker"]


@dataclass(frozen=True, slots=True)
class CheckpointStats:
    """Counters of a `CheckpointTracker` (totals since it was built, unless said otherwise)."""

    emitted: int
    """Batches emitted."""
    acked: int
    """Batches acknowledged as stored."""
    ignored_acks: int
    """Acks for unknown batches, or repeats of an ack already received."""
    acked_out_of_order: int
    """Acks that arrived while an earlier batch was still unacknowledged (and were held back)."""
    held_back: int
    """Now: acknowledged batches waiting for an earlier batch's ack."""
    pending: int
    """Now: emitted batches not yet acknowledged."""


@dataclass(slots=True)
class _Batch:
    offsets: dict[str, int]
    rewinds: frozenset[str]
    """Files whose offset in this batch is lower than the one emitted before it."""
    acked: bool = False


@dataclass(slots=True)
class _Counters:
    emitted: int = 0
    acked: int = 0
    ignored_acks: int = 0
    acked_out_of_order: int = 0
    held_back: int = 0


class CheckpointTracker:
    """Offsets that may be persisted: advanced only over acknowledged batches, in send order.

    Args:
        initial: offsets the files resume from (normally the store's, from
            `OffsetStore.load`); used only to notice a rewind in the first batch that
            mentions a file. Files missing from it are simply new.

    See the module docstring for the rules. Not thread-safe: one caller drives it.
    """

    def __init__(self, initial: Mapping[str, int] | None = None) -> None:
        # Emission order is the batch sequence; dicts keep insertion order and popitem(last=
        # False) makes advancing the prefix O(1) per batch.
        self._pending: OrderedDict[str, _Batch] = OrderedDict()
        self._last_emitted: dict[str, int] = dict(initial or {})
        self._committable: dict[str, int] = {}
        self._rewound: set[str] = set()
        self._counters = _Counters()

    # -- inputs ----------------------------------------------------------------------------

    def emitted(self, batch_id: str, offsets: Mapping[str, int]) -> None:
        """Record that batch ``batch_id`` was sent, with each file's safe offset after it.

        Call it in send order, before the batch's ack can arrive. ``offsets`` may be empty
        (a batch with no file progress still takes its place in the sequence).

        Raises:
            ValueError: ``batch_id`` is already pending, or an offset is negative.
        """
        if batch_id in self._pending:
            raise ValueError(f"batch {batch_id!r} is already pending; batch ids must be unique")
        copied = dict(offsets)
        rewinds: set[str] = set()
        for file_id, offset in copied.items():
            if offset < 0:
                raise ValueError(f"negative offset {offset} for {file_id!r} in {batch_id!r}")
            previous = self._last_emitted.get(file_id)
            if previous is not None and offset < previous:
                rewinds.add(file_id)
        # Only after validation, so a refused batch leaves no trace.
        self._last_emitted.update(copied)
        self._pending[batch_id] = _Batch(copied, frozenset(rewinds))
        self._counters.emitted += 1

    def acknowledged(self, batch_id: str) -> None:
        """Record that the shipper stored ``batch_id``.

        Acks may come in any order. Unknown and repeated acks are ignored and counted.
        """
        batch = self._pending.get(batch_id)
        if batch is None or batch.acked:
            self._counters.ignored_acks += 1
            return
        batch.acked = True
        self._counters.acked += 1
        if next(iter(self._pending)) != batch_id:
            # An earlier batch is still unacknowledged: committing this one's offsets could
            # skip that batch's lines after a crash. Hold it until the gap closes.
            self._counters.acked_out_of_order += 1
            self._counters.held_back += 1
            return
        self._advance()

    def mark_committed(self, offsets: Mapping[str, int]) -> None:
        """Record that ``offsets`` (as returned by `committable`) are now persisted.

        A file whose committable offset moved on since then stays committable.
        """
        for file_id, offset in offsets.items():
            if self._committable.get(file_id) == offset:
                del self._committable[file_id]
                self._rewound.discard(file_id)

    def forget(self, file_ids: Iterable[str]) -> None:
        """Drop what the tracker remembers of files the tailer no longer follows.

        Batches still in flight that mention such a file make it committable again when
        they are acknowledged; that is harmless (the store prunes files gone for long).
        """
        for file_id in file_ids:
            self._last_emitted.pop(file_id, None)
            self._committable.pop(file_id, None)
            self._rewound.discard(file_id)

    # -- outputs ---------------------------------------------------------------------------

    def committable(self) -> dict[str, int]:
        """Offsets to persist now: each file's offset in the latest batch of the acknowledged
        prefix that mentioned it, for files not committed since. Does not clear them: call
        `mark_committed` with the same mapping once the store has them."""
        return dict(self._committable)

    def rewound(self) -> frozenset[str]:
        """The files in `committable` whose offset went backwards (truncated in place): the
        store must write them with ``reset``."""
        return frozenset(self._rewound)

    @property
    def pending_batches(self) -> int:
        """Batches emitted and not yet passed by the acknowledged prefix (acked or not)."""
        return len(self._pending)

    def oldest_pending(self) -> str | None:
        """The id of the oldest batch not yet acknowledged, which holds back every later one;
        None when every emitted batch has been acknowledged."""
        # The head of the sequence is never acknowledged: _advance pops acknowledged heads.
        return next(iter(self._pending), None)

    def stats(self) -> CheckpointStats:
        """A snapshot of the counters."""
        c = self._counters
        return CheckpointStats(
            emitted=c.emitted,
            acked=c.acked,
            ignored_acks=c.ignored_acks,
            acked_out_of_order=c.acked_out_of_order,
            held_back=c.held_back,
            pending=len(self._pending) - c.held_back,
        )

    # -- internals -------------------------------------------------------------------------

    def _advance(self) -> None:
        """Move the prefix over every acknowledged batch at the head of the sequence."""
        first = True
        while self._pending:
            batch = next(iter(self._pending.values()))
            if not batch.acked:
                break
            self._pending.popitem(last=False)
            if not first:
                self._counters.held_back -= 1  # the head itself was never held back
            first = False
            # Later batches overwrite earlier ones: the prefix's latest mention wins.
            self._committable.update(batch.offsets)
            self._rewound.update(batch.rewinds)
