"""Writing the pods' log files in the kubelet's layout, as a container runtime would.

* `write_backlog` + `publish` (catch-up): every line is written into a staging tree first,
  then each pod directory is renamed into ``var/log/pods`` in one step, so the logs service
  sees complete files appear at once and the measurement starts at the rename.
* `RateWriter` (steady state): appends lines to open files at a fixed rate per file, and
  remembers when each token was written, for the latency figures.

``var/log/containers`` gets the kubelet's symlinks too, as on a real node (both of the logs
service's default globs match every file; it must read each file once).
"""

from __future__ import annotations

import heapq
import os
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kkbench.loglines import LineMaker, synthetic_timestamp, wall_timestamp
from kkbench.pods import BenchPod

_FLUSH_BYTES = 1 << 20


@dataclass(frozen=True)
class LogTree:
    """``<root>/var/log/pods`` and ``/containers``, plus a staging area on the same
    filesystem (so that publishing is a rename)."""

    root: Path

    @property
    def pods(self) -> Path:
        return self.root / "var" / "log" / "pods"

    @property
    def containers(self) -> Path:
        return self.root / "var" / "log" / "containers"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    def create(self) -> None:
        for directory in (self.pods, self.containers, self.staging):
            directory.mkdir(parents=True, exist_ok=True)

    def link(self, pod: BenchPod) -> None:
        """The kubelet's /var/log/containers symlink for ``pod``."""
        link = self.containers / pod.container_link_name()
        if not link.is_symlink():
            link.symlink_to(pod.log_file(self.pods))


@dataclass(frozen=True)
class Backlog:
    """What `write_backlog` wrote: ``records`` logical lines, tokens 0..records-1."""

    records: int
    bytes: int


def write_backlog(tree: LogTree, pods: Sequence[BenchPod], records: int, seed: int) -> Backlog:
    """Write ``records`` logical lines spread evenly over the pods' files, in staging.

    Token ``n`` goes to file ``n % len(pods)``; timestamps rise 20 µs per line.
    """
    maker = LineMaker(seed)
    files = []
    for pod in pods:
        path = pod.log_file(tree.staging)
        path.parent.mkdir(parents=True, exist_ok=True)
        files.append(path.open("wb"))
    buffers: list[list[bytes]] = [[] for _ in pods]
    sizes = [0] * len(pods)
    total = 0
    try:
        for token in range(records):
            index = token % len(pods)
            data = maker.line(token, synthetic_timestamp(token))
            buffers[index].append(data)
            sizes[index] += len(data)
            if sizes[index] >= _FLUSH_BYTES:
                files[index].write(b"".join(buffers[index]))
                total += sizes[index]
                buffers[index], sizes[index] = [], 0
        for index, handle in enumerate(files):
            handle.write(b"".join(buffers[index]))
            total += sizes[index]
    finally:
        for handle in files:
            handle.close()
    return Backlog(records=records, bytes=total)


def publish(tree: LogTree, pods: Sequence[BenchPod]) -> None:
    """Move every staged pod directory into ``var/log/pods`` and add its symlink."""
    for pod in pods:
        os.rename(tree.staging / pod.log_dir_name, tree.pods / pod.log_dir_name)
    for pod in pods:
        tree.link(pod)


class RateWriter:
    """Appends lines to each pod's file at that pod's rate (lines/s), for a set time.

    Lines are written in bursts of whatever is due, at most every ``tick_s``; each file's
    first line is offset by a fraction of its period so that quiet pods do not all write in
    the same instant. ``written_at[token]`` (wall clock, seconds) and ``file_of[token]`` are
    recorded for every logical line.
    """

    def __init__(
        self,
        tree: LogTree,
        pods: Sequence[BenchPod],
        rates: Sequence[float],
        seed: int,
        tick_s: float = 0.01,
    ) -> None:
        if len(pods) != len(rates):
            raise ValueError("one rate per pod")
        self._maker = LineMaker(seed)
        self._rates = list(rates)
        self._tick_s = tick_s
        self._fds: list[int] = []
        for pod in pods:
            path = pod.log_file(tree.pods)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fds.append(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
            tree.link(pod)
        self.written_at = array("d")
        self.file_of = array("I")
        self.bytes = 0

    @property
    def records(self) -> int:
        return len(self.written_at)

    def run(self, duration_s: float) -> None:
        """Write for ``duration_s`` seconds (blocking); returns when the time is up."""
        started = time.time()
        end = started + duration_s
        written = [0] * len(self._fds)
        # (next due time, file index); file i's n-th line is due at start_i + n / rate_i.
        starts = [
            started + ((index * 0.618034) % 1.0) / rate for index, rate in enumerate(self._rates)
        ]
        due = [(start, index) for index, start in enumerate(starts)]
        heapq.heapify(due)
        maker, written_at, file_of = self._maker, self.written_at, self.file_of
        next_tick = started
        while True:
            now = time.time()
            if now >= end:
                break
            stamp = wall_timestamp(now)
            while due and due[0][0] <= now:
                _, index = heapq.heappop(due)
                rate = self._rates[index]
                # At least one: float rounding can put the due time a hair before the line.
                count = max(1, int((now - starts[index]) * rate) + 1 - written[index])
                token = len(written_at)
                data = b"".join([maker.line(token + n, stamp) for n in range(count)])
                os.write(self._fds[index], data)
                at = time.time()
                written_at.extend([at] * count)
                file_of.extend([index] * count)
                written[index] += count
                self.bytes += len(data)
                heapq.heappush(due, (starts[index] + written[index] / rate, index))
            # Fixed ticks, not "until the next due line": with hundreds of staggered files
            # the next line is always a few microseconds away.
            next_tick += self._tick_s
            pause = min(next_tick, end) - time.time()
            if pause > 0:
                time.sleep(pause)
            else:
                next_tick = time.time()

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []
