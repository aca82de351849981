"""Plain text (node system log) lines: one Line per physical line, nothing dropped."""

from __future__ import annotations

from kk_logs.parsing import make_parser
from kk_logs.parsing.lines import FLAG_INVALID_UTF8, LogFormat


def test_each_physical_line_is_one_line_and_an_incomplete_tail_waits() -> None:
    parser = make_parser("plain")
    assert parser.format is LogFormat.PLAIN
    data = b"Nov 26 10:00:00 node-a kernel: oom-kill\nsecond \xff line\nno newline yet"
    lines = parser.feed(data, 0, now=1.0)
    assert [line.content for line in lines] == [
        "Nov 26 10:00:00 node-a kernel: oom-kill",
        "second \ufffd line",
    ]
    assert [(line.start_offset, line.end_offset) for line in lines] == [(0, 40), (40, 54)]
    assert {line.stream for line in lines} == {"system"}
    assert FLAG_INVALID_UTF8 in lines[1].flags
    assert parser.safe_offset == 54
    [tail] = parser.flush_all()
    assert tail.content == "no newline yet"


def test_lines_that_look_like_cri_or_json_are_not_reinterpreted() -> None:
    parser = make_parser("plain")
    raw = b'2026-11-26T10:00:00Z stdout F hello\n{"log":"x"}\n'
    assert [line.content for line in parser.feed(raw, 0)] == [
        "2026-11-26T10:00:00Z stdout F hello",
        '{"log":"x"}',
    ]
    assert parser.stats.parse_errors == 0
