"""The envelope: round trips, tolerant reading, refusals and deterministic ids."""

from __future__ import annotations

import json

import pytest

from kk_common.envelope import (
    Ack,
    AckStatus,
    ComponentStatus,
    EncodedRecords,
    MalformedMessage,
    MetricSample,
    RecordBatch,
    Telemetry,
    UnsupportedVersion,
    decode,
    encode,
    from_record_batch,
    log_record_id,
    log_record_id_prefix,
    metric_record_id,
    stable_id,
)


def a_batch(n: int = 3) -> RecordBatch:
    return RecordBatch(
        batch_id="logs@n1:1",
        producer="logs@n1",
        stream="logs",
        records=[{"id": log_record_id("f1", i * 10), "message": f"line {i}"} for i in range(n)],
    )


def test_record_batch_round_trips() -> None:
    batch = a_batch()
    assert decode(encode(batch)) == batch


def test_one_message_carries_many_records() -> None:
    frames = encode(a_batch(1000))
    assert len(frames) == 2
    assert len(decode(frames).records) == 1000


def test_ack_and_telemetry_round_trip() -> None:
    ack = Ack(batch_id="b", status=AckStatus.REJECTED, reason="bad", duplicates=2)
    telemetry = Telemetry(
        component="logs",
        node="n1",
        sent_at_unix=12.5,
        status=ComponentStatus(ready=True, detail="ok", problems=("slow disk",)),
        samples=(MetricSample("x_total", "counter", 3.0, {"a": "b"}, "help"),),
    )
    assert decode(encode(ack)) == ack
    assert decode(encode(telemetry)) == telemetry


def test_reader_ignores_unknown_fields_and_minor_versions() -> None:
    header, payload = encode(a_batch(2))
    extended = json.loads(payload)
    extended.update(minor=9, brand_new={"nested": [1, 2]})
    assert decode([header, json.dumps(extended).encode()]) == a_batch(2)


@pytest.mark.parametrize("header", [b"kk.v3", b"kk.v0", b"kk.v17"])
def test_unknown_major_version_is_refused(header: bytes) -> None:
    _, payload = encode(a_batch())
    with pytest.raises(UnsupportedVersion) as refused:
        decode([header, payload])
    assert refused.value.reason == "unsupported_version"
    assert "kk.v1" in str(refused.value)


