"""The four scenarios and how one run of a scenario is measured.

A run, start to end:

1. write the backlog (catch-up) before anything starts, so generating it costs the services
   nothing;
2. start the receiver, the fake API server (with ``--metadata api``), the shipper and the logs
   service, and wait until all of them are idle: start-up (imports, the first pod list) is
   not part of the figures;
3. take the CPU readings, then publish the backlog (one rename per pod directory) or start
   writing at the scenario's rates; this instant is ``t0``;
4. poll the receiver's stats until it has stored as many records as lines were written (or
   until nothing has arrived for ``stall_s``), take the CPU readings again;
5. let everything sit idle for ``idle_s`` and read each process's resident memory;
6. stop the processes (logs, shipper, API server, receiver), then check what the receiver
   stored, token by token (`kkbench.delivery`).

Elapsed time is ``t0`` to the receiver's time of the last record it stored.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from kkbench.delivery import Delivery, check_delivery
from kkbench.pods import bench_pods
from kkbench.processes import (
    Child,
    Children,
    ProcSample,
    load_average,
    machine_busy_s,
    wait_until_quiet,
)
from kkbench.stack import Stack, StackSettings
from kkbench.writers import LogTree, RateWriter, publish, write_backlog

SERVICES = ("logs", "shipper", "receiver")
KEPT_MARKER = ".kept"
"""A file in a run's directories that ``--keep`` kept: a later run does not remove them."""
"""The processes reported on; ``fake-apiserver`` and this process (``bench``: the writer and
the receiver polling) are the harness."""


@dataclass(frozen=True)
class Scenario:
    """What one scenario writes, and how fast the agent is asked to flush."""

    name: str
    description: str
    pods: int
    flush_interval_s: float
    batch_wait_s: float
    backlog_records: int = 0
    """Catch-up: lines present before the measurement starts."""
    rates: tuple[float, ...] = ()
    """Steady: lines per second for each pod (one entry per pod)."""
    duration_s: float = 0.0
    quiet_pods_from: int | None = None
    """Pods with this index and above are "quiet": their latency is reported on its own."""

    @property
    def steady(self) -> bool:
        return bool(self.rates)


def catch_up(records: int, files: int) -> Scenario:
    # The waits only matter for the last partial batch here; short ones keep that tail
    # from counting against throughput.
    return Scenario(
        "catch-up",
        f"{records:,} lines in {files} files present at start",
        pods=files,
        flush_interval_s=0.2,
        batch_wait_s=0.2,
        backlog_records=records,
    )


def steady(rate: float, files: int, duration_s: float, flush_s: float) -> Scenario:
    return Scenario(
        "steady",
        f"{rate:,.0f} lines/s over {files} files for {duration_s:.0f} s",
        pods=files,
        flush_interval_s=flush_s,
        batch_wait_s=flush_s,
        rates=(rate / files,) * files,
        duration_s=duration_s,
    )


def node_shape(duration_s: float, flush_s: float) -> Scenario:
    return Scenario(
        "node",
        f"500 files x 2 lines/s for {duration_s:.0f} s",
        pods=500,
        flush_interval_s=flush_s,
        batch_wait_s=flush_s,
        rates=(2.0,) * 500,
        duration_s=duration_s,
    )


def noisy_neighbour(rate: float, duration_s: float, flush_s: float) -> Scenario:
    return Scenario(
        "noisy",
        f"1 pod at {rate:,.0f} lines/s + 499 pods at 1 line/s for {duration_s:.0f} s",
        pods=500,
        flush_interval_s=flush_s,
        batch_wait_s=flush_s,
        rates=(rate, *(1.0,) * 499),
        duration_s=duration_s,
        quiet_pods_from=1,
    )


@dataclass(frozen=True)
class RunOptions:
    """How runs are carried out (the same for every scenario)."""

    settings: StackSettings
    """Codec, metadata, paths; flush values and pods are set per scenario."""
    shm_dir: Path
    idle_s: float = 5.0
    stall_s: float = 60.0
    max_wait_s: float = 900.0
    keep: bool = False
    seed: int = 20261202
    on_progress: Callable[[str], None] = print


