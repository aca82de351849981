"""CRI log file parsing, and the line-assembly engine shared with docker json-file.

Theory of operation
-------------------
A container log file is a sequence of *physical lines*, each ending in ``\\n``. In the
CRI logging format (kubelet ``pkg/kubelet/kuberuntime/logs``; written by containerd and
CRI-O) a physical line is::

    <RFC3339Nano timestamp> <stdout|stderr> <tag> <content>

where the tag is ``F`` (full: this physical line ends a log line) or ``P`` (partial: the
runtime cut a long line, more follows), optionally followed by ``:``-separated
extensions, which kubelet ignores and so do we. docker's json-file driver has the same
model in JSON: an entry whose ``log`` value does not end in ``\\n`` is a partial that the
next entry of the same stream continues (`kk_logs.parsing.docker`).

*Framing.* `LineParser.feed` takes bytes in whatever chunks the tailer read, with the
file offset of the first byte. It splits them on ``\\n`` (one C-level ``bytes.split``
per chunk, never a per-byte loop) and keeps the bytes after the last ``\\n`` as an
incomplete *tail*: a writer may be in the middle of a line. The tail is kept as a list
of chunks and joined only once its ``\\n`` arrives, so a long line arriving in many
small reads is not copied over and over.

*CRI per buffer.* A CRI chunk is decoded once and cut into lines and fields by one
``findall`` (`_CRI_LINES`), which also checks the common form: a canonical UTC timestamp
(`kk_logs.parsing.timestamps.CANONICAL_UTC_PATTERN`), ``stdout``/``stderr``, a bare
``P``/``F``. What is left per line is making its `Line`; a line in any other form is
decoded on its own by `decode_cri_line`, exactly as the generic path does (a test holds
the two to the same output). Splitting, decoding and checking each line in Python cost
twice as much.

*Partials are joined per stream.* stdout and stderr are written to the same file by
two independent copiers, so their records interleave freely: a ``P`` on stdout, an
``F`` on stderr, then the ``F`` on stdout are two lines, not one. Timestamps are not
monotonic across streams either (test-recipes.md section 5), so nothing here orders by
time. Each stream has at most one open *group* of partials. The split size is never
assumed (docker and containerd split at 16 KiB by default, CRI-O at 8 KB, containerd
may not split at all): only the ``P``/``F`` tag decides.

*Bounded memory.* A group whose content reaches ``max_line_bytes`` (default 1 MiB) is
emitted as a *piece* flagged `FLAG_OVERSIZE` (`Line.piece`, `Line.last_piece`,
`Line.first_piece_offset`), and the following partials start the next piece. Pieces
are cut at physical-line boundaries, so every physical line still belongs to exactly one
`Line`; nothing is truncated. (A character that the runtime split across two physical
lines that land in different pieces shows as U+FFFD in both, flagged `invalid_utf8`.)
A single physical line is not capped here: the runtime's own split bounds it.

*Safe offsets.* `LineParser.safe_offset` is the start of the oldest byte that is not
yet part of an emitted `Line`: the tail, or the first physical line of a still-open
group, whichever is older. A checkpoint must never pass it, so that a restart re-reads
an incomplete line or an unfinished ``P``…``F`` sequence instead of emitting half of it
(Fluent Bit stores its offset the same way). Lines of the other stream after an open
group are emitted but re-read after a restart; their record ids derive from their
offsets, so the receiver drops the repeats.

*Never stuck, never dropping.* A ``P`` whose ``F`` never comes (the container died
mid-line, or the runtime wrote the final part to a file that was rotated away) would
pin ``safe_offset`` forever. `LineParser.flush` emits groups idle for
``partial_timeout_s`` (times are passed in, this module reads no clock) and
`LineParser.flush_all` emits everything, including a final line without ``\\n``, when
the tailer closes the file; such lines are flagged `FLAG_PARTIAL_UNTERMINATED` /
`FLAG_NO_NEWLINE`. A physical line that is not in the file's format (garbage, a bad
stream field, an unparsable timestamp) is emitted as it is, the whole raw line as
content, flagged `FLAG_PARSE_ERROR` and counted: no input line is ever dropped.

This module does no IO, no asyncio and reads no clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from kk_logs.parsing.lines import (
    FLAG_INVALID_UTF8,
    FLAG_NO_NEWLINE,
    FLAG_OVERSIZE,
    FLAG_PARSE_ERROR,
    FLAG_PARTIAL_UNTERMINATED,
    STREAM_UNKNOWN,
    Line,
    LogFormat,
    ParserStats,
)
from kk_logs.parsing.timestamps import CANONICAL_UTC_PATTERN, normalize_timestamp

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "DEFAULT_PARTIAL_TIMEOUT_S",
    "CriLineParser",
    "Decoded",
    "LineParser",
    "decode_cri_line",
]

DEFAULT_MAX_LINE_BYTES = 1 << 20
"""Largest merged line held before it is emitted in pieces (OTel's ``max_log_size``)."""
DEFAULT_PARTIAL_TIMEOUT_S = 5.0
"""How long `LineParser.flush` lets a partial sequence wait for its final part."""

Decoded = tuple[str, str, str, bool, Any, str, bool]
"""What a physical-line decoder returns:
``(stream, raw_timestamp, timestamp, partial, content, parse_error, invalid_utf8)``.
``parse_error`` is ``""`` for a good line; ``content`` is bytes (CRI) or str (docker)."""

_NO_FLAGS: frozenset[str] = frozenset()
_BAD_UTF8 = frozenset({FLAG_INVALID_UTF8})
_NO_NEWLINE = frozenset({FLAG_NO_NEWLINE})
_STREAMS = {b"stdout": "stdout", b"stderr": "stderr"}
# Every physical line of a buffer in one ``findall``: the common form in groups 1-4
# (timestamp, stream, tag, content), anything else whole in group 5. Each line matches one
# branch or the other, so there is one tuple per line, and a branch cannot backtrack into
# the next line (``.`` stops at ``\n``).
_CRI_LINES = re.compile(
    rf"^(?:({CANONICAL_UTC_PATTERN}) (stdout|stderr) ([PF]) (.*)|(.*))\n",
    re.ASCII | re.MULTILINE,
)


def _error(reason: str) -> Decoded:
    return ("", "", "", False, b"", reason, False)


def decode_cri_line(raw: bytes) -> Decoded:
    """Decode one CRI physical line (without its ``\\n``).

    Follows kubelet's ``parseCRILog``: exactly one space between the fields, the
    content is everything after the third space (kept byte for byte, including any
    ``\\r``), and only the first ``:``-separated part of the tag counts. Unlike kubelet,
    a line that ends right after the tag (``<ts> stdout F``) is read as empty content,
    and a tag other than ``P``/``F`` is a parse error rather than silently "full".
    """
    fields = raw.split(b" ", 3)
    if len(fields) == 4:
        ts_b, stream_b, tag, content = fields
    elif len(fields) == 3:
        ts_b, stream_b, tag = fields
        content = b""
    else:
        return _error("cri_fields")
    raw_ts = ts_b.decode("latin-1")  # any bytes; a non-ASCII timestamp fails below
    ts = normalize_timestamp(raw_ts)
    if ts is None:
        return _error("cri_timestamp")
    stream = _STREAMS.get(stream_b)
    if stream is None:
        return _error("cri_stream")
    if tag == b"F":
        partial = False
    elif tag == b"P":
        partial = True
    else:
        first = tag.split(b":", 1)[0]
        if first not in (b"P", b"F"):
            return _error("cri_tag")
        partial = first == b"P"
    return (stream, raw_ts, ts, partial, content, "", False)


def _bytes_text(content: bytes) -> tuple[str, bool]:
    try:
        return content.decode("utf-8"), False
    except UnicodeDecodeError:
        return content.decode("utf-8", "replace"), True


def _bytes_join(parts: Sequence[bytes]) -> tuple[str, bool]:
    # Join the bytes before decoding: runtimes cut at a byte count, so a multi-byte
    # character can straddle two partials and is only valid once they are joined.
    return _bytes_text(b"".join(parts))


class _Group:
    """The open partial sequence of one stream (mutable, private)."""

    __slots__ = (
        "bad_utf8",
        "end",
        "first_offset",
        "parts",
        "piece",
        "raw_ts",
        "size",
        "spans",
        "start",
        "touched",
        "ts",
    )

    def __init__(self, start: int, raw_ts: str, ts: str) -> None:
        self.first_offset = start
        self.start = start
        self.end = start
        self.raw_ts = raw_ts
        self.ts = ts
        self.parts: list[Any] = []
        self.spans: list[tuple[int, int]] = []
        self.size = 0
        self.piece = 0
        self.bad_utf8 = False
        self.touched: float | None = None


class LineParser:
    """Turns the bytes of one container log file into `Line` objects (see module docs).

    One parser per file, fed in file order. Subclasses choose the physical-line format
    (`CriLineParser`, `kk_logs.parsing.docker.DockerJsonParser`,
    `kk_logs.parsing.detect.AutoLineParser`).

    Args:
        offset: the file offset of the first byte that will be fed.
        max_line_bytes: merged lines reaching this size are emitted in pieces.
        partial_timeout_s: `flush` emits partial sequences idle for this long.
    """

    format: LogFormat | None = None
    """The file's format, once known."""

    codec: tuple[
        Callable[[bytes], Decoded],
        Callable[[Any], tuple[str, bool]],
        Callable[[Sequence[Any]], tuple[str, bool]],
    ]
    """How a subclass reads its format: (decode a physical line, content to text, join
    partial contents). Set by every concrete subclass."""

    def __init__(
        self,
        *,
        offset: int = 0,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        partial_timeout_s: float = DEFAULT_PARTIAL_TIMEOUT_S,
    ) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self._max = max_line_bytes
        self._timeout = partial_timeout_s
        self._decode, self._text, self._join = type(self).codec
        self._next = offset  # offset the next feed must start at
        self._tail: list[bytes] = []
        self._tail_start = offset  # also: end of the last complete physical line
        self._groups: dict[str, _Group] = {}
        self._physical = 0
        self._lines = 0
        self._joined = 0
        self._parse_errors = 0
        self._bad_utf8 = 0
        self._oversize = 0
        self._unterminated = 0

    # -- public API -------------------------------------------------------------

    def feed(self, data: bytes, offset: int, *, now: float | None = None) -> list[Line]:
        """Parse ``data``, which starts at file offset ``offset``; return completed lines.

        ``offset`` must be where the previous chunk ended (the parser's ``offset``
        argument for the first chunk): a gap or overlap raises `ValueError`, because
        offsets are what record ids and checkpoints are made of. ``now`` (seconds, any
        monotonic clock) marks activity on partial sequences for `flush`.
        """
        if offset != self._next:
            raise ValueError(f"feed at offset {offset}, expected {self._next}")
        if not isinstance(data, bytes):
            data = bytes(data)
        self._next = offset + len(data)
        if b"\n" not in data:
            if data:
                self._tail.append(data)
            return []
        if self._tail:
            self._tail.append(data)
            data = b"".join(self._tail)
            self._tail = []
        if self._decode is decode_cri_line:  # a CRI file (also once `AutoLineParser` knows)
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            out = self._feed_cri(data[:cut] if rest else data, now)
        else:
            physical = data.split(b"\n")
            rest = physical.pop()
            out = self._feed_lines(physical, now)
        self._lines += len(out)
        if rest:
            self._tail.append(rest)
        return out

    def _feed_lines(self, physical: list[bytes], now: float | None) -> list[Line]:
        """The complete physical lines ``physical``, one decoder call each."""
        out: list[Line] = []
        pos = self._tail_start
        decode = self._decode
        groups = self._groups
        for raw in physical:
            end = pos + len(raw) + 1
            decoded = decode(raw)
            # The hot path: a full line, no partial open on its stream, no error.
            if not decoded[3] and not decoded[5] and decoded[0] not in groups:
                text, bad = self._text(decoded[4])
                if bad or decoded[6]:
                    bad = True
                    self._bad_utf8 += 1
                out.append(
                    Line(
                        pos,
                        end,
                        decoded[0],
                        decoded[2],
                        decoded[1],
                        text,
                        _BAD_UTF8 if bad else _NO_FLAGS,
                    )
                )
            else:
                self._assemble(raw, decoded, pos, end, now, out, _NO_FLAGS)
            pos = end
        self._physical += len(physical)
        self._tail_start = pos
        return out

    def _feed_cri(self, complete: bytes, now: float | None) -> list[Line]:
        """CRI physical lines ``complete`` (each ending in ``\\n``), one regex call for all.

        The buffer is decoded once (``surrogateescape`` keeps any byte, and encoding back
        gives exactly the bytes read) and `_CRI_LINES` cuts every line into its fields. A
        line in the common form (canonical UTC timestamp, ``stdout``/``stderr``, a bare
        ``F``, ASCII content) becomes a `Line` here; every other line goes the way
        `_feed_lines` takes it, so the result is the same, only cheaper.
        """
        out: list[Line] = []
        pos = self._tail_start
        groups = self._groups
        text = complete.decode("utf-8", "surrogateescape")
        ascii_only = text.isascii()
        new_tuple = tuple.__new__
        found = _CRI_LINES.findall(text)
        for ts, stream, tag, content, other in found:
            if not ts:  # not in the common form: decode it as kubelet would
                raw = other.encode("utf-8", "surrogateescape")
                end = pos + len(raw) + 1
                self._assemble(raw, decode_cri_line(raw), pos, end, now, out, _NO_FLAGS)
            elif tag == "F" and (ascii_only or content.isascii()) and stream not in groups:
                # ts, stream and tag are ASCII too: lengths in characters are in bytes.
                end = pos + len(ts) + len(stream) + len(content) + 5
                # Line(pos, end, stream, ts, ts, content) without the call of its
                # generated __new__ (a Python function taking 13 arguments): the other
                # fields are Line's defaults (a test compares with Line(...)).
                fields = (pos, end, stream, ts, ts, content, _NO_FLAGS, "", 1, 0, True, -1, ())
                out.append(new_tuple(Line, fields))
            else:  # a partial, or a line to decode as UTF-8 (invalid bytes are replaced)
                data = content.encode("utf-8", "surrogateescape")
                end = pos + len(ts) + len(stream) + len(data) + 5
                decoded = (stream, ts, ts, tag == "P", data, "", False)
                self._assemble(b"", decoded, pos, end, now, out, _NO_FLAGS)
            pos = end
        self._physical += len(found)
        self._tail_start = pos
        return out

    def flush(self, now: float) -> list[Line]:
        """Emit partial sequences that have waited ``partial_timeout_s`` for their final part.

        Call it from a timer (see `next_deadline`). A sequence fed without ``now``
        starts its clock at the first `flush` that sees it. The incomplete tail is not
        touched: a writer may still finish it (use `flush_all` at close).
        """
        out: list[Line] = []
        for stream, group in sorted(self._groups.items(), key=lambda item: item[1].start):
            if group.touched is None:
                group.touched = now  # fed without times: start the clock now
            if now - group.touched >= self._timeout:
                del self._groups[stream]
                if group.parts:
                    self._emit_group(stream, group, out, last=True, unterminated=True)
        self._lines += len(out)
        return out

    def flush_all(self) -> list[Line]:
        """Emit everything pending: the tail without ``\\n`` and every open partial sequence.

        For when the file is closed for good (rotated away and drained, container
        gone). Afterwards `safe_offset` is the end of all data fed.
        """
        out: list[Line] = []
        if self._tail:
            raw = b"".join(self._tail)
            self._tail = []
            start, end = self._tail_start, self._next
            self._physical += 1
            decoded = self._decode(raw)
            self._assemble(raw, decoded, start, end, None, out, _NO_NEWLINE)
            self._tail_start = end
        for stream, group in sorted(self._groups.items(), key=lambda item: item[1].start):
            if group.parts:
                self._emit_group(stream, group, out, last=True, unterminated=True)
        self._groups.clear()
        self._lines += len(out)
        return out

    @property
    def safe_offset(self) -> int:
        """The oldest file offset not yet covered by an emitted `Line` (resume here)."""
        lowest = self._tail_start
        for group in self._groups.values():
            if group.parts and group.start < lowest:
                lowest = group.start
        return lowest

    @property
    def offset(self) -> int:
        """The offset the next `feed` must start at (the end of the data fed so far)."""
        return self._next

    @property
    def has_partials(self) -> bool:
        """Whether a partial sequence waits for its final part (then `flush` may have work
        and `next_deadline` may be set). Cheap: the caller asks after every `feed`."""
        return bool(self._groups)

    def next_deadline(self) -> float | None:
        """When `flush` next has something to do, or None (only for groups fed with times)."""
        if not self._groups:
            return None
        times = [g.touched for g in self._groups.values() if g.touched is not None]
        return min(times) + self._timeout if times else None

    def pending_spans(self) -> list[tuple[int, int]]:
        """``[start, end)`` of every byte fed but not yet in an emitted `Line`, in order."""
        spans = [span for g in self._groups.values() for span in g.spans]
        if self._next > self._tail_start:
            spans.append((self._tail_start, self._next))
        return sorted(spans)

    @property
    def stats(self) -> ParserStats:
        """A snapshot of this parser's counters."""
        return ParserStats(
            physical_lines=self._physical,
            lines=self._lines,
            joined_lines=self._joined,
            parse_errors=self._parse_errors,
            invalid_utf8=self._bad_utf8,
            oversize_pieces=self._oversize,
            unterminated_partials=self._unterminated,
        )

    # -- internals ----------------------------------------------------------------

    def _assemble(
        self,
        raw: bytes,
        decoded: Decoded,
        start: int,
        end: int,
        now: float | None,
        out: list[Line],
        extra: frozenset[str],
    ) -> None:
        stream, raw_ts, ts, partial, content, error, bad = decoded
        if error:
            self._emit_malformed(raw, start, end, error, out, extra)
            return
        group = self._groups.get(stream)
        if group is None:
            if not partial:
                text, bad_text = self._text(content)
                flags = extra | _BAD_UTF8 if bad or bad_text else extra
                if bad or bad_text:
                    self._bad_utf8 += 1
                out.append(Line(start, end, stream, ts, raw_ts, text, flags))
                return
            group = self._groups[stream] = _Group(start, raw_ts, ts)
        if not group.parts:
            group.start = start  # first physical line of a new piece
        group.parts.append(content)
        group.spans.append((start, end))
        group.size += len(content)
        group.end = end
        group.bad_utf8 = group.bad_utf8 or bad
        if now is not None:
            group.touched = now
        if not partial:
            del self._groups[stream]
            self._emit_group(stream, group, out, last=True, unterminated=False, extra=extra)
        elif group.size >= self._max:
            self._emit_group(stream, group, out, last=False, unterminated=False)
            group.parts = []
            group.spans = []
            group.size = 0
            group.piece += 1

    def _emit_group(
        self,
        stream: str,
        group: _Group,
        out: list[Line],
        *,
        last: bool,
        unterminated: bool,
        extra: frozenset[str] = _NO_FLAGS,
    ) -> None:
        text, bad = self._join(group.parts)
        flags = set(extra)
        oversize = group.piece > 0 or not last
        if oversize:
            flags.add(FLAG_OVERSIZE)
            self._oversize += 1
        if bad or group.bad_utf8:
            flags.add(FLAG_INVALID_UTF8)
            self._bad_utf8 += 1
        if unterminated:
            flags.add(FLAG_PARTIAL_UNTERMINATED)
            self._unterminated += 1
        count = len(group.spans)
        if count > 1:
            self._joined += 1
        out.append(
            Line(
                group.start,
                group.end,
                stream,
                group.ts,
                group.raw_ts,
                text,
                frozenset(flags),
                physical_lines=count,
                piece=group.piece,
                last_piece=last,
                first_piece_offset=group.first_offset if oversize else -1,
                joined_spans=tuple(group.spans) if count > 1 else (),
            )
        )

    def _emit_malformed(
        self,
        raw: bytes,
        start: int,
        end: int,
        reason: str,
        out: list[Line],
        extra: frozenset[str],
    ) -> None:
        text, bad = _bytes_text(raw)
        flags = {FLAG_PARSE_ERROR, *extra}
        if bad:
            flags.add(FLAG_INVALID_UTF8)
            self._bad_utf8 += 1
        self._parse_errors += 1
        out.append(
            Line(
                start,
                end,
                STREAM_UNKNOWN,
                "",
                "",
                text,
                frozenset(flags),
                parse_error=reason,
            )
        )


class CriLineParser(LineParser):
    """`LineParser` for CRI log files (containerd, CRI-O): ``<ts> <stream> <P|F> <content>``."""

    format = LogFormat.CRI
    codec = (decode_cri_line, _bytes_text, _bytes_join)
