"""How the shipper stores a record's JSON: compact UTF-8, identical to the canonical form,
and still valid JSON for strings UTF-8 cannot carry."""

from __future__ import annotations

import json

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
