"""Shipper throughput and cost: records/s, CPU seconds and peak memory of the shipper
process while it moves N log records from a producer to the reference receiver.

    .venv/bin/python benchmarks/shipper_throughput.py [--records 100000] [--protocol http3]
        [--labels 12] [--repeat 3]

Everything runs on this machine (producer, shipper, receiver share the cores), so the
numbers are for comparing versions of the shipper on one machine, not absolute capacity.
The shipper's CPU is also reported per thread: ``main`` (the event loop: ingest, delivery,
HTTP/3), ``queue`` (the durable queue's worker thread: SQLite and its fsyncs) and ``zmq``
(ZeroMQ's I/O threads). ``--labels 12`` makes records of about 1 KB, the size `make bench`'s
records have with their Kubernetes metadata. ``--records-from`` replays the very records a
`make bench` run delivered (its receiver database, kept with ``bench.py --keep``): random
trace and request ids make them compress 5x less well than the generated ones, which
is most of the difference between this benchmark's cost per record and the bench's.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sqlite3
import string
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "shipper"))

from e2e_support import Producer, ShipperProcess, log_records

from kk_common.envelope import encode_record_json
from kk_receiver.testing import ReceiverProcess, wait_until

TICKS = 100  # os.sysconf("SC_CLK_TCK") on Linux


def _stat_cpu(stat_path: Path) -> float:
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def cpu_seconds(pid: int) -> float:
    return _stat_cpu(Path(f"/proc/{pid}/stat"))


def thread_cpu_seconds(pid: int) -> Counter[str]:
    """CPU seconds per thread group: main (tid == pid), zmq (ZMQbg/...), queue (the rest:
    the queue's worker thread, plus any short-lived executor thread)."""
    groups: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            cpu = _stat_cpu(task / "stat")
        except OSError:
            continue  # the thread ended meanwhile
        if task.name == str(pid):
            groups["main"] += cpu
        elif comm.startswith("ZMQbg"):
            groups["zmq"] += cpu
        else:
            groups["queue"] += cpu
    return groups


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def recorded_records(path: Path, count: int) -> list[dict]:
    """Up to ``count`` records of a JSON-lines file or a reference receiver's database
    (`batches` cycles through them when more are asked for)."""
    if path.suffix in (".jsonl", ".json"):
        with path.open() as lines:
            records = [json.loads(line) for line, _ in zip(lines, range(count), strict=False)]
    else:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT record FROM records ORDER BY seq LIMIT ?", (count,))
            records = [json.loads(record) for (record,) in rows]
    if len(records) < min(count, 1000):
        raise SystemExit(f"{path} holds {len(records)} records, fewer than a batch")
    return records


def batches(records: list[dict], total: int, size: int) -> Iterator[list[dict]]:
    """``total`` records in batches of ``size``, going round ``records`` as often as needed
    (each round's records get ids of their own, so the receiver counts them all)."""
    for start in range(0, total, size):
        chunk = []
        for index in range(start, min(start + size, total)):
            round_, at = divmod(index, len(records))
            record = records[at]
            chunk.append(record if not round_ else {**record, "id": f"{record['id']}~{round_}"})
        yield chunk


def rss_parts_mib(pid: int) -> dict[str, float]:
    """Resident MiB by kind of mapping (/proc/<pid>/smaps): shared libraries (file pages,
    clean), the malloc heap, and anonymous mappings (Python's arenas, large blocks, thread
    arenas and stacks); other file mappings are left out."""
    parts = dict.fromkeys(("libraries", "heap", "anonymous"), 0.0)
    part: str | None = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields and not fields[0].endswith(":"):  # a mapping's header line
            name = fields[5] if len(fields) > 5 else ""
            part = (
                "libraries"
                if ".so" in name
                else "heap"
                if name == "[heap]"
                else "anonymous"
                if not name
                else None
            )
        elif fields and fields[0] == "Rss:" and part is not None:
            parts[part] += int(fields[1]) / 1024
    return parts


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_records(args: argparse.Namespace) -> list[dict]:
    if args.records_from:
        return recorded_records(args.records_from, args.records)
    if args.random_message_bytes:
        # Incompressible messages: what the wire carries is about what was logged, so this
        # measures the compressed payload the shipper can push (issue 7: >= 20 MB/s).
        rng = random.Random(7)  # noqa: S311 - test data, not security
        alphabet = string.ascii_letters + string.digits
        records = log_records(args.records)
        for record in records:
            record["message"] = "".join(rng.choices(alphabet, k=args.random_message_bytes))
    else:
        records = log_records(args.records, message="GET /api/items?page=3 200 12ms user=4711 " * 3)
    for record in records:
        for index in range(args.labels):
            # Like the bench's Kubernetes metadata: the same per pod, so it compresses well.
            record["labels"][f"label_app_kubernetes_io_part_{index}"] = f"checkout-{index}-value"
    return records


def run_once(args: argparse.Namespace, records: list[dict]) -> str:
    with ReceiverProcess(extra_args=["--request-log-limit", "1000000"]) as receiver:
        output = {"type": args.protocol, "compression": args.compression}
        with ShipperProcess(receiver, output=output) as shipper:
            pid = shipper.process.pid
            idle_cpu = cpu_seconds(pid)
            idle_threads = thread_cpu_seconds(pid)
            spy = None
            if args.profile:
                py_spy = str(Path(sys.executable).parent / "py-spy")
                spy = subprocess.Popen(
                    [
                        *(py_spy, "record", "--pid", str(pid), "--format", "raw"),
                        *("--rate", str(args.profile_rate), "--output", str(args.profile)),
                        *(
                            "--threads",
                            "--nonblocking",
                            *([] if args.profile_all_threads else ["--gil"]),
                        ),
                    ],
                    stdout=subprocess.DEVNULL,
                )
            rss_before = rss_mib(pid)
            parts_before = rss_parts_mib(pid)
            with Producer(shipper.endpoint) as producer:
                started = time.monotonic()
                for chunk in batches(records, args.records, args.batch):
                    if args.envelope == "v2":
                        producer.send_encoded(chunk)
                    else:
                        producer.send(chunk)
                wait_until(
                    lambda: receiver.stats()["unique_ids"] == args.records,
                    timeout=600,
                    interval=0.2,
                )
                elapsed = time.monotonic() - started
            cpu = cpu_seconds(pid) - idle_cpu
            threads = thread_cpu_seconds(pid)
            threads.subtract(idle_threads)
            rss = peak_rss_mib(pid)
            rss_delivered = rss_mib(pid)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            if args.idle_after:
                time.sleep(args.idle_after)
                rss_idle = rss_mib(pid)
                parts_idle = rss_parts_mib(pid)
        stats = receiver.stats()
        wire = sum(r["body_bytes"] for r in receiver.requests(limit=1_000_000))
    size = len(encode_record_json(records[0]))
    if args.idle_after:
        parts_change = "before -> idle: " + ", ".join(
            f"{part} {parts_before[part]:.1f} -> {mib:.1f}" for part, mib in parts_idle.items()
        )
    per_thread = ", ".join(
        f"{name} {threads[name] / args.records * 1e6:.1f}" for name in ("main", "queue", "zmq")
    )
    return (
        f"{args.records} records (~{size} bytes each), {args.protocol}, "
        f"{args.compression}: {elapsed:.2f} s, {args.records / elapsed:,.0f} records/s; "
        f"shipper CPU {cpu:.2f} s ({cpu / args.records * 1e6:.1f} µs/record: {per_thread}), "
        f"peak RSS {rss:.0f} MiB; receiver duplicates {stats['duplicates']}; "
        f"request bodies {wire / elapsed / 1e6:.1f} MB/s"
        + (
            f"; RSS MiB before {rss_before:.0f}, peak {rss:.0f}, when delivered "
            f"{rss_delivered:.0f}, {args.idle_after:.0f} s later {rss_idle:.0f} "
            f"({parts_change})"
            if args.idle_after
            else ""
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="records per producer batch")
    parser.add_argument("--protocol", choices=["http3", "http"], default="http3")
    parser.add_argument("--compression", choices=["gzip", "zstd", "none"], default="gzip")
    parser.add_argument(
        "--random-message-bytes", type=int, default=0, help="incompressible messages this long"
    )
    parser.add_argument(
        "--labels", type=int, default=0, help="extra labels per record (12: about 1 KB records)"
    )
    parser.add_argument(
        "--records-from",
        type=Path,
        help="replay these records: JSON lines, or a reference receiver's SQLite database "
        "(e.g. a `bench.py --keep` run's receiver/receiver.sqlite3)",
    )
    parser.add_argument(
        "--idle-after",
        type=float,
        default=0.0,
        help="then wait this long and report RSS before, at peak, and idle "
        "(the test config's telemetry tick, which gives free memory back, is 1 s)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs, one after the other")
    parser.add_argument("--profile", type=Path, help="write py-spy raw samples of the shipper here")
    parser.add_argument("--profile-rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument(
        "--profile-all-threads",
        action="store_true",
        help="sample every running thread (zstd, SQLite), not only the one holding the GIL",
    )
    parser.add_argument(
        "--envelope", choices=["v2", "v1"], default="v2", help="v1: a previous producer's form"
    )
    args = parser.parse_args()
    records = make_records(args)
    for _ in range(args.repeat):
        print(run_once(args, records), flush=True)


if __name__ == "__main__":
    main()
