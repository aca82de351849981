"""End-to-end benchmark of the agent (``make bench``): the logs service, the shipper and the
reference receiver as separate processes on this machine, over HTTP/3 on loopback.

    .venv/bin/python benchmarks/bench.py                  # every scenario, gzip and zstd
    .venv/bin/python benchmarks/bench.py --quick          # small sizes, gzip only
    .venv/bin/python benchmarks/bench.py --scenarios catch-up --records 300000 --codec zstd

Scenarios: ``catch-up`` (a backlog present at start, until the receiver has stored every
line), ``steady`` (a fixed rate for a fixed time), ``node`` (500 files x 2 lines/s) and
``noisy`` (one pod at the full rate beside 499 pods at 1 line/s), and ``metrics`` (the
metrics container scraping a 100,000-series cAdvisor page every 15 s through the shipper to
the receiver: CPU-s per scrape and peak RSS). Each run prints a table; the last line of the
output is one JSON document (see docs/benchmarks.md).

The services are the ``killkrill-*`` scripts of the virtual environment running this file,
so ``/path/to/other/checkout/.venv/bin/python benchmarks/bench.py --repo /path/to/other/checkout``
measures another checkout.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kkbench import report
from kkbench.processes import load_average, machine_busy_s
from kkbench.scenarios import (
    KEPT_MARKER,
    RunOptions,
    RunResult,
    Scenario,
    catch_up,
    node_shape,
    noisy_neighbour,
    run_scenario,
    steady,
)
from kkbench.stack import StackSettings

SCENARIOS = ("catch-up", "steady", "node", "noisy", "metrics")
LOG_SCENARIOS = SCENARIOS[:-1]
FULL = {"records": 1_000_000, "duration": 30.0, "codec": "gzip,zstd", "metrics_scrapes": 4}
QUICK = {"records": 100_000, "duration": 10.0, "codec": "gzip", "metrics_scrapes": 2}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--codec",
        help="comma-separated gzip,zstd; the first is the headline's (default gzip,zstd)",
    )
    parser.add_argument(
        "--records", type=int, help="catch-up: lines in the backlog (default 1,000,000)"
    )
    parser.add_argument("--files", type=int, default=40, help="catch-up and steady: log files")
    parser.add_argument(
        "--rate", type=float, default=20_000, help="steady and noisy: lines/s (default 20,000)"
    )
    parser.add_argument(
        "--duration", type=float, help="steady, node, noisy: seconds of writing (default 30)"
    )
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=1.0,
        help="steady, node, noisy: seconds for logs.output.flush_interval and "
        "logs.batch_max_wait (default 1)",
    )
    parser.add_argument(
        "--metadata",
        choices=("api", "path"),
        default="api",
        help="api: a fake API server process with every pod; path: no cluster, only "
        "what the log path says (default api)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes: 100,000 records, 10 s, gzip only (explicit options still win)",
    )
    parser.add_argument(
        "--metrics-series", type=int, default=100_000, help="metrics: series on the page"
    )
    parser.add_argument(
        "--metrics-interval", type=float, default=15.0, help="metrics: seconds between scrapes"
    )
    parser.add_argument(
        "--metrics-scrapes", type=int, help="metrics: scrapes measured (default 4; --quick: 2)"
    )
    parser.add_argument("--profile", action="store_true", help="add a py-spy stage breakdown")
    parser.add_argument(
        "--repo",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="the checkout under test (default: this file's)",
    )
    parser.add_argument(
        "--shm-dir",
        type=Path,
        default=Path("/dev/shm"),  # noqa: S108 - a fresh subdirectory per run, removed after
        help="tmpfs for the logs and the receiver's data",
    )
    parser.add_argument("--idle", type=float, default=12.0, help="seconds idle before idle RSS")
    parser.add_argument(
        "--max-busy",
        type=float,
        default=0.5,
        help="before each run, wait (up to 5 min) until fewer cores than this are busy "
        "(default 0.5)",
    )
    parser.add_argument(
        "--max-load",
        type=float,
        help="before each run, also wait until the 1-minute load average is at most this",
    )
    parser.add_argument(
        "--retries", type=int, default=1, help="re-runs of a run disturbed by other work"
    )
    parser.add_argument("--keep", action="store_true", help="keep logs, state and databases")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    for name, value in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.codec = [c.strip() for c in args.codec.split(",") if c.strip()]
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {SCENARIOS}")
    if not args.codec or any(c not in ("gzip", "zstd") for c in args.codec):
        parser.error("--codec takes gzip and/or zstd")
    return args


def run_metrics_scenario(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """The metrics container's cost per large scrape (issue 10), printed and returned."""
    from metrics_health_cost import scrape_cost

    print(
        f"\n-- metrics: {args.metrics_series:,} series every {args.metrics_interval:g} s, "
        f"{args.metrics_scrapes} scrapes measured",
        flush=True,
    )
    cost = asdict(
        scrape_cost(args.metrics_series, args.metrics_interval, args.metrics_scrapes, scratch)
    )
    print(
        f"metrics container: {cost['cpu_s_per_scrape']:.2f} CPU-s per scrape of "
        f"{cost['series']:,} series ({cost['cpu_s_per_100k_samples']:.2f} CPU-s per 100k "
        f"samples; target <= 1), peak RSS {cost['peak_rss_mib']:.1f} MiB (target <= 100), "
        f"idle RSS {cost['idle_rss_mib']:.1f} MiB; {cost['samples_stored']:,} samples stored",
        flush=True,
    )
    return cost


