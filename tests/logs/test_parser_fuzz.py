"""Property-based tests: arbitrary bytes, arbitrary chunking, nothing lost or duplicated.

Profiles (``KK_TEST_PROFILE``): ``ci`` (default, ~200 examples per property) and
``full`` (~5000). They are registered under this module's own names and applied per
test, so loading them does not change other modules' Hypothesis settings.
"""

from __future__ import annotations

import itertools
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kk_logs.parsing import (
    AutoLineParser,
    CriLineParser,
    DockerJsonParser,
    Line,
    LineParser,
    decode_cri_line,
)

settings.register_profile(
    "kk-logs-parsing-ci",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "kk-logs-parsing-full",
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = settings.get_profile(
    "kk-logs-parsing-full" if os.environ.get("KK_TEST_PROFILE") == "full" else "kk-logs-parsing-ci"
)

KINDS: dict[str, type[LineParser]] = {
    "cri": CriLineParser,
    "docker": DockerJsonParser,
    "auto": AutoLineParser,
}

timestamps = st.sampled_from(
    [
        "2026-11-26T04:09:57.059307123Z",
        "2026-11-26T04:09:57.0593071Z",
        "2026-11-26T04:09:57Z",
        "2026-11-26T05:09:57.5+01:00",
        "2026-02-30T00:00:00Z",  # invalid date: a parse error
    ]
)
streams = st.sampled_from(["stdout", "stderr", "stdin"])
raw_content = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b""))
# Some text that is valid UTF-8 including multi-byte characters, some invalid bytes.
content = st.one_of(st.text(max_size=20).map(lambda s: s.replace("\n", "").encode()), raw_content)


@st.composite
def cri_lines(draw: st.DrawFn) -> bytes:
    tag = draw(st.sampled_from(["P", "F", "P", "F:x", "Q"]))
    return f"{draw(timestamps)} {draw(streams)} {tag} ".encode() + draw(content)


@st.composite
def docker_lines(draw: st.DrawFn) -> bytes:
    log = draw(st.text(max_size=20)) + draw(st.sampled_from(["\n", "", "\n"]))
    obj = {"log": log, "stream": draw(streams), "time": draw(timestamps)}
    return json.dumps(obj, ensure_ascii=draw(st.booleans())).encode()


physical_lines = st.one_of(cri_lines(), docker_lines(), raw_content)


@st.composite
def inputs(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    lines = draw(st.lists(physical_lines, max_size=25))
    data = b"\n".join(lines)
    if lines and draw(st.booleans()):
        data += b"\n"
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=12))))
    return data, cuts


def run(kind: str, data: bytes, cuts: list[int], max_line: int) -> tuple[list[Line], LineParser]:
    """Feed ``data`` cut at ``cuts``; check safe_offset after every chunk."""
    parser = KINDS[kind](max_line_bytes=max_line)
    emitted: list[Line] = []
    bounds = [0, *cuts, len(data)]
    for start, end in itertools.pairwise(bounds):
        emitted += parser.feed(data[start:end], start)
        covered = sorted(span for line in emitted for span in line.spans)
        assert_tiles(covered + parser.pending_spans(), end)
        # Every byte before safe_offset is in an emitted line: nothing pending before it.
        assert all(s >= parser.safe_offset for s, _ in parser.pending_spans())
    return emitted, parser


def assert_tiles(spans: list[tuple[int, int]], length: int) -> None:
    """``spans`` cover ``[0, length)`` exactly once: no gap, no overlap."""
    position = 0
    for start, end in sorted(spans):
        assert start == position, (start, position, spans)
        assert end > start
        position = end
    assert position == length


@PROFILE
@given(inputs(), st.sampled_from(sorted(KINDS)), st.integers(1, 120))
def test_chunking_never_changes_the_lines(
    case: tuple[bytes, list[int]], kind: str, max_line: int
) -> None:
    """However the bytes arrive, the same Lines come out, and every byte is accounted for."""
    data, cuts = case
    whole, whole_parser = run(kind, data, [], max_line)
    chunked, chunked_parser = run(kind, data, cuts, max_line)
    assert chunked == whole
    assert chunked_parser.safe_offset == whole_parser.safe_offset
    assert chunked_parser.pending_spans() == whole_parser.pending_spans()
    rest_whole, rest_chunked = whole_parser.flush_all(), chunked_parser.flush_all()
    assert rest_chunked == rest_whole
    everything = whole + rest_whole
    # After close, each physical line (including a last one without \n) is in exactly
    # one Line, and the resume point is the end of the data.
    assert_tiles([span for line in everything for span in line.spans], len(data))
    assert whole_parser.safe_offset == len(data)
    assert whole_parser.pending_spans() == []
    for line in everything:
        assert line.start_offset == line.spans[0][0]
        assert line.end_offset == line.spans[-1][1]
        assert line.physical_lines == len(line.spans)
        line.content.encode("utf-8")  # always shippable as UTF-8
    stats = whole_parser.stats
    assert stats.lines == len(everything)
    assert stats.physical_lines == len(data.split(b"\n")) - (1 if data.endswith(b"\n") else 0) - (
        1 if not data else 0
    )


