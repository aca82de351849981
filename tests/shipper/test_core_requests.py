"""Request bodies, compression, headers and idempotency keys (receiver-api.md)."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Sequence

import pytest
import zstandard

from kk_shipper import __version__
from kk_shipper.core import OutputSettings, request_builder
from kk_shipper.core.request_builder import EncodedBatch, Envelope, build_request, encode_body
from kk_shipper.types import Protocol, QueuedRecord, RecordRun

LICENSE_KEY = "PENG-A1B2-C3D4-E5F6-G7H8-J9K0"
API_KEY = "api-key-0123456789-secret"


def settings(**overrides: object) -> OutputSettings:
    values: dict[str, object] = {
        "kind": "logs",
        "url": "https://recv:8443/api/v1/logs",
        "license_key": LICENSE_KEY,
        "source": "prod/node-a",
        "cluster_name": "prod",
        "node_name": "node-a",
    }
    values.update(overrides)
    return OutputSettings(**values)  # type: ignore[arg-type]


def log_record(seq: int) -> QueuedRecord:
    # Stored bytes with unusual (but valid) formatting: they must reach the body untouched.
    body = (
        b'{"id": "rec-%d", "timestamp":"2026-11-26T10:00:00.123456789Z", "log_level":"info",'
        b' "message":"caf\\u00e9 \xe2\x82\xac %d", "service_name":"checkout", "labels":{}}'
        % (seq, seq)
    )
    return QueuedRecord(seq=seq, record_id=f"rec-{seq}", body=body, queued_at=0.0)


def metric_record(seq: int) -> QueuedRecord:
    body = json.dumps(
        {"id": f"m-{seq}", "name": "up", "type": "gauge", "value": 1.0, "labels": {}}
    ).encode()
    return QueuedRecord(seq=seq, record_id=f"m-{seq}", body=body, queued_at=0.0)


def encode_batch(
    records: Sequence[QueuedRecord], output: OutputSettings, envelope: Envelope
) -> EncodedBatch:
    """The request payload of ``records``, handed over as the queue does (runs)."""
    return request_builder.encode_batch(RecordRun.of(records), output, envelope)


def idempotency_key(records: Sequence[QueuedRecord]) -> str:
    return request_builder.idempotency_key(RecordRun.of(records))


def encoded(records: list[QueuedRecord], output: OutputSettings) -> bytes:
    return encode_batch(records, output, Envelope.for_settings(output)).body


def test_a_log_batch_is_the_documented_shape_around_the_stored_bytes() -> None:
    output = settings(compression="none")
    records = [log_record(1), log_record(2)]
    body = encoded(records, output)
    document = json.loads(body)
    assert list(document) == ["source", "application", "logs"]
    assert document["source"] == "prod/node-a"
    assert document["application"] == "killkrill-k8s-agent"
    assert document["logs"] == [json.loads(r.body) for r in records]
    # Joined, not re-serialised: the stored bytes appear verbatim.
    assert records[0].body + b"," + records[1].body in body


def test_a_metric_batch_has_source_and_metrics_only() -> None:
    output = settings(kind="metrics", url="https://recv:8443/api/v1/metrics", compression="none")
    document = json.loads(encoded([metric_record(1)], output))
    assert document == {"source": "prod/node-a", "metrics": [json.loads(metric_record(1).body)]}


def test_an_unusual_source_is_escaped_once_in_the_envelope() -> None:
    output = settings(source='we"ird/no\\de', compression="none")
    assert json.loads(encoded([log_record(1)], output))["source"] == 'we"ird/no\\de'


@pytest.mark.parametrize(
    ("compression", "decompress"),
    [
        ("gzip", gzip.decompress),
        ("zstd", lambda data: zstandard.ZstdDecompressor().decompress(data)),
        ("none", lambda data: data),
    ],
)
def test_every_encoding_decodes_to_the_same_json(compression: str, decompress: object) -> None:
    records = [log_record(i) for i in range(50)]
    plain = encoded(records, settings(compression="none"))
    body = encoded(records, settings(compression=compression))
    assert decompress(body) == plain  # type: ignore[operator]
    if compression != "none":
        assert len(body) < len(plain)


def test_the_compression_level_is_used() -> None:
    raw = b"".join(log_record(i).body for i in range(200))
    fast, small = encode_body(raw, "zstd", 1), encode_body(raw, "zstd", 19)
    assert fast != small
    assert zstandard.ZstdDecompressor().decompress(small) == raw
    assert gzip.decompress(encode_body(raw, "gzip", 1)) == raw
    assert encode_body(raw, "gzip", 9) != encode_body(raw, "gzip", 1)


def test_a_gzip_body_is_the_same_bytes_every_time() -> None:
    """Retries and the fallback protocol must send identical bytes under one key."""
    output = settings(compression="gzip")
    assert encoded([log_record(1)], output) == encoded([log_record(1)], output)


def test_the_headers_are_exactly_the_documented_ones() -> None:
    output = settings(compression="gzip", api_key=API_KEY)
    batch = encode_batch([log_record(1), log_record(2)], output, Envelope.for_settings(output))
    request = build_request(batch, 2, output, Protocol.H3)
    assert request.method == "POST"
    assert request.url == "https://recv:8443/api/v1/logs"
    assert request.headers == (
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
        ("authorization", f"Bearer {LICENSE_KEY}"),
        ("x-api-key", API_KEY),
        ("x-cluster-name", "prod"),
        ("x-node-name", "node-a"),
        ("idempotency-key", idempotency_key([log_record(1), log_record(2)])),
        ("x-batch-size", "2"),
        ("user-agent", f"killkrill-agent/{__version__}"),
    )
    assert request.body == batch.body


def test_without_api_key_or_compression_those_headers_are_absent() -> None:
    output = settings(compression="none")
    batch = encode_batch([log_record(1)], output, Envelope.for_settings(output))
    names = [name for name, _ in build_request(batch, 1, output, Protocol.H1).headers]
    assert "x-api-key" not in names
    assert "content-encoding" not in names


def test_http11_requests_go_to_the_fallback_url() -> None:
    output = settings(fallback_url="http://recv-tcp:8080/api/v1/logs")
    batch = encode_batch([log_record(1)], output, Envelope.for_settings(output))
    assert build_request(batch, 1, output, Protocol.H3).url == "https://recv:8443/api/v1/logs"
    assert build_request(batch, 1, output, Protocol.H1).url == "http://recv-tcp:8080/api/v1/logs"


def test_request_repr_hides_the_credentials() -> None:
    output = settings(api_key=API_KEY)
    batch = encode_batch([log_record(1)], output, Envelope.for_settings(output))
    shown = repr(build_request(batch, 1, output, Protocol.H3))
    assert LICENSE_KEY not in shown
    assert API_KEY not in shown


def test_the_idempotency_key_depends_only_on_the_record_ids() -> None:
    same_ids = [QueuedRecord(seq=99, record_id="rec-1", body=b"{}", queued_at=5.0)]
    assert idempotency_key([log_record(1)]) == idempotency_key(same_ids)
    assert idempotency_key([log_record(1)]) != idempotency_key([log_record(2)])
    pair = [log_record(1), log_record(2)]
    assert idempotency_key(pair) not in {idempotency_key(pair[:1]), idempotency_key(pair[1:])}


def test_the_idempotency_key_cannot_collide_by_concatenation() -> None:
    def ids(*names: str) -> list[QueuedRecord]:
        return [
            QueuedRecord(seq=i, record_id=n, body=b"{}", queued_at=0.0) for i, n in enumerate(names)
        ]

    assert idempotency_key(ids("ab", "c")) != idempotency_key(ids("a", "bc"))


def test_the_idempotency_key_does_not_depend_on_how_records_were_stored() -> None:
    """The same records give the same key whether they came as one stored batch or several
    (a batch re-formed after a restart, or by an older shipper that worked per record): it
    is the hash of the ids joined by newlines, a format kept for good."""
    records = [log_record(seq) for seq in range(1, 6)]
    whole = RecordRun.of(records)
    cut = [*RecordRun.of(records[:2]), *RecordRun.of(records[2:])]
    assert len(whole) == 1 and len(cut) == 2
    expected = hashlib.blake2b(
        b"rec-1\nrec-2\nrec-3\nrec-4\nrec-5", digest_size=16, person=b"kk-batch-v2"
    ).hexdigest()
    assert request_builder.idempotency_key(whole) == expected
    assert request_builder.idempotency_key(cut) == expected
    output = settings(compression="none")
    envelope = Envelope.for_settings(output)
    assert request_builder.encode_batch(whole, output, envelope) == request_builder.encode_batch(
        cut, output, envelope
    )


def test_single_mode_sends_the_record_itself_uncompressed() -> None:
    output = settings(mode="single", compression="gzip")
    record = log_record(7)
    batch = encode_batch([record], output, Envelope.for_settings(output))
    request = build_request(batch, 1, output, Protocol.H1)
    assert request.body == record.body
    assert "content-encoding" not in dict(request.headers)
    assert dict(request.headers)["x-batch-size"] == "1"
    with pytest.raises(ValueError, match="one record"):
        encode_batch([record, log_record(8)], output, Envelope.for_settings(output))