def build_scenarios(args: argparse.Namespace) -> list[Scenario]:
    makers = {
        "catch-up": lambda: catch_up(args.records, args.files),
        "steady": lambda: steady(args.rate, args.files, args.duration, args.flush_interval),
        "node": lambda: node_shape(args.duration, args.flush_interval),
        "noisy": lambda: noisy_neighbour(args.rate, args.duration, args.flush_interval),
    }
    return [makers[name]() for name in args.scenarios if name in makers]


def wait_for_quiet_machine(
    max_busy: float, max_load: float | None, timeout_s: float = 300.0
) -> float:
    """Wait until other work uses fewer than ``max_busy`` cores (measured over 2 s) and, with
    ``max_load``, until the one-minute load average is at most that; returns the busy cores.

    The busy cores are what matter: the load average lags by minutes (our own previous run
    keeps it above 1 for a minute or more), so waiting for it is optional.
    """
    deadline = time.monotonic() + timeout_s
    next_message = time.monotonic()
    while True:
        before = machine_busy_s()
        time.sleep(2.0)
        busy = (machine_busy_s() - before) / 2.0
        load = load_average()
        quiet = busy < max_busy and (max_load is None or load <= max_load)
        if quiet or time.monotonic() > deadline:
            return busy
        if time.monotonic() >= next_message:
            print(f"  waiting for a quiet machine: {busy:.2f} cores busy, load {load:.2f}")
            next_message = time.monotonic() + 15


def remove_leftovers(shm_dir: Path) -> None:
    """Remove the data of earlier runs that were killed before they could clean up
    (``kkbench-<pid>`` whose process is gone; the work directories are ``/tmp/kkb<pid>-*``),
    but not what a run kept on purpose (``--keep``)."""
    for pattern, root in (("kkbench-*", shm_dir), ("kkb*-*", Path(tempfile.gettempdir()))):
        for path in root.glob(pattern):
            pid = path.name.removeprefix("kkbench-").removeprefix("kkb").split("-", 1)[0]
            kept = (path / KEPT_MARKER).exists()
            if pid.isdigit() and not Path(f"/proc/{pid}").exists() and not kept:
                shutil.rmtree(path, ignore_errors=True)


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
    }


def commit_of(repo: Path) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "services", "tests")
    return commit + ("+changes" if dirty else "")


def run_with_retries(
    scenario: Scenario, codec: str, options: RunOptions, args: argparse.Namespace
) -> RunResult:
    attempt = 0
    while True:
        busy = wait_for_quiet_machine(args.max_busy, args.max_load)
        print(f"\n-- {scenario.name} / {codec} (cores busy before start: {busy:.2f})", flush=True)
        result = run_scenario(scenario, codec, options)
        disturbed = any(n.startswith(("DISTURBED", "BUSY")) for n in result.notes)
        if not disturbed or attempt >= args.retries:
            return result
        attempt += 1
        print(report.run_table(result))
        print("  disturbed by other work: running it again", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM stop every child process (SIGINT is set explicitly because a shell
    # starts background jobs with it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    remove_leftovers(args.shm_dir)
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "killkrill-shipper").exists():
        print(f"no killkrill-shipper next to {sys.executable}: run with the venv's python")
        return 2
    shm_dir = args.shm_dir / f"kkbench-{os.getpid()}"
    began = time.monotonic()
    options = RunOptions(
        settings=StackSettings(
            bin_dir=bin_dir,
            repo=args.repo.resolve(),
            codec=args.codec[0],
            flush_interval_s=args.flush_interval,
            batch_wait_s=args.flush_interval,
            metadata=args.metadata,
            pods=0,
        ),
        shm_dir=shm_dir,
        idle_s=args.idle,
        keep=args.keep,
        on_progress=lambda text: print(f"{time.monotonic() - began:7.1f}s {text}", flush=True),
    )
    context = {
        "commit": commit_of(args.repo),
        "date": datetime.now(UTC).date().isoformat(),
        "machine": machine(),
    }
    print(
        f"KillKrill end-to-end benchmark: {args.repo} at {context['commit']}; "
        f"{context['machine']['nproc']} cores ({context['machine']['cpu']}), "
        f"Python {context['machine']['python']}; services from {bin_dir}",
        flush=True,
    )
    results: list[RunResult] = []
    metrics_cost: dict[str, Any] | None = None
    try:
        for scenario in build_scenarios(args):
            for codec in args.codec:
                result = run_with_retries(scenario, codec, options, args)
                results.append(result)
                print(report.run_table(result), flush=True)
        if "metrics" in args.scenarios:
            busy = wait_for_quiet_machine(args.max_busy, args.max_load)
            print(f"(cores busy before the metrics scenario: {busy:.2f})", flush=True)
            shm_dir.mkdir(parents=True, exist_ok=True)
            metrics_cost = run_metrics_scenario(args, shm_dir / "metrics")
        if args.profile:
            from kkbench.profiling import profile_catch_up

            print(profile_catch_up(options, args.codec[0], min(args.records, 300_000), args.files))
    except KeyboardInterrupt:
        print("\ninterrupted: every process has been stopped", file=sys.stderr)
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(shm_dir, ignore_errors=True)
    if results:
        print("\n" + report.summary_table(results))
    print(report.final_json(results, args.codec[0], {**context, "metrics": metrics_cost}))
    failed = [r for r in results if r.delivery.lost or r.delivery.duplicates or not r.complete]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