@st.composite
def valid_cri_files(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, str, bytes]]]:
    records = draw(
        st.lists(
            st.tuples(st.sampled_from(["stdout", "stderr"]), st.sampled_from(["P", "F"]), content),
            max_size=30,
        )
    )
    data = b"".join(
        f"2026-11-26T04:09:57.{i:09d}Z {stream} {tag} ".encode() + body + b"\n"
        for i, (stream, tag, body) in enumerate(records)
    )
    return data, records


@PROFILE
@given(valid_cri_files(), st.data())
def test_cri_partials_join_per_stream_like_a_simple_model(
    case: tuple[bytes, list[tuple[str, str, bytes]]], data: st.DataObject
) -> None:
    """Against a plain model: per stream, P parts accumulate until an F completes them."""
    raw, records = case
    pending: dict[str, tuple[int, list[bytes]]] = {}  # stream -> (first index, parts)
    expected = []
    for index, (stream, tag, body) in enumerate(records):
        pending.setdefault(stream, (index, []))[1].append(body)
        if tag == "F":
            expected.append((stream, b"".join(pending.pop(stream)[1]).decode("utf-8", "replace")))
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=8))))
    lines, parser = run("cri", raw, cuts, 1 << 20)
    assert [(line.stream, line.content) for line in lines] == expected
    # At close, the open sequences come out oldest first, flagged unterminated.
    leftovers = parser.flush_all()
    assert [(line.stream, line.content) for line in leftovers] == [
        (stream, b"".join(parts).decode("utf-8", "replace"))
        for stream, (_first, parts) in sorted(pending.items(), key=lambda item: item[1][0])
    ]
    assert all(line.flags >= {"partial_unterminated"} for line in leftovers)


@PROFILE
@given(st.binary(max_size=300), st.data())
def test_arbitrary_bytes_never_crash_and_nothing_is_dropped(
    raw: bytes, data: st.DataObject
) -> None:
    """Pure noise still tiles: every byte ends up in exactly one Line after close."""
    kind = data.draw(st.sampled_from(sorted(KINDS)))
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=8))))
    lines, parser = run(kind, raw, cuts, data.draw(st.integers(1, 64)))
    lines += parser.flush_all()
    assert_tiles([span for line in lines for span in line.spans], len(raw))


class PerLineCriParser(LineParser):
    """CRI read one physical line at a time, by `decode_cri_line`: the reference that
    `CriLineParser`'s one-regex-per-buffer path must agree with, line for line."""

    codec = (lambda raw: decode_cri_line(raw), *CriLineParser.codec[1:])


# Dates at the edges of the buffer path's "every year" rule, offsets, >9 fraction digits
# and lower case: the buffer path takes some, the per-line decoder all.
edge_timestamps = st.sampled_from(
    [
        "2026-11-26T04:09:57.059307123Z",
        "2026-11-26T04:09:57Z",
        "2026-01-31T23:59:59.5Z",
        "2026-04-30T00:00:00.1Z",
        "2026-04-31T00:00:00Z",
        "2024-02-29T12:00:00.123Z",
        "2026-02-29T12:00:00.123Z",
        "2026-12-31T23:59:60.999999999Z",
        "2026-11-26T04:09:57.0593071234Z",
        "2026-11-26t04:09:57z",
        "2026-11-26 04:09:57Z",
        "2026-11-26T05:09:57.5+01:00",
        "2026-13-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "",
    ]
)
cri_tags = st.sampled_from(["P", "F", "F", "P:x", "F:x", "Q", "", "FP"])
separators = st.sampled_from([" ", " ", " ", "  ", "\t"])


@st.composite
def edgy_cri_lines(draw: st.DrawFn) -> bytes:
    gap = draw(separators)
    head = f"{draw(edge_timestamps)}{gap}{draw(streams)} {draw(cri_tags)}"
    tail = draw(st.sampled_from([b" ", b" ", b"", b"  "])) + draw(content)
    return head.encode() + tail + draw(st.sampled_from([b"", b"", b"\r"]))


@PROFILE
@given(
    st.lists(st.one_of(edgy_cri_lines(), edgy_cri_lines(), raw_content), max_size=25),
    st.data(),
    st.sampled_from([CriLineParser, AutoLineParser]),
)
def test_cri_buffer_path_gives_what_the_per_line_decoder_gives(
    lines: list[bytes], data: st.DataObject, kind: type[LineParser]
) -> None:
    """Every Line, flag, counter, safe offset and pending span, after every chunk."""
    if kind is AutoLineParser:  # a CRI file's first line decides, then the rest is CRI
        lines = [b"2026-11-26T04:09:57Z stdout F first", *lines]
    raw = b"\n".join(lines) + data.draw(st.sampled_from([b"\n", b""]))
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=8))))
    max_line = data.draw(st.integers(1, 200))
    fast, reference = kind(max_line_bytes=max_line), PerLineCriParser(max_line_bytes=max_line)
    for start, end in itertools.pairwise([0, *cuts, len(raw)]):
        chunk = raw[start:end]
        assert fast.feed(chunk, start, now=float(start)) == reference.feed(
            chunk, start, now=float(start)
        )
        assert fast.safe_offset == reference.safe_offset
        assert fast.pending_spans() == reference.pending_spans()
    assert fast.flush(1e9) == reference.flush(1e9)
    assert fast.flush_all() == reference.flush_all()
    assert fast.stats == reference.stats
