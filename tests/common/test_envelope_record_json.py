"""How the shipper stores a record's JSON: compact UTF-8, identical to the canonical form,
and still valid JSON for strings UTF-8 cannot carry."""

from __future__ import annotations

import json
import sys

from kk_common.envelope import decode, from_record_batch
from kk_common.envelope import encode_record_json as encode_record


def test_record_bytes_are_compact_utf8_json() -> None:
    record = {"id": "r1", "message": 'ünïcode ✓ "quoted"', "labels": {"a": "b"}, "value": 1.5}
    stored = encode_record(record)
    assert stored == json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
    assert json.loads(stored) == record


def test_a_lone_surrogate_is_escaped_instead_of_failing_the_batch() -> None:
    record = {"id": "r1", "message": "broken \ud800 text"}
    stored = encode_record(record)
    assert b"\\ud800" in stored
    assert json.loads(stored) == record


def test_a_record_nested_as_deep_as_the_decoder_allows_is_encoded() -> None:
    """A previous producer's record nested ~1000 deep passes the envelope decoder (orjson
    takes 1024 levels) and must not end the shipper when it is converted: it was a
    RecursionError, and the producer re-sending the batch made it a crash loop."""
    deep = b"[" * 1020 + b"]" * 1020
    frames = [
        b"kk.v1",
        b'{"type":"records","batch_id":"b","producer":"p","stream":"logs",'
        b'"records":[{"id":"r1","extra":' + deep + b'},{"id":"r2","message":"ok"}]}',
    ]
    converted = from_record_batch(decode(frames))
    deep_record, plain = converted.record_bodies()
    assert deep_record == b'{"id":"r1","extra":' + deep + b"}"
    assert json.loads(plain) == {"id": "r2", "message": "ok"}
    assert sys.getrecursionlimit() < 3000  # restored
