"""The `Line` type: one logical log line as read from a container log file.

A `Line` is what the parsers (`kk_logs.parsing.cri`, `kk_logs.parsing.docker`) emit and
what `kk_logs.records` turns into receiver records. It is runtime-neutral: CRI ``P``/``F``
partials and docker json-file 16 KiB splits are already joined.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

__all__ = [
    "FLAG_INVALID_UTF8",
    "FLAG_NO_NEWLINE",
    "FLAG_OVERSIZE",
    "FLAG_PARSE_ERROR",
    "FLAG_PARTIAL_UNTERMINATED",
    "STREAM_UNKNOWN",
    "Line",
    "LogFormat",
    "ParserStats",
]

FLAG_INVALID_UTF8 = "invalid_utf8"
"""The content was not valid UTF-8; invalid bytes became U+FFFD."""
FLAG_PARSE_ERROR = "parse_error"
"""The physical line was not in the file's format; ``content`` is the whole raw line."""
FLAG_PARTIAL_UNTERMINATED = "partial_unterminated"
"""A partial sequence (CRI ``P``…, docker split) was flushed before its final part came."""
FLAG_OVERSIZE = "oversize"
"""One piece of a merged line longer than the parser's maximum (see `Line.piece`)."""
FLAG_NO_NEWLINE = "no_newline"
"""The last physical line of the file had no ``\\n``; emitted by ``flush_all`` at close."""

STREAM_UNKNOWN = "unknown"
"""The stream of a line that could not be parsed."""


class LogFormat(StrEnum):
    """The on-disk format of a container log file."""

    CRI = "cri"
    """``<RFC3339Nano> <stdout|stderr> <P|F> <content>`` (containerd, CRI-O)."""
    DOCKER = "docker"
    """docker json-file: ``{"log":"...\\n","stream":"stdout","time":"..."}``."""
    PLAIN = "plain"
    """Plain text lines (node system logs): no stream, no timestamp."""


class Line(NamedTuple):
    """One logical line: one or more physical lines of one stream, joined.

    Offsets are byte offsets in the file. ``start_offset`` is where the first physical
    line of this line begins and ``end_offset`` is just after the ``\\n`` of the last
    one. Lines of the other stream may lie in between (stdout and stderr interleave in
    one CRI file), so the exact bytes are given by `spans`.

    A named tuple rather than a frozen dataclass: one is made per line read, and a frozen
    dataclass sets each of its 13 fields through ``object.__setattr__``, which was almost
    half of the parser's time (1.2 of 2.7 µs per line). It is just as immutable. The hot
    paths build and unpack it by position (`kk_logs.parsing.cri`, `kk_logs.records`):
    a new field goes at the end, with a default.
    """

    start_offset: int
    end_offset: int
    stream: str
    """``stdout``, ``stderr``, or ``unknown`` for a line that could not be parsed."""
    timestamp: str
    """The runtime's timestamp as RFC 3339 UTC ``Z`` with its precision, or ``""`` if unusable."""
    raw_timestamp: str
    """The timestamp field exactly as written (``""`` when there was none)."""
    content: str
    """The text (no trailing newline); for a parse error, the whole raw physical line."""
    flags: frozenset[str] = frozenset()
    parse_error: str = ""
    """Why the line could not be parsed (``""`` when it could), e.g. ``cri_stream``."""
    physical_lines: int = 1
    """How many physical lines (partials) were joined into this one."""
    piece: int = 0
    """For an oversize line (`FLAG_OVERSIZE`): 0-based index of this piece."""
    last_piece: bool = True
    """False for an oversize piece that more pieces follow."""
    first_piece_offset: int = -1
    """``start_offset`` of piece 0 of an oversize line; -1 means "this line itself"."""
    joined_spans: tuple[tuple[int, int], ...] = ()
    """The ``[start, end)`` of each physical line when more than one was joined."""

    @property
    def spans(self) -> tuple[tuple[int, int], ...]:
        """The ``[start, end)`` byte range of every physical line in this line."""
        return self.joined_spans or ((self.start_offset, self.end_offset),)

    @property
    def group_offset(self) -> int:
        """The offset that names the whole logical line (piece 0's start for oversize lines)."""
        return self.start_offset if self.first_piece_offset < 0 else self.first_piece_offset


@dataclass(frozen=True, slots=True)
class ParserStats:
    """Counters of one parser since it was created (monotonic; for metrics)."""

    physical_lines: int = 0
    """Complete physical lines read (ending in ``\\n``, or flushed at close)."""
    lines: int = 0
    """`Line` objects emitted."""
    joined_lines: int = 0
    """Emitted lines made of more than one physical line."""
    parse_errors: int = 0
    """Physical lines not in the file's format, shipped raw."""
    invalid_utf8: int = 0
    """Emitted lines whose content had invalid UTF-8."""
    oversize_pieces: int = 0
    """Pieces emitted because a merged line exceeded the maximum."""
    unterminated_partials: int = 0
    """Partial sequences flushed without their final part."""
