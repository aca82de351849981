"""Wiring of the logs service: tail -> parse -> enrich -> batch -> shipper -> commit offsets.

One asyncio loop does the work on every wake-up (inotify activity, an acknowledgement from
the shipper, a deadline, or at least every second):

1. ``Tailer.scan`` finds new, rotated, truncated and deleted files; their parsers are
   created, flushed or dropped accordingly. It runs when directory entries change
   (inotify), every ``logs.rescan_interval`` (the safety net) and when a parked file was
   not found at its path; a write only marks the file written (``Tailer.changed``).
2. While the window of unacknowledged batches to the shipper has room, ``read_round``
   reads the files marked (written, opened, left with bytes, draining) round-robin in
   bounded slices; chunks go through the file's parser, and ``Tailer.settle`` reports
   what the round found (truncations), reopens parked files that changed and closes what
   is finished.
   When the window is full the tailer is paused (open files stay open, within their grace)
   and batches already built wait in the assembler: nothing blocks, so a stop request is
   always seen. A pause that lasts (`ReadingPause`) is logged when it starts and ends and
   shown in telemetry; the shipper acknowledges held batches as soon as it has room, so
   reading resumes within about a second of the space returning.
   A write wakes the loop at once only when its lines would not just wait in the open
   batch (`LogsService.read_writes_at_once`: no batch open, a busy file written, or as
   many files written as a batch holds records); otherwise the files stay marked and are
   read when the open batch is due, and a batch those lines open counts its wait from
   when the writes were noticed. A node of slowly written files thus costs a read round
   per batch instead of one per wake-up.
3. Lines of a pod whose metadata has not arrived yet wait at most
   ``kubernetes.metadata_wait`` (held in order, their offsets not advanced), then ship with
   the path-derived fields. Excluded pods and containers produce no records, but their
   offsets advance.
4. Each file's lines are encoded into records by the file's `FileRecordEncoder`, made
   again only when the file's pod metadata (or Services, or path) changes. The records'
   JSON bytes and, per file, the parser's safe offset go into IPC batches
   (`EncodedRecords`); each batch is sent with `BatchSender`, which keeps it until the
   shipper acknowledges it (re-sending after a timeout or a shipper restart).
5. Acknowledgements feed the `CheckpointTracker`; only offsets over the contiguous prefix of
   acknowledged batches are written to the `OffsetStore`. A crash therefore re-sends (the
   shipper drops re-sent records by their positions in the file) but never skips.
6. Every file the tailer starts to read is registered in the store at once (its start
   offset), together with the tailers' look mark (`Tailer.look_mark`). After a restart,
   a rotated file the store names is read on from its offset, and one it does not name is
   read from 0 if it changed after the mark, since no earlier process can have read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import zmq.asyncio

from kk_common.config import AgentConfig
from kk_common.envelope import (
    Ack,
    ComponentStatus,
    MetricSample,
    Telemetry,
    log_record_id_prefix,
)
from kk_common.heartbeat import touch_heartbeat
from kk_common.ipc import (
    SHIPPER_INGEST_SOCKET,
    TELEMETRY_SOCKET,
    BatchSender,
    PauseEnded,
    PauseStarted,
    PendingBatch,
    PendingBatches,
    ReadingPause,
    TelemetryPublisher,
    ipc_endpoint,
)
from kk_common.jsonlog import log_event
from kk_common.memory import release_free_memory
from kk_common.process_metrics import process_samples
from kk_common.startup import secrets_of
from kk_logs import __version__
from kk_logs.batching import BatchAssembler
from kk_logs.metadata import (
    EnrichSettings,
    PathMeta,
    PodCache,
    PodMeta,
    ServiceIndex,
    Wait,
    enrich,
    is_excluded,
    metadata_or_wait,
    parse_log_path,
)
from kk_logs.offsets import CheckpointTracker, OffsetStore
from kk_logs.parsing import ParserStats, make_parser
from kk_logs.parsing.lines import Line
from kk_logs.parsing.timestamps import ReadTimeFormatter
from kk_logs.records import FileRecordEncoder
from kk_logs.tailing import (
    Chunk,
    FileClosed,
    FileIdentity,
    FileOpened,
    FileTruncated,
    Tailer,
    TailerConfig,
    changes,
)
from kk_logs.tailing.descriptors import SYSTEM_LOGS_MAX_OPEN_FILES
from kk_logs.tailing.identity import key_fingerprint

__all__ = ["LogsService", "offsets_path"]

_log = logging.getLogger("kk.logs")


CATCH_UP_BATCHES_IN_FLIGHT = 4
"""Catch-up batches (a backlog's lines) sent and not yet acknowledged, at most. The shipper
stores batches in arrival order, so a live batch waits for every batch sent before it to be
stored: a window full of catch-up batches (64) would hold a quiet file's line for a second
or more. Four keep the shipper's store busy; the next catch-up batches wait, built, in the
assembler (live batches go past them), and reading pauses when those sent and those
waiting fill the window's ``max_batches``: the memory bound is the window's, as before."""

READ_ROUND_BUDGET_BYTES = 1024 * 1024
"""Bytes read per step, all files together (each file still at most ``logs.read_slice``).

A step turns what it read into records and batches before it sends any, so this bounds the
step's working set: with 40 files in catch-up, unbounded rounds of 40 x 256 KiB held about
50,000 records at once and left the process at 200 MiB. The next round starts with the file
the budget ran out on, so every file keeps its turn."""

PAUSE_REPORT_AFTER_S = 1.0
"""A full window that lasts this long is a pause worth logging (shorter ones are routine)."""


LOOK_MARK_INTERVAL_S = 1.0
"""How often the look mark is written when no new file needs registering."""

OFFSETS_RETENTION_S = 24 * 3600.0
"""A stored offset is forgotten once its file is gone from disk, not followed, and was not
committed for this long: the store (and the maps that mirror it) stays the size of what is
on the node, not of every file ever seen."""

PRUNE_INTERVAL_S = 3600.0
"""How often stored offsets are checked against `OFFSETS_RETENTION_S`."""


def offsets_path(config: AgentConfig) -> Path:
    return Path(config.agent.state_dir) / "logs" / "offsets.db"


def process_started_at() -> float | None:
    """When this process started, in wall-clock seconds (Linux ``/proc``), else ``None``.

    The first run's look mark: a file rotated away after the process started, but before
    its first scan (interpreter start-up takes seconds on a busy node), is new."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            # Field 22, starttime in clock ticks since boot; fields after the ")" that
            # ends the command name start at field 3.
            start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="ascii") as system:
            boot = next(int(line.split()[1]) for line in system if line.startswith("btime "))
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