@dataclass
class ServiceFigures:
    cpu_s: float
    peak_rss_mib: float
    idle_rss_mib: float


@dataclass
class RunResult:
    """The measurements of one scenario with one codec."""

    scenario: Scenario
    codec: str
    metadata: str
    started: str
    load_before: float
    """The one-minute load average before ``t0`` (it lags: a previous run keeps it up)."""
    busy_before: float
    """Cores busy over the second before ``t0``, with this run's processes idle."""
    records: int
    elapsed_s: float
    services: dict[str, ServiceFigures]
    harness_cpu_s: dict[str, float]
    foreign_cpu_s: float
    """Busy CPU time of the machine during the run not used by this run's processes
    (another user's work, kernel threads): large values mean the figures are disturbed."""
    delivery: Delivery
    complete: bool
    notes: list[str] = field(default_factory=list)

    @property
    def records_per_s(self) -> float:
        return self.delivery.delivered / self.elapsed_s if self.elapsed_s > 0 else 0.0


class Probe(Protocol):
    """Something that watches the services during the measurement (``--profile``)."""

    def start(self, processes: Mapping[str, Child]) -> None: ...

    def stop(self) -> None: ...


def run_scenario(
    scenario: Scenario, codec: str, options: RunOptions, probe: Probe | None = None
) -> RunResult:
    """Run ``scenario`` once with ``codec``; every process is stopped before it returns."""
    say = options.on_progress
    settings = replace(
        options.settings,
        codec=codec,
        flush_interval_s=scenario.flush_interval_s,
        batch_wait_s=scenario.batch_wait_s,
        pods=scenario.pods,
    )
    # A profiled run gets its own directory: with --keep, the measured run's is still there.
    suffix = "-profiled" if probe is not None else ""
    run_dir = _fresh_dir(options.shm_dir / f"{scenario.name}-{codec}{suffix}")
    # Short (IPC socket paths), and named after our pid so a later run can tell leftovers.
    work_dir = Path(tempfile.mkdtemp(prefix=f"kkb{os.getpid()}-", dir="/tmp"))
    tree = LogTree(run_dir / "logs")
    tree.create()
    pods = bench_pods(scenario.pods)
    writer = None
    try:
        if scenario.steady:
            # The files exist (empty) before the services start, as a running pod's do.
            writer = RateWriter(tree, pods, scenario.rates, options.seed)
        else:
            say(f"  writing {scenario.backlog_records:,} lines into {scenario.pods} files")
            backlog = write_backlog(tree, pods, scenario.backlog_records, options.seed)
            say(f"  {backlog.bytes / 2**20:,.0f} MiB of logs written")
        with Children() as children:
            stack = Stack(children, settings, tree.root, work_dir)
            services, harness = _start(stack, say)
            load_before, busy_before = load_average(), _busy_cores(1.0)
            before = _Readings.take(services, harness)
            started = datetime.now(UTC).isoformat(timespec="seconds")
            if probe is not None:
                probe.start(services)
            t0 = time.time()
            if writer is None:
                publish(tree, pods)
                expected = scenario.backlog_records
            else:
                say(f"  writing for {scenario.duration_s:.0f} s")
                writer.run(scenario.duration_s)
                expected = writer.records
            say(f"  {expected:,} lines written; waiting for the receiver")
            complete = _wait_for_receiver(stack, expected, options, say)
            if probe is not None:
                probe.stop()
            after = _Readings.take(services, harness)
            time.sleep(options.idle_s)
            idle = {name: child.sample() for name, child in services.items()}
            stack.check_running()
            children.stop_all()

        groups = None
        if writer is not None and scenario.quiet_pods_from is not None:
            first_quiet, file_of = scenario.quiet_pods_from, writer.file_of
            groups = {"quiet": lambda token: file_of[token] >= first_quiet}
        delivery = check_delivery(
            stack.receiver_database,
            expected,
            writer.written_at if writer is not None else None,
            groups,
        )
        figures = {
            name: ServiceFigures(
                cpu_s=after.services[name].cpu_s - before.services[name].cpu_s,
                peak_rss_mib=idle[name].peak_rss_mib,
                idle_rss_mib=idle[name].rss_mib,
            )
            for name in services
        }
        harness_cpu = {name: after.harness[name] - before.harness[name] for name in before.harness}
        ours = sum(f.cpu_s for f in figures.values()) + sum(harness_cpu.values())
        result = RunResult(
            scenario=scenario,
            codec=codec,
            metadata=settings.metadata,
            started=started,
            load_before=load_before,
            busy_before=busy_before,
            records=expected,
            elapsed_s=max(delivery.last_received - t0, 1e-9),
            services=figures,
            harness_cpu_s=harness_cpu,
            foreign_cpu_s=max(0.0, after.machine_busy_s - before.machine_busy_s - ours),
            delivery=delivery,
            complete=complete,
        )
        _add_notes(result)
        return result
    finally:
        if writer is not None:
            writer.close()
        if not options.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            for kept in (options.shm_dir, work_dir):
                (kept / KEPT_MARKER).touch()
            say(f"  kept {run_dir} and {work_dir}")


