"""Container log files with known record ids, written the way a node's runtime writes them.

`LogWriter` appends CRI lines (``<time> stdout F <text>``) to the ``0.log`` of several pods in
the kubelet's layout (``<root>/pods/<ns>_<pod>_<uid>/<container>/0.log``), from a thread, at
a steady rate. Every line carries a record id, ``kkr-`` and nine digits, numbered from 0 in
the order written and never reused, so the audit (`reliability_audit`) can check, per id,
that each line written reached the receiver exactly once.

Each pod file has a rotation policy, carried out by the writer thread between two writes, so
that no line is ever written "during" a rotation (the order of events is the writer's):

* ``rename``: the kubelet's rotation: ``0.log`` is renamed ``0.log.<YYYYMMDD-hhmmss>`` and
  the next write creates a new ``0.log``;
* ``copytruncate``: logrotate's: older copies shift (``0.log.1`` -> ``0.log.2``), ``0.log`` is
  copied to ``0.log.1`` and truncated in place. (Lines a real writer adds between the copy and
  the truncate are lost by copytruncate itself; this writer adds none, so any loss is ours.)

With ``keep_rotated`` set, the oldest rotated files beyond that many are deleted, as the
kubelet and logrotate do: the logs service may still hold them open (files deleted while
open). `delete_pod` removes a whole pod directory (a removed pod).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kk_receiver.testing import wait_until

RECORD_ID = re.compile(r"kkr-(\d{9})")
"""How the audit finds a line's record id in a stored message."""
ROTATIONS = ("none", "rename", "copytruncate")
_TICK_S = 0.02
"""The writer's pacing period; lines due are written in one chunk per file per tick."""
_ROTATION_EPOCH = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)


def record_id(number: int) -> str:
    """The record id carried by line ``number``."""
    return f"kkr-{number:09d}"


@dataclass
class PodFile:
    """One container's log file and what has been done to it."""

    namespace: str
    pod: str
    uid: str
    container: str = "app"
    rotation: str = "none"
    keep_rotated: int | None = None
    directory: Path = field(init=False)
    rotations: int = 0
    deleted_files: int = 0
    lines: int = 0
    removed: bool = False

    def __post_init__(self) -> None:
        if self.rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, got {self.rotation!r}")

    @property
    def live(self) -> Path:
        return self.directory / "0.log"

    def rotated_files(self) -> list[Path]:
        """Rotated files beside ``0.log``, oldest first."""
        if self.rotation == "copytruncate":
            numbered = self.directory.glob("0.log.[0-9]*")
            return sorted(numbered, key=lambda path: -int(path.name.rsplit(".", 1)[1]))
        return sorted(self.directory.glob("0.log.2*"))

    def rotate(self) -> None:
        """Rotate by this file's policy, then delete what is beyond ``keep_rotated``."""
        if self.removed or not self.live.exists():
            return
        self.rotations += 1
        if self.rotation == "rename":
            stamp = (_ROTATION_EPOCH + timedelta(seconds=self.rotations)).strftime("%Y%m%d-%H%M%S")
            os.rename(self.live, self.directory / f"0.log.{stamp}")
        elif self.rotation == "copytruncate":
            for path in self.rotated_files():  # oldest first: .2 -> .3 before .1 -> .2
                number = int(path.name.rsplit(".", 1)[1])
                os.rename(path, self.directory / f"0.log.{number + 1}")
            shutil.copyfile(self.live, self.directory / "0.log.1")
            os.truncate(self.live, 0)
        if self.keep_rotated is not None:
            rotated = self.rotated_files()
            for path in rotated[: max(0, len(rotated) - self.keep_rotated)]:
                path.unlink()
                self.deleted_files += 1


def pod_files(count: int, rotation: str = "none", keep_rotated: int | None = None) -> list[PodFile]:
    """``count`` pods in namespace ``shop`` with the same policy."""
    return [
        PodFile(
            "shop",
            f"app-{index}",
            f"0c0ffee0-0000-4000-8000-{index:012d}",
            rotation=rotation,
            keep_rotated=keep_rotated,
        )
        for index in range(count)
    ]


