"""CriLineParser: CRI log files as containerd and CRI-O write them."""

from __future__ import annotations

import pytest

from kk_logs.parsing import (
    FLAG_INVALID_UTF8,
    FLAG_NO_NEWLINE,
    FLAG_OVERSIZE,
    FLAG_PARSE_ERROR,
    FLAG_PARTIAL_UNTERMINATED,
    CriLineParser,
    Line,
)

TS = "2026-11-26T04:09:57.059307123Z"


def cri(stream: str, tag: str, content: bytes | str, ts: str = TS) -> bytes:
    body = content.encode() if isinstance(content, str) else content
    return f"{ts} {stream} {tag} ".encode() + body + b"\n"


def feed_all(parser: CriLineParser, data: bytes, chunk: int | None = None) -> list[Line]:
    chunk = chunk or len(data) or 1
    out: list[Line] = []
    for start in range(0, len(data), chunk):
        out += parser.feed(data[start : start + chunk], parser.offset)
    return out


def test_full_lines_become_lines_with_offsets_stream_and_timestamp() -> None:
    """Each F line is one Line spanning its bytes including the newline."""
    first, second = cri("stdout", "F", "line 1"), cri("stderr", "F", "err 1")
    parser = CriLineParser()
    lines = parser.feed(first + second, 0)
    assert [(ln.start_offset, ln.end_offset, ln.stream, ln.content) for ln in lines] == [
        (0, len(first), "stdout", "line 1"),
        (len(first), len(first) + len(second), "stderr", "err 1"),
    ]
    assert lines[0].timestamp == TS and lines[0].raw_timestamp == TS
    assert lines[0].flags == frozenset()
    assert parser.safe_offset == len(first) + len(second)


def test_real_containerd_output_interleaves_streams_and_ends_with_a_partial() -> None:
    """The recorded containerd file: stderr times earlier than stdout's, and a final P."""
    data = (
        b"2026-11-26T04:09:57.059307123Z stdout F line 1\n"
        b"2026-11-26T04:09:57.059332551Z stdout F line 2\n"
        b"2026-11-26T04:09:57.059335225Z stdout F line 3\n"
        b"2026-11-26T04:09:57.059315416Z stderr F err 1\n"
        b"2026-11-26T04:09:57.059339611Z stderr F err 2\n"
        b"2026-11-26T04:09:57.059341284Z stderr F err 3\n"
        b"2026-11-26T04:09:58.061364398Z stdout P partial-no-newline\n"
    )
    parser = CriLineParser()
    lines = parser.feed(data, 0)
    assert [ln.content for ln in lines] == ["line 1", "line 2", "line 3", "err 1", "err 2", "err 3"]
    # File order is kept; timestamps are not re-sorted across streams.
    assert lines[3].timestamp < lines[2].timestamp
    partial_start = data.index(b"2026-11-26T04:09:58")
    assert parser.safe_offset == partial_start
    (last,) = parser.flush_all()
    assert last.content == "partial-no-newline"
    assert last.flags == {FLAG_PARTIAL_UNTERMINATED}
    assert parser.safe_offset == len(data)


def test_partials_are_joined_until_the_final_part() -> None:
    """P, P, F on one stream are one Line whose spans name the three physical lines."""
    parts = [
        cri("stdout", "P", "Hello, "),
        cri("stdout", "P", "partial "),
        cri("stdout", "F", "world"),
    ]
    parser = CriLineParser()
    assert parser.feed(parts[0] + parts[1], 0) == []
    assert parser.safe_offset == 0
    (line,) = parser.feed(parts[2], len(parts[0] + parts[1]))
    assert line.content == "Hello, partial world"
    assert (line.start_offset, line.end_offset) == (0, sum(map(len, parts)))
    assert line.physical_lines == 3
    assert line.spans == (
        (0, len(parts[0])),
        (len(parts[0]), len(parts[0] + parts[1])),
        (len(parts[0] + parts[1]), sum(map(len, parts))),
    )
    assert parser.stats.joined_lines == 1


