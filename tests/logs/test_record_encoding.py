"""FileRecordEncoder: the JSON it writes is exactly the records build_log_records describes.

The encoder writes a common line's record from byte fragments made once per file and
hands every other line to build_log_records. These tests hold both paths to the dict
path (parsed JSON equal: same keys, same values), over lines of every kind the parsers
emit, and pin the byte form of a common record.
"""

from __future__ import annotations

import json

import pytest

from kk_common.envelope import log_record_id, merge_ranges
from kk_logs.parsing import (
    FLAG_OVERSIZE,
    CriLineParser,
    DockerJsonParser,
    Line,
)
from kk_logs.parsing.plain import PlainTextParser
from kk_logs.records import TAG_BAD_TIMESTAMP, FileRecordEncoder, build_log_records

IDENTITY = "803.2a41.9f86d081884c7d65"
NOW = "2026-12-02T10:00:05.5Z"
TS = "2026-12-02T10:00:00.123456789Z"

LABELS = {
    "k8s_cluster": "prod",
    "k8s_node": "node-1",
    "k8s_namespace": "shop",
    "k8s_pod": "checkout-7d9f-abcde",
    "k8s_container": "app",
    "label_app_kubernetes_io_name": "checkout",
}
ODD_LABELS = {
    "label_app.kubernetes.io/name": "dots and slashes",  # sanitized to _
    "label_app_kubernetes_io_name": "collides with the sanitized key above",
    "annotation_a/b": 'quote " backslash \\ tab \t nul \x00',
    "stream": "spoofed",  # the line's stream wins
    "timestamp_source": "metadata",  # a plain-text file's read_time wins
    "ünïcode": "ßé😀",
    "": "empty key",
}


def cri(ts: str, stream: str, tag: str, content: str | bytes) -> bytes:
    body = content.encode() if isinstance(content, str) else content
    return f"{ts} {stream} {tag} ".encode() + body + b"\n"


def container_lines() -> list[Line]:
    """What the CRI and docker parsers emit, of every kind that reaches records."""
    data = b"".join(
        [
            cri(TS, "stdout", "F", "GET /api/items 200 12ms"),
            cri(TS, "stderr", "F", "E1202 10:00:00.000000 1 x.go:1] failed"),
            cri(TS, "stdout", "F", '{"level":"warn","msg":"disk 91%","n":1}'),
            cri(TS, "stdout", "F", '{"ctx":{"level":"debug"},"severity":"ERROR"}'),
            cri(TS, "stdout", "F", '{"msg":"quote \\" and \\\\ and \\u00e9"}'),
            cri(TS, "stdout", "F", 'time=x level=debug msg="logfmt"'),
            cri(TS, "stdout", "F", "windows line\r"),
            cri(TS, "stdout", "F", ""),
            cri(TS, "stdout", "F", "tab\tnul\x00 bell\x07 del\x7f unicode é 😀 \u2028"),
            cri(TS, "stdout", "F", b"bad \xff\xfe utf-8"),  # invalid_utf8
            cri("2026-12-02T11:00:00.5+01:00", "stdout", "F", "offset timestamp"),
            b"not a cri line at all\n",  # parse_error cri_timestamp
            cri(TS, "stdin", "F", "bad stream"),  # parse_error cri_stream
            cri("2026-02-30T00:00:00Z", "stdout", "F", "impossible date"),
            cri(TS, "stdout", "P", "joined: first half, "),
            cri(TS, "stderr", "F", "[ERROR] between the halves"),
            cri(TS, "stdout", "F", "second half"),
            cri(TS, "stdout", "F", "x" * 25_000),  # three continuation records
            cri(TS, "stdout", "F", "y" * 9_999 + "\r"),  # exactly the limit after the \r
            cri(TS, "stdout", "F", "€" * 10_001),  # the limit counts characters
            cri(TS, "stdout", "P", "unterminated partial"),
        ]
    )
    parser = CriLineParser()
    lines = parser.feed(data + b"2026-12-02T10:00:01Z stdout F no newline at the end", 0)
    lines += parser.flush_all()  # partial_unterminated and no_newline
    # Oversize pieces: a P...F sequence longer than the parser's maximum.
    pieces = CriLineParser(max_line_bytes=64)
    lines += pieces.feed(b"".join(cri(TS, "stdout", "P", "p" * 40) for _ in range(4)), 0)
    lines += pieces.feed(cri(TS, "stdout", "F", "end of the long line"), pieces.offset)
    assert sum(FLAG_OVERSIZE in line.flags for line in lines) >= 3
    docker = DockerJsonParser()
    entries = [
        {"log": "docker line\n", "stream": "stdout", "time": TS},
        {"log": "lone surrogate \ud800 here\n", "stream": "stderr", "time": TS},
    ]
    lines += docker.feed(b"".join(json.dumps(e).encode() + b"\n" for e in entries), 0)
    return lines


def system_lines() -> list[Line]:
    """Plain-text lines of a node system log: no stream tag, no timestamp."""
    data = b"Dec  2 10:00:00 node-1 kubelet[42]: E1202 started\nplain\r\n" + b"z" * 10_500 + b"\n"
    parser = PlainTextParser()
    return parser.feed(data + b"\xff bad and no newline", 0) + parser.flush_all()