class LogWriter:
    """Writes numbered lines to ``files`` at ``rate`` lines/s, rotating every ``rotate_every_s``.

    Use as a context manager (the thread stops on exit) or `start` / `stop`. `paused` holds
    the thread between two writes, so a test can act on the files (or the agent) knowing that
    nothing is written meanwhile.
    """

    def __init__(
        self,
        root: Path,
        files: Sequence[PodFile],
        *,
        rate: float,
        rotate_every_s: float | None = None,
        filler: int = 60,
    ) -> None:
        self.root = root
        self.files = list(files)
        self.rate = rate
        self.rotate_every_s = rotate_every_s
        self._filler = "x" * filler
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._written = 0
        self._started_at = 0.0
        self._stopped_at = 0.0
        self.error: BaseException | None = None
        for pod in self.files:
            pod.directory = root / "pods" / f"{pod.namespace}_{pod.pod}_{pod.uid}" / pod.container
            pod.directory.mkdir(parents=True, exist_ok=True)

    @property
    def written(self) -> int:
        """Lines written so far: ids ``0 .. written - 1``."""
        return self._written

    @property
    def rotations(self) -> int:
        return sum(pod.rotations for pod in self.files)

    @property
    def deleted_files(self) -> int:
        return sum(pod.deleted_files for pod in self.files)

    def write(self, count: int) -> None:
        """Write ``count`` lines now, spread over the files (also usable without the thread)."""
        with self._lock:
            self._write_locked(count)

    def start(self) -> LogWriter:
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()
        return self

    @property
    def achieved_rate(self) -> float:
        """Lines per second actually written, from the start to now (or to `stop`)."""
        end = self._stopped_at or time.monotonic()
        return self._written / max(end - self._started_at, 1e-9) if self._started_at else 0.0

    def stop(self) -> int:
        """Stop the thread; returns the number of lines written."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._stopped_at = self._stopped_at or time.monotonic()
        if self.error is not None:
            raise AssertionError(f"the log writer failed: {self.error!r}") from self.error
        return self._written

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No line is written and no file rotated while the block runs."""
        with self._lock:
            yield

    def wait_written(self, more: int, timeout: float | None = None) -> int:
        """Wait until ``more`` lines beyond the current count have been written (by default
        allowing three times as long as the rate needs: a busy machine writes slower)."""
        target = self._written + more
        if timeout is None:
            timeout = max(30.0, 3 * more / self.rate)
        wait_until(
            lambda: self._written >= target or self.error is not None,
            timeout=timeout,
            message=f"{more} more lines written",
        )
        if self.error is not None:
            raise AssertionError(f"the log writer failed: {self.error!r}") from self.error
        return self._written

    def delete_pod(self, pod: PodFile) -> None:
        """Remove ``pod``'s directory with its files (a pod removed from the node)."""
        with self._lock:
            pod.removed = True
            shutil.rmtree(pod.directory.parent)

    def __enter__(self) -> LogWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        started = self._started_at
        next_rotation = started + (self.rotate_every_s or 0)
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                with self._lock:
                    due = int((now - started) * self.rate) - self._written
                    self._write_locked(max(0, due))
                    if self.rotate_every_s and now >= next_rotation:
                        for pod in self.files:
                            if pod.rotation != "none":
                                pod.rotate()
                        next_rotation = now + self.rotate_every_s
                self._stop.wait(_TICK_S)  # pacing of a load generator, not a wait for a result
        except BaseException as exc:  # surfaced by stop() / wait_written()
            self.error = exc

    def _write_locked(self, count: int) -> None:
        active = [pod for pod in self.files if not pod.removed]
        if not active or count <= 0:
            return
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
        chunks: list[list[str]] = [[] for _ in active]
        for offset in range(count):
            number = self._written + offset
            index = number % len(active)
            chunks[index].append(
                f"{stamp} stdout F level=info {record_id(number)} "
                f"pod={active[index].pod} {self._filler}\n"
            )
        for pod, lines in zip(active, chunks, strict=True):
            if lines:
                with pod.live.open("a", encoding="utf-8") as log:
                    log.write("".join(lines))
                pod.lines += len(lines)
        self._written += count