def test_streams_interleave_independently() -> None:
    """stdout P, stderr F, stdout F: the stderr line first, then the joined stdout line."""
    p_out = cri("stdout", "P", "out-a ")
    f_err = cri("stderr", "F", "err")
    f_out = cri("stdout", "F", "out-b")
    parser = CriLineParser()
    lines = parser.feed(p_out + f_err, 0)
    assert [(ln.stream, ln.content) for ln in lines] == [("stderr", "err")]
    # The stderr line is emitted, but a restart must still re-read the open stdout P.
    assert parser.safe_offset == 0
    lines = parser.feed(f_out, len(p_out + f_err))
    assert [(ln.stream, ln.content) for ln in lines] == [("stdout", "out-a out-b")]
    assert lines[0].spans == ((0, len(p_out)), (len(p_out + f_err), len(p_out + f_err + f_out)))
    assert parser.safe_offset == len(p_out + f_err + f_out)


def test_incomplete_trailing_line_is_held_and_safe_offset_stays_before_it() -> None:
    """A line without its newline yet is not emitted; the resume point is its start."""
    done = cri("stdout", "F", "done")
    writing = cri("stdout", "F", "being written")
    parser = CriLineParser()
    cut = len(done) + 20
    lines = parser.feed((done + writing)[:cut], 0)
    assert [ln.content for ln in lines] == ["done"]
    assert parser.safe_offset == len(done)
    assert parser.pending_spans() == [(len(done), cut)]
    lines = parser.feed((done + writing)[cut:], cut)
    assert [(ln.start_offset, ln.content) for ln in lines] == [(len(done), "being written")]
    assert parser.safe_offset == len(done + writing)


def test_containerd_40000_byte_line_is_reassembled_byte_for_byte() -> None:
    """containerd's 16 KiB split, P(16423) P(16424) F(7272), joins back to the original."""
    # A 40,000-byte line with a 3-byte character straddling the first 16 KiB cut.
    original = (b"x" * 16383 + "€".encode() + bytes(range(65, 91)) * 1600)[:40000]
    assert len(original) == 40000
    chunks = [original[:16384], original[16384:32768], original[32768:]]
    # containerd drops trailing zeros of the fraction (Go RFC3339Nano): 39/40-byte headers.
    physical = [
        cri("stdout", "P", chunks[0], ts="2026-11-26T04:09:58.06136439Z"),
        cri("stdout", "P", chunks[1], ts="2026-11-26T04:09:58.061364398Z"),
        cri("stdout", "F", chunks[2], ts="2026-11-26T04:09:58.061364399Z"),
    ]
    assert [len(p) - 1 for p in physical] == [16423, 16424, 7272]
    data = b"".join(physical)
    for chunk_size in (len(data), 4096, 1000, 7):
        parser = CriLineParser()
        (line,) = feed_all(parser, data, chunk_size)
        assert line.content.encode() == original
        assert line.flags == frozenset()  # the straddling euro sign is whole again
        assert (line.start_offset, line.end_offset, line.physical_lines) == (0, len(data), 3)
        assert line.timestamp == "2026-11-26T04:09:58.06136439Z"


def test_content_is_kept_byte_for_byte_including_cr_spaces_and_tag_extensions() -> None:
    """CRLF output keeps its \\r, inner spaces and tabs survive, empty lines are lines."""
    data = (
        cri("stdout", "F", "windows line\r")
        + cri("stdout", "F", "  two  spaces\tand tab ")
        + cri("stdout", "F", "")
        + f"{TS} stdout F\n".encode()  # no space after the tag: empty content
        + cri("stderr", "F:extension", "forward compatible tag")
        + cri("stderr", "P:extension", "partial ")
        + cri("stderr", "F", "with extension")
    )
    lines = CriLineParser().feed(data, 0)
    assert [ln.content for ln in lines] == [
        "windows line\r",
        "  two  spaces\tand tab ",
        "",
        "",
        "forward compatible tag",
        "partial with extension",
    ]
    assert all(not ln.parse_error for ln in lines)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"just some text", "cri_timestamp"),
        (b"two words", "cri_fields"),
        (b"notatime stdout F hello", "cri_timestamp"),
        (b"2026-13-01T00:00:00Z stdout F month 13", "cri_timestamp"),
        (TS.encode() + b" stdfoo F hello", "cri_stream"),
        (TS.encode() + b"  stdout F two spaces", "cri_stream"),
        (TS.encode() + b" stdout X hello", "cri_tag"),
        (b"", "cri_fields"),
    ],
)
def test_malformed_lines_are_shipped_whole_with_a_parse_error(raw: bytes, reason: str) -> None:
    """A line that is not CRI becomes a Line whose content is the whole raw line."""
    parser = CriLineParser()
    (line,) = parser.feed(raw + b"\n", 0)
    assert line.content == raw.decode()
    assert line.parse_error == reason
    assert line.flags == {FLAG_PARSE_ERROR}
    assert (line.stream, line.timestamp) == ("unknown", "")
    assert (line.start_offset, line.end_offset) == (0, len(raw) + 1)
    assert parser.stats.parse_errors == 1


