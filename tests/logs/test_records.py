"""build_log_records: Line + metadata -> receiver-shaped records."""

from __future__ import annotations

import json

import pytest

from kk_common.envelope import log_record_id
from kk_logs.parsing import (
    FLAG_INVALID_UTF8,
    FLAG_OVERSIZE,
    FLAG_PARSE_ERROR,
    FLAG_PARTIAL_UNTERMINATED,
    CriLineParser,
    Line,
)
from kk_logs.records import build_log_records, sanitize_label_key

TS = "2026-11-26T10:00:00.123456789Z"
NOW = "2026-11-26T10:00:05.5Z"
META = {"k8s_namespace": "shop", "k8s_pod": "checkout-7d9f-abcde", "k8s_container": "app"}


def line(content: str = "GET /api/items 200 12ms", **overrides: object) -> Line:
    fields: dict = {
        "start_offset": 4096,
        "end_offset": 4200,
        "stream": "stdout",
        "timestamp": TS,
        "raw_timestamp": TS,
        "content": content,
    }
    fields.update(overrides)
    return Line(**fields)


def build(ln: Line, **overrides: object) -> list[dict]:
    kwargs: dict = {
        "file_identity": "dev1:ino42:fp",
        "meta": META,
        "service_name": "checkout",
        "hostname": "node-1",
        "now_rfc3339": NOW,
    }
    kwargs.update(overrides)
    return build_log_records(ln, **kwargs)


def test_a_plain_line_becomes_one_record_of_the_exact_receiver_shape() -> None:
    """All documented fields, in order, with string labels and the stream."""
    assert build(line()) == [
        {
            "id": log_record_id("dev1:ino42:fp", 4096, 0),
            "timestamp": TS,
            "log_level": "info",
            "message": "GET /api/items 200 12ms",
            "service_name": "checkout",
            "hostname": "node-1",
            "ecs_version": "8.0",
            "labels": {**META, "stream": "stdout"},
            "tags": [],
        }
    ]


def test_record_is_json_serialisable_as_utf8() -> None:
    """The shipper encodes records as UTF-8 JSON; replacement chars are fine."""
    (record,) = build(line("bad \ufffd and é", flags=frozenset({FLAG_INVALID_UTF8})))
    json.dumps(record, ensure_ascii=False).encode("utf-8")
    assert record["tags"] == ["invalid_utf8"]


def test_level_is_extracted_from_the_message() -> None:
    """log_level comes from levels.detect_level, not from the stream."""
    (record,) = build(line("E1126 10:00:00.000000 1 x.go:1] failed", stream="stderr"))
    assert (record["log_level"], record["labels"]["stream"]) == ("error", "stderr")


def test_25000_character_message_is_split_into_three_continuation_records() -> None:
    """Parts 1/3..3/3 with their own ids, all pointing at part 0 via split_of."""
    message = "a" * 10_000 + "b" * 10_000 + "c" * 5_000
    records = build(line(message))
    first_id = log_record_id("dev1:ino42:fp", 4096, 0)
    assert [r["message"] for r in records] == ["a" * 10_000, "b" * 10_000, "c" * 5_000]
    assert [r["labels"]["continuation"] for r in records] == ["1/3", "2/3", "3/3"]
    assert {r["labels"]["split_of"] for r in records} == {first_id}
    assert [r["id"] for r in records] == [log_record_id("dev1:ino42:fp", 4096, i) for i in range(3)]
    assert len({r["id"] for r in records}) == 3
    assert "".join(r["message"] for r in records) == message
    assert all(r["timestamp"] == TS and r["labels"]["k8s_pod"] == META["k8s_pod"] for r in records)


def test_message_of_exactly_the_limit_is_not_split() -> None:
    """10,000 characters is one record; 10,001 is two."""
    assert len(build(line("x" * 10_000))) == 1
    assert [r["labels"]["continuation"] for r in build(line("x" * 10_001))] == ["1/2", "2/2"]


def test_split_counts_characters_not_bytes() -> None:
    """The limit is in characters: 3-byte characters do not split early."""
    assert len(build(line("€" * 10_000))) == 1


