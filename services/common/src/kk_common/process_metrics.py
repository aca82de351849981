"""The standard ``process_*`` metrics of the calling process, as telemetry samples.

The health container exposes every container's telemetry on ``/metrics``; containers do not
share a PID namespace, so each one samples itself and sends the result with its telemetry:

    samples = [*own_samples, *process_samples(version=__version__)]

Names and meanings are Prometheus' own (the ones prometheus-client's process collector
writes), so dashboards written for any exporter work; the health container adds the
``component`` label. Linux only for memory, file descriptors and start time (``/proc``);
elsewhere those series are left out. ``killkrill_agent_build_info{version,python}`` (value
1) carries the component's version.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from functools import cache

from kk_common.envelope import MetricSample

__all__ = ["process_samples"]

_PROC = "/proc/self"


def process_samples(*, version: str, proc: str = _PROC) -> list[MetricSample]:
    """This process's CPU, memory, file descriptors, start time and version, sampled now."""
    samples = [
        MetricSample(
            "process_cpu_seconds_total",
            "counter",
            time.process_time(),
            help="Total user and system CPU time spent in seconds.",
        ),
        MetricSample(
            "killkrill_agent_build_info",
            "gauge",
            1.0,
            {"version": version, "python": platform.python_version()},
            help="The component's version (value 1).",
        ),
    ]
    memory = _memory_bytes(proc)
    if memory is not None:
        virtual, resident = memory
        samples.append(
            MetricSample(
                "process_virtual_memory_bytes",
                "gauge",
                virtual,
                help="Virtual memory size in bytes.",
            )
        )
        samples.append(
            MetricSample(
                "process_resident_memory_bytes",
                "gauge",
                resident,
                help="Resident memory size in bytes.",
            )
        )
    open_fds = _open_fds(proc)
    if open_fds is not None:
        samples.append(
            MetricSample(
                "process_open_fds", "gauge", open_fds, help="Number of open file descriptors."
            )
        )
    soft_limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft_limit != resource.RLIM_INFINITY:
        samples.append(
            MetricSample(
                "process_max_fds",
                "gauge",
                float(soft_limit),
                help="Maximum number of open file descriptors.",
            )
        )
    started = _start_time(proc)
    if started is not None:
        samples.append(
            MetricSample(
                "process_start_time_seconds",
                "gauge",
                started,
                help="Start time of the process since unix epoch in seconds.",
            )
        )
    return samples


def _memory_bytes(proc: str) -> tuple[float, float] | None:
    try:
        with open(f"{proc}/statm", encoding="ascii") as statm:
            size, resident, *_ = statm.read().split()
    except (OSError, ValueError):
        return None
    page = os.sysconf("SC_PAGESIZE")
    return float(int(size) * page), float(int(resident) * page)


def _open_fds(proc: str) -> float | None:
    try:
        return float(len(os.listdir(f"{proc}/fd")))
    except OSError:
        return None


def _start_time(proc: str) -> float | None:
    """Boot time plus the process's start in clock ticks after boot (``/proc/<pid>/stat``)."""
    try:
        with open(f"{proc}/stat", encoding="ascii", errors="replace") as stat:
            # The command name (field 2) may contain spaces and parentheses: split after it.
            after_name = stat.read().rsplit(")", 1)[1].split()
        ticks = int(after_name[19])  # field 22 of stat(5); field 3 is after_name[0]
    except (OSError, IndexError, ValueError):
        return None
    boot = _boot_time()
    if boot is None:
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


@cache
def _boot_time() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            for line in stat:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError):
        return None
    return None
