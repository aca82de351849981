"""``--profile``: where the logs service and the shipper spend their time, per record.

A separate catch-up run (profiling slows the services a little, so its throughput is not
reported) with ``py-spy record --nonblocking`` sampling the logs and shipper processes at
``RATE_HZ`` while the backlog flows. Each sample is charged to a stage by its innermost
frame that belongs to one (a gzip call made by the request builder is "compress", an
SQLite call made by the queue is "store"); idle threads are not sampled. A stage's
µs/record = its samples / ``RATE_HZ`` / records.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from kkbench.processes import Child
from kkbench.scenarios import RunOptions, catch_up, run_scenario

RATE_HZ = 100

# (stage, substrings of a frame's "function (file:line)"), checked from the innermost frame
# outwards; the first frame that matches any rule decides the stage.
STAGES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "logs": (
        ("IPC", ("kk_common/ipc/", "kk_common/envelope", "zmq/", "orjson")),
        ("offsets", ("kk_logs/offsets/",)),
        (
            "record build",
            (
                "kk_logs/records.py",
                "kk_logs/metadata/",
                "kk_common/k8s/",
                "kk_logs/batching.py",
            ),
        ),
        ("read+parse", ("kk_logs/tailing/", "kk_logs/parsing/")),
    ),
    "shipper": (
        ("compress", ("gzip.py", "zlib", "zstandard", "kk_shipper/core/request_builder.py")),
        ("send", ("kk_shipper/transport/", "aioquic/", "httpx/", "ssl.py")),
        ("store", ("kk_shipper/storage/", "sqlite3/", "kk_common/sqlite_files.py")),
        ("IPC", ("kk_common/ipc/", "kk_common/envelope", "zmq/", "kk_shipper/ingest.py")),
        ("delivery", ("kk_shipper/pipeline.py", "kk_shipper/core/")),
    ),
}


@dataclass
class StageProfile:
    service: str
    samples: Counter[str]
    unclassified: Counter[str]
    """Innermost frames of the samples charged to ``other``, to refine `STAGES` with."""


# A sample whose innermost frame is one of these is a thread waiting (py-spy's non-blocking
# mode cannot always tell), not work: it is reported apart and left out of the totals.
WAITING = (
    "select (selectors.py",
    "_worker (concurrent/futures/thread.py",
    "wait (threading.py",
    "_wait (asyncio/tasks.py",
)


def classify(stack: str, rules: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    """The stage of one collapsed stack (``outer;...;inner``), ``waiting`` or ``other``."""
    frames = stack.split(";")
    if any(wait in frames[-1] for wait in WAITING):
        return "waiting"
    for frame in reversed(frames):
        for stage, needles in rules:
            if any(needle in frame for needle in needles):
                return stage
    return "other"


def read_collapsed(path: Path, service: str) -> StageProfile:
    samples: Counter[str] = Counter()
    unclassified: Counter[str] = Counter()
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                stage = classify(stack, STAGES[service])
                samples[stage] += int(count)
                if stage == "other":
                    unclassified[stack.rsplit(";", 1)[-1]] += int(count)
    return StageProfile(service, samples, unclassified)


class PySpyProbe:
    """Starts ``py-spy record`` on the logs and shipper processes, stops it with SIGINT
    (py-spy writes its output on SIGINT)."""

    def __init__(self, py_spy: str, out_dir: Path) -> None:
        self._py_spy = py_spy
        self.out_dir = out_dir
        self._recorders: list[subprocess.Popen[bytes]] = []

    def start(self, processes: Mapping[str, Child]) -> None:
        for name in STAGES:
            self._recorders.append(
                subprocess.Popen(
                    [
                        self._py_spy,
                        "record",
                        "--pid",
                        str(processes[name].pid),
                        "--rate",
                        str(RATE_HZ),
                        "--format",
                        "raw",
                        "--nonblocking",
                        "--output",
                        str(self.out_dir / f"{name}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def stop(self) -> None:
        for recorder in self._recorders:
            recorder.send_signal(signal.SIGINT)
        for recorder in self._recorders:
            try:
                recorder.wait(30)
            except subprocess.TimeoutExpired:
                recorder.kill()
        self._recorders.clear()


def find_py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile_catch_up(options: RunOptions, codec: str, records: int, files: int) -> str:
    """Run a profiled catch-up and return the stage table."""
    py_spy = find_py_spy()
    if py_spy is None:
        return "--profile: py-spy not found (pip install py-spy into the venv)"
    out_dir = options.shm_dir / "profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    probe = PySpyProbe(py_spy, out_dir)
    print(f"\n-- profile: catch-up / {codec}, {records:,} records, py-spy at {RATE_HZ} Hz")
    result = run_scenario(catch_up(records, files), codec, replace(options), probe=probe)
    delivered = max(result.delivery.delivered, 1)
    lines = [
        f"== profile (py-spy, {records:,} records, {codec}): thread-µs per record by stage",
        "   (samples of threads that are not idle: a thread blocked in fsync counts, so the",
        "   sum can exceed the CPU time /proc reports)",
    ]
    for service in STAGES:
        profile = read_collapsed(out_dir / f"{service}.txt", service)
        waiting = profile.samples.pop("waiting", 0)
        total = sum(profile.samples.values())
        cpu_us = result.services[service].cpu_s / delivered * 1e6
        lines.append(
            f"   {service}: {total / RATE_HZ / delivered * 1e6:.1f} thread-µs/record sampled, "
            f"{cpu_us:.1f} µs/record CPU by /proc"
        )
        for stage, count in profile.samples.most_common():
            lines.append(
                f"      {stage:14}{count / RATE_HZ / delivered * 1e6:8.1f} µs"
                f"{count / max(total, 1):8.0%}"
            )
        for frame, count in profile.unclassified.most_common(3):
            lines.append(f"         other: {count / max(total, 1):4.0%} in {frame}")
        lines.append(
            f"      (left out: {waiting / RATE_HZ / delivered * 1e6:.1f} µs/record waiting)"
        )
    return "\n".join(lines)