def dict_records(line: Line, labels: dict[str, str], plain_text: bool, limit: int) -> list[dict]:
    """The records as the dict path makes them, with system logs relabelled as before."""
    records = build_log_records(
        line,
        file_identity=IDENTITY,
        meta=labels,
        service_name="checkout",
        hostname="node-1",
        now_rfc3339=NOW,
        max_message_chars=limit,
    )
    if plain_text:
        for record in records:
            record["tags"] = [tag for tag in record["tags"] if tag != TAG_BAD_TIMESTAMP]
            record["labels"]["timestamp_source"] = "read_time"
    return records


@pytest.mark.parametrize("labels", [LABELS, ODD_LABELS, {}], ids=["k8s", "odd", "none"])
@pytest.mark.parametrize(
    ("kind", "limit"),
    [("container", 10_000), ("container", 7), ("system", 10_000)],
    ids=["container", "tiny-limit", "system"],
)
def test_encoded_records_equal_the_dict_records_for_every_kind_of_line(
    labels: dict[str, str], kind: str, limit: int
) -> None:
    """Same keys and values, ids, one position per record and the lines' physical spans."""
    plain_text = kind == "system"
    lines = system_lines() if plain_text else container_lines()
    encoder = FileRecordEncoder(
        IDENTITY,
        labels=labels,
        service_name="checkout",
        hostname="node-1",
        plain_text=plain_text,
        max_message_chars=limit,
    )
    encoded = encoder.encode(lines, NOW)

    expected = [dict_records(line, labels, plain_text, limit) for line in lines]
    flat = [record for records in expected for record in records]
    assert [json.loads(body) for body in encoded.bodies] == flat
    assert encoded.ids == [record["id"] for record in flat]
    assert encoded.positions == [
        line.start_offset for line, records in zip(lines, expected, strict=True) for _ in records
    ]
    # Spans of lines that follow each other may come merged; the claims are the same.
    assert merge_ranges(encoded.spans) == merge_ranges(
        span for line in lines for span in line.spans
    )
    for body in encoded.bodies:
        assert body.endswith(b"\n") and body.count(b"\n") == 1


def test_a_common_record_is_compact_json_in_the_receivers_field_order() -> None:
    """The bytes the shipper stores and sends, for the common line."""
    (line,) = CriLineParser(offset=4096).feed(cri(TS, "stderr", "F", 'WARN: "disk" 91%'), 4096)
    encoder = FileRecordEncoder(
        IDENTITY,
        labels={"k8s_namespace": "shop", "k8s_pod": "checkout-1"},
        service_name="checkout",
        hostname="node-1",
    )
    encoded = encoder.encode([line], NOW)
    record_id = log_record_id(IDENTITY, 4096)
    assert encoded.bodies == [
        b'{"id":"' + record_id.encode() + b'","timestamp":"2026-12-02T10:00:00.123456789Z",'
        b'"log_level":"warn","message":"WARN: \\"disk\\" 91%","service_name":"checkout",'
        b'"hostname":"node-1","ecs_version":"8.0","labels":{"k8s_namespace":"shop",'
        b'"k8s_pod":"checkout-1","stream":"stderr"},"tags":[]}\n'
    ]
    assert (encoded.ids, encoded.positions) == ([record_id], [4096])
    assert encoded.spans == [(4096, line.end_offset)]


def test_a_system_log_line_carries_the_read_time_as_a_label_not_as_a_defect() -> None:
    """Plain text has no runtime timestamp: timestamp_source=read_time, no bad_timestamp."""
    (line,) = PlainTextParser().feed(b"Dec  2 10:00:00 node-1 sshd[7]: accepted\n", 0)
    encoder = FileRecordEncoder(
        IDENTITY,
        labels={"log_file": "/var/log/syslog", "source": "system"},
        service_name="syslog",
        hostname="node-1",
        plain_text=True,
    )
    (record,) = [json.loads(body) for body in encoder.encode([line], NOW).bodies]
    assert record["timestamp"] == NOW
    assert record["tags"] == []
    assert record["labels"] == {
        "log_file": "/var/log/syslog",
        "source": "system",
        "stream": "system",
        "timestamp_source": "read_time",
    }


def test_a_split_message_shares_its_lines_position_and_claims_its_line_once() -> None:
    """Continuation records all start where the line starts; the span is the line's."""
    (line,) = CriLineParser(offset=100).feed(cri(TS, "stdout", "F", "m" * 25_000), 100)
    encoder = FileRecordEncoder(IDENTITY, labels={}, service_name="s", hostname="h")
    encoded = encoder.encode([line], NOW)
    assert encoded.ids == [log_record_id(IDENTITY, 100, part) for part in range(3)]
    assert encoded.positions == [100, 100, 100]
    assert encoded.spans == [(100, line.end_offset)]


def test_max_message_chars_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        FileRecordEncoder(IDENTITY, labels={}, service_name="s", hostname="h", max_message_chars=0)
