"""What a crowded node costs the logs service: CPU time of the logs process over a fixed
period, with many files idle or each written slowly (issue 9, "A crowded node").

    .venv/bin/python benchmarks/logs_node_cost.py                      # 500 and 2,000 idle files
    .venv/bin/python benchmarks/logs_node_cost.py --files 500 --rate 2 # 500 files x 2 lines/s
    .venv/bin/python benchmarks/logs_node_cost.py --files 1 --rate 20000

Each run: ``--files`` pods' log files (one line each, in the kubelet's layout with the
``/var/log/containers`` symlinks, on tmpfs) are present before anything starts; the reference
receiver, the shipper and the logs service start (metadata from the path only: no API
server, so the figures are the tailer's and the pipeline's, not the metadata client's); once
the logs service has shipped the first line of every file and is quiet, the logs process's
CPU time (user + system, /proc) is read, then ``--period`` seconds pass with the files idle
(``--rate 0``) or each written at ``--rate`` lines/s, then the CPU time is read again. With
writes, the receiver must hold every line by the end (checked; a run that loses lines is not
a measurement), and the figure per line is CPU-s per 1M lines.

``--peer fake`` replaces the shipper and the receiver by a stand-in that acknowledges
every batch as it arrives (`serve_peer`, its own process): the logs service's figures
without two more processes on the machine's two cores (which makes them steadier), and the
time each line reached the peer. The stand-in stores nothing, so a run says nothing about
the shipper; it acknowledges at once, so the logs service never pauses for a full window.

The noisy-neighbour shape (issue 7): ``--noisy-rate`` writes the first file at that rate
beside the others at ``--rate``, and ``--noisy-backlog`` appends that many lines to it at
the start of the period, a backlog to read while the quiet files go on writing. The run
then reports the latency of the quiet files' lines (write -> the peer has the batch with
``--peer fake``, write -> stored at the receiver with the shipper), p50, p99 and max. With
the shipper, its CPU time from the start of the period until every line was delivered is
reported too (``shipper_cpu_s_per_1m_lines``).

``--repo`` measures another checkout (its ``services/*/src`` go first on ``PYTHONPATH`` of
the service processes), so a before/after pair runs on the same machine minutes apart.
The last line of the output is one JSON document with every run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path

import zmq.asyncio
from kkbench.delivery import check_delivery, percentile
from kkbench.loglines import TOKEN_PATTERN, LineMaker, synthetic_timestamp
from kkbench.pods import bench_pods
from kkbench.processes import Children, cpu_seconds, load_average, wait_until_quiet
from kkbench.stack import Stack, StackSettings
from kkbench.writers import LogTree, RateWriter

from kk_common.envelope import Ack, AckStatus
from kk_common.ipc import SHIPPER_INGEST_SOCKET, BatchReceiver, ipc_endpoint

FIRST_LINE_TOKENS = 900_000_000
"""Tokens of the lines each file holds before the run (the writer's start at 0)."""
BACKLOG_TOKENS = 800_000_000
"""Tokens of the noisy file's backlog."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--files", default="500,2000", help="comma-separated file counts (default 500,2000)"
    )
    parser.add_argument(
        "--rate", type=float, default=0.0, help="lines/s written to each file (default 0: idle)"
    )
    parser.add_argument("--period", type=float, default=30.0, help="seconds measured (30)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per file count (1)")
    parser.add_argument(
        "--peer",
        choices=("shipper", "fake"),
        default="shipper",
        help="shipper: the shipper and the reference receiver (default); fake: a stand-in "
        "that acknowledges every batch at once",
    )
    parser.add_argument(
        "--noisy-rate", type=float, default=0.0, help="lines/s of the first file (default: --rate)"
    )
    parser.add_argument(
        "--noisy-backlog",
        type=int,
        default=0,
        help="lines appended to the first file at the start of the period (default 0)",
    )
    parser.add_argument("--repo", type=Path, help="measure this checkout's services")
    parser.add_argument(
        "--profile",
        type=Path,
        help="also sample the logs process with py-spy over the period, into this file "
        "(collapsed stacks; the CPU figure then includes a little of py-spy's cost)",
    )
    parser.add_argument(
        "--shm-dir",
        type=Path,
        default=Path("/dev/shm"),  # noqa: S108 - a fresh subdirectory per run, removed after
        help="tmpfs for the log files",
    )
    parser.add_argument(
        "--serve-peer", nargs=2, metavar=("ENDPOINT", "DIR"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def _service_path(repo: Path | None) -> dict[str, str]:
    if repo is None:
        return {}
    sources = [str(repo / "services" / name / "src") for name in ("common", "logs", "shipper")]
    return {"PYTHONPATH": os.pathsep.join(sources)}


def _system_seconds(pid: int) -> float:
    """The kernel's part of ``pid``'s CPU time (system calls: reads, stats, epoll)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def _profiler(pid: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    spy = Path(sys.executable).parent / "py-spy"
    command = [str(spy), "record", "--pid", str(pid), "--rate", "250", "--nonblocking"]
    command += ["--format", "raw", "--duration", str(round(args.period))]
    command += ["--output", str(args.profile)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class _Peer:
    """What reached the stand-in peer (`serve_peer`): tokens and when their batch arrived."""

    def __init__(self, directory: Path) -> None:
        self.tokens_file = directory / "tokens.bin"
        self.times_file = directory / "times.bin"

    def count(self) -> int:
        """Tokens received so far (the files grow by whole batches)."""
        try:
            return self.tokens_file.stat().st_size // array("q").itemsize
        except FileNotFoundError:
            return 0

    def arrivals(self) -> dict[int, float]:
        """Each token's first arrival (wall clock)."""
        tokens, times = array("q"), array("d")
        tokens.frombytes(self.tokens_file.read_bytes())
        times.frombytes(self.times_file.read_bytes())
        arrived: dict[int, float] = {}
        for token, at in zip(tokens, times, strict=False):
            arrived.setdefault(token, at)
        return arrived


def serve_peer(endpoint: str, directory: Path) -> None:
    """The stand-in for the shipper (``--peer fake``): acknowledge each batch as it
    arrives, then append its tokens and the arrival time to ``directory``."""

    async def serve() -> None:
        receiver = BatchReceiver(zmq.asyncio.Context.instance(), endpoint)
        peer = _Peer(directory)
        with peer.tokens_file.open("ab") as tokens_out, peer.times_file.open("ab") as times_out:
            while True:
                incoming = await receiver.receive()
                at = time.time()
                batch = incoming.batch
                receiver.acknowledge(
                    incoming, Ack(batch_id=batch.batch_id, status=AckStatus.STORED)
                )
                # A joined line carries its token twice: once per record.
                found = array("q", dict.fromkeys(map(int, TOKEN_PATTERN.findall(batch.bodies))))
                times_out.write(array("d", [at] * len(found)).tobytes())
                times_out.flush()
                tokens_out.write(found.tobytes())
                tokens_out.flush()

    asyncio.run(serve())


def _latencies(
    arrived: dict[int, float], writer: RateWriter, quiet_only: bool
) -> dict[str, float | None]:
    values = sorted(
        arrived[token] - writer.written_at[token]
        for token in range(writer.records)
        if token in arrived and (not quiet_only or writer.file_of[token] != 0)
    )
    return {
        "p50_s": percentile(values, 0.5),
        "p99_s": percentile(values, 0.99),
        "max_s": percentile(values, 1.0),
    }


def _rounded(figures: dict[str, float | None]) -> dict[str, float | None]:
    return {name: None if value is None else round(value, 3) for name, value in figures.items()}


def run(files: int, args: argparse.Namespace) -> dict[str, object]:
    pods = bench_pods(files)
    root = Path(tempfile.mkdtemp(prefix="kkcost", dir=args.shm_dir))
    work = Path(tempfile.mkdtemp(prefix="kkc", dir="/tmp"))
    os.environ.update(_service_path(args.repo))
    noisy = bool(args.noisy_rate or args.noisy_backlog)
    try:
        tree = LogTree(root / "tree")
        tree.create()
        maker = LineMaker(1)
        for index, pod in enumerate(pods):
            path = pod.log_file(tree.pods)
            path.parent.mkdir(parents=True, exist_ok=True)
            token = FIRST_LINE_TOKENS + index
            path.write_bytes(maker.line(token, synthetic_timestamp(index)))
            tree.link(pod)
        settings = StackSettings(
            bin_dir=Path(sys.executable).parent,
            repo=Path(__file__).resolve().parent.parent,
            codec="zstd",
            flush_interval_s=1.0,
            batch_wait_s=1.0,
            metadata="path",
            pods=files,
        )
        peer = _Peer(work)
        arrivals: dict[int, float] = {}
        with Children() as children:
            stack = Stack(children, settings, tree.root, work)
            if args.peer == "fake":
                stack.ready = {"https_url": "https://127.0.0.1:9", "ca_file": None}
                stack.ipc_dir.mkdir(parents=True, exist_ok=True)
                endpoint = ipc_endpoint(str(stack.ipc_dir), SHIPPER_INGEST_SOCKET)
                fake = children.start(
                    "peer",
                    [sys.executable, __file__, "--serve-peer", endpoint, str(work)],
                    os.environ,
                    work / "peer.log",
                )
                stack.services["peer"] = fake
                deadline = time.monotonic() + 30
                while not (stack.ipc_dir / SHIPPER_INGEST_SOCKET).exists():
                    stack.check_running()
                    if time.monotonic() > deadline:
                        raise RuntimeError("the peer did not bind its socket")
                    time.sleep(0.05)

                def delivered() -> int:
                    return peer.count()
            else:
                stack.start_receiver()
                stack.start_shipper()

                def delivered() -> int:
                    return int(stack.stats()["unique_ids"])

            logs = stack.start_logs()
            deadline = time.monotonic() + 300
            while delivered() < files:
                stack.check_running()
                if time.monotonic() > deadline:
                    raise RuntimeError("the first line of every file did not arrive")
                time.sleep(0.2)
            wait_until_quiet(list(stack.services.values()), cpu_per_s=0.5, timeout_s=60)
            writer = None
            thread = None
            if args.rate > 0 or noisy:
                rates = [args.rate] * files
                if args.noisy_rate:
                    rates[0] = args.noisy_rate
                writer = RateWriter(tree, pods, rates, seed=2)
                thread = threading.Thread(target=writer.run, args=(args.period,))
            spy = _profiler(logs.pid, args) if args.profile else None
            load_before = load_average()
            before = cpu_seconds(logs.pid)
            shipper = stack.services.get("shipper")
            shipper_before = cpu_seconds(shipper.pid) if shipper is not None else 0.0
            system_before = _system_seconds(logs.pid)
            started = time.monotonic()
            backlog = _write_backlog(pods[0].log_file(tree.pods), args.noisy_backlog)
            if thread is not None:
                thread.start()
                thread.join()
            else:
                time.sleep(args.period)
            elapsed = time.monotonic() - started
            cpu = cpu_seconds(logs.pid) - before
            system = _system_seconds(logs.pid) - system_before
            if spy is not None:
                spy.wait(60)
            lines = writer.records if writer is not None else 0
            if writer is not None:
                writer.close()
            deadline = time.monotonic() + 120
            while delivered() < files + lines + backlog:
                stack.check_running()
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"only {delivered() - files} of {lines + backlog} lines arrived"
                    )
                time.sleep(0.2)
            stack.check_running()
            # Until every line is delivered: the shipper's work ends after the writing.
            shipper_cpu = cpu_seconds(shipper.pid) - shipper_before if shipper else None
            if args.peer == "fake" and writer is not None:
                arrivals = peer.arrivals()
        if args.peer == "shipper" and writer is not None:
            # The receiver's store, read once it has stopped.
            stored = check_delivery(
                stack.receiver_database,
                writer.records,
                writer.written_at,
                {"quiet": lambda token: writer.file_of[token] != 0},
            )
            latency = {
                group: {
                    "p50_s": percentile(values, 0.5),
                    "p99_s": percentile(values, 0.99),
                    "max_s": percentile(values, 1.0),
                }
                for group, values in stored.latencies.items()
            }
        elif writer is not None:
            latency = {"all": _latencies(arrivals, writer, quiet_only=False)}
            if noisy:
                latency["quiet"] = _latencies(arrivals, writer, quiet_only=True)
        result: dict[str, object] = {
            "files": files,
            "rate_per_file": args.rate,
            "peer": args.peer,
            "period_s": round(elapsed, 1),
            "logs_cpu_s": round(cpu, 2),
            "core_percent": round(100 * cpu / elapsed, 2),
            "system_share": round(system / cpu, 2) if cpu else 0.0,
            "load_average": [load_before, load_average()],
        }
        if noisy:
            result["noisy_rate"] = args.noisy_rate
            result["noisy_backlog"] = backlog
        if lines + backlog:
            result["lines"] = lines + backlog
            result["cpu_s_per_1m_lines"] = round(cpu / (lines + backlog) * 1e6, 1)
            if shipper_cpu is not None:
                result["shipper_cpu_s"] = round(shipper_cpu, 2)
                per_million = shipper_cpu / (lines + backlog) * 1e6
                result["shipper_cpu_s_per_1m_lines"] = round(per_million, 1)
        if writer is not None:
            result["latency"] = {group: _rounded(f) for group, f in latency.items()}
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def _write_backlog(path: Path, lines: int) -> int:
    """Append ``lines`` lines to ``path`` at once (tokens from `BACKLOG_TOKENS`)."""
    if not lines:
        return 0
    maker = LineMaker(3)
    with path.open("ab") as out:
        for start in range(0, lines, 10_000):
            out.write(
                b"".join(
                    maker.line(BACKLOG_TOKENS + n, synthetic_timestamp(n))
                    for n in range(start, min(lines, start + 10_000))
                )
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_peer:
        serve_peer(args.serve_peer[0], Path(args.serve_peer[1]))
        return 0
    if (args.noisy_rate or args.noisy_backlog) and not args.rate:
        raise SystemExit("the noisy-neighbour shape needs --rate for the quiet files")
    results = []
    for files in (int(n) for n in args.files.split(",")):
        for _ in range(args.repeat):
            result = run(files, args)
            line = f"{files:>6} files"
            line += f" x {args.rate:g} lines/s" if args.rate else " idle"
            line += f": logs {result['core_percent']:.2f} % of a core"
            if "cpu_s_per_1m_lines" in result:
                line += f", {result['cpu_s_per_1m_lines']} CPU-s per 1M lines"
            line += f" ({result['system_share']:.0%} in the kernel)"
            if "shipper_cpu_s_per_1m_lines" in result:
                line += f"; shipper {result['shipper_cpu_s_per_1m_lines']} CPU-s per 1M lines"
            print(line + f" (load {result['load_average'][0]:.1f})", flush=True)
            for group, figures in dict(result.get("latency", {})).items():
                print(
                    f"         latency ({group} lines): p50 {figures['p50_s']} s, "
                    f"p99 {figures['p99_s']} s, max {figures['max_s']} s",
                    flush=True,
                )
            results.append(result)
    print(json.dumps({"runs": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