def test_malformed_line_inside_a_partial_sequence_does_not_break_the_join() -> None:
    """Garbage between P and F is its own Line; the P/F pair still joins."""
    data = cri("stdout", "P", "a") + b"\x00garbage\xff\n" + cri("stdout", "F", "b")
    lines = CriLineParser().feed(data, 0)
    assert [(ln.content, sorted(ln.flags)) for ln in lines] == [
        ("\x00garbage\ufffd", [FLAG_INVALID_UTF8, FLAG_PARSE_ERROR]),
        ("ab", []),
    ]


def test_invalid_utf8_is_replaced_and_flagged() -> None:
    """Invalid bytes become U+FFFD; the line is kept and counted."""
    parser = CriLineParser()
    (line,) = parser.feed(cri("stdout", "F", b"bad \xc3\x28 byte"), 0)
    assert line.content == "bad \ufffd( byte"
    assert line.flags == {FLAG_INVALID_UTF8}
    assert parser.stats.invalid_utf8 == 1


def test_unterminated_partial_is_flushed_after_the_timeout() -> None:
    """A P whose F never comes (the container died) is emitted by flush(now)."""
    p = cri("stdout", "P", "last words")
    parser = CriLineParser(partial_timeout_s=5.0)
    assert parser.feed(p, 0, now=100.0) == []
    assert parser.next_deadline() == 105.0
    assert parser.flush(104.9) == []
    assert parser.safe_offset == 0
    (line,) = parser.flush(105.0)
    assert (line.content, line.flags) == ("last words", {FLAG_PARTIAL_UNTERMINATED})
    assert parser.safe_offset == len(p)
    assert parser.next_deadline() is None
    assert parser.stats.unterminated_partials == 1


def test_flush_all_emits_partials_and_a_last_line_without_newline() -> None:
    """At close every pending byte is emitted; nothing is left behind."""
    p = cri("stderr", "P", "half")
    tail = cri("stdout", "F", "no newline")[:-1]
    parser = CriLineParser()
    assert parser.feed(p + tail, 0) == []
    lines = parser.flush_all()
    assert [(ln.content, ln.flags) for ln in lines] == [
        ("no newline", {FLAG_NO_NEWLINE}),
        ("half", {FLAG_PARTIAL_UNTERMINATED}),
    ]
    assert parser.safe_offset == len(p + tail)
    assert parser.pending_spans() == []


def test_merged_line_over_the_maximum_is_emitted_in_flagged_pieces() -> None:
    """A never-ending P sequence is not held without bound: pieces, nothing cut."""
    parts = [cri("stdout", "P", str(i) * 40) for i in range(5)] + [cri("stdout", "F", "end")]
    data = b"".join(parts)
    parser = CriLineParser(max_line_bytes=100)
    lines = parser.feed(data, 0)
    assert [ln.content for ln in lines] == [
        "0" * 40 + "1" * 40 + "2" * 40,
        "3" * 40 + "4" * 40 + "end",
    ]
    assert all(FLAG_OVERSIZE in ln.flags for ln in lines)
    assert [(ln.piece, ln.last_piece) for ln in lines] == [(0, False), (1, True)]
    assert {ln.group_offset for ln in lines} == {0}
    assert lines[1].start_offset == len(b"".join(parts[:3]))
    assert parser.stats.oversize_pieces == 2


def test_safe_offset_advances_past_an_emitted_oversize_piece() -> None:
    """Once a piece is emitted, its bytes need not be re-read after a restart."""
    parts = [cri("stdout", "P", "y" * 60) for _ in range(3)]
    parser = CriLineParser(max_line_bytes=100)
    (piece,) = parser.feed(b"".join(parts), 0)
    assert piece.end_offset == len(parts[0] + parts[1])
    assert parser.safe_offset == piece.end_offset


def test_feeding_at_the_wrong_offset_is_refused() -> None:
    """Offsets make record ids and checkpoints, so a gap is a caller bug, loudly."""
    parser = CriLineParser(offset=1000)
    line = cri("stdout", "F", "x")
    (got,) = parser.feed(line, 1000)
    assert got.start_offset == 1000
    with pytest.raises(ValueError, match="expected"):
        parser.feed(line, 1000)
