"""Assembles encoded records into IPC batches for the shipper, with the file offsets they cover.

A batch closes at ``max_records`` records or ``max_wait_s`` after its first record,
whichever comes first. With every batch goes, per file, the parser's *safe* offset after
the batch's lines: the offset to resume from once the shipper has acknowledged it (and
every batch before it). Offsets also move when lines produce no record (an excluded
container, a dropped empty flush); such an offset-only batch never goes to the shipper,
its offsets are committed in order with the others.

A batch is sent as `EncodedRecords` (envelope major 2): the records' JSON bytes joined
once, their ids, and for dedup at the shipper each record's *position* (its source is the
file, its position the start offset of its line) and the batch's *claims*: per file, the
byte ranges of the physical lines its records were made of, adjacent and overlapping
lines merged. A line's records always go into one batch (`add` takes whole lines), so a
claim never covers the start of a line whose records are elsewhere.

Live and catch-up lines go in separate batches. Lines read from a file whose read slice
filled (it has a backlog: the caller says so with ``catch_up``) go into a catch-up batch,
marked ``catch_up`` for the shipper, which delivers live batches before catch-up ones; all
other lines go into a live batch. Live batches are also taken first here, and the caller
may hold catch-up batches back (`take` with ``catch_up=False``) to keep few of them in
flight: the shipper stores batches in the order they come, so a live batch sent behind a
window full of catch-up batches would wait for all of them to be stored. So a quiet
file's line never shares a batch, and with it a place in the shipper's queue, with a
noisy file's backlog. Two batches are open at most,
one per lane, and they never hold lines of the same file: a file that moves to the other
lane first closes the batch holding its earlier lines, so that batch is sent, and its
offsets tracked, before the one with the file's later lines (`CheckpointTracker` expects a
file's offsets in send order).

Batch ids are ``<producer>:<run>:<n>``: unique across restarts (the run token is random),
increasing within a run. Pure: time is passed in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from itertools import repeat

from kk_common.envelope import EncodedRecords, merge_ranges
from kk_logs.records import FileRecords

__all__ = ["BatchAssembler", "OutgoingBatch"]


@dataclass
class OutgoingBatch:
    """Records to send (possibly none) and the offsets they cover."""

    batch_id: str
    producer: str
    opened_at: float = 0.0
    bodies: list[bytes] = field(default_factory=list)
    """Each record's JSON and ``\\n``, in order."""
    ids: list[str] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)
    """The index of each file (by key) that has records in this batch, in order of arrival."""
    positions: list[tuple[int, int]] = field(default_factory=list)
    spans: list[list[tuple[int, int]]] = field(default_factory=list)
    """Per source index, the physical lines the records were made of."""
    offsets: dict[str, int] = field(default_factory=dict)
    catch_up: bool = False
    """Lines read from a file with a backlog (see the module docstring)."""

    def __len__(self) -> int:
        return len(self.ids)

    def claims(self) -> list[tuple[int, int, int]]:
        """``(source, start, end)`` for every merged range of the batch's physical lines."""
        return [
            (source, start, end)
            for source, spans in enumerate(self.spans)
            for start, end in merge_ranges(spans)
        ]

    def message(self) -> EncodedRecords:
        """The batch as the shipper reads it."""
        return EncodedRecords(
            batch_id=self.batch_id,
            producer=self.producer,
            stream="logs",
            ids=self.ids,
            bodies=b"".join(self.bodies),
            sources=list(self.sources),
            positions=self.positions,
            claims=self.claims(),
            catch_up=self.catch_up,
        )


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
        self._open: dict[bool, OutgoingBatch] = {}
        """The open batch of each lane (key: ``catch_up``), live first when both are."""
        self._ready: list[OutgoingBatch] = []

    def _batch(self, now: float, catch_up: bool) -> OutgoingBatch:
        batch = self._open.get(catch_up)
        if batch is None:
            self._sequence += 1
            batch = self._open[catch_up] = OutgoingBatch(
                batch_id=f"{self._producer}:{self._run}:{self._sequence}",
                producer=self._producer,
                opened_at=now,
                catch_up=catch_up,
            )
        return batch

    def add(
        self,
        file_key: str,
        records: FileRecords | None,
        safe_offset: int,
        now: float,
        *,
        catch_up: bool = False,
    ) -> None:
        """Records made from whole lines of ``file_key`` (or None); resume at ``safe_offset``.

        ``catch_up``: the lines were read from a file with a backlog (module docstring). A
        batch that reaches ``max_records`` is closed and queued; later records open the
        next one. Callers add at most ``max_records`` lines at a time, so a batch holds
        less than twice that (plus the extra records of split messages).
        """
        other = self._open.get(not catch_up)
        if other is not None and file_key in other.offsets:
            # The file changed lanes: its earlier lines must be sent first.
            self._ready.append(other)
            del self._open[not catch_up]
        batch = self._batch(now, catch_up)
        if records:
            source = batch.sources.get(file_key)
            if source is None:
                source = batch.sources[file_key] = len(batch.sources)
                batch.spans.append([])
            batch.bodies.extend(records.bodies)
            batch.ids.extend(records.ids)
            batch.positions.extend(zip(repeat(source), records.positions, strict=False))
            batch.spans[source].extend(records.spans)
        batch.offsets[file_key] = safe_offset
        if len(batch.ids) >= self._max_records:
            self._ready.append(batch)
            del self._open[catch_up]

    @property
    def max_records(self) -> int:
        return self._max_records

    @property
    def live_waiting(self) -> bool:
        """Whether live lines added now would wait for a batch already built or open (a
        ready batch goes first, an open live batch closes at its deadline)."""
        return bool(self._ready) or False in self._open

    @property
    def catch_up_ready(self) -> int:
        """Catch-up batches built and waiting to be taken."""
        return sum(batch.catch_up for batch in self._ready)

    def _due(self, batch: OutgoingBatch, now: float, force: bool) -> bool:
        if not batch.ids and batch.offsets:
            return True  # offsets alone need no batching delay
        return force or now >= batch.opened_at + self._max_wait_s

    def _live_order(self) -> tuple[int | None, set[str], bool]:
        """The index of the oldest ready live batch that may go now (None if none), the
        files of the ready catch-up batches before it, and whether the oldest ready live
        batch must wait (it has lines of a file whose earlier lines are in one of those)."""
        passed: set[str] = set()
        for index, batch in enumerate(self._ready):
            if batch.catch_up:
                passed.update(batch.offsets)
            elif passed.isdisjoint(batch.offsets):
                return index, passed, False
            else:
                return None, passed, True
        return None, passed, False

    def take(
        self, now: float, *, force: bool = False, catch_up: bool = True
    ) -> OutgoingBatch | None:
        """The next due batch (full, old enough, or ``force``), else None: live batches
        first, oldest first, then (if ``catch_up``) catch-up batches, oldest first.

        A live batch goes before catch-up batches built earlier only if it shares no file
        with them (a file's lines are sent in order). The caller passes ``catch_up=False``
        while its share of the window for catch-up batches is used up: a live batch then
        still goes.
        """
        index, passed, blocked = self._live_order()
        if index is not None:
            return self._ready.pop(index)
        live = self._open.get(False)
        if (
            live is not None
            and not blocked
            and passed.isdisjoint(live.offsets)
            and self._due(live, now, force)
        ):
            del self._open[False]
            return live
        if not catch_up:
            return None
        for index, batch in enumerate(self._ready):
            if batch.catch_up:
                return self._ready.pop(index)
        backlog = self._open.get(True)
        if backlog is not None and self._due(backlog, now, force):
            del self._open[True]
            return backlog
        return None

    def next_deadline(self, *, catch_up: bool = True) -> float | None:
        """When `take` (with the same ``catch_up``) has a batch to give, or None."""
        index, passed, blocked = self._live_order()
        if index is not None:
            return self._ready[index].opened_at
        if catch_up and self.catch_up_ready:
            return min(batch.opened_at for batch in self._ready if batch.catch_up)
        deadlines = []
        live = self._open.get(False)
        if live is not None and not blocked and passed.isdisjoint(live.offsets):
            deadlines.append(live.opened_at + self._max_wait_s)
        backlog = self._open.get(True)
        if backlog is not None and catch_up:
            deadlines.append(backlog.opened_at + self._max_wait_s)
        return min(deadlines, default=None)