def test_ids_are_deterministic_and_depend_on_file_and_offset() -> None:
    """The same line at the same offset of the same file always gets the same id."""
    (a,) = build(line())
    (b,) = build(line())
    (c,) = build(line(start_offset=4200))
    (d,) = build(line(), file_identity="other-file")
    assert a["id"] == b["id"]
    assert len({a["id"], c["id"], d["id"]}) == 3


def test_bad_timestamp_uses_the_read_time_and_is_tagged() -> None:
    """A line without a usable runtime time gets now_rfc3339 and the bad_timestamp tag."""
    (record,) = build(line(timestamp="", raw_timestamp="notatime"))
    assert record["timestamp"] == NOW
    assert record["tags"] == ["bad_timestamp"]


def test_parse_error_lines_carry_the_reason_as_label_and_tag() -> None:
    """A malformed line is shipped whole, visibly."""
    parser = CriLineParser()
    (bad,) = parser.feed(b"not a cri line\n", 0)
    (record,) = build(bad)
    assert record["message"] == "not a cri line"
    assert record["labels"]["parse_error"] == "cri_timestamp"
    assert record["labels"]["stream"] == "unknown"
    assert record["tags"] == [FLAG_PARSE_ERROR, "bad_timestamp"]
    assert record["timestamp"] == NOW


def test_unterminated_partial_is_labelled_and_tagged() -> None:
    """A flushed P without F says so."""
    (record,) = build(line(flags=frozenset({FLAG_PARTIAL_UNTERMINATED})))
    assert record["labels"]["partial"] == "unterminated"
    assert record["tags"] == [FLAG_PARTIAL_UNTERMINATED]


def test_oversize_pieces_link_back_to_the_first_piece() -> None:
    """Pieces of an over-maximum line name piece 0 and their position; the last says so."""
    first = line(
        "p0", flags=frozenset({FLAG_OVERSIZE}), piece=0, last_piece=False, first_piece_offset=4096
    )
    last = line(
        "p1",
        start_offset=9000,
        flags=frozenset({FLAG_OVERSIZE}),
        piece=1,
        last_piece=True,
        first_piece_offset=4096,
    )
    (r0,), (r1,) = build(first), build(last)
    anchor = log_record_id("dev1:ino42:fp", 4096, 0)
    assert r0["id"] == anchor != r1["id"]
    assert (r0["labels"]["oversize_of"], r0["labels"]["oversize_piece"]) == (anchor, "1")
    assert (r1["labels"]["oversize_of"], r1["labels"]["oversize_piece"]) == (anchor, "2")
    assert "oversize_last" not in r0["labels"] and r1["labels"]["oversize_last"] == "true"
    assert r1["tags"] == [FLAG_OVERSIZE]


def test_trailing_carriage_return_is_dropped_from_the_message() -> None:
    """CRLF output: the runtime cut at \\n, the \\r is not part of the message."""
    (record,) = build(line("windows\r"))
    assert record["message"] == "windows"


def test_meta_keys_with_dots_are_sanitized_and_stream_wins() -> None:
    """Labels reach the receiver flat, with no dots in keys."""
    (record,) = build(line(), meta={"label_app.kubernetes.io/name": "x", "stream": "spoof"})
    assert record["labels"] == {"label_app_kubernetes_io_name": "x", "stream": "stdout"}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("app", "app"),
        ("app.kubernetes.io/name", "app_kubernetes_io_name"),
        ("team-name", "team_name"),
        ("a b", "a_b"),
        ("ünïcode", "_n_code"),
        ("already_ok_1", "already_ok_1"),
        ("", ""),
    ],
)
def test_sanitize_label_key(key: str, expected: str) -> None:
    """Every character that is not an ASCII letter or digit becomes ``_``."""
    assert sanitize_label_key(key) == expected


def test_max_message_chars_must_be_positive() -> None:
    """A zero limit would loop forever; it is refused."""
    with pytest.raises(ValueError, match="positive"):
        build(line(), max_message_chars=0)
