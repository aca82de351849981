"""One scrape's records into `EncodedRecords` batches with positions and claims (sans-IO).

Dedup by position (`kk_common.envelope.EncodedRecords`) needs every record to have a place
in a *source* that no other record ever takes. Here the dedup source is the scrape source
(``metrics:<name>``) and a scrape owns a *slot* of ``2**SLOT_BITS`` positions starting at
``scrape_ms << SLOT_BITS``; sample ``i`` of the scrape is at ``slot + i``. A scrape of one
source starts at most once per millisecond (the interval is far longer), so slots never
overlap, and ``MAX_SAMPLES_PER_SCRAPE`` (the highest sample limit) fits in one.

Each batch claims the positions of its own samples; the last batch of a scrape also claims
the unused rest of the slot (no record can be there), so the batches of one scrape merge
into one range in the shipper's memory of what it stored. A batch is only known to be the
last when the scrape ends, so one full batch is held back until the next sample arrives.

Batch ids are ``<producer>:<source>@<scrape_ms>:<index>``: the same on every re-send,
including after a restart from the spool.
"""

from __future__ import annotations

from kk_common.config.model import MAX_SAMPLES_PER_SCRAPE
from kk_common.envelope import EncodedRecords

__all__ = ["SLOT_BITS", "ScrapeBatches"]

SLOT_BITS = 20
assert MAX_SAMPLES_PER_SCRAPE < 1 << SLOT_BITS


class ScrapeBatches:
    """Collects one scrape's encoded records and cuts them into batches."""

    def __init__(self, *, producer: str, source: str, scrape_ms: int, max_records: int) -> None:
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        self._producer = producer
        self._source = f"metrics:{source}"
        self._key = f"{source}@{scrape_ms}"
        self._slot = scrape_ms << SLOT_BITS
        self._max = max_records
        self._ids: list[str] = []
        self._bodies: list[bytes] = []
        self._first = 0
        """Scrape index of the first record in ``_ids``."""
        self._held: tuple[list[str], list[bytes], int] | None = None
        self._index = 0

    @property
    def scrape_key(self) -> str:
        return self._key

    def add(self, record_id: str, body: bytes) -> EncodedRecords | None:
        """Add one record; returns a batch when one is complete (and known not to be last)."""
        ready = None
        if self._held is not None and not self._ids:
            ready = self._batch(*self._held, last=False)
            self._held = None
        self._ids.append(record_id)
        self._bodies.append(body)
        if len(self._ids) >= self._max:
            self._held = (self._ids, self._bodies, self._first)
            self._first += len(self._ids)
            self._ids, self._bodies = [], []
        return ready

    def finish(self) -> list[EncodedRecords]:
        """The remaining batches; the last one claims the rest of the slot."""
        batches = []
        if self._held is not None:
            batches.append(self._batch(*self._held, last=not self._ids))
            self._held = None
        if self._ids:
            batches.append(self._batch(self._ids, self._bodies, self._first, last=True))
            self._ids, self._bodies = [], []
        return batches

    def _batch(
        self, ids: list[str], bodies: list[bytes], first: int, *, last: bool
    ) -> EncodedRecords:
        start = self._slot + first
        end = self._slot + (1 << SLOT_BITS) if last else start + len(ids)
        batch = EncodedRecords(
            batch_id=f"{self._producer}:{self._key}:{self._index}",
            producer=self._producer,
            stream="metrics",
            ids=ids,
            bodies=b"".join(body + b"\n" for body in bodies),
            sources=[self._source],
            positions=[(0, start + offset) for offset in range(len(ids))],
            claims=[(0, start, end)],
        )
        self._index += 1
        return batch