@pytest.mark.parametrize(
    ("frames", "complaint"),
    [
        ([b"kk.v1"], "expected 2 frames"),
        ([b"hello", b"{}"], "not a KillKrill envelope"),
        ([b"kk.vX", b"{}"], "unreadable envelope version"),
        ([b"kk.v1", b"\xff\xfe"], "not UTF-8 JSON"),
        ([b"kk.v1", b"[1]"], "not a JSON object"),
        ([b"kk.v1", b'{"type":"gossip"}'], "unknown message type"),
        (
            [
                b"kk.v1",
                b'{"type":"records","batch_id":"b","producer":"p","stream":"traces","records":[]}',
            ],
            "'stream'",
        ),
        (
            [
                b"kk.v1",
                b'{"type":"records","batch_id":"b","producer":"p","stream":"logs",'
                b'"records":[{"message":"no id"}]}',
            ],
            "records[0]",
        ),
        (
            [
                b"kk.v1",
                b'{"type":"records","batch_id":7,"producer":"p","stream":"logs","records":[]}',
            ],
            "'batch_id'",
        ),
        ([b"kk.v1", b'{"type":"ack","batch_id":"b","status":"maybe"}'], "unknown ack status"),
        (
            [
                b"kk.v1",
                b'{"type":"telemetry","component":"c","node":"n","sent_at_unix":1,'
                b'"status":{"ready":"yes"}}',
            ],
            "'ready'",
        ),
        # Not a list: once a TypeError out of decode, which ended the health container's
        # telemetry reader (issue 13's fuzzing found it).
        (
            [
                b"kk.v1",
                b'{"type":"telemetry","component":"c","node":"n","sent_at_unix":1,'
                b'"status":{"ready":true},"samples":null}',
            ],
            "'samples'",
        ),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(frames: list[bytes], complaint: str) -> None:
    with pytest.raises(MalformedMessage) as refused:
        decode(frames)
    assert complaint in str(refused.value)
    assert refused.value.reason == "malformed"


def test_nan_is_never_written() -> None:
    telemetry = Telemetry(
        component="c",
        node="n",
        sent_at_unix=1.0,
        status=ComponentStatus(ready=True),
        samples=(MetricSample("g", "gauge", float("nan")),),
    )
    with pytest.raises(ValueError, match="JSON compliant"):
        encode(telemetry)


def test_ids_are_deterministic_and_distinguish_their_parts() -> None:
    assert log_record_id("f1", 100) == log_record_id("f1", 100)
    assert log_record_id("f1", 100) != log_record_id("f1", 101)
    assert log_record_id("f1", 100, part=1) != log_record_id("f1", 100)
    assert stable_id("ab", "c") != stable_id("a", "bc")
    assert len(stable_id("x")) == 32


def test_metric_id_ignores_label_order_but_not_values() -> None:
    one = metric_record_id("m", {"a": "1", "b": "2"}, "2026-11-26T10:00:00Z")
    assert one == metric_record_id("m", {"b": "2", "a": "1"}, "2026-11-26T10:00:00Z")
    assert one != metric_record_id("m", {"a": "1", "b": "3"}, "2026-11-26T10:00:00Z")
    assert one != metric_record_id("m", {"a": "1", "b": "2"}, "2026-11-26T10:00:30Z")


# -- v2: records encoded once -------------------------------------------------------------


def encoded(n: int = 3) -> EncodedRecords:
    ids = [log_record_id("f1", i * 10) for i in range(n)]
    return EncodedRecords(
        batch_id="logs@n1:r:1",
        producer="logs@n1",
        stream="logs",
        ids=ids,
        bodies=b"".join(b'{"id":"%s","message":"line"}\n' % i.encode() for i in ids),
        sources=["f1"],
        positions=[(0, i * 10) for i in range(n)],
        claims=[(0, 0, n * 10)],
    )


def test_encoded_records_round_trip_with_their_bytes_untouched() -> None:
    """The records frame is carried as is: the shipper never re-encodes a record."""
    batch = encoded()
    frames = encode(batch)
    assert frames[0] == b"kk.v2"
    assert frames[2] is batch.bodies
    assert decode(frames) == batch
    assert decode(frames).record_bodies() == batch.bodies[:-1].split(b"\n")


def test_a_v1_batch_becomes_its_own_dedup_source() -> None:
    """A previous producer's batch is converted, its re-send recognisable by its batch id."""
    converted = from_record_batch(a_batch(3))
    assert converted.ids == a_batch(3).record_ids()
    assert [json.loads(b) for b in converted.record_bodies()] == list(a_batch(3).records)
    assert converted.sources == ["batch:logs@n1:logs@n1:1"]
    assert converted.positions == [(0, 0), (0, 1), (0, 2)]
    assert converted.claims == [(0, 0, 3)]


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"ids": ["a", "b"], "positions": [0, 0, 0, 10]}, "newline-terminated records for 2 ids"),
        ({"ids": ["a\nb", "c", "d"]}, "without newlines"),
        ({"positions": [0, 0, 0, 10]}, "2 positions for 3 records"),
        ({"positions": [0, 0, 0, 10, 5, 20]}, "unknown source"),
        ({"claims": [0, 30, 0]}, "empty range"),
        ({"claims": [0, -1, 3]}, "non-negative"),
    ],
)
def test_inconsistent_v2_batches_are_refused(change: dict, complaint: str) -> None:
    header, payload, bodies = encode(encoded())
    broken = {**json.loads(payload), **change}
    with pytest.raises(MalformedMessage) as refused:
        decode([header, json.dumps(broken).encode(), bodies])
    assert complaint in str(refused.value)


def test_a_v2_message_without_its_records_frame_is_refused() -> None:
    header, payload, _ = encode(encoded())
    with pytest.raises(MalformedMessage, match="needs 3 frames"):
        decode([header, payload])


def test_log_ids_share_a_per_file_prefix() -> None:
    prefix = log_record_id_prefix("f1")
    assert log_record_id("f1", 255) == f"{prefix}-ff"
    assert log_record_id("f1", 255, 2, prefix=prefix) == f"{prefix}-ff-2"
    assert log_record_id_prefix("f2") != prefix