def _fresh_dir(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``, ... when a run before this one kept it (``--keep``
    with a re-run or a repeated scenario): a run never writes into another run's log tree."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate


def _start(stack: Stack, say: Callable[[str], None]) -> tuple[dict[str, Child], list[Child]]:
    """Start every process of the run and wait until they are idle; returns the services
    (receiver, shipper, logs) and the harness processes (the fake API server)."""
    stack.start_receiver()
    harness = []
    if stack.settings.metadata == "api":
        harness.append(stack.start_fake_cluster())
    stack.start_shipper()
    stack.start_logs()
    services = {"receiver": stack.receiver, **stack.services}
    say("  services started; waiting until they are idle")
    wait_until_quiet([*services.values(), *harness])
    stack.check_running()
    return services, harness


@dataclass(frozen=True)
class _Readings:
    """CPU readings taken at the start and at the end of the measured interval."""

    services: dict[str, ProcSample]
    harness: dict[str, float]
    """CPU seconds of the harness processes and of this process (``bench``)."""
    machine_busy_s: float

    @classmethod
    def take(cls, services: Mapping[str, Child], harness: list[Child]) -> _Readings:
        return cls(
            services={name: child.sample() for name, child in services.items()},
            harness={
                **{child.name: child.sample().cpu_s for child in harness},
                "bench": _own_cpu_s(),
            },
            machine_busy_s=machine_busy_s(),
        )


def _busy_cores(window_s: float) -> float:
    before = machine_busy_s()
    time.sleep(window_s)
    return (machine_busy_s() - before) / window_s


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _wait_for_receiver(
    stack: Stack, expected: int, options: RunOptions, say: Callable[[str], None]
) -> bool:
    """Poll until the receiver holds ``expected`` records; False when it stalls or times out."""
    deadline = time.monotonic() + options.max_wait_s
    last_count, last_change = -1, time.monotonic()
    next_report = time.monotonic() + 10
    while True:
        stack.check_running()
        stored = stack.stats()["unique_ids"]
        now = time.monotonic()
        if stored >= expected:
            return True
        if stored != last_count:
            last_count, last_change = stored, now
        if now - last_change > options.stall_s or now > deadline:
            say(f"  giving up: {stored:,} of {expected:,} records stored")
            return False
        if now >= next_report:
            say(f"  ... {stored:,} of {expected:,} stored")
            next_report = now + 10
        time.sleep(0.1)


def _add_notes(result: RunResult) -> None:
    elapsed = result.elapsed_s
    if not result.complete:
        result.notes.append("INCOMPLETE: the receiver stopped receiving before every line")
    receiver_share = result.services["receiver"].cpu_s / elapsed
    if receiver_share > 0.8:
        result.notes.append(
            f"receiver-bound: the receiver used {receiver_share:.0%} of a core; "
            "the figures understate the agent"
        )
    if result.foreign_cpu_s > 0.15 * elapsed:
        result.notes.append(
            f"DISTURBED: {result.foreign_cpu_s:.1f} CPU-s of other work ran during the run"
        )
    if result.busy_before > 0.5:
        result.notes.append(
            f"BUSY: {result.busy_before:.2f} cores were in use just before the start"
        )
