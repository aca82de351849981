"""The durable queue's cost per record, and whether it grows with what is queued.

    .venv/bin/python benchmarks/queue_cost.py [--sizes 100000,1000000,10000000]

For each size the queue is first filled to that many records (batches of 1,000 log records
of ~200 bytes, or ``--record-bytes``, from 20 files, as the logs service sends them), then
100 more batches are appended and 100,000 records are read and completed, timed (process
CPU and wall). The issue's target: the cost per record stays within 20 % between 100k and
10M records queued. The file lives in a temporary directory on the same disk as /tmp (use
--dir for another).

The generated records are one body repeated, which compresses to almost nothing at rest;
``--records-from`` takes the bodies of the records a `make bench` run delivered (its
receiver database, kept with ``bench.py --keep``, or JSON lines), cycled, so the stored
batches are as large as the bench's.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from kk_common.envelope import EncodedRecords, encode_record_json
from kk_shipper.storage import DurableQueue

RECORDS_PER_BATCH = 1000
LINE_BYTES = 200
FILES = 20


def record_body(size: int) -> bytes:
    """A log record's JSON of ``size`` bytes (at least about 200)."""
    head = (
        b'{"id":"0123456789abcdef0123456789abcdef-0","timestamp":"2026-11-26T10:00:00.123456789Z",'
        b'"log_level":"info","message":"'
    )
    tail = b'","labels":{"k8s_pod":"p"},"tags":[]}'
    return head + b"x" * max(1, size - len(head) - len(tail)) + tail


def recorded_bodies(path: Path) -> list[bytes]:
    """The records' JSON as a producer encodes it: from JSON lines or a receiver database."""
    if path.suffix in (".jsonl", ".json"):
        with path.open() as lines:
            records = [json.loads(line) for line in lines]
    else:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT record FROM records ORDER BY seq")
            records = [json.loads(record) for (record,) in rows]
    if len(records) < RECORDS_PER_BATCH:
        raise SystemExit(f"{path}: fewer than {RECORDS_PER_BATCH} records")
    return [encode_record_json(record) for record in records]


class BatchMaker:
    """Consecutive batches of each file, as a producer would send them."""

    def __init__(self, bodies: list[bytes]) -> None:
        chunks = [
            b"".join(body + b"\n" for body in bodies[start : start + RECORDS_PER_BATCH])
            for start in range(0, len(bodies) - RECORDS_PER_BATCH + 1, RECORDS_PER_BATCH)
        ]
        self.bodies = itertools.cycle(chunks)
        self.next_offset = [0] * FILES
        self.count = 0

    def next(self) -> EncodedRecords:
        source = self.count % FILES
        first = self.next_offset[source]
        self.next_offset[source] += RECORDS_PER_BATCH * LINE_BYTES
        self.count += 1
        offsets = range(first, first + RECORDS_PER_BATCH * LINE_BYTES, LINE_BYTES)
        return EncodedRecords(
            batch_id=str(self.count),
            producer="bench",
            stream="logs",
            ids=[f"0123456789abcdef0123456789abcdef-{offset:x}" for offset in offsets],
            bodies=next(self.bodies),
            sources=[f"file-{source}"],
            positions=[(0, offset) for offset in offsets],
            claims=[(0, first, first + RECORDS_PER_BATCH * LINE_BYTES)],
        )


def measure(size: int, directory: Path, bodies: list[bytes]) -> dict[str, float]:
    path = directory / f"queue-{size}.db"
    maker = BatchMaker(bodies)
    now = 1_700_000_000.0
    with DurableQueue(path, max_bytes=1 << 42) as queue:
        for _ in range(size // RECORDS_PER_BATCH):
            queue.append("logs", maker.next(), now=now)
        batches = [maker.next() for _ in range(100)]
        # The fill's dirty pages are written back first, or the kernel's writeback of
        # hundreds of MiB lands in the timed part's fsyncs (wall, not CPU).
        os.sync()
        cpu, wall = time.process_time(), time.perf_counter()
        for batch in batches:
            queue.append("logs", batch, now=now)
        append_cpu, append_wall = time.process_time() - cpu, time.perf_counter() - wall
        resent = batches[:10]
        cpu = time.process_time()
        for batch in resent:
            assert queue.append("logs", batch, now=now).duplicates == RECORDS_PER_BATCH
        dedup_cpu = time.process_time() - cpu
        cpu, wall = time.process_time(), time.perf_counter()
        after, done = 0, 0
        while done < 100 * RECORDS_PER_BATCH:
            # As delivery does: stored batches as runs, completed by seq range.
            runs = queue.read_runs("logs", after_seq=after, limit=2 * RECORDS_PER_BATCH)
            after = runs[-1].seqs[-1]
            queue.complete("logs", [run.seqs for run in runs], now=now)
            done += sum(run.count for run in runs)
        drain_cpu, drain_wall = time.process_time() - cpu, time.perf_counter() - wall
    file_mib = path.stat().st_size / 2**20
    path.unlink()
    n = 100 * RECORDS_PER_BATCH
    return {
        "queued": size,
        "file_mib": round(file_mib),
        "append_cpu_us": round(append_cpu / n * 1e6, 2),
        "append_wall_us": round(append_wall / n * 1e6, 2),
        "resent_duplicate_cpu_us": round(dedup_cpu / (10 * RECORDS_PER_BATCH) * 1e6, 2),
        "read_complete_cpu_us": round(drain_cpu / done * 1e6, 2),
        "read_complete_wall_us": round(drain_wall / done * 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument(
        "--record-bytes", type=int, default=200, help="1000: the size of make bench's records"
    )
    parser.add_argument(
        "--records-from",
        type=Path,
        help="cycle these records' bodies: JSON lines, or a reference receiver's SQLite "
        "database (a `bench.py --keep` run's receiver/receiver.sqlite3)",
    )
    args = parser.parse_args()
    if args.records_from:
        bodies = recorded_bodies(args.records_from)
    else:
        bodies = [record_body(args.record_bytes)] * RECORDS_PER_BATCH
    directory = Path(tempfile.mkdtemp(prefix="kk-queue-cost-", dir=args.dir))
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            print(json.dumps(measure(size, directory, bodies)), flush=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
