"""Child processes that never outlive the benchmark, and what /proc says about them.

Every child gets ``PR_SET_PDEATHSIG = SIGKILL``, so even a benchmark killed with SIGKILL
leaves nothing running; a normal exit, an exception or Ctrl-C stops them in reverse start
order (SIGTERM, then SIGKILL after a grace period), the way a pod's containers stop.
Children run in their own session, so Ctrl-C reaches only the benchmark, which then
decides the order.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec.
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass(frozen=True)
class ProcSample:
    """One reading of a process: CPU seconds so far, peak and current resident memory."""

    cpu_s: float
    peak_rss_mib: float
    rss_mib: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def sample(pid: int) -> ProcSample:
    """CPU seconds, VmHWM and VmRSS of ``pid``."""
    memory = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmHWM:", "VmRSS:")):
            key, value = line.split(":", 1)
            memory[key] = int(value.split()[0]) / 1024
    return ProcSample(cpu_seconds(pid), memory.get("VmHWM", 0.0), memory.get("VmRSS", 0.0))


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / _TICKS_PER_S


def load_average() -> float:
    """The one-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


class Child:
    """A started child process with its log file."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def sample(self) -> ProcSample:
        return sample(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float) -> int | None:
        """SIGTERM, then SIGKILL if still running after ``grace_s``; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode


class Children:
    """Owns every child process of one run; a context manager that stops them all."""

    def __init__(self) -> None:
        self._children: list[Child] = []

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> Child:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Children are started before any thread of ours runs (preexec_fn and
                # threads do not mix).
                preexec_fn=_die_with_parent,
            )
        child = Child(name, popen, log_path)
        self._children.append(child)
        return child

    def stop_all(self, grace_s: float = 30.0) -> None:
        """Stop every child, last started first."""
        for child in reversed(self._children):
            try:
                child.stop(grace_s)
            except (KeyboardInterrupt, OSError):
                child.popen.kill()
        self._children.clear()

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def wait_until_quiet(
    children: Sequence[Child], cpu_per_s: float = 0.03, window_s: float = 1.0, timeout_s: float = 60
) -> None:
    """Wait until each child uses less than ``cpu_per_s`` CPU over ``window_s`` (start-up
    work, imports, metadata lists done), at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    before = [cpu_seconds(child.pid) for child in children]
    while time.monotonic() < deadline:
        time.sleep(window_s)
        after = [cpu_seconds(child.pid) for child in children]
        if all(b - a < cpu_per_s * window_s for a, b in zip(before, after, strict=True)):
            return
        before = after
