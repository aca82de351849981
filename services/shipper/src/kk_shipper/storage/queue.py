"""The shipper's durable on-disk queue.

Theory of operation
===================

What it is for. The shipper acknowledges a batch to its producer (logs or metrics service)
only once the batch is in this queue, and removes a record only once a receiver has taken it
or it has been moved to the dead-letter store. Between those two points the record lives in
one SQLite file, ``<state_dir>/shipper/queue.db``, on the node's hostPath, so it survives
container restarts, pod restarts and a node losing power.

Batches, not records. A producer's batch is stored as one row of ``batches``: the records'
JSON exactly as it goes into a request body (newline-separated, as the producer encoded it)
and their ids. One row and one index entry per batch, whatever its size: the cost of a
record does not depend on how many are queued. Each record still has its own queue position
(``seq``): record ``i`` of a row is ``first_seq + i``, so delivery can complete, split
(413, poison isolation) and dead-letter single records. A row keeps a bitmap of its
finished records and is deleted, and its bytes freed, when the last one finishes. Delivery
reads rows as they are (`read_runs`: a `RecordRun` per row, or per stretch of a row's
unfinished records) and completes by seq ranges, with the bitmap handled as one integer, so
moving a batch through delivery costs the same for one record or a thousand. The bodies are
stored zstd-compressed when that pays (bodies.py says why and how): the kernel's copying of
body bytes through the page cache was most of the queue's cost.

Why SQLite. It gives us, in the standard library, exactly the three things a hand-written
segment file would have to earn: atomic multi-row commits (a batch and its dedup state are
all there or not at all), durability on commit, and crash recovery. One file holds every
table, so moving a record between tables (queued -> dead letters) is a single transaction
and can never be half done.

Durability. The journal is WAL and ``synchronous=FULL``: the WAL is fsynced at every commit,
so a committed transaction survives power loss (``NORMAL`` would only survive a process
crash). Every public method that writes is one ``BEGIN IMMEDIATE`` ... ``COMMIT``, so the
fsync cost is paid once per batch. When `append` returns, the batch is on disk; when it
raises, nothing of it is.

Queue positions. Each output (`Kind`: logs, metrics) has its own sequence numbers
(``kind_state.last_seq``; never reused, even after deletes or a restart). The caller keeps a
read position per output and may have several requests in flight: `read` returns records
after a seq, and `complete` / `dead_letter` accept any subset of seqs in any order. A slow
metrics receiver therefore never holds back logs delivery.

Lanes: live before catch-up. A producer marks the batches it read from a backlog
(``catch_up``: a log file whose read slice filled) and the queue keeps the mark with the
batch (column ``catch_up``, indexed with the seq). Each output's records form two lanes,
each first in first out: *live* (unmarked batches, and everything queued before lanes
existed) and *catch-up*. `read_runs` reads one lane (``catch_up=False`` or ``True``) after
a position in it, so the caller keeps a read position per lane and offers live records to
delivery before catch-up ones: a quiet pod's line stored behind a noisy pod's backlog of
hundreds of thousands of records is sent within about a request's time, not after the
backlog. Catch-up is never starved: delivery fills every request from the live lane first
and tops it up from the catch-up lane (core/delivery.py), and the live lane is empty most
of the time (it carries what is written as it is written), so catch-up gets every request's
spare room and all of it whenever nothing live waits. A live record can only be kept
waiting by other live records. Seqs stay one sequence per output (assigned in arrival
order, whatever the lane), so `complete`, `dead_letter`, `stats` and the dedup need not
know lanes; only the order of delivery does. Records of two lanes therefore reach the
receiver out of seq order; nothing depends on that order: the queue completes any subset
of seqs, a re-send after a crash is dropped by position ranges per batch (below), and the
receiver dedups by id.

Dedup by position (coverage.py). Records carry a position in a source (a file identity and
the byte offset of their line) and batches claim ranges of positions. The queue keeps, per
source, the union of the ranges of what it stored (table ``coverage``, one row per source,
written in the transaction that stores the batch; held in memory for lookups) and drops a
record whose position is covered, counting it in ``duplicates_dropped``. That is what makes a
producer's re-send after a lost acknowledgement or a restart cheap, and it needs no index over
ids: the state grows with the number of sources, not records, and is bounded by the dedup
window and ``dedup_max_sources``. Claims are per batch, so an older batch re-sent after a
newer one is stored, never mistaken for a duplicate. Forgetting a source only lets a re-sent
record through to the receiver, which drops it by id. A record without a position (a
dead-letter replay) is never dropped.

Bounds. Sizes are accounted, not measured from the file: `record_size` is the body, the id
and a fixed `RECORD_OVERHEAD_BYTES` (so a flood of tiny records is bounded too); a row counts
the sum for its records until it is deleted. Queued bytes of all outputs together stay at or
under ``max_bytes``, and one output may fill at most ``1 - OTHER_OUTPUT_RESERVE`` of it, so a
stalled metrics receiver never takes the space logs need to keep flowing. A batch that does
not fit raises `QueueFull` and stores nothing, and the caller withholds the acknowledgement
so producers slow down; nothing is dropped. The one exception: a batch larger than an
output's whole share is stored when that output holds nothing (refused, it would be refused
forever), so a bound smaller than one batch makes delivery go a batch at a time instead of
stopping, and the bound is passed by at most that batch. The dead-letter store has its own
bound; when over it, the oldest dead letters are evicted and counted in
``dead_letters_evicted``, the only way a record can leave without delivery. The file itself
does not shrink: SQLite reuses freed pages, so it stays near its high-water mark.

Counters. Record and byte totals, seqs, duplicates and evictions live in ``kind_state`` and
change in the same transaction as the rows they describe, so they are exact, cheap to read
and survive restarts.

Versioning. The format version is ``PRAGMA user_version`` (see :mod:`.schema`). A file from
an older shipper is migrated forward on open (version 1's per-record rows become batch rows);
version 2's rows, whose bodies are not compressed, are read as they are; a file from a
newer one is refused with `QueueFormatError` and left untouched; a damaged file
raises `QueueCorruptError` naming the path, and is never deleted.

Threads and processes. The class is synchronous and not thread-safe: the asyncio app calls it
from one dedicated worker thread (``check_same_thread=False`` allows that thread to differ
from the creator). Only the dedup coverage is cached in Python; it changes only through
`append`, which one shipper process calls. Another process (e.g. the dead-letter command)
may open the same file to list or replay dead letters; SQLite's locking serialises writers,
waiting up to ``busy_timeout_s``. The file must be on a local filesystem (WAL needs shared
memory).

Time is always passed in (``now``, unix seconds); the queue never reads a clock.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Protocol

import zstandard

from kk_common import sqlite_files
from kk_common.envelope import merge_ranges
from kk_shipper.storage.bodies import BodiesCodec
from kk_shipper.storage.coverage import Coverage, Ranges, SourceKey
from kk_shipper.storage.errors import QueueCorruptError, QueueError, QueueFull, translate
from kk_shipper.storage.model import AppendResult, DeadLetter, KindStats, QueueStats
from kk_shipper.storage.schema import KINDS, MAX_BATCH_RECORDS, check_header, ensure_schema
from kk_shipper.types import Kind, QueuedRecord, RecordRun

__all__ = [
    "MAX_REASON_CHARS",
    "RECORD_OVERHEAD_BYTES",
    "DurableQueue",
    "NewRecords",
    "record_size",
]

RECORD_OVERHEAD_BYTES = 64
"""Accounted per record on top of body and id: its share of the row, bitmap and bookkeeping."""

MAX_REASON_CHARS = 1000
"""Longer dead-letter reasons are truncated (a receiver's error body can be large)."""

OTHER_OUTPUT_RESERVE = 0.10
"""Share of ``max_bytes`` one output can never fill: kept for the other output."""

COVERAGE_PRUNE_INTERVAL_S = 60.0
"""How often (in ``now`` time) `append` looks for dedup sources to forget."""

# One lane is found and ordered by its index (batches_by_lane) and its lane is the
# parameter, not read from the row, where ADD COLUMN put it after the large columns. Both
# lanes (tests, tools) go by the seq index and read it from the row, bodies and all.
_READ_LANE = (
    "SELECT first_seq, count, done, queued_at, ?1, ids, bodies FROM batches"
    " INDEXED BY batches_by_lane WHERE kind = ?2 AND catch_up = ?1 AND first_seq > ?3"
    " AND first_seq + count > ?4 ORDER BY first_seq"
)
_READ_BOTH_LANES = (
    "SELECT first_seq, count, done, queued_at, catch_up, ids, bodies FROM batches"
    " WHERE kind = ? AND first_seq > ? AND first_seq + count > ? ORDER BY first_seq"
)
_LIST_DEAD_LETTERS = (
    "SELECT kind, record_id, body, reason, dead_lettered_at FROM dead_letters"
    " WHERE :kind IS NULL OR kind = :kind ORDER BY id LIMIT :limit"
)
# The first dead letter of each id (a record dead-lettered twice is replayed once).
_REPLAY_CANDIDATES = """
SELECT d.id, d.record_id, d.body FROM dead_letters AS d
 WHERE d.kind = :kind
   AND d.id = (SELECT min(e.id) FROM dead_letters AS e
                WHERE e.kind = :kind AND e.record_id = d.record_id)
 ORDER BY d.id
"""


class NewRecords(Protocol):
    """A batch to `DurableQueue.append`: `kk_common.envelope.EncodedRecords` is one.

    ``bodies`` are the records' JSON, each followed by ``\\n``; ``positions`` and
    ``claims`` index ``sources`` (see coverage.py for what they promise).
    """

    @property
    def ids(self) -> Sequence[str]: ...
    @property
    def bodies(self) -> bytes: ...
    @property
    def sources(self) -> Sequence[str]: ...
    @property
    def positions(self) -> Sequence[tuple[int, int]]: ...
    @property
    def claims(self) -> Sequence[tuple[int, int, int]]: ...

    # An optional ``catch_up: bool`` (the batch's lane) is read with getattr: absent = live.


@dataclass(frozen=True, slots=True)
class _Unpositioned:
    """Records with no position: stored as they are, never dropped as duplicates."""

    ids: Sequence[str]
    bodies: bytes
    sources: Sequence[str] = ()
    positions: Sequence[tuple[int, int]] = ()
    claims: Sequence[tuple[int, int, int]] = ()


def record_size(record_id: str, body: bytes) -> int:
    """The bytes a record counts against the bounds: body + UTF-8 id + fixed overhead."""
    return len(body) + len(record_id.encode()) + RECORD_OVERHEAD_BYTES


def _batch_size(ids_text: str, bodies: bytes, count: int) -> int:
    """The sum of `record_size` over a batch, from its joined forms (no per-record work)."""
    # Joined ids have count - 1 separators; bodies have count newlines.
    id_bytes = len(ids_text.encode()) - (count - 1) if count else 0
    return len(bodies) - count + id_bytes + count * RECORD_OVERHEAD_BYTES


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")


def _split_bodies(bodies: bytes) -> list[bytes]:
    return bodies[:-1].split(b"\n") if bodies else []


def _spans(seqs: Iterable[int | range]) -> list[tuple[int, int]]:
    """``seqs`` (single seqs and ranges of them, any order) as sorted, merged, non-empty
    ``(start, end)`` spans, end exclusive."""
    return merge_ranges(
        (item.start, item.stop) if isinstance(item, range) else (int(item), int(item) + 1)
        for item in seqs
        if not isinstance(item, range) or item.step == 1
    )


def _pending_spans(done: bytes | None, start: int, count: int) -> list[tuple[int, int]]:
    """The ``(begin, end)`` index spans of a row's unfinished records from ``start`` on."""
    if start >= count:
        return []
    if done is None:
        return [(start, count)]
    # Rows with finished records are the exception (a batch split across requests, a
    # restart): a loop over their bits is fine.
    bits = int.from_bytes(done, "little")
    spans: list[tuple[int, int]] = []
    begin = None
    for index in range(start, count):
        if bits >> index & 1:
            if begin is not None:
                spans.append((begin, index))
                begin = None
        elif begin is None:
            begin = index
    if begin is not None:
        spans.append((begin, count))
    return spans


def _slice(run: RecordRun, begin: int, end: int) -> RecordRun:
    """Records ``begin`` to ``end`` (indexes, end exclusive) of ``run``."""
    if begin:
        run = run.split(begin)[1]
    if end - begin < run.count:
        run = run.split(end - begin)[0]
    return run


class _NewRow(NamedTuple):
    """A `batches` row to insert: joined ids and bodies, their count and accounted size."""

    ids_text: str
    bodies: bytes
    count: int
    size: int


def _new_rows(ids: Sequence[str], bodies: Sequence[bytes] | bytes) -> list[_NewRow]:
    """Records as rows of at most `MAX_BATCH_RECORDS`, each joined and sized once.

    ``bodies`` is either the joined form (each record followed by a newline: a whole batch
    is stored without being split) or a list (compact JSON has no newline; a stray one,
    which could only be whitespace, becomes a space so the record stays one line).
    """
    count = len(ids)
    if isinstance(bodies, bytes) and count <= MAX_BATCH_RECORDS:
        chunks = [(ids, bodies)]
    else:
        body_list = (
            _split_bodies(bodies)
            if isinstance(bodies, bytes)
            else [body.replace(b"\n", b" ") for body in bodies]
        )
        chunks = [
            (
                ids[start : start + MAX_BATCH_RECORDS],
                b"".join(b + b"\n" for b in body_list[start : start + MAX_BATCH_RECORDS]),
            )
            for start in range(0, count, MAX_BATCH_RECORDS)
        ]
    rows = []
    for chunk_ids, chunk_bodies in chunks:
        ids_text = "\n".join(chunk_ids)
        n = len(chunk_ids)
        rows.append(_NewRow(ids_text, chunk_bodies, n, _batch_size(ids_text, chunk_bodies, n)))
    return rows


class DurableQueue:
    """A bounded, deduplicating, versioned on-disk queue with a dead-letter store.

    Args:
        path: the database file (its directory is created if missing).
        max_bytes: bound on queued bytes, all outputs together (`record_size` accounting).
        other_output_reserve: share of ``max_bytes`` one output may not fill (kept for the
            other output); 0 lets one output use the whole queue.
        dedup_window_s: how long a source's stored ranges keep re-sent records out.
        dedup_max_sources: at most this many sources are remembered for dedup (the least
            recently stored-to forgotten first), whatever their age.
        dead_letter_max_bytes: bound on the dead-letter store; the oldest are evicted beyond.
        busy_timeout_s: how long to wait for another process holding the write lock.

    Raises:
        QueueFormatError: the file was written by a newer shipper or is not a queue.
        QueueCorruptError: the file is damaged or not an SQLite database.
        QueueError: any other failure to open (e.g. permission denied).

    See the module docstring for durability, dedup and threading guarantees.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 1 << 30,
        dedup_window_s: float = 3600.0,
        dedup_max_sources: int = 100_000,
        dead_letter_max_bytes: int = 100 * 1000 * 1000,
        busy_timeout_s: float = 5.0,
        other_output_reserve: float = OTHER_OUTPUT_RESERVE,
    ) -> None:
        if not 0 <= other_output_reserve < 1:
            raise ValueError("other_output_reserve must be in [0, 1)")
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if dedup_window_s < 0 or dedup_max_sources < 1 or dead_letter_max_bytes < 0:
            raise ValueError(
                "dedup_window_s, dead_letter_max_bytes must be >= 0 and dedup_max_sources >= 1"
            )
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.output_share_bytes = max_bytes - int(max_bytes * other_output_reserve)
        self.dedup_window_s = dedup_window_s
        self.dead_letter_max_bytes = dead_letter_max_bytes
        self.coverage = Coverage(window_s=dedup_window_s, max_sources=dedup_max_sources)
        self._bodies = BodiesCodec()
        self._next_prune_at: float | None = None
        self._conn: sqlite3.Connection | None = None
        try:
            sqlite_files.make_private(self.path)
        except OSError as exc:
            raise QueueError(f"durable queue {self.path}: {exc}", path=self.path) from exc
        self._conn = self._open(busy_timeout_s)
        self._load_coverage()

    def _open(self, busy_timeout_s: float) -> sqlite3.Connection:
        return sqlite_files.connect(
            self.path,
            busy_timeout_s=busy_timeout_s,
            translate=lambda exc: translate(exc, self.path),
            prepare=self._prepare,
        )

    def _prepare(self, conn: sqlite3.Connection) -> None:
        path = self.path
        # Read-only checks first: a newer or foreign file must not be touched, and even
        # switching the journal mode would write to its header.
        check_header(conn, path)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise QueueError(f"durable queue {path}: cannot use WAL (got {mode})", path=path)
        conn.execute("PRAGMA synchronous = FULL")  # per connection, not persisted
        # Truncate the WAL after checkpoints so one large batch doesn't leave it big.
        conn.execute("PRAGMA journal_size_limit = 67108864")
        ensure_schema(conn, path)

    def _load_coverage(self) -> None:
        with self._transaction(write=False) as conn:
            for kind, source, ranges, touched_at in conn.execute(
                "SELECT kind, source, ranges, touched_at FROM coverage"
            ):
                self.coverage.load((kind, source), Ranges.loads(ranges), touched_at)
        self.coverage.sort_loaded()

    # -- plumbing ------------------------------------------------------------------------

    def _transaction(self, *, write: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        """One transaction; sqlite3 errors leave as `QueueError` after a rollback."""
        conn = self._conn
        if conn is None:
            raise QueueError(f"durable queue {self.path} is closed", path=self.path)
        return sqlite_files.transaction(
            conn, write=write, translate=lambda exc: translate(exc, self.path)
        )

    def _unpack(self, stored: bytes) -> bytes:
        """A row's bodies as stored (bodies.py), damage translated like SQLite's."""
        try:
            return self._bodies.unpack(stored)
        except zstandard.ZstdError as exc:
            raise QueueCorruptError(
                f"durable queue {self.path}: a stored batch does not decompress ({exc}); "
                "the file was left untouched: move it aside to start with an empty queue",
                path=self.path,
            ) from exc

    def _used_bytes(self, conn: sqlite3.Connection) -> int:
        return int(
            conn.execute("SELECT coalesce(sum(queued_bytes), 0) FROM kind_state").fetchone()[0]
        )

    def _check_room(self, conn: sqlite3.Connection, kind: Kind, count: int, size: int) -> None:
        """Raise `QueueFull` unless ``size`` more bytes of ``kind`` fit."""
        kind_used = conn.execute(
            "SELECT queued_bytes FROM kind_state WHERE kind = ?", (kind,)
        ).fetchone()[0]
        if kind_used == 0 and size > self.output_share_bytes:
            # Larger than the output's whole share, it could never fit: refusing it would
            # stop the output for good (the producer re-sends it forever and nothing queued
            # can make room). Stored alone, it goes through one batch at a time.
            return
        used = self._used_bytes(conn)
        if used + size > self.max_bytes:
            raise QueueFull(
                f"durable queue {self.path} is full: {count} {kind} records need "
                f"{size} bytes, {used} of {self.max_bytes} in use",
                path=self.path,
                reason="max_bytes",
                needed_bytes=size,
                used_bytes=used,
                max_bytes=self.max_bytes,
            )
        share = self.output_share_bytes
        if kind_used + size > share:
            # One stalled output (say, metrics) must not take the space the other
            # needs to keep flowing: each output may fill only its share.
            raise QueueFull(
                f"durable queue {self.path}: the {kind} output holds {kind_used} bytes "
                f"and may hold {share} (the rest is kept for the other output)",
                path=self.path,
                reason="output_share",
                needed_bytes=size,
                used_bytes=used,
                max_bytes=self.max_bytes,
            )

    def _insert_rows(
        self,
        conn: sqlite3.Connection,
        kind: Kind,
        rows: Sequence[_NewRow],
        now: float,
        *,
        catch_up: bool = False,
    ) -> list[RecordRun]:
        """Insert ``rows`` after the last seq of ``kind``, in the lane ``catch_up``, and
        count them; returns them as runs."""
        last_seq = conn.execute(
            "SELECT last_seq FROM kind_state WHERE kind = ?", (kind,)
        ).fetchone()[0]
        params = []
        runs = []
        for row in rows:
            params.append(
                (
                    *(kind, last_seq + 1, row.count, row.count, row.size, now),
                    *(row.ids_text, self._bodies.pack(row.bodies), int(catch_up)),
                )
            )
            runs.append(RecordRun(last_seq + 1, row.count, row.ids_text, row.bodies, now, catch_up))
            last_seq += row.count
        conn.executemany(
            "INSERT INTO batches (kind, first_seq, count, remaining, size, queued_at,"
            " ids, bodies, catch_up) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params,
        )
        conn.execute(
            "UPDATE kind_state SET last_seq = ?, queued_records = queued_records + ?,"
            " queued_bytes = queued_bytes + ? WHERE kind = ?",
            (last_seq, sum(row.count for row in rows), sum(row.size for row in rows), kind),
        )
        return runs

    def _prune_coverage(
        self, conn: sqlite3.Connection, now: float, arriving: Iterable[SourceKey]
    ) -> list[SourceKey]:
        """Forget expired dedup sources (rows now; memory after the commit): by age at most
        every `COVERAGE_PRUNE_INTERVAL_S`, by count whenever the bound would be passed."""
        arriving = list(arriving)
        over_bound = len(self.coverage) + len(arriving) > self.coverage.max_sources
        if not over_bound and self._next_prune_at is not None and now < self._next_prune_at:
            return []
        self._next_prune_at = now + COVERAGE_PRUNE_INTERVAL_S
        gone = self.coverage.expired(now, arriving)
        conn.executemany("DELETE FROM coverage WHERE kind = ? AND source = ?", gone)
        return gone

    def _evict_dead_letters(self, conn: sqlite3.Connection) -> None:
        """Evict the oldest dead letters (any output) until the store is within its bound."""
        total = conn.execute(
            "SELECT coalesce(sum(dead_letter_bytes), 0) FROM kind_state"
        ).fetchone()[0]
        excess = total - self.dead_letter_max_bytes
        if excess <= 0:
            return
        freed = 0
        last_id = None
        evicted: dict[str, list[int]] = {}  # kind -> [count, bytes]
        cur = conn.execute("SELECT id, kind, stored_size FROM dead_letters ORDER BY id")
        try:
            for row_id, kind, stored_size in cur:
                last_id = row_id
                freed += stored_size
                tally = evicted.setdefault(kind, [0, 0])
                tally[0] += 1
                tally[1] += stored_size
                if freed >= excess:
                    break
        finally:
            cur.close()
        if last_id is None:
            return
        conn.execute("DELETE FROM dead_letters WHERE id <= ?", (last_id,))
        conn.executemany(
            "UPDATE kind_state SET dead_letters = dead_letters - ?,"
            " dead_letter_bytes = dead_letter_bytes - ?,"
            " dead_letters_evicted = dead_letters_evicted + ? WHERE kind = ?",
            [(n, size, n, kind) for kind, (n, size) in evicted.items()],
        )

    # -- public API ----------------------------------------------------------------------

    def append(
        self, kind: Kind, records: NewRecords | Sequence[tuple[str, bytes]], *, now: float
    ) -> AppendResult:
        """Queue a batch atomically; durable when this returns.

        ``records`` is a `NewRecords` batch (as producers send it; its ``catch_up``, if it
        has one, is its lane), or plain ``(record_id, body)`` pairs, which have no position,
        are never dropped as duplicates and are live. A record whose position the stored
        ranges of its source already cover is not stored and is counted as a duplicate; the
        batch's claims are then added.

        Raises:
            QueueFull: the new records would take the queue past ``max_bytes`` (or the disk
                is full). Nothing was stored and no duplicate was counted: withhold the
                acknowledgement; the producer re-sends later.
        """
        _check_kind(kind)
        batch: NewRecords
        if isinstance(records, Sequence):
            batch = _Unpositioned(
                ids=[record_id for record_id, _ in records],
                bodies=b"".join(body.replace(b"\n", b" ") + b"\n" for _, body in records),
            )
        else:
            batch = records
        count = len(batch.ids)
        if not count:
            return AppendResult(stored=0, duplicates=0)
        keys = [(kind, source) for source in batch.sources]
        ids: Sequence[str] = batch.ids
        bodies: Sequence[bytes] | bytes = batch.bodies
        covered = self.coverage.covered(keys, batch.positions)
        if covered:
            dropped = set(covered)
            keep = [i for i in range(count) if i not in dropped]
            body_list = _split_bodies(batch.bodies)
            ids = [ids[i] for i in keep]
            bodies = [body_list[i] for i in keep]
        changed = self.coverage.merged((keys[s], start, end) for s, start, end in batch.claims)
        stored = len(ids)
        rows = _new_rows(ids, bodies) if stored else []
        runs: list[RecordRun] = []
        with self._transaction() as conn:
            gone = self._prune_coverage(conn, now, changed)
            if rows:
                self._check_room(conn, kind, stored, sum(row.size for row in rows))
                runs = self._insert_rows(
                    conn, kind, rows, now, catch_up=bool(getattr(batch, "catch_up", False))
                )
            conn.executemany(
                "INSERT INTO coverage (kind, source, ranges, touched_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (kind, source) DO UPDATE"
                " SET ranges = excluded.ranges, touched_at = excluded.touched_at",
                [(k, source, ranges.dumps(), now) for (k, source), ranges in changed.items()],
            )
            if covered:
                conn.execute(
                    "UPDATE kind_state SET duplicates_dropped = duplicates_dropped + ?"
                    " WHERE kind = ?",
                    (len(covered), kind),
                )
        self.coverage.forget(gone)
        self.coverage.install(changed, now)
        return AppendResult(stored=stored, duplicates=len(covered), runs=tuple(runs))

    def read_runs(
        self,
        kind: Kind,
        *,
        after_seq: int,
        limit: int,
        whole_rows: bool = False,
        catch_up: bool | None = None,
    ) -> list[RecordRun]:
        """Queued records of ``kind`` with ``seq > after_seq``, ascending, at most ``limit``,
        as runs of consecutive records of one stored batch (their ids and bodies as stored).
        ``catch_up`` reads one lane (False: live, True: catch-up; ``after_seq`` is then a
        position in that lane); None reads both, in seq order.

        A batch nothing of which was finished is one run, read and handed over as the two
        strings the row holds: no work per record. With ``whole_rows``, the batch at the
        limit is not cut if the whole of it stays within twice the limit (cutting it costs
        a scan, and its rest would be cut again by the next read); delivery reads so.
        Reading does not remove anything; `complete` or `dead_letter` does.
        """
        _check_kind(kind)
        if limit <= 0:
            return []
        stretch = limit  # how far whole_rows may go past the limit
        out: list[RecordRun] = []
        with self._transaction(write=False) as conn:
            # Rows wholly at or before after_seq (in flight, not yet completed) are skipped
            # on their small leading columns: their ids and bodies are never loaded.
            if catch_up is None:
                cursor = conn.execute(
                    _READ_BOTH_LANES, (kind, after_seq - MAX_BATCH_RECORDS, after_seq + 1)
                )
            else:
                cursor = conn.execute(
                    _READ_LANE, (int(catch_up), kind, after_seq - MAX_BATCH_RECORDS, after_seq + 1)
                )
            try:
                for first_seq, count, done, queued_at, lane, ids, bodies in cursor:
                    spans = _pending_spans(done, max(0, after_seq - first_seq + 1), count)
                    if not spans:
                        continue  # what is left of it is in flight: nothing to decompress
                    whole = RecordRun(
                        first_seq, count, ids, self._unpack(bodies), queued_at, bool(lane)
                    )
                    for begin, end in spans:
                        if not (whole_rows and end - begin <= limit + stretch):
                            end = min(end, begin + limit)
                        out.append(_slice(whole, begin, end))
                        limit -= end - begin
                        if limit <= 0:
                            return out
            finally:
                cursor.close()
        return out

    def read(self, kind: Kind, *, after_seq: int, limit: int) -> list[QueuedRecord]:
        """Like `read_runs`, one `QueuedRecord` per record."""
        return [
            record
            for run in self.read_runs(kind, after_seq=after_seq, limit=limit)
            for record in run.records()
        ]

    def _finish(
        self, conn: sqlite3.Connection, kind: Kind, seqs: Iterable[int | range], *, keep: bool
    ) -> tuple[int, list[tuple[str, bytes, float]]]:
        """Mark records finished; return how many were still queued and, with ``keep``,
        their ``(id, body, queued_at)`` (for the dead-letter store).

        Works on ranges of seqs and a row's bitmap as one integer: finishing a whole batch
        costs the same for one record or thousands.
        """
        spans = _spans(seqs)
        if not spans:
            return 0, []
        rows = conn.execute(
            "SELECT rowid, first_seq, count, remaining, size, done, queued_at FROM batches"
            " WHERE kind = ? AND first_seq > ? AND first_seq < ? ORDER BY first_seq",
            (kind, spans[0][0] - MAX_BATCH_RECORDS, spans[-1][1]),
        ).fetchall()
        finished = freed = 0
        kept: list[tuple[str, bytes, float]] = []
        at = 0  # spans before this one end before the current row
        for rowid, first_seq, count, remaining, size, done, queued_at in rows:
            end_seq = first_seq + count
            while at < len(spans) and spans[at][1] <= first_seq:
                at += 1
            mask = 0
            for start, end in itertools.islice(spans, at, None):
                if start >= end_seq:
                    break
                low, high = max(start, first_seq) - first_seq, min(end, end_seq) - first_seq
                mask |= ((1 << (high - low)) - 1) << low
            done_bits = 0 if done is None else int.from_bytes(done, "little")
            fresh = mask & ~done_bits
            if not fresh:
                continue
            fresh_count = fresh.bit_count()
            if keep:
                ids_text, bodies = conn.execute(
                    "SELECT ids, bodies FROM batches WHERE rowid = ?", (rowid,)
                ).fetchone()
                ids = ids_text.split("\n")
                body_list = _split_bodies(self._unpack(bodies))
                kept.extend(
                    (ids[i], body_list[i], queued_at) for i in range(count) if fresh >> i & 1
                )
            finished += fresh_count
            remaining -= fresh_count
            if remaining:
                conn.execute(
                    "UPDATE batches SET remaining = ?, done = ? WHERE rowid = ?",
                    (remaining, (done_bits | fresh).to_bytes((count + 7) // 8, "little"), rowid),
                )
            else:
                conn.execute("DELETE FROM batches WHERE rowid = ?", (rowid,))
                freed += size
        if finished:
            conn.execute(
                "UPDATE kind_state SET queued_records = queued_records - ?,"
                " queued_bytes = queued_bytes - ? WHERE kind = ?",
                (finished, freed, kind),
            )
        return finished, kept

    def complete(self, kind: Kind, seqs: Iterable[int | range], *, now: float) -> None:
        """Mark records delivered: they leave the queue (their row when its last one does).

        ``seqs`` are seqs or ranges of them (a `RecordRun`'s ``seqs``), in any order; seqs
        not queued (already completed, dead-lettered or never assigned) are ignored. ``now``
        is kept for symmetry with the other writers.
        """
        _check_kind(kind)
        with self._transaction() as conn:
            self._finish(conn, kind, seqs, keep=False)

    def dead_letter(
        self, kind: Kind, seqs: Iterable[int | range], *, reason: str, now: float
    ) -> int:
        """Move queued records to the dead-letter store with ``reason``; return how many moved.

        ``seqs`` as for `complete`; seqs not queued are ignored. If the store then exceeds
        ``dead_letter_max_bytes``, its oldest entries (of any output, possibly some just
        moved) are evicted and counted in ``dead_letters_evicted``; compare `stats` before
        and after to log them.
        """
        _check_kind(kind)
        reason = reason[:MAX_REASON_CHARS]
        reason_bytes = len(reason.encode())
        with self._transaction() as conn:
            moved, kept = self._finish(conn, kind, seqs, keep=True)
            if not moved:
                return 0
            rows = []
            for record_id, body, queued_at in kept:
                size = record_size(record_id, body)
                rows.append(
                    (kind, record_id, body, size, size + reason_bytes, reason, queued_at, now)
                )
            conn.executemany(
                "INSERT INTO dead_letters (kind, record_id, body, size, stored_size, reason,"
                " queued_at, dead_lettered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute(
                "UPDATE kind_state SET dead_letters = dead_letters + ?,"
                " dead_letter_bytes = dead_letter_bytes + ? WHERE kind = ?",
                (moved, sum(row[4] for row in rows), kind),
            )
            self._evict_dead_letters(conn)
        return moved

    def dead_letters(self, kind: Kind | None = None, *, limit: int = 1000) -> list[DeadLetter]:
        """List dead letters, oldest first, of one output or all."""
        if kind is not None:
            _check_kind(kind)
        with self._transaction(write=False) as conn:
            rows = conn.execute(_LIST_DEAD_LETTERS, {"kind": kind, "limit": limit}).fetchall()
        return [DeadLetter(k, rid, bytes(body), reason, at) for k, rid, body, reason, at in rows]

    def replay_dead_letters(
        self, kind: Kind | None = None, *, now: float, limit: int | None = None
    ) -> int:
        """Put dead letters (of one output, or all) back at the end of their queues.

        They get new seqs, in dead-lettering order, and ``queued_at = now``; return how many
        were queued. A record dead-lettered more than once is replayed once (the others are
        counted as duplicates). Replayed records have no position, so the queue's dedup does
        not drop them; if a copy was delivered meanwhile, the receiver drops it by id. At
        most ``limit`` records go per call (the oldest), so a caller can replay a large store
        in short transactions; each call is all or nothing: raises `QueueFull`, changing
        nothing, if they don't fit under max_bytes.
        """
        if kind is not None:
            _check_kind(kind)
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        kinds = KINDS if kind is None else (kind,)
        replayed = 0
        with self._transaction() as conn:
            for k in kinds:
                room = None if limit is None else limit - replayed
                if room == 0:
                    break
                held = conn.execute(
                    "SELECT dead_letters FROM kind_state WHERE kind = ?", (k,)
                ).fetchone()[0]
                if not held:
                    continue
                query = _REPLAY_CANDIDATES + ("" if room is None else f" LIMIT {int(room)}")
                letters = conn.execute(query, {"kind": k}).fetchall()
                rows = _new_rows([row[1] for row in letters], [bytes(row[2]) for row in letters])
                self._check_room(conn, k, len(letters), sum(row.size for row in rows))
                self._insert_rows(conn, k, rows, now)
                # Every copy of a replayed record goes; the others stay dead letters.
                conn.execute("CREATE TEMP TABLE IF NOT EXISTS replaying (record_id TEXT)")
                conn.execute("DELETE FROM replaying")
                conn.executemany(
                    "INSERT INTO replaying (record_id) VALUES (?)", [(row[1],) for row in letters]
                )
                removed, removed_bytes = conn.execute(
                    "SELECT count(*), coalesce(sum(stored_size), 0) FROM dead_letters"
                    " WHERE kind = ? AND record_id IN (SELECT record_id FROM replaying)",
                    (k,),
                ).fetchone()
                conn.execute(
                    "DELETE FROM dead_letters"
                    " WHERE kind = ? AND record_id IN (SELECT record_id FROM replaying)",
                    (k,),
                )
                conn.execute(
                    "UPDATE kind_state SET duplicates_dropped = duplicates_dropped + ?,"
                    " dead_letters = dead_letters - ?,"
                    " dead_letter_bytes = dead_letter_bytes - ? WHERE kind = ?",
                    (removed - len(letters), removed, removed_bytes, k),
                )
                replayed += len(letters)
        return replayed

    def stats(self, *, now: float) -> QueueStats:
        """A consistent snapshot of sizes and persisted counters."""
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT kind, last_seq, queued_records, queued_bytes,"
                " duplicates_dropped, dead_letters, dead_letter_bytes, dead_letters_evicted"
                " FROM kind_state"
            ).fetchall()
            kinds: dict[Kind, KindStats] = {}
            for kind, last_seq, records, qbytes, dups, dls, dl_bytes, evicted in rows:
                if kind not in KINDS:
                    continue
                # The lowest seq is the oldest arrival: seqs are assigned in arrival order.
                oldest_row = conn.execute(
                    "SELECT queued_at FROM batches WHERE kind = ? ORDER BY first_seq LIMIT 1",
                    (kind,),
                ).fetchone()
                oldest = None if oldest_row is None else float(oldest_row[0])
                kinds[kind] = KindStats(
                    queued_records=records,
                    queued_bytes=qbytes,
                    oldest_queued_at=oldest,
                    oldest_age_s=None if oldest is None else now - oldest,
                    last_seq=last_seq,
                    dedup_sources=self.coverage.sources(kind),
                    duplicates_dropped=dups,
                    dead_letters=dls,
                    dead_letter_bytes=dl_bytes,
                    dead_letters_evicted=evicted,
                )
        return QueueStats(
            used_bytes=sum(k.queued_bytes for k in kinds.values()),
            max_bytes=self.max_bytes,
            dead_letter_bytes=sum(k.dead_letter_bytes for k in kinds.values()),
            dead_letter_max_bytes=self.dead_letter_max_bytes,
            kinds=kinds,
        )

    def verify(self) -> list[str]:
        """Check the file's integrity and recount every counter; return the problems found.

        An empty list means healthy. This scans everything (``PRAGMA quick_check`` and full
        counts), so it is for an operator command and for tests, never the delivery path.
        """
        with self._transaction(write=False) as conn:
            problems = [
                f"quick_check: {row[0]}"
                for row in conn.execute("PRAGMA quick_check")
                if row[0] != "ok"
            ]
            for kind in KINDS:
                state = conn.execute(
                    "SELECT last_seq, queued_records, queued_bytes,"
                    " dead_letters, dead_letter_bytes FROM kind_state WHERE kind = ?",
                    (kind,),
                ).fetchone()
                actual = (
                    *conn.execute(
                        "SELECT coalesce(max(first_seq + count - 1), 0),"
                        " coalesce(sum(remaining), 0), coalesce(sum(size), 0)"
                        " FROM batches WHERE kind = ?",
                        (kind,),
                    ).fetchone(),
                    *conn.execute(
                        "SELECT count(*), coalesce(sum(stored_size), 0) FROM dead_letters"
                        " WHERE kind = ?",
                        (kind,),
                    ).fetchone(),
                )
                names = ("queued_records", "queued_bytes", "dead_letters", "dead_letter_bytes")
                for name, kept, counted in zip(names, state[1:], actual[1:], strict=True):
                    if kept != counted:
                        problems.append(f"{kind}.{name}: counter {kept}, actual {counted}")
                if state[0] < actual[0]:
                    problems.append(f"{kind}.last_seq {state[0]} < highest queued seq {actual[0]}")
                for remaining, done, count in conn.execute(
                    "SELECT remaining, done, count FROM batches WHERE kind = ?", (kind,)
                ):
                    finished = 0 if done is None else int.from_bytes(done, "little").bit_count()
                    if remaining != count - finished or remaining <= 0:
                        problems.append(
                            f"{kind}: a batch row has remaining {remaining} of {count} "
                            f"with {finished} finished"
                        )
        return problems

    def close(self) -> None:
        """Close the database (idempotent). Committed data is already on disk."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from exc

    def __enter__(self) -> DurableQueue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