_PARSER_COUNTERS = tuple(f.name for f in fields(ParserStats))


@dataclass
class _File:
    """What the service knows about one tailed file."""

    key: str
    path: str
    parser: Any
    first_seen_mono: float
    path_meta: PathMeta | None
    system: bool = False
    """A node system log (plain text), not a container log."""
    held: list[tuple[list[Line], int]] = field(default_factory=list)
    """Lines waiting for pod metadata, with the safe offset after them, in order."""
    id_prefix: str = ""
    """``log_record_id_prefix(key)``: hashed once per file, not per record."""
    encoder: FileRecordEncoder | None = None
    encoded_for: object = None
    """What ``encoder``'s labels were made from; a different value means a new encoder."""


@dataclass
class LogsCounters:
    records: int = 0
    lines: int = 0
    bytes_read: int = 0
    batches_sent: int = 0
    records_acknowledged: int = 0
    batches_rejected: int = 0
    excluded_lines: int = 0
    shipped_without_metadata: int = 0


class LogsService:
    """The logs container: see the module docstring."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        context: zmq.asyncio.Context,
        metadata_source: Any = None,
        pods: PodCache | None = None,
        services: ServiceIndex | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        max_open_files: int | None = None,
    ) -> None:
        logs = config.logs
        # The pool's size comes from the descriptor limit (__main__); without one, the
        # configured size or the tailer's default.
        pool = max_open_files or logs.max_open_files or TailerConfig().max_open_files
        self.config = config
        self._clock = clock
        self._monotonic = monotonic
        self._node = config.agent.node_name
        self._kube = logs.kubernetes
        self.pods = pods if pods is not None else PodCache(logs.kubernetes.deleted_pod_retention)
        self.services = services
        self.metadata_source = metadata_source
        self._enrich = EnrichSettings.select(
            config.agent.cluster_name, self._node, logs.kubernetes.pod_metadata
        )
        self.offsets = OffsetStore(offsets_path(config))
        committed = self.offsets.load()
        self.tracker = CheckpointTracker({key: stored.offset for key, stored in committed.items()})
        self._committed = {key: stored.offset for key, stored in committed.items()}
        self._fingerprints = {key_fingerprint(key) for key in committed}
        self._next_prune_at = self._monotonic() + PRUNE_INTERVAL_S  # a duration: monotonic
        self._registrations: dict[str, tuple[int, str]] = {}
        self._look_written: float | None = None
        last_look = self.offsets.last_look()
        if last_look is None and committed:
            # A store written before look marks existed: its last commit is a safe
            # (earlier) stand-in for the last look.
            last_look = max(stored.updated_at for stored in committed.values())
        if last_look is None:
            last_look = process_started_at() or self._clock()
        self.tailer = Tailer(
            TailerConfig(
                globs=tuple(logs.paths),
                exclude=tuple(logs.exclude_paths),
                ignore_older_s=logs.ignore_older,
                slice_bytes=logs.read_slice,
                deleted_grace_s=logs.deleted_file_grace,
                max_open_files=pool,
            ),
            start_offset=self._start_offset,
            known_fingerprint=self._fingerprints.__contains__,
            last_look=last_look,
        )
        self.system_tailer = (
            Tailer(
                TailerConfig(
                    globs=tuple(logs.system_logs.paths),
                    slice_bytes=logs.read_slice,
                    deleted_grace_s=logs.deleted_file_grace,
                    max_open_files=SYSTEM_LOGS_MAX_OPEN_FILES,
                ),
                start_offset=self._start_offset,
                known_fingerprint=self._fingerprints.__contains__,
                last_look=last_look,
            )
            if logs.system_logs.enabled
            else None
        )
        self.files: dict[str, _File] = {}
        self.assembler = BatchAssembler(
            f"logs@{self._node}", max_records=logs.batch_max_records, max_wait_s=logs.batch_max_wait
        )
        ipc_dir = config.agent.ipc_dir
        self.sender = BatchSender(
            context,
            ipc_endpoint(ipc_dir, SHIPPER_INGEST_SOCKET),
            pending=PendingBatches(
                resend_after_s=config.shipper.ack_timeout,
                max_batches=logs.window.max_batches,
                max_bytes=logs.window.max_bytes,
            ),
            on_ack=self._acknowledged,
            on_refused=self._refused,
        )
        self.telemetry = TelemetryPublisher(
            context, ipc_endpoint(ipc_dir, TELEMETRY_SOCKET), secrets=secrets_of(config)
        )
        self.counters = LogsCounters()
        self.pause = ReadingPause(report_after_s=PAUSE_REPORT_AFTER_S)
        self._refusal_reported: str | None = None
        self._wake = asyncio.Event()
        self._scan_due = True
        self._with_deadline: set[str] = set()
        """Files whose parser has a deadline (a partial line waiting for its end)."""
        self._holding: set[str] = set()
        """Files whose lines wait for their pod's metadata."""
        self._retired_parser_stats: Counter[str] = Counter()
        self._read_time = ReadTimeFormatter()
        self._catch_up_in_flight: set[str] = set()
        """Ids of catch-up batches sent and not yet acknowledged."""

    # -- offsets -----------------------------------------------------------------------

    def _start_offset(self, identity: FileIdentity) -> int | None:
        return self._committed.get(identity.key)

    def _acknowledged(self, ack: Ack, batch: PendingBatch) -> None:
        if self._refusal_reported is not None and not self.sender.pending.refusals():
            log_event(_log, logging.INFO, "shipper_accepting_logs_again")
            self._refusal_reported = None
        self.tracker.acknowledged(ack.batch_id)
        self._catch_up_in_flight.discard(ack.batch_id)
        self.counters.records_acknowledged += batch.records
        self._wake.set()

    def _refused(self, ack: Ack, batch: PendingBatch) -> None:
        # Not stored: the batch stays in the window and its offsets are not committed (a
        # configuration mismatch between containers must not drop logs). Said once per
        # reason, not once per batch and minute.
        self.counters.batches_rejected += 1
        if ack.reason != self._refusal_reported:
            self._refusal_reported = ack.reason
            log_event(
                _log,
                logging.ERROR,
                "batch_rejected_by_shipper",
                batch_id=ack.batch_id,
                reason=ack.reason,
                records=batch.records,
                detail="the records are kept and offered again every minute; reading pauses "
                "when the window is full. Check that the shipper's logs output is enabled",
            )

    def commit_offsets(self) -> None:
        """Persist what the acknowledged prefix allows."""
        committable = self.tracker.committable()
        if not committable:
            return
        paths = {key: (self.files[key].path if key in self.files else "") for key in committable}
        self.offsets.commit(
            {key: (offset, paths[key]) for key, offset in committable.items()},
            self._clock(),
            reset=self.tracker.rewound(),
        )
        self.tracker.mark_committed(committable)
        self._committed.update(committable)

    def _register(self, identity: FileIdentity, path: str, offset: int) -> None:
        """Remember a file the tailer started to read, for `persist_look`."""
        if identity.key not in self._committed:
            self._registrations[identity.key] = (offset, path)
            self._committed[identity.key] = offset
            self._fingerprints.add(identity.fingerprint)

    def persist_look(self) -> None:
        """Write the new files' start offsets and the tailers' look mark, in one commit.

        The mark may lag (it is written at most every `LOOK_MARK_INTERVAL_S` unless files
        need registering): an earlier mark only makes the next process read more files."""
        tailers = [t for t in (self.tailer, self.system_tailer) if t is not None]
        marks = [t.look_mark for t in tailers]
        if any(mark is None for mark in marks):
            return
        mark = min(m for m in marks if m is not None)
        if (
            not self._registrations
            and self._look_written is not None
            and mark - self._look_written < LOOK_MARK_INTERVAL_S
        ):
            return
        self.offsets.commit(self._registrations, self._clock(), looked_at=mark)
        self._registrations.clear()
        self._look_written = mark

    def prune_offsets(self, now: float) -> list[str]:
        """Forget the stored offsets of files gone for longer than `OFFSETS_RETENTION_S`.

        A file is gone when no tailer follows it and nothing exists at its stored path (a
        rotated sibling is stored under its live file's path, so it stays while the
        container's directory does). Returns the forgotten identities."""
        followed = {
            status.key
            for tailer in (self.tailer, self.system_tailer)
            if tailer is not None
            for status in tailer.stats().files
            if status.key is not None
        }
        cutoff = now - OFFSETS_RETENTION_S
        gone = sorted(
            key
            for key, stored in self.offsets.load().items()
            if stored.updated_at < cutoff
            and key not in followed
            and not os.path.lexists(stored.path)
        )
        if gone:
            self.offsets.forget(gone)
            self.tracker.forget(gone)
            for key in gone:
                self._committed.pop(key, None)
            # The tailers hold this set's __contains__: update it in place.
            self._fingerprints.clear()
            self._fingerprints.update(key_fingerprint(key) for key in self._committed)
            log_event(_log, logging.INFO, "offsets_pruned", files=len(gone))
        return gone

    # -- reading -----------------------------------------------------------------------

    def _file(self, identity: FileIdentity, path: str, offset: int, *, system: bool) -> _File:
        known = self.files.get(identity.key)
        if known is None:
            logs = self.config.logs
            known = _File(
                key=identity.key,
                path=path,
                system=system,
                parser=make_parser(
                    "plain" if system else "auto",
                    offset=offset,
                    max_line_bytes=logs.max_line_size,
                    partial_timeout_s=logs.partial_timeout,
                ),
                first_seen_mono=self._monotonic(),
                path_meta=None if system else parse_log_path(path),
                id_prefix=log_record_id_prefix(identity.key),
            )
            self.files[identity.key] = known
        return known

    def handle_events(self, events: Iterable[object], *, system: bool = False) -> None:
        for event in events:
            match event:
                case FileOpened(identity=identity, path=path, offset=offset):
                    self._file(identity, path, offset, system=system)
                    self._register(identity, path, offset)
                    log_event(_log, logging.DEBUG, "file_opened", path=path, offset=offset)
                case FileTruncated(
                    identity=identity,
                    path=path,
                    offset=offset,
                    missed_bytes=missed,
                    copy_path=copy_path,
                ):
                    # With a copy, the identity goes on there: its parser carries on.
                    known = self.files.pop(identity.key, None) if copy_path is None else None
                    if known is not None:
                        self._finish(known)
                    log_event(
                        _log,
                        logging.WARNING if missed or copy_path is None else logging.INFO,
                        "file_truncated",
                        path=path,
                        at_offset=offset,
                        missed_bytes=missed,
                        copy_path=copy_path,
                    )
                case FileClosed(identity=identity, path=path, reason=reason, missed_bytes=missed):
                    known = self.files.pop(identity.key, None) if identity else None
                    if known is not None:
                        self._finish(known)
                    level = logging.ERROR if missed else logging.DEBUG
                    log_event(
                        _log, level, "file_closed", path=path, reason=reason, missed_bytes=missed
                    )

    def handle_chunk(self, chunk: Chunk, *, system: bool = False) -> None:
        """One chunk: see `handle_chunks`."""
        self.handle_chunks([chunk], system=system)

    def handle_chunks(
        self, chunks: Iterable[Chunk], *, system: bool = False, noticed: float | None = None
    ) -> None:
        """Parse a read round's chunks and queue their records for batching.

        On a node of slowly written files a round is one short chunk from each of many
        files, so what is the same for the whole round (the clocks, the read time's text)
        is taken once here, not per chunk. ``noticed`` (monotonic) is when the oldest
        write the round reads was noticed (`Tailer.marked_since`): a batch these lines
        open counts its wait from then, so reading late (`read_writes_at_once`) does not
        make them wait longer."""
        mono = self._monotonic()
        opened = mono if noticed is None else min(mono, noticed)
        stamp = self._read_time(self._clock())
        files = self.files
        slice_bytes = self.config.logs.read_slice
        for chunk in chunks:
            key = chunk.identity.key
            known = files.get(key) or self._file(
                chunk.identity, chunk.path, chunk.offset, system=system
            )
            known.path = chunk.path
            self.counters.bytes_read += len(chunk.data)
            parser = known.parser
            lines = parser.feed(chunk.data, chunk.offset, now=mono)
            if parser.has_partials:
                self._with_deadline.add(key)
            else:
                self._with_deadline.discard(key)
            if known.held or (lines and self._must_wait(known)):
                known.held.append((lines, parser.safe_offset))
                self._holding.add(key)
            else:
                # A full slice means the file has a backlog: its lines are catch-up, sent
                # in their own batches, which the shipper delivers after live ones.
                catch_up = len(chunk.data) >= slice_bytes
                self._ship(
                    known, lines, parser.safe_offset, mono=opened, stamp=stamp, catch_up=catch_up
                )

    def _note_deadline(self, known: _File) -> None:
        # The files whose parser holds an unterminated partial, so that a wake-up costs
        # what those few files cost, not a look at every file.
        if known.parser.next_deadline() is None:
            self._with_deadline.discard(known.key)
        else:
            self._with_deadline.add(known.key)

    def flush_partials(self) -> None:
        now = self._monotonic()
        for key in list(self._with_deadline):
            known = self.files.get(key)
            if known is None:
                self._with_deadline.discard(key)
                continue
            deadline = known.parser.next_deadline()
            if deadline is not None and deadline <= now:
                self._emit(known, known.parser.flush(now), known.parser.safe_offset)
            self._note_deadline(known)

    def _emit(self, known: _File, lines: list[Line], safe_offset: int) -> None:
        """Turn lines into records (or hold them for metadata) and queue them for a batch."""
        if known.held or (lines and self._must_wait(known)):
            known.held.append((lines, safe_offset))
            self._holding.add(known.key)
            return
        self._ship(known, lines, safe_offset)

    def _finish(self, known: _File) -> None:
        """The file will give no more bytes: ship everything it holds, metadata or not."""
        self._holding.discard(known.key)
        self._with_deadline.discard(known.key)
        held, known.held = known.held, []
        for lines, offset in held:
            self._ship(known, lines, offset)
        self._ship(known, known.parser.flush_all(), known.parser.safe_offset)
        self._retired_parser_stats.update(asdict(known.parser.stats))

    def parser_totals(self) -> Counter[str]:
        """Parser counters over every file read by this process (open and closed)."""
        totals = Counter(self._retired_parser_stats)
        # Field by field, not asdict (a deep copy per file): this runs for every file on
        # every telemetry interval.
        for known in self.files.values():
            stats = known.parser.stats
            for name in _PARSER_COUNTERS:
                totals[name] += getattr(stats, name)
        return totals

    def _must_wait(self, known: _File) -> bool:
        meta = known.path_meta
        if not self._kube.enabled or meta is None or not meta.pod_uid:
            return False
        decision = metadata_or_wait(
            self.pods,
            meta.pod_uid,
            known.first_seen_mono,
            self._monotonic(),
            self._kube.metadata_wait,
        )
        return isinstance(decision, Wait)

    def release_held(self) -> None:
        for key in list(self._holding):
            known = self.files.get(key)
            if known is None or not known.held:
                self._holding.discard(key)
            elif not self._must_wait(known):
                self._holding.discard(key)
                held, known.held = known.held, []
                for lines, offset in held:
                    self._ship(known, lines, offset)

    def _pod(self, meta: PathMeta) -> PodMeta | None:
        if not self._kube.enabled:
            return None
        if meta.pod_uid:
            return self.pods.get(meta.pod_uid, self._monotonic())
        return self.pods.get_by_name(meta.namespace, meta.pod_name, self._monotonic())

    def _ship(
        self,
        known: _File,
        lines: list[Line],
        safe_offset: int,
        *,
        mono: float | None = None,
        stamp: str | None = None,
        catch_up: bool = False,
    ) -> None:
        """Encode ``lines`` into records and add them to the batch being assembled.

        ``mono`` and ``stamp`` (the monotonic time and the read time's text) are the
        caller's when it has them for a whole round; ``catch_up``: the lines were read
        from a file with a backlog (batching.py)."""
        # Batching deadlines are durations: monotonic. Wall time only labels records.
        now = self._monotonic() if mono is None else mono
        if not lines:
            self.assembler.add(known.key, None, safe_offset, now, catch_up=catch_up)
            return
        self.counters.lines += len(lines)
        meta = known.path_meta
        if meta is None:
            encoder = self._encoder(known, None, None, ())
        else:
            pod = self._pod(meta)
            if is_excluded(pod, meta.container):
                self.counters.excluded_lines += len(lines)
                self.assembler.add(known.key, None, safe_offset, now, catch_up=catch_up)
                return
            if pod is None and self._kube.enabled:
                self.counters.shipped_without_metadata += len(lines)
            names = self.services.services_for(pod) if (self.services and pod) else ()
            encoder = self._encoder(known, meta, pod, names)
        if stamp is None:
            stamp = self._read_time(self._clock())
        limit = self.assembler.max_records
        if len(lines) <= limit:  # the common case: one group, resumed at safe_offset
            records = encoder.encode(lines, stamp)
            self.counters.records += len(records)
            self.assembler.add(known.key, records, safe_offset, now, catch_up=catch_up)
            return
        groups = [lines[start : start + limit] for start in range(0, len(lines), limit)]
        # Where to resume after a group of lines: before the first line not in it.
        # Lines of the other stream can start before the ones emitted ahead of them
        # end, hence the minimum over all later lines. (After the last group: safe_offset.)
        resume_after = [safe_offset] * len(groups)
        for index in range(len(groups) - 1, 0, -1):
            first_start = min(line.start_offset for line in groups[index])
            resume_after[index - 1] = min(resume_after[index], first_start)
        for group, resume in zip(groups, resume_after, strict=True):
            records = encoder.encode(group, stamp)
            self.counters.records += len(records)
            self.assembler.add(known.key, records, resume, now, catch_up=catch_up)

    def _encoder(
        self, known: _File, meta: PathMeta | None, pod: PodMeta | None, services: tuple[str, ...]
    ) -> FileRecordEncoder:
        """The file's record encoder, made again only when what its labels come from changes.

        That is the pod and its Services for a container log (the path's fields never
        change) and the path for a system log. Pods are frozen and replaced on every
        update, so the comparison is usually by identity; an equal new object (a re-list)
        compares field by field and is then remembered, to compare by identity again.
        """
        source = known.path if meta is None else (pod, services)
        if known.encoder is not None and known.encoded_for == source:
            known.encoded_for = source
            return known.encoder
        if meta is None:
            labels: Mapping[str, str] = {
                "k8s_cluster": self.config.agent.cluster_name,
                "k8s_node": self._node,
                "log_file": known.path,
                "source": "system" if known.system else "file",
            }
            service_name = Path(known.path).name.split(".")[0]
        else:
            enrichment = enrich(meta, pod, self._enrich, services)
            labels, service_name = enrichment.labels, enrichment.service_name
        known.encoder = FileRecordEncoder(
            known.key,
            labels=labels,
            service_name=service_name,
            hostname=self._node,
            plain_text=known.system,
            id_prefix=known.id_prefix,
        )
        known.encoded_for = source
        return known.encoder

    async def send_due_batches(self, *, force: bool = False) -> None:
        """Send the batches that are due while the window has room; the rest wait, built,
        in the assembler (their offsets are not committed, so nothing is lost on exit)."""
        while self.sender.pending.has_room():
            batch = self.assembler.take(
                self._monotonic(), force=force, catch_up=self._catch_up_may_go()
            )
            if batch is None:
                return
            self.tracker.emitted(batch.batch_id, batch.offsets)
            if not batch.ids:
                self.tracker.acknowledged(batch.batch_id)
                continue
            if batch.catch_up:
                self._catch_up_in_flight.add(batch.batch_id)
            await self.sender.send(batch.message(), context=batch.batch_id)
            self.counters.batches_sent += 1

    # -- the loop ----------------------------------------------------------------------

    async def step(self) -> None:
        """One round of the module docstring's steps."""
        now, mono = self._clock(), self._monotonic()
        # Scanning globs and stat-ing every file costs in proportion to the files: it is
        # done when directory entries change (inotify), on the rescan interval (the
        # safety net) and when a parked file was not found at its path; writes only
        # mark the files written (`_watch`), and a round reads just those.
        tailers = [t for t in (self.tailer, self.system_tailer) if t is not None]
        if self._scan_due or any(t.wants_scan for t in tailers):
            self._scan_due = False
            for tailer in tailers:
                self.handle_events(tailer.scan(now, mono), system=tailer is self.system_tailer)
            if mono >= self._next_prune_at:
                self._next_prune_at = mono + PRUNE_INTERVAL_S
                self.prune_offsets(now)  # retention compares with commit times: wall time
        room = self.sender.pending.has_room()
        self._report_pause(room)
        # Catch-up batches held back count against the window too (CATCH_UP_BATCHES_IN_FLIGHT).
        held_back = len(self._catch_up_in_flight) + self.assembler.catch_up_ready
        read = room and held_back < self.config.logs.window.max_batches
        for tailer in tailers:
            if read:
                tailer.resume()
            else:
                tailer.pause()
            system = tailer is self.system_tailer
            noticed = tailer.marked_since
            self.handle_chunks(
                tailer.read_round(now, READ_ROUND_BUDGET_BYTES, mono=mono),
                system=system,
                noticed=noticed,
            )
            self.handle_events(tailer.settle(now, mono), system=system)
        self.persist_look()
        self.flush_partials()
        self.release_held()
        await self.send_due_batches()
        self.commit_offsets()

    def _catch_up_may_go(self) -> bool:
        return len(self._catch_up_in_flight) < CATCH_UP_BATCHES_IN_FLIGHT

    def _report_pause(self, room: bool) -> None:
        match self.pause.observe(room, self._monotonic()):
            case PauseStarted():
                log_event(
                    _log,
                    logging.WARNING,
                    "reading_paused",
                    window_batches=len(self.sender.pending),
                    window_bytes=self.sender.pending.bytes_pending,
                    shipper_connected=self.sender.connected,
                    detail="the shipper has not acknowledged the window's batches "
                    "(its queue is full or it is down); reading resumes when it does",
                )
            case PauseEnded(paused_s=paused_s):
                log_event(_log, logging.INFO, "reading_resumed", paused_s=round(paused_s, 1))

    def _next_timeout(self) -> float:
        tailers = (self.tailer, self.system_tailer)
        if any(t is not None and t.more_to_read and not t.paused for t in tailers):
            return 0.0  # a round left bytes behind: read on at once
        # A due batch waiting for room in the window is sent when an ack wakes the loop.
        room = self.sender.pending.has_room()
        due = self.assembler.next_deadline(catch_up=self._catch_up_may_go())
        deadlines = [due] if due is not None and room else []
        report_at = self.pause.next_report_at()
        if report_at is not None:
            deadlines.append(report_at)
        deadlines += [
            d
            for d in (
                self.files[k].parser.next_deadline() for k in self._with_deadline if k in self.files
            )
            if d is not None
        ]
        wait = 1.0
        if deadlines:
            # Every deadline here is on the monotonic clock.
            wait = min(wait, max(0.0, min(deadlines) - self._monotonic()))
        if self._holding:
            wait = min(wait, 0.1)
        return wait

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then send what is read and close."""
        sender = asyncio.create_task(self.sender.run(), name="ipc-sender")
        waker = asyncio.create_task(self._watch(), name="watch")
        telemetry = asyncio.create_task(self._publish_telemetry(), name="telemetry")
        if self.metadata_source is not None:
            self.metadata_source.start()
        log_event(
            _log,
            logging.INFO,
            "logs_started",
            globs=list(self.config.logs.paths),
            files_known=len(self._committed),
        )
        try:
            while not stop.is_set():
                self._wake.clear()
                await self.step()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._next_timeout())
            await self.send_due_batches(force=True)
            # Give the shipper a moment to acknowledge what is in flight; what is not
            # acknowledged is simply read again at the next start.
            deadline = self._monotonic() + 5.0
            while len(self.sender.pending) and self._monotonic() < deadline:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.2)
            self.commit_offsets()
        finally:
            for task in (sender, waker, telemetry):
                task.cancel()
            await asyncio.gather(sender, waker, telemetry, return_exceptions=True)
            if self.metadata_source is not None:
                self.metadata_source.stop()
            self.tailer.close()
            if self.system_tailer is not None:
                self.system_tailer.close()
            self.sender.close()
            self.telemetry.close()
            self.offsets.close()
            log_event(_log, logging.INFO, "logs_stopped")

    async def _watch(self) -> None:
        tailers = [t for t in (self.tailer, self.system_tailer) if t is not None]
        async for wake in changes(
            [*self.config.logs.paths, *self._system_paths()],
            rescan_interval_s=self.config.logs.rescan_interval,
            extra_dirs=self._watched_dirs,
        ):
            # A write needs a read of that file, not a scan: globbing and stat-ing every
            # path on each write made 500 quiet files cost most of a core. New, renamed
            # and deleted files, and the rescan interval, trigger a scan.
            if wake.written:
                for tailer in tailers:
                    tailer.changed(wake.written, self._monotonic())
            if wake.rescan:
                self._scan_due = True
                self._wake.set()
            elif self.read_writes_at_once(tailers):
                self._wake.set()
            # Otherwise the loop wakes at the open batch's deadline (`_next_timeout`)
            # and reads what was written then.

    def read_writes_at_once(self, tailers: list[Tailer]) -> bool:
        """Whether files just written are read at once, or when the open batch is due.

        Lines read now would wait in the open batch until its deadline anyway, unless
        they fill it first: so a write is read at once only when no live batch is open or
        built (its lines open one; a catch-up batch is not theirs), when a busy file was
        written (`Tailer.busy_written`) or when as many files wait as a batch holds
        records. A node of slowly written files then
        costs a read round per batch, not one per wake-up (every 50 ms)."""
        if not self.assembler.live_waiting:
            return True
        if any(t.busy_written for t in tailers):
            return True
        return sum(t.files_to_read for t in tailers) >= self.assembler.max_records

    def _system_paths(self) -> list[str]:
        return list(self.config.logs.system_logs.paths) if self.system_tailer is not None else []

    def _watched_dirs(self) -> set[str]:
        tailers = [t for t in (self.tailer, self.system_tailer) if t is not None]
        return set().union(*(t.directories() for t in tailers))

    async def _publish_telemetry(self) -> None:
        while True:
            touch_heartbeat(self.config.agent.ipc_dir, "logs")  # the liveness probe's file
            await asyncio.sleep(self.config.shipper.telemetry_interval)
            self.telemetry.publish(self.snapshot())
            release_free_memory()

    def snapshot(self) -> Telemetry:
        """The service's metrics and status for the health container."""
        stats = self.tailer.stats()
        pending = self.sender.pending
        parsed = self.parser_totals()
        problems = []
        if not self.sender.connected:
            problems.append("not connected to the shipper")
        problems.extend(
            f"the shipper refuses to store logs: {reason}" for reason in pending.refusals()
        )
        ready = not problems
        paused_s = self.pause.paused_for(self._monotonic())
        if paused_s:
            problems.append(
                f"reading paused for {paused_s:.0f} s: the shipper is not acknowledging"
            )
        if stats.bytes_missed:
            # Reported, but not a reason to be unready: the counter never goes back down.
            problems.append(f"{stats.bytes_missed} bytes of log files were lost before being read")

        def counter(name: str, value: float, **labels: str) -> MetricSample:
            return MetricSample(name, "counter", float(value), labels)

        def gauge(name: str, value: float, **labels: str) -> MetricSample:
            return MetricSample(name, "gauge", float(value), labels)

        samples = [
            counter("killkrill_logs_records_read_total", self.counters.records),
            counter("killkrill_logs_lines_read_total", self.counters.lines),
            counter("killkrill_logs_bytes_read_total", self.counters.bytes_read),
            counter("killkrill_logs_batches_sent_total", self.counters.batches_sent),
            counter(
                "killkrill_logs_records_acknowledged_total", self.counters.records_acknowledged
            ),
            counter("killkrill_logs_batches_rejected_total", self.counters.batches_rejected),
            counter("killkrill_logs_excluded_lines_total", self.counters.excluded_lines),
            counter(
                "killkrill_logs_without_metadata_total", self.counters.shipped_without_metadata
            ),
            counter("killkrill_logs_rotations_total", stats.rotations),
            counter("killkrill_logs_truncations_total", stats.truncations),
            counter("killkrill_logs_bytes_missed_total", stats.bytes_missed),
            counter("killkrill_logs_parse_errors_total", parsed["parse_errors"]),
            counter("killkrill_logs_joined_lines_total", parsed["joined_lines"]),
            counter("killkrill_logs_invalid_utf8_lines_total", parsed["invalid_utf8"]),
            counter("killkrill_logs_oversize_pieces_total", parsed["oversize_pieces"]),
            counter("killkrill_logs_unterminated_partials_total", parsed["unterminated_partials"]),
            gauge("killkrill_logs_files_tailed", stats.files_open),
            gauge("killkrill_logs_files_parked", stats.files_parked),
            gauge("killkrill_logs_max_open_files", stats.max_open_files),
            counter("killkrill_logs_file_parks_total", stats.parks),
            gauge("killkrill_logs_lag_bytes", stats.lag_bytes),
            gauge("killkrill_logs_window_batches", len(pending)),
            gauge("killkrill_logs_window_bytes", pending.bytes_pending),
            gauge("killkrill_logs_reading_paused", 1 if paused_s else 0),
            counter("killkrill_logs_reading_pauses_total", self.pause.pauses),
            gauge("killkrill_logs_metadata_cache_pods", len(self.pods.live_pods())),
        ]
        for kind, count in stats.errors.items():
            samples.append(counter("killkrill_logs_file_errors_total", count, reason=kind))
        samples.extend(
            gauge("killkrill_logs_pod_lag_bytes", lag, namespace=namespace, pod=pod)
            for (namespace, pod), lag in self._lag_by_pod(stats.files)
        )
        if self.metadata_source is not None:
            for resource, status in self._metadata_status().items():
                samples.append(
                    gauge("killkrill_logs_metadata_synced", status.synced, resource=resource)
                )
                samples.append(
                    counter(
                        "killkrill_logs_metadata_relists_total", status.relists, resource=resource
                    )
                )
                samples.extend(
                    counter(
                        "killkrill_logs_metadata_api_errors_total",
                        count,
                        resource=resource,
                        reason=reason,
                    )
                    for reason, count in status.api_errors.items()
                )
                if not status.synced and status.last_error:
                    problems.append(f"pod metadata ({resource}): {status.last_error}")
                    ready = False
        samples += process_samples(version=__version__)
        return Telemetry(
            component="logs",
            node=self._node,
            sent_at_unix=self._clock(),
            status=ComponentStatus(
                ready=ready, detail="; ".join(problems), problems=tuple(problems)
            ),
            samples=tuple(samples),
        )

    def _metadata_status(self) -> dict[str, Any]:
        status = self.metadata_source.status()
        return status if isinstance(status, dict) else {"pods": status}

    @staticmethod
    def _lag_by_pod(files: Iterable[Any], top: int = 10) -> list[tuple[tuple[str, str], int]]:
        """The ``top`` pods with the most bytes written but not read yet."""
        lag: Counter[tuple[str, str]] = Counter()
        for status in files:
            if not status.lag_bytes:
                continue  # most files, on most nodes: no path to parse
            meta = parse_log_path(status.path)
            if meta is not None:
                lag[(meta.namespace, meta.pod_name)] += status.lag_bytes
        return lag.most_common(top)
