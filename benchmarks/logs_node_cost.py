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

``--repo`` measures another checkout (its ``services/*/src`` go first on ``PYTHONPATH`` of
the service processes), so a before/after pair runs on the same machine minutes apart.
The last line of the output is one JSON document with every run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from kkbench.loglines import LineMaker, synthetic_timestamp
from kkbench.pods import bench_pods
from kkbench.processes import Children, cpu_seconds, load_average, wait_until_quiet
from kkbench.stack import Stack, StackSettings
from kkbench.writers import LogTree, RateWriter


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


def run(files: int, args: argparse.Namespace) -> dict[str, object]:
    pods = bench_pods(files)
    root = Path(tempfile.mkdtemp(prefix="kkcost", dir=args.shm_dir))
    work = Path(tempfile.mkdtemp(prefix="kkc", dir="/tmp"))
    os.environ.update(_service_path(args.repo))
    try:
        tree = LogTree(root / "tree")
        tree.create()
        maker = LineMaker(1)
        for index, pod in enumerate(pods):
            path = pod.log_file(tree.pods)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(maker.line(index, synthetic_timestamp(index)))
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
        with Children() as children:
            stack = Stack(children, settings, tree.root, work)
            stack.start_receiver()
            stack.start_shipper()
            logs = stack.start_logs()
            deadline = time.monotonic() + 300
            while stack.stats()["unique_ids"] < files:
                stack.check_running()
                if time.monotonic() > deadline:
                    raise RuntimeError("the first line of every file did not arrive")
                time.sleep(0.2)
            wait_until_quiet(list(stack.services.values()), cpu_per_s=0.5, timeout_s=60)
            writer = None
            thread = None
            if args.rate > 0:
                writer = RateWriter(tree, pods, (args.rate,) * files, seed=2)
                thread = threading.Thread(target=writer.run, args=(args.period,))
            spy = _profiler(logs.pid, args) if args.profile else None
            load_before = load_average()
            before = cpu_seconds(logs.pid)
            system_before = _system_seconds(logs.pid)
            started = time.monotonic()
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
                while stack.stats()["unique_ids"] < files + lines:
                    stack.check_running()
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"only {stack.stats()['unique_ids'] - files} of {lines} lines arrived"
                        )
                    time.sleep(0.2)
            stack.check_running()
        result: dict[str, object] = {
            "files": files,
            "rate_per_file": args.rate,
            "period_s": round(elapsed, 1),
            "logs_cpu_s": round(cpu, 2),
            "core_percent": round(100 * cpu / elapsed, 2),
            "system_share": round(system / cpu, 2) if cpu else 0.0,
            "load_average": [load_before, load_average()],
        }
        if lines:
            result["lines"] = lines
            result["cpu_s_per_1m_lines"] = round(cpu / lines * 1e6, 1)
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
            print(line + f" (load {result['load_average'][0]:.1f})", flush=True)
            results.append(result)
    print(json.dumps({"runs": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
