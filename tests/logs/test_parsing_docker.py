"""DockerJsonParser: docker json-file logs, including dockerd's 16 KiB splits."""

from __future__ import annotations

import json

import pytest

from kk_logs.parsing import (
    FLAG_INVALID_UTF8,
    FLAG_PARSE_ERROR,
    FLAG_PARTIAL_UNTERMINATED,
    DockerJsonParser,
)

TIME = "2026-11-26T10:00:00.123456789Z"


def entry(log: str, stream: str = "stdout", time: str = TIME) -> bytes:
    return json.dumps({"log": log, "stream": stream, "time": time}).encode() + b"\n"


def test_full_lines_drop_the_trailing_newline_of_log() -> None:
    """Each entry whose log ends in \\n is one Line; stream and time are kept."""
    data = entry("GET / 200\n") + entry("oops\n", "stderr", "2026-11-26T09:59:59.000000001Z")
    lines = DockerJsonParser().feed(data, 0)
    assert [(ln.stream, ln.timestamp, ln.content) for ln in lines] == [
        ("stdout", TIME, "GET / 200"),
        ("stderr", "2026-11-26T09:59:59.000000001Z", "oops"),
    ]
    assert lines[1].start_offset == lines[0].end_offset == len(entry("GET / 200\n"))


def test_16k_splits_are_joined_per_stream() -> None:
    """dockerd's split entries (no trailing \\n) join with the next entry of the same stream."""
    big = "a" * 16384 + "b" * 16384 + "c" * 10
    data = (
        entry(big[:16384])
        + entry("interleaved\n", "stderr")
        + entry(big[16384:32768])
        + entry(big[32768:] + "\n")
    )
    parser = DockerJsonParser()
    lines = parser.feed(data, 0)
    assert [(ln.stream, ln.content) for ln in lines] == [("stderr", "interleaved"), ("stdout", big)]
    assert lines[1].physical_lines == 3
    assert parser.safe_offset == len(data)


def test_split_size_is_not_assumed() -> None:
    """Any entry without a newline is a partial, whatever its size."""
    lines = DockerJsonParser().feed(entry("ab") + entry("c") + entry("d\n"), 0)
    assert [ln.content for ln in lines] == ["abcd"]


@pytest.mark.parametrize(
    ("raw_log", "expected"),
    [
        (r"tab\there \"quoted\" back\\slash\n", 'tab\there "quoted" back\\slash'),
        (r"caf\u00e9 \ud83d\ude00\n", "café 😀"),
        ("caf\u00e9 raw utf-8 \U0001f600\\n", "café raw utf-8 😀"),
        (r"inner\nnewline\n", "inner\nnewline"),
        (r"\u0000nul\n", "\x00nul"),
    ],
)
def test_escaped_content_and_unicode_are_decoded(raw_log: str, expected: str) -> None:
    """JSON escapes, surrogate pairs and raw UTF-8 all decode to the original text."""
    raw = ('{"log":"' + raw_log + '","stream":"stdout","time":"' + TIME + '"}\n').encode()
    (line,) = DockerJsonParser().feed(raw, 0)
    assert line.content == expected
    assert line.flags == frozenset()


def test_lone_surrogate_escape_is_replaced_and_flagged() -> None:
    """ "\\ud800" decodes to a lone surrogate, which no UTF-8 encoder can write."""
    raw = ('{"log":"x\\ud800y\\n","stream":"stdout","time":"' + TIME + '"}\n').encode()
    (line,) = DockerJsonParser().feed(raw, 0)
    assert "\ud800" not in line.content
    line.content.encode("utf-8")
    assert line.flags == {FLAG_INVALID_UTF8}


def test_invalid_utf8_bytes_in_the_file_are_replaced_and_flagged() -> None:
    """Corrupt bytes inside the JSON string still give a Line, with U+FFFD."""
    raw = b'{"log":"bad \xff byte\\n","stream":"stdout","time":"' + TIME.encode() + b'"}\n'
    (line,) = DockerJsonParser().feed(raw, 0)
    assert (line.content, line.flags) == ("bad \ufffd byte", {FLAG_INVALID_UTF8})


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"log":"truncated', "docker_json"),
        # Nested past Python's recursion limit: one bad line, not a crashed service.
        (b'{"log":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "docker_json"),
        (b'["log","stdout"]', "docker_json"),
        (b"plain text", "docker_json"),
        (b'{"log":42,"stream":"stdout","time":"' + TIME.encode() + b'"}', "docker_log"),
        (b'{"log":"x\\n","stream":"stdin","time":"' + TIME.encode() + b'"}', "docker_stream"),
        (b'{"log":"x\\n","time":"' + TIME.encode() + b'"}', "docker_stream"),
        (b'{"log":"x\\n","stream":"stdout","time":"yesterday"}', "docker_timestamp"),
        (b'{"log":"x\\n","stream":"stdout","time":1700000000}', "docker_timestamp"),
    ],
)
def test_malformed_entries_are_shipped_whole_with_a_parse_error(raw: bytes, reason: str) -> None:
    """Anything that is not a valid json-file entry is kept as the raw line."""
    parser = DockerJsonParser()
    (line,) = parser.feed(raw + b"\n", 0)
    assert (line.content, line.parse_error, line.flags) == (
        raw.decode(),
        reason,
        {FLAG_PARSE_ERROR},
    )
    assert parser.stats.parse_errors == 1


def test_last_output_without_newline_is_flushed_as_unterminated() -> None:
    """A container that exits mid-line leaves a partial that the timeout flushes."""
    parser = DockerJsonParser(partial_timeout_s=1.0)
    assert parser.feed(entry("bye"), 0, now=0.0) == []
    (line,) = parser.flush(1.0)
    assert (line.content, line.flags) == ("bye", {FLAG_PARTIAL_UNTERMINATED})
