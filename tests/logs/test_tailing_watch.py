"""Wake-ups: inotify finds new files fast; polling is the fallback; a short-lived pod's
file is read completely through the app-shaped loop."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from kk_logs.tailing import Chunk, FileClosed, Tailer, TailerConfig, changes, inotify_available
from tests.logs.tailing_support import cri_line, pod_tree

needs_inotify = pytest.mark.skipif(not inotify_available(), reason="no inotify here")


def _globs(root: Path) -> tuple[str, ...]:
    return (str(root / "pods/*/*/*.log"), str(root / "containers/*.log"))


async def _follow(
    tailer: Tailer,
    globs: tuple[str, ...],
    out: list[Chunk],
    closed: list[FileClosed],
    modes: list[str],
    **kwargs: object,
) -> None:
    """The app's loop: on every wake-up, scan, read a round, close what is finished."""
    wakeups = changes(
        globs,
        extra_dirs=tailer.directories,
        busy=lambda: tailer.more_to_read,
        **kwargs,  # type: ignore[arg-type]
    )
    last_scan = 0.0
    async for wake in wakeups:
        if not modes:
            modes.append(str(wakeups.mode))
        now = time.time()
        events = []
        if wake.rescan or now - last_scan >= 1.0:
            events = tailer.scan(now)
            last_scan = now
        out.extend(tailer.read_round(now))
        events += tailer.close_finished(now)
        closed.extend(e for e in events if isinstance(e, FileClosed))


async def _wait_for(condition: object, timeout_s: float) -> float:
    """Poll ``condition`` on the event loop; return how long it took."""
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not within {timeout_s}s")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


def _run_found_within_a_second(root: Path, **kwargs: object) -> tuple[float, list[str]]:
    pod_tree(root, {"default_first_u0": ["c"]})

    async def scenario() -> tuple[float, list[str]]:
        tailer = Tailer(TailerConfig(globs=_globs(root)))
        chunks: list[Chunk] = []
        closed: list[FileClosed] = []
        modes: list[str] = []
        task = asyncio.create_task(_follow(tailer, _globs(root), chunks, closed, modes, **kwargs))
        try:
            await _wait_for(lambda: modes, 2.0)
            await asyncio.sleep(0.05)  # let the first (startup) scan pass
            # A new pod: its directories and file appear after the watcher started.
            log = pod_tree(root, {"default_new_u1": ["app"]})["default_new_u1/app"]
            log.write_bytes(cri_line(42))
            took = await _wait_for(lambda: any(c.data == cri_line(42) for c in chunks), 1.0)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            tailer.close()
        return took, modes

    return asyncio.run(scenario())


@needs_inotify
def test_new_pod_file_is_found_within_a_second_through_inotify(tmp_path: Path) -> None:
    """The timer is set to 30 s, so only inotify can make this deadline."""
    took, modes = _run_found_within_a_second(tmp_path, rescan_interval_s=30.0)
    assert modes == ["inotify"]
    assert took < 1.0


def test_polling_fallback_also_finds_new_files_within_a_second(tmp_path: Path) -> None:
    took, modes = _run_found_within_a_second(tmp_path, use_inotify=False, poll_interval_s=0.25)
    assert modes == ["polling"]
    assert took < 1.0


@needs_inotify
def test_short_lived_pod_is_read_completely(tmp_path: Path) -> None:
    """A pod starts, logs and is deleted (its whole directory removed) within 2 s: every
    line is still read, and its file is closed, not held."""
    (tmp_path / "pods").mkdir()
    (tmp_path / "containers").mkdir()
    expected = b"".join(cri_line(n, body="short-lived") for n in range(2000))

    async def scenario() -> tuple[list[Chunk], list[FileClosed]]:
        tailer = Tailer(TailerConfig(globs=_globs(tmp_path), slice_bytes=16 * 1024))
        chunks: list[Chunk] = []
        closed: list[FileClosed] = []
        modes: list[str] = []
        task = asyncio.create_task(
            _follow(tailer, _globs(tmp_path), chunks, closed, modes, rescan_interval_s=30.0)
        )
        try:
            await _wait_for(lambda: modes, 2.0)
            await asyncio.sleep(0.05)
            started = time.monotonic()
            log = pod_tree(tmp_path, {"default_job_u9": ["run"]})["default_job_u9/run"]
            with log.open("ab", buffering=0) as f:
                for i in range(0, len(expected), 4096):
                    f.write(expected[i : i + 4096])
                    await asyncio.sleep(0)
            await asyncio.sleep(0.3)
            shutil.rmtree(tmp_path / "pods" / "default_job_u9")
            for link in (tmp_path / "containers").iterdir():
                link.unlink()
            assert time.monotonic() - started < 2.0
            await _wait_for(lambda: closed, 5.0)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            tailer.close()
        return chunks, closed

    chunks, closed = asyncio.run(scenario())
    assert b"".join(c.data for c in chunks) == expected
    assert [(c.reason, c.missed_bytes) for c in closed] == [("deleted", 0)]


@needs_inotify
def test_wake_ups_are_coalesced_under_a_noisy_writer(tmp_path: Path) -> None:
    logs = pod_tree(tmp_path, {"default_noisy_u0": ["c"]})

    async def scenario() -> int:
        wakes = 0

        async def count() -> None:
            nonlocal wakes
            async for _ in changes(_globs(tmp_path), min_interval_s=0.1, rescan_interval_s=30):
                wakes += 1

        task = asyncio.create_task(count())
        with logs["default_noisy_u0/c"].open("ab", buffering=0) as f:
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                f.write(cri_line(1))
                await asyncio.sleep(0.001)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return wakes

    wakes = asyncio.run(scenario())
    assert 2 <= wakes <= 8  # ~0.5 s / 0.1 s, not one per write (~400)


@needs_inotify
def test_a_write_asks_for_a_read_and_a_new_file_for_a_scan(tmp_path: Path) -> None:
    """Bytes written to a known file wake the reader without a rescan (globbing every path
    on each write is what made many quiet files expensive); a new or renamed file, or a
    deleted one, asks for a scan. Each step waits for its own wake-up, in order."""
    logs = pod_tree(tmp_path, {"default_quiet_u0": ["c"]})
    log = logs["default_quiet_u0/c"]

    async def scenario() -> list[tuple[str, bool]]:
        seen: list[tuple[str, bool]] = []
        wakeups = aiter(changes(_globs(tmp_path), min_interval_s=0.0, rescan_interval_s=60))

        async def next_wake() -> None:
            wake = await asyncio.wait_for(anext(wakeups), 10)
            seen.append((wake.reason, wake.rescan))

        await next_wake()  # the startup scan
        with log.open("ab") as f:
            f.write(cri_line(1))
        await next_wake()
        (log.parent / "1.log").write_bytes(cri_line(2))
        await next_wake()
        log.rename(log.parent / "0.log.20261202-100000")
        await next_wake()
        await wakeups.aclose()
        return seen

    assert asyncio.run(scenario()) == [
        ("timer", True),
        ("write", False),
        ("entries", True),
        ("entries", True),
    ]
