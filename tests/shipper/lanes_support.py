"""A producer's batch of log lines, in the live or the catch-up lane (queue lanes' tests)."""

from __future__ import annotations

from kk_common.envelope import EncodedRecords


def line_batch(source: str, offsets: range, *, catch_up: bool = False) -> EncodedRecords:
    """One record per offset of ``source`` (id ``<source>@<offset>``), each claiming the
    physical line up to the next offset step; the batch claims them all."""
    step = offsets.step
    return EncodedRecords(
        batch_id=f"{source}:{offsets.start}",
        producer="logs",
        stream="logs",
        ids=[f"{source}@{offset}" for offset in offsets],
        bodies=b"".join(b'{"id":"%s@%d"}\n' % (source.encode(), o) for o in offsets),
        sources=[source],
        positions=[(0, offset) for offset in offsets],
        claims=[(0, offsets.start, offsets[-1] + step)] if offsets else [],
        catch_up=catch_up,
    )
