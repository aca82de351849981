"""Helpers for the tailer tests: a driver that runs scan/read/close like the app does and
checks every chunk against the previous one, and a pods/containers tree builder."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from kk_logs.tailing import (
    Chunk,
    FileClosed,
    FileOpened,
    FileTruncated,
    Tailer,
    TailerConfig,
    TailEvent,
)


class Driver:
    """Drives a `Tailer` the way the app does and keeps everything it produced.

    Every chunk must continue its identity exactly where the previous one ended (the
    parser raises on a gap or overlap, so the tailer must never produce one).
    """

    def __init__(self, tailer: Tailer) -> None:
        self.tailer = tailer
        self.chunks: dict[str, list[Chunk]] = {}
        self.events: list[TailEvent] = []
        self._next: dict[str, int] = {}

    def step(
        self,
        now: float | None = None,
        budget_bytes: int | None = None,
        *,
        mono: float | None = None,
        scan: bool = True,
    ) -> list[Chunk]:
        """One app iteration: scan (unless ``scan`` is false: a wake-up for writes only),
        read one round, settle (truncations found, the pool, what is finished).
        ``mono`` is the monotonic time, by default ``now``."""
        now = time.time() if now is None else now
        events = self.tailer.scan(now, mono) if scan else []
        self._take(events)
        chunks = self.tailer.read_round(now, budget_bytes, mono=mono)
        self._check_chunks(chunks)
        self._take(self.tailer.settle(now, mono))
        return chunks

    def _take(self, events: list[TailEvent]) -> None:
        self.events.extend(events)
        for event in events:
            if isinstance(event, FileOpened):
                self._next.setdefault(event.identity.key, event.offset)

    def _check_chunks(self, chunks: list[Chunk]) -> None:
        for chunk in chunks:
            key = chunk.identity.key
            expected = self._next.get(key, chunk.offset)
            assert chunk.offset == expected, f"{key}: chunk at {chunk.offset}, expected {expected}"
            self._next[key] = chunk.end
            self.chunks.setdefault(key, []).append(chunk)

    def until(
        self,
        condition: Callable[[], bool],
        *,
        timeout_s: float = 10.0,
        now: Callable[[], float] = time.time,
        pace_s: float = 0.0,
    ) -> None:
        """Step until ``condition()`` holds; fail after ``timeout_s`` of real time."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout_s}s")
            self.step(now())
            if pace_s:
                time.sleep(pace_s)  # pacing the loop like the app's wake-ups, not a wait

    def data(self, key: str) -> bytes:
        """Everything read from one identity, in order."""
        return b"".join(c.data for c in self.chunks.get(key, []))

    def all_data(self) -> dict[str, bytes]:
        return {key: self.data(key) for key in self.chunks}

    def total_bytes(self) -> int:
        return sum(len(c.data) for chunks in self.chunks.values() for c in chunks)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def closed(self) -> list[FileClosed]:
        return self.of(FileClosed)

    @property
    def truncated(self) -> list[FileTruncated]:
        return self.of(FileTruncated)


def pod_tree(root: Path, pods: dict[str, list[str]]) -> dict[str, Path]:
    """Build ``root/pods/<pod>/<container>/0.log`` plus kubelet-style
    ``root/containers/<pod>_<container>-<id>.log`` symlinks; return the log paths by
    ``<pod>/<container>``. Pod names look like ``<ns>_<name>_<uid>``."""
    (root / "pods").mkdir(parents=True, exist_ok=True)
    (root / "containers").mkdir(parents=True, exist_ok=True)
    logs: dict[str, Path] = {}
    for pod, containers in pods.items():
        for i, container in enumerate(containers):
            directory = root / "pods" / pod / container
            directory.mkdir(parents=True, exist_ok=True)
            log = directory / "0.log"
            log.write_bytes(b"")
            ns, name, _uid = pod.split("_")
            link = root / "containers" / f"{name}_{ns}_{container}-{i:064x}.log"
            os.symlink(log, link)
            logs[f"{pod}/{container}"] = log
    return logs


def cri_line(n: int, stream: str = "stdout", body: str = "") -> bytes:
    """A CRI log line whose content is the number ``n`` (and optional padding)."""
    return f"2026-11-26T04:09:57.{n:09d}Z {stream} F {n} {body}\n".encode()


def numbers(data: bytes) -> list[int]:
    """The line numbers in data written by `cri_line` (or plain ``<n>\\n`` lines)."""
    out = []
    for line in data.splitlines():
        fields = line.split(b" ")
        out.append(int(fields[3]) if len(fields) >= 4 else int(fields[0]))
    return out


def container_dir(root: Path, pod: str = "default_web_uid1", container: str = "c") -> Path:
    """``root/pods/<pod>/<container>``, created."""
    directory = root / "pods" / pod / container
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def tailer_config(root: Path, **kwargs: object) -> TailerConfig:
    """A config tailing ``root/pods/*/*/*.log``."""
    return TailerConfig(globs=(str(root / "pods/*/*/*.log"),), **kwargs)  # type: ignore[arg-type]
