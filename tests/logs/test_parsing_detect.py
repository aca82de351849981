"""Format detection per file: the first recognisable line decides."""

from __future__ import annotations

import pytest

from kk_logs.parsing import (
    FLAG_PARSE_ERROR,
    AutoLineParser,
    CriLineParser,
    DockerJsonParser,
    LogFormat,
    detect_format,
    make_parser,
)

CRI_LINE = b"2026-11-26T04:09:57.059307123Z stdout F hello\n"
DOCKER_LINE = b'{"log":"hello\\n","stream":"stdout","time":"2026-11-26T04:09:57.059307123Z"}\n'


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (CRI_LINE[:-1], LogFormat.CRI),
        (DOCKER_LINE[:-1], LogFormat.DOCKER),
        (b'{"msg":"a JSON app line, not docker"}', None),
        (b"hello world", None),
        (b"", None),
    ],
)
def test_detect_format_of_one_line(raw: bytes, expected: LogFormat | None) -> None:
    """CRI and docker json-file are told apart; anything else is undecided."""
    assert detect_format(raw) is expected


@pytest.mark.parametrize(
    ("line", "fmt"), [(CRI_LINE, LogFormat.CRI), (DOCKER_LINE, LogFormat.DOCKER)]
)
def test_auto_parser_picks_the_format_from_the_first_line(line: bytes, fmt: LogFormat) -> None:
    """The same content reads the same whichever format the file is in."""
    parser = AutoLineParser()
    assert parser.format is None
    lines = parser.feed(line * 2, 0)
    assert parser.format is fmt
    assert [ln.content for ln in lines] == ["hello", "hello"]


def test_detection_waits_for_a_complete_first_line() -> None:
    """A first line split across reads is detected once its newline arrives."""
    parser = AutoLineParser()
    assert parser.feed(DOCKER_LINE[:10], 0) == []
    assert parser.format is None
    (line,) = parser.feed(DOCKER_LINE[10:], 10)
    assert (parser.format, line.content) == (LogFormat.DOCKER, "hello")


def test_garbage_before_the_first_good_line_is_kept_and_detection_continues() -> None:
    """Undetectable leading lines are shipped raw; the next good line decides."""
    parser = AutoLineParser()
    lines = parser.feed(b"#!junk\n" + CRI_LINE, 0)
    assert [(ln.content, ln.parse_error) for ln in lines] == [
        ("#!junk", "unknown_format"),
        ("hello", ""),
    ]
    assert lines[0].flags == {FLAG_PARSE_ERROR}
    assert parser.format is LogFormat.CRI


def test_once_decided_the_other_format_is_a_parse_error() -> None:
    """A docker line in a CRI file is not silently re-detected."""
    parser = AutoLineParser()
    lines = parser.feed(CRI_LINE + DOCKER_LINE, 0)
    assert lines[1].parse_error == "cri_fields"


def test_make_parser_builds_each_kind() -> None:
    """``auto``, ``cri`` and ``docker`` (strings or LogFormat) name a parser class."""
    assert type(make_parser("auto")) is AutoLineParser
    assert type(make_parser(LogFormat.CRI)) is CriLineParser
    assert type(make_parser("docker", offset=7)) is DockerJsonParser
    assert make_parser("docker", offset=7).offset == 7
    with pytest.raises(ValueError, match="unknown log format"):
        make_parser("syslog")  # type: ignore[arg-type]
