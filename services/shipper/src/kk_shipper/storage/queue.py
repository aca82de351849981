"""The shipper's durable on-disk queue.

Theory of operation
===================

What it is for. The shipper acknowledges a batch to its producer (logs or metrics service)
only once the batch is in this queue, and removes a record only once a receiver has taken it
or it has been moved to the dead-letter store. Between those two points the record lives in
one SQLite file, ``<state_dir>/shipper/queue.db``, on the node's hostPath, so it survives
container restarts, pod restarts and a node losing power.

Why SQLite. It gives us, in the standard library, exactly the three things a hand-written
segment file would have to earn: atomic multi-row commits (a batch is all there or not at
all), durability on commit, and indexed lookups for dedup without holding ids in memory. One
file holds every table, so moving a record between tables (queued -> delivered window,
queued -> dead letters) is a single transaction and can never be half done.

Durability. The journal is WAL and ``synchronous=FULL``: the WAL is fsynced at every commit,
so a committed transaction survives power loss (``NORMAL`` would only survive a process
crash). Every public method that writes is one ``BEGIN IMMEDIATE`` ... ``COMMIT`` and works
per batch (``executemany``, set-based SQL), so the fsync cost is paid once per batch, not per
record. When `append` returns, the batch is on disk; when it raises, nothing of it is.

Queue positions. Each output (`Kind`: logs, metrics) has its own sequence numbers
(``kind_state.last_seq``; never reused, even after deletes or a restart). The caller keeps a
read position per output and may have several requests in flight: `read` returns records
after a seq, and `complete` / `dead_letter` accept any subset of seqs in any order. A slow
metrics receiver therefore never holds back logs delivery.

Dedup. A record id is dropped (and counted in ``duplicates_dropped``) when it is already
queued for its output, was delivered within the window, or repeats within the same batch.
The delivered window is the ``delivered`` table: `complete` adds ids, and each call prunes it,
first by age (older than ``dedup_window_s``) and then by count (the oldest beyond
``dedup_max_ids``, per output), both through the ``(kind, delivered_at)`` index, so pruning
touches only the rows it removes. A batch is checked with one indexed query; memory is
bounded by the batch, never by the window. A dead-lettered record was never delivered, so
its id is not in the window and a replay is not deduped away.

Bounds. Sizes are accounted, not measured from the file: `record_size` is the body, the id
and a fixed `RECORD_OVERHEAD_BYTES` for the row and its index entries (so a flood of tiny
records is bounded too). Queued bytes of all outputs together stay at or under
``max_bytes``, and one output may fill at most ``1 - OTHER_OUTPUT_RESERVE`` of it, so a
stalled metrics receiver never takes the space logs need to keep flowing. A batch that does
not fit raises `QueueFull` and stores nothing, and the caller withholds the acknowledgement
so producers slow down; nothing is dropped. The dead-letter
store has its own bound; when over it, the oldest dead letters are evicted and counted in
``dead_letters_evicted``, the only way a record can leave without delivery. The file itself
does not shrink: SQLite reuses freed pages, so it stays near its high-water mark.

Counters. Record and byte totals, seqs, duplicates and evictions live in ``kind_state`` and
change in the same transaction as the rows they describe, so they are exact, cheap to read
and survive restarts.

Versioning. The format version is ``PRAGMA user_version`` (see :mod:`.schema`). A file from
an older shipper is migrated forward on open; a file from a newer one is refused with
`QueueFormatError` and left untouched; a damaged file raises `QueueCorruptError` naming the
path, and is never deleted.

Threads and processes. The class is synchronous and not thread-safe: the asyncio app calls it
from one dedicated worker thread (``check_same_thread=False`` allows that thread to differ
from the creator). Nothing is cached in Python between calls, so another process (e.g. the
dead-letter command) may open the same file; SQLite's locking serialises writers, waiting up
to ``busy_timeout_s``. The file must be on a local filesystem (WAL needs shared memory).

Time is always passed in (``now``, unix seconds); the queue never reads a clock.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType

from kk_common import sqlite_files
from kk_shipper.storage.errors import QueueError, QueueFull, translate
from kk_shipper.storage.model import AppendResult, DeadLetter, KindStats, QueueStats
from kk_shipper.storage.schema import KINDS, check_header, ensure_schema
from kk_shipper.types import Kind, QueuedRecord

__all__ = ["MAX_REASON_CHARS", "RECORD_OVERHEAD_BYTES", "DurableQueue", "record_size"]

RECORD_OVERHEAD_BYTES = 64
"""Accounted per record on top of body and id: seq, timestamps, size and the index entries."""

MAX_REASON_CHARS = 1000

OTHER_OUTPUT_RESERVE = 0.10
"""Share of ``max_bytes`` one output can never fill: kept for the other output."""
"""Longer dead-letter reasons are truncated (a receiver's error body can be large)."""

# The ids of a batch that must not be queued: already queued, or delivered within the window.
# json_each turns one bound JSON array into a table, so a whole batch is one indexed query.
# The unary + keeps SQLite off the age index: scanning the whole window by age is O(window);
# probing the primary key once per id is O(batch).
_KNOWN_IDS = """
SELECT record_id FROM queue
 WHERE kind = :kind AND record_id IN (SELECT value FROM json_each(:ids))
UNION ALL
SELECT record_id FROM delivered
 WHERE kind = :kind AND record_id IN (SELECT value FROM json_each(:ids))
   AND +delivered_at > :cutoff
"""

# Queued records of one output selected by a bound JSON array of seqs (one query per batch).
_SEQS = "kind = :kind AND seq IN (SELECT value FROM json_each(:seqs))"
# SQL built only from the constants above; no caller value is ever formatted into SQL.
_SELECT_DONE = f"SELECT record_id, size FROM queue WHERE {_SEQS}"  # noqa: S608
_DELETE_SEQS = f"DELETE FROM queue WHERE {_SEQS}"  # noqa: S608
_MEASURE_SEQS = f"SELECT count(*), coalesce(sum(size), 0) FROM queue WHERE {_SEQS}"  # noqa: S608
_MOVE_TO_DEAD_LETTERS = (
    "INSERT INTO dead_letters (kind, record_id, body, size, stored_size, reason, queued_at,"  # noqa: S608
    " dead_lettered_at) SELECT kind, record_id, body, size, size + :reason_bytes, :reason,"
    " queued_at, :now FROM queue WHERE " + _SEQS + " ORDER BY seq"
)

# Dead letters that a replay puts back: the first of each id, unless that id is queued or was
# delivered within the window meanwhile (e.g. the producer re-sent it and it went through).
_REPLAY_CANDIDATES = """
SELECT d.id, d.record_id, d.body, d.size FROM dead_letters AS d
 WHERE d.kind = :kind
   AND d.id = (SELECT min(e.id) FROM dead_letters AS e
                WHERE e.kind = :kind AND e.record_id = d.record_id)
   AND NOT EXISTS (SELECT 1 FROM queue AS q WHERE q.kind = :kind AND q.record_id = d.record_id)
   AND NOT EXISTS (SELECT 1 FROM delivered AS x
                    WHERE x.kind = :kind AND x.record_id = d.record_id
                      AND +x.delivered_at > :cutoff)
"""
_MEASURE_REPLAY = f"SELECT count(*), coalesce(sum(size), 0) FROM ({_REPLAY_CANDIDATES})"  # noqa: S608
_REPLAY = (
    "INSERT INTO queue (kind, seq, record_id, body, size, queued_at)"  # noqa: S608
    " SELECT :kind, :last_seq + row_number() OVER (ORDER BY id), record_id, body, size, :now"
    " FROM (" + _REPLAY_CANDIDATES + ")"
)
_LIST_DEAD_LETTERS = (
    "SELECT kind, record_id, body, reason, dead_lettered_at FROM dead_letters"
    " WHERE :kind IS NULL OR kind = :kind ORDER BY id LIMIT :limit"
)


def record_size(record_id: str, body: bytes) -> int:
    """The bytes a record counts against the bounds: body + UTF-8 id + fixed overhead."""
    return len(body) + len(record_id.encode()) + RECORD_OVERHEAD_BYTES


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")


class DurableQueue:
    """A bounded, deduplicating, versioned on-disk queue with a dead-letter store.

    Args:
        path: the database file (its directory is created if missing).
        max_bytes: bound on queued bytes, all outputs together (`record_size` accounting).
        other_output_reserve: share of ``max_bytes`` one output may not fill (kept for the
            other output); 0 lets one output use the whole queue.
        dedup_window_s: how long a delivered id keeps a re-sent copy out of the queue.
        dedup_max_ids: at most this many delivered ids are remembered per output (oldest
            forgotten first), whatever their age.
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
        dedup_max_ids: int = 1_000_000,
        dead_letter_max_bytes: int = 100 * 1000 * 1000,
        busy_timeout_s: float = 5.0,
        other_output_reserve: float = OTHER_OUTPUT_RESERVE,
    ) -> None:
        if not 0 <= other_output_reserve < 1:
            raise ValueError("other_output_reserve must be in [0, 1)")
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if dedup_window_s < 0 or dedup_max_ids < 0 or dead_letter_max_bytes < 0:
            raise ValueError("dedup_window_s, dedup_max_ids, dead_letter_max_bytes must be >= 0")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.output_share_bytes = max_bytes - int(max_bytes * other_output_reserve)
        self.dedup_window_s = dedup_window_s
        self.dedup_max_ids = dedup_max_ids
        self.dead_letter_max_bytes = dead_letter_max_bytes
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise QueueError(f"durable queue {self.path}: {exc}", path=self.path) from exc
        self._conn = self._open(busy_timeout_s)

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
        try:
            conn.execute("SELECT count(*) FROM json_each('[]')").fetchone()
        except sqlite3.OperationalError as exc:
            raise QueueError(
                f"durable queue {path}: SQLite {sqlite3.sqlite_version} lacks the JSON "
                "functions (3.38+ has them built in)",
                path=path,
            ) from exc
        ensure_schema(conn, path)

    # -- plumbing ------------------------------------------------------------------------

    def _transaction(self, *, write: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        """One transaction; sqlite3 errors leave as `QueueError` after a rollback."""
        conn = self._conn
        if conn is None:
            raise QueueError(f"durable queue {self.path} is closed", path=self.path)
        return sqlite_files.transaction(
            conn, write=write, translate=lambda exc: translate(exc, self.path)
        )

    def _used_bytes(self, conn: sqlite3.Connection) -> int:
        return int(
            conn.execute("SELECT coalesce(sum(queued_bytes), 0) FROM kind_state").fetchone()[0]
        )

    def _prune_delivered(self, conn: sqlite3.Connection, kind: Kind, now: float) -> None:
        """Forget delivered ids older than the window, then the oldest beyond the count."""
        aged = conn.execute(
            "DELETE FROM delivered WHERE kind = ? AND delivered_at <= ?",
            (kind, now - self.dedup_window_s),
        ).rowcount
        held = conn.execute(
            "SELECT delivered_ids FROM kind_state WHERE kind = ?", (kind,)
        ).fetchone()[0]
        excess = max(0, held - aged - self.dedup_max_ids)
        if excess:
            conn.execute(
                "DELETE FROM delivered WHERE kind = :kind AND record_id IN ("
                " SELECT record_id FROM delivered WHERE kind = :kind"
                " ORDER BY delivered_at, record_id LIMIT :excess)",
                {"kind": kind, "excess": excess},
            )
        if aged or excess:
            conn.execute(
                "UPDATE kind_state SET delivered_ids = delivered_ids - ? WHERE kind = ?",
                (aged + excess, kind),
            )

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
        self, kind: Kind, records: Sequence[tuple[str, bytes]], *, now: float
    ) -> AppendResult:
        """Queue a batch of ``(record_id, body)`` atomically; durable when this returns.

        Records whose id is already queued for ``kind``, was delivered within the dedup
        window, or appears earlier in ``records`` (the first copy wins) are not stored and
        are counted as duplicates.

        Raises:
            QueueFull: the new records would take the queue past ``max_bytes`` (or the disk
                is full). Nothing was stored and no duplicate was counted: withhold the
                acknowledgement; the producer re-sends later.
        """
        _check_kind(kind)
        if not records:
            return AppendResult(stored=0, duplicates=0)
        ids = json.dumps([record_id for record_id, _ in records])
        with self._transaction() as conn:
            self._prune_delivered(conn, kind, now)
            params = {"kind": kind, "ids": ids, "cutoff": now - self.dedup_window_s}
            seen = {row[0] for row in conn.execute(_KNOWN_IDS, params)}
            last_seq = conn.execute(
                "SELECT last_seq FROM kind_state WHERE kind = ?", (kind,)
            ).fetchone()[0]
            rows: list[tuple[str, int, str, bytes, int, float]] = []
            new_bytes = 0
            for record_id, body in records:
                if record_id in seen:
                    continue
                seen.add(record_id)
                size = record_size(record_id, body)
                new_bytes += size
                rows.append((kind, last_seq + len(rows) + 1, record_id, body, size, now))
            if rows:
                used = self._used_bytes(conn)
                if used + new_bytes > self.max_bytes:
                    raise QueueFull(
                        f"durable queue {self.path} is full: {len(rows)} {kind} records need "
                        f"{new_bytes} bytes, {used} of {self.max_bytes} in use",
                        path=self.path,
                        reason="max_bytes",
                        needed_bytes=new_bytes,
                        used_bytes=used,
                        max_bytes=self.max_bytes,
                    )
                kind_used = conn.execute(
                    "SELECT queued_bytes FROM kind_state WHERE kind = ?", (kind,)
                ).fetchone()[0]
                share = self.output_share_bytes
                if kind_used + new_bytes > share:
                    # One stalled output (say, metrics) must not take the space the other
                    # needs to keep flowing: each output may fill only its share.
                    raise QueueFull(
                        f"durable queue {self.path}: the {kind} output holds {kind_used} bytes "
                        f"and may hold {share} (the rest is kept for the other output)",
                        path=self.path,
                        reason="output_share",
                        needed_bytes=new_bytes,
                        used_bytes=used,
                        max_bytes=self.max_bytes,
                    )
                conn.executemany(
                    "INSERT INTO queue (kind, seq, record_id, body, size, queued_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            duplicates = len(records) - len(rows)
            conn.execute(
                "UPDATE kind_state SET last_seq = last_seq + :n,"
                " queued_records = queued_records + :n, queued_bytes = queued_bytes + :bytes,"
                " duplicates_dropped = duplicates_dropped + :dups WHERE kind = :kind",
                {"n": len(rows), "bytes": new_bytes, "dups": duplicates, "kind": kind},
            )
        return AppendResult(stored=len(rows), duplicates=duplicates)

    def read(self, kind: Kind, *, after_seq: int, limit: int) -> list[QueuedRecord]:
        """Queued records of ``kind`` with ``seq > after_seq``, ascending, at most ``limit``.

        Reading does not remove anything; `complete` or `dead_letter` does.
        """
        _check_kind(kind)
        if limit <= 0:
            return []
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT seq, record_id, body, queued_at FROM queue"
                " WHERE kind = ? AND seq > ? ORDER BY seq LIMIT ?",
                (kind, after_seq, limit),
            ).fetchall()
        return [
            QueuedRecord(seq, rid, bytes(body), queued_at) for seq, rid, body, queued_at in rows
        ]

    def complete(self, kind: Kind, seqs: Iterable[int], *, now: float) -> None:
        """Mark records delivered: remove them and remember their ids in the dedup window.

        Seqs may be completed in any order; seqs not queued (already completed, dead-lettered
        or never assigned) are ignored.
        """
        _check_kind(kind)
        seq_list = [int(s) for s in seqs]
        if not seq_list:
            return
        params = {"kind": kind, "seqs": json.dumps(seq_list)}
        with self._transaction() as conn:
            done = conn.execute(_SELECT_DONE, params).fetchall()
            if done:
                conn.execute(_DELETE_SEQS, params)
                ids = json.dumps([record_id for record_id, _ in done])
                # The queue's dedup means these ids can't be in the window already; count
                # any that are anyway so delivered_ids stays exact.
                already = conn.execute(
                    "SELECT count(*) FROM delivered"
                    " WHERE kind = ? AND record_id IN (SELECT value FROM json_each(?))",
                    (kind, ids),
                ).fetchone()[0]
                conn.executemany(
                    "INSERT INTO delivered (kind, record_id, delivered_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (kind, record_id) DO UPDATE"
                    " SET delivered_at = excluded.delivered_at",
                    [(kind, record_id, now) for record_id, _ in done],
                )
                conn.execute(
                    "UPDATE kind_state SET queued_records = queued_records - ?,"
                    " queued_bytes = queued_bytes - ?, delivered_ids = delivered_ids + ?"
                    " WHERE kind = ?",
                    (len(done), sum(size for _, size in done), len(done) - already, kind),
                )
            self._prune_delivered(conn, kind, now)

    def dead_letter(self, kind: Kind, seqs: Iterable[int], *, reason: str, now: float) -> int:
        """Move queued records to the dead-letter store with ``reason``; return how many moved.

        Seqs not queued are ignored. If the store then exceeds ``dead_letter_max_bytes``, its
        oldest entries (of any output, possibly some just moved) are evicted and counted in
        ``dead_letters_evicted``; compare `stats` before and after to log them.
        """
        _check_kind(kind)
        seq_list = [int(s) for s in seqs]
        if not seq_list:
            return 0
        reason = reason[:MAX_REASON_CHARS]
        reason_bytes = len(reason.encode())
        params = {
            "kind": kind,
            "seqs": json.dumps(seq_list),
            "reason": reason,
            "reason_bytes": reason_bytes,
            "now": now,
        }
        with self._transaction() as conn:
            moved, moved_bytes = conn.execute(_MEASURE_SEQS, params).fetchone()
            if not moved:
                return 0
            conn.execute(_MOVE_TO_DEAD_LETTERS, params)
            conn.execute(_DELETE_SEQS, params)
            conn.execute(
                "UPDATE kind_state SET queued_records = queued_records - :n,"
                " queued_bytes = queued_bytes - :bytes, dead_letters = dead_letters + :n,"
                " dead_letter_bytes = dead_letter_bytes + :bytes + :n * :reason_bytes"
                " WHERE kind = :kind",
                {"n": moved, "bytes": moved_bytes, "reason_bytes": reason_bytes, "kind": kind},
            )
            self._evict_dead_letters(conn)
        return int(moved)

    def dead_letters(self, kind: Kind | None = None, *, limit: int = 1000) -> list[DeadLetter]:
        """List dead letters, oldest first, of one output or all."""
        if kind is not None:
            _check_kind(kind)
        with self._transaction(write=False) as conn:
            rows = conn.execute(_LIST_DEAD_LETTERS, {"kind": kind, "limit": limit}).fetchall()
        return [DeadLetter(k, rid, bytes(body), reason, at) for k, rid, body, reason, at in rows]

    def replay_dead_letters(self, kind: Kind | None = None, *, now: float) -> int:
        """Put dead letters (of one output, or all) back at the end of their queues.

        They get new seqs, in dead-lettering order, and ``queued_at = now``; return how many
        were queued. A dead letter whose id is meanwhile queued or delivered within the window
        (or repeats an earlier dead letter) is dropped as a duplicate and counted as one. All
        or nothing: raises `QueueFull`, changing nothing, if they don't fit under max_bytes.
        """
        if kind is not None:
            _check_kind(kind)
        kinds = KINDS if kind is None else (kind,)
        replayed = 0
        with self._transaction() as conn:
            for k in kinds:
                last_seq, held = conn.execute(
                    "SELECT last_seq, dead_letters FROM kind_state WHERE kind = ?", (k,)
                ).fetchone()
                if not held:
                    continue
                params = {"kind": k, "cutoff": now - self.dedup_window_s}
                n, n_bytes = conn.execute(_MEASURE_REPLAY, params).fetchone()
                used = self._used_bytes(conn)
                if used + n_bytes > self.max_bytes:
                    raise QueueFull(
                        f"durable queue {self.path}: replaying {n} {k} dead letters needs "
                        f"{n_bytes} bytes, {used} of {self.max_bytes} in use",
                        path=self.path,
                        reason="max_bytes",
                        needed_bytes=n_bytes,
                        used_bytes=used,
                        max_bytes=self.max_bytes,
                    )
                conn.execute(_REPLAY, {**params, "last_seq": last_seq, "now": now})
                conn.execute("DELETE FROM dead_letters WHERE kind = ?", (k,))
                conn.execute(
                    "UPDATE kind_state SET last_seq = last_seq + :n,"
                    " queued_records = queued_records + :n, queued_bytes = queued_bytes + :bytes,"
                    " duplicates_dropped = duplicates_dropped + :held - :n,"
                    " dead_letters = 0, dead_letter_bytes = 0 WHERE kind = :kind",
                    {"n": n, "bytes": n_bytes, "held": held, "kind": k},
                )
                replayed += n
        return replayed

    def stats(self, *, now: float) -> QueueStats:
        """A consistent snapshot of sizes and persisted counters."""
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT kind, last_seq, queued_records, queued_bytes, delivered_ids,"
                " duplicates_dropped, dead_letters, dead_letter_bytes, dead_letters_evicted"
                " FROM kind_state"
            ).fetchall()
            kinds: dict[Kind, KindStats] = {}
            for kind, last_seq, records, qbytes, delivered, dups, dls, dl_bytes, evicted in rows:
                if kind not in KINDS:
                    continue
                # The lowest seq is the oldest arrival: seqs are assigned in arrival order.
                oldest_row = conn.execute(
                    "SELECT queued_at FROM queue WHERE kind = ? ORDER BY seq LIMIT 1", (kind,)
                ).fetchone()
                oldest = None if oldest_row is None else float(oldest_row[0])
                kinds[kind] = KindStats(
                    queued_records=records,
                    queued_bytes=qbytes,
                    oldest_queued_at=oldest,
                    oldest_age_s=None if oldest is None else now - oldest,
                    last_seq=last_seq,
                    delivered_ids=delivered,
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
                    "SELECT last_seq, queued_records, queued_bytes, delivered_ids,"
                    " dead_letters, dead_letter_bytes FROM kind_state WHERE kind = ?",
                    (kind,),
                ).fetchone()
                actual = (
                    *conn.execute(
                        "SELECT coalesce(max(seq), 0), count(*), coalesce(sum(size), 0)"
                        " FROM queue WHERE kind = ?",
                        (kind,),
                    ).fetchone(),
                    conn.execute(
                        "SELECT count(*) FROM delivered WHERE kind = ?", (kind,)
                    ).fetchone()[0],
                    *conn.execute(
                        "SELECT count(*), coalesce(sum(stored_size), 0) FROM dead_letters"
                        " WHERE kind = ?",
                        (kind,),
                    ).fetchone(),
                )
                names = (
                    "queued_records",
                    "queued_bytes",
                    "delivered_ids",
                    "dead_letters",
                    "dead_letter_bytes",
                )
                for name, kept, counted in zip(names, state[1:], actual[1:], strict=True):
                    if kept != counted:
                        problems.append(f"{kind}.{name}: counter {kept}, actual {counted}")
                if state[0] < actual[0]:
                    problems.append(f"{kind}.last_seq {state[0]} < highest queued seq {actual[0]}")
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
