"""No IPC message can stop the shipper: arbitrary frames are either read or refused with an
`EnvelopeError`, and any record a producer can send, nested however deep, is stored and
read back as the same JSON.

Profiles: ``ci`` (default) and ``full`` (``KK_TEST_PROFILE``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kk_common.envelope import (
    EncodedRecords,
    EnvelopeError,
    RecordBatch,
    decode,
    encode,
    from_record_batch,
)
from kk_shipper.storage import DurableQueue
from tests.hypothesis_profiles import profile

PROFILE = profile("kk-shipper-ingest", ci=150, full=3000)

HEADERS = [b"kk.v1", b"kk.v2", b"kk.v3", b"", b"kk.v1.0", b"\xff"]


@pytest.fixture(scope="module")
def queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DurableQueue]:
    q = DurableQueue(Path(tmp_path_factory.mktemp("fuzz")) / "queue.db")
    yield q
    q.close()


@PROFILE
@given(
    header=st.sampled_from(HEADERS) | st.binary(max_size=12),
    rest=st.lists(st.binary(max_size=200), max_size=4),
)
def test_arbitrary_frames_are_read_or_refused_never_raised(
    header: bytes, rest: list[bytes]
) -> None:
    try:
        decode([header, *rest])
    except EnvelopeError as refused:
        assert refused.reason
        assert str(refused)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=20,
)


def deep(depth: int) -> object:
    value: object = "bottom"
    for _ in range(depth):
        value = [value]
    return value


@PROFILE
@given(
    extras=st.lists(json_values | st.integers(1, 1000).map(deep), min_size=1, max_size=5),
)
def test_any_record_a_previous_producer_sends_is_stored_and_read_back(
    queue: DurableQueue, extras: list[object]
) -> None:
    """v1 producers send records as JSON objects; the shipper converts them once and stores
    their bytes. Nested ~1000 deep (as deep as the envelope's decoder accepts) included."""
    batch_number = next(_batches)
    records = [
        {"id": f"b{batch_number}-r{i}", "message": "m", "extra": extra}
        for i, extra in enumerate(extras)
    ]
    try:
        message = decode(encode(RecordBatch(f"b{batch_number}", "p", "logs", records)))
    except EnvelopeError:
        return  # refused as a whole and counted by the receiver: not this test's concern
    assert isinstance(message, RecordBatch)
    converted = from_record_batch(message)
    assert isinstance(converted, EncodedRecords)
    last = queue.stats(now=0.0).kinds["logs"].last_seq
    queue.append("logs", converted, now=0.0)
    stored = queue.read("logs", after_seq=last, limit=len(records))
    assert [r.record_id for r in stored] == [r["id"] for r in records]
    with _deep_enough():
        assert [json.loads(r.body) for r in stored] == records


def _counter() -> Iterator[int]:
    n = 0
    while True:
        n += 1
        yield n


_batches = _counter()


class _deep_enough:
    """The stdlib decoder recurses per nesting level: give the check room."""

    def __enter__(self) -> None:
        self._old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(self._old, 10_000))

    def __exit__(self, *exc: object) -> None:
        sys.setrecursionlimit(self._old)
