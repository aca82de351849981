"""What the queue has stored, by position: the shipper's dedup without an index over ids.

Producers give every record a *position* in a *source* (a log file's identity and the byte
offset where the record's line starts) and every batch *claims* ranges of positions: every
record of the source that starts inside a claimed range is in that batch (see
`kk_common.envelope.EncodedRecords`). `Coverage` keeps, per source, the union of the
ranges claimed by batches the queue stored, as a short sorted list of disjoint ranges. A
record whose position is covered was stored before: it is a duplicate.

Why this is safe with several batches in flight: a claim speaks only for the batch that
makes it, never for the batches before it. If batch 2 is stored and batch 1 is then
re-sent, batch 1's positions are not in batch 2's ranges, so batch 1 is stored. (A single
high-water mark per source would have called it a duplicate and lost it.)

Why it stays small: a log file's claims are adjacent physical lines, so the ranges of
consecutive batches merge into one; a range only stays apart while a line between is still
being written (a CRI partial of the other stream). Memory and rows grow with the number of
sources, not records. Bounds: a source untouched for the dedup window is forgotten, the
least recently touched sources beyond ``max_sources`` are forgotten, and a source keeps at
most `MAX_RANGES_PER_SOURCE` ranges (the lowest go first). Forgetting only ever lets a
duplicate through to the receiver, which drops it by record id; it never drops a record.

Pure: no IO, no clock (``now`` is passed in). The queue persists each changed source in
the transaction that stores its batch and applies the change here only after the commit.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from kk_common.envelope import merge_ranges

__all__ = ["MAX_RANGES_PER_SOURCE", "Coverage", "Ranges", "SourceKey"]

MAX_RANGES_PER_SOURCE = 256
"""A source with more ranges than this forgets its lowest ones (see the module docstring)."""

SourceKey = tuple[str, str]
"""``(kind, source)``: each output has its own sources."""


@dataclass(frozen=True, slots=True)
class Ranges:
    """Sorted, disjoint, non-adjacent ``[start, end)`` ranges of one source (immutable)."""

    starts: tuple[int, ...] = ()
    ends: tuple[int, ...] = ()

    def covers(self, position: int) -> bool:
        index = bisect_right(self.starts, position) - 1
        return index >= 0 and position < self.ends[index]

    def union(self, added: Iterable[tuple[int, int]]) -> Ranges:
        """These ranges plus ``added`` (empty ranges ignored), merged, capped."""
        merged = merge_ranges([*zip(self.starts, self.ends, strict=True), *added])
        kept = merged[-MAX_RANGES_PER_SOURCE:]
        return Ranges(tuple(start for start, _ in kept), tuple(end for _, end in kept))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self.starts, self.ends, strict=True))

    def __len__(self) -> int:
        return len(self.starts)

    def dumps(self) -> str:
        """``"start-end,start-end"``: the persisted form."""
        return ",".join(f"{start}-{end}" for start, end in self)

    @classmethod
    def loads(cls, text: str) -> Ranges:
        """The inverse of `dumps`; an unreadable part is skipped (it only weakens dedup)."""
        pairs = []
        for part in text.split(","):
            start, _, end = part.partition("-")
            if start.isdigit() and end.isdigit():
                pairs.append((int(start), int(end)))
        return cls().union(pairs)


class Coverage:
    """Stored ranges per source, with their last-touched times; see the module docstring."""

    def __init__(self, *, window_s: float, max_sources: int) -> None:
        if window_s < 0 or max_sources < 1:
            raise ValueError("need window_s >= 0 and max_sources >= 1")
        self.window_s = window_s
        self.max_sources = max_sources
        self._ranges: dict[SourceKey, Ranges] = {}
        self._touched: dict[SourceKey, float] = {}

    def __len__(self) -> int:
        return len(self._ranges)

    def sources(self, kind: str) -> int:
        """How many sources of ``kind`` are remembered."""
        return sum(1 for k, _ in self._ranges if k == kind)

    def ranges(self, key: SourceKey) -> Ranges:
        return self._ranges.get(key, Ranges())

    def covers(self, key: SourceKey, position: int) -> bool:
        ranges = self._ranges.get(key)
        return ranges is not None and ranges.covers(position)

    def covered(self, keys: Sequence[SourceKey], positions: Sequence[tuple[int, int]]) -> list[int]:
        """The indexes of ``positions`` (``(index into keys, position)`` pairs, a batch's)
        that are covered.

        Most batches are new lines past everything their sources stored, so a position at
        or past its source's last stored end is passed over with one comparison; only the
        others are looked up (0.05 against 0.21 µs per record for 1,250 records over 40
        sources, 2026-12-02).
        """
        ends = [ranges.ends[-1] if (ranges := self._ranges.get(key)) else -1 for key in keys]
        maybe = [
            index for index, (source, position) in enumerate(positions) if position < ends[source]
        ]
        return [
            index for index in maybe if self.covers(keys[positions[index][0]], positions[index][1])
        ]

    def merged(self, claims: Iterable[tuple[SourceKey, int, int]]) -> dict[SourceKey, Ranges]:
        """The new ranges of every source ``claims`` touch (nothing changes until `install`)."""
        added: dict[SourceKey, list[tuple[int, int]]] = {}
        for key, start, end in claims:
            added.setdefault(key, []).append((start, end))
        return {key: self.ranges(key).union(pairs) for key, pairs in added.items()}

    def install(self, changed: Mapping[SourceKey, Ranges], now: float) -> None:
        """Apply what `merged` returned, once it is durable."""
        for key, ranges in changed.items():
            self._ranges[key] = ranges
            self._touched.pop(key, None)  # re-insert: dict order is least recently touched first
            self._touched[key] = now

    def load(self, key: SourceKey, ranges: Ranges, touched_at: float) -> None:
        """A persisted source, at open (in any order)."""
        self._ranges[key] = ranges
        self._touched[key] = touched_at

    def sort_loaded(self) -> None:
        """After `load`-ing everything: order sources by last touch, as `install` keeps them."""
        self._touched = dict(sorted(self._touched.items(), key=lambda item: item[1]))

    def expired(self, now: float, arriving: Iterable[SourceKey] = ()) -> list[SourceKey]:
        """Sources to forget: untouched for the window, then the least recent beyond the cap
        (counting the ``arriving`` sources about to be installed, which are kept)."""
        keep = set(arriving)
        cutoff = now - self.window_s
        gone = []
        for key, touched in self._touched.items():
            if touched > cutoff:
                break
            if key not in keep:
                gone.append(key)
        new = sum(1 for key in keep if key not in self._touched)
        excess = len(self._touched) - len(gone) + new - self.max_sources
        if excess > 0:
            dropped = set(gone)
            candidates = (k for k in self._touched if k not in dropped and k not in keep)
            gone.extend(itertools.islice(candidates, excess))
        return gone

    def forget(self, keys: Iterable[SourceKey]) -> None:
        for key in keys:
            self._ranges.pop(key, None)
            self._touched.pop(key, None)
