"""The tailer on a crowded node: a pool of descriptors smaller than the files, reads that
follow writes (not the number of files), and durations on the monotonic clock.

Real files, the tailer driven like the app drives it (`Driver`: scan, read a round, settle);
every chunk must continue its file exactly where the previous one ended."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kk_logs.tailing import FileClosed, Tailer
from kk_logs.tailing import tailer as tailer_module
from kk_logs.tailing.descriptors import DESCRIPTOR_RESERVE, open_files_pool
from tests.logs.tailing_support import Driver, container_dir, cri_line, numbers, tailer_config


def _pods(root: Path, count: int, lines: int, first: int = 0) -> list[Path]:
    paths = []
    for i in range(count):
        path = container_dir(root, f"default_p{i}_u{i}") / "0.log"
        with path.open("ab") as f:
            f.write(b"".join(cri_line(first + n) for n in range(lines)))
        paths.append(path)
    return paths


def _append(path: Path, numbers_: range) -> None:
    with path.open("ab") as f:
        f.write(b"".join(cri_line(n) for n in numbers_))


def _by_path(driver: Driver) -> dict[str, list[int]]:
    """Line numbers read, by the path each identity was read under (identities in the
    order they were first read)."""
    out: dict[str, list[int]] = {}
    for key, chunks in driver.chunks.items():
        data = driver.data(key)
        whole_lines = data[: data.rfind(b"\n") + 1]
        out.setdefault(chunks[0].path, []).extend(numbers(whole_lines))
    return out


def _two_files_one_descriptor(tmp_path: Path) -> tuple[Tailer, Driver, float, Path]:
    """Two files read whole with one descriptor: the one parked is returned."""
    _pods(tmp_path, 2, lines=5)
    tailer = Tailer(tailer_config(tmp_path, max_open_files=1))
    driver = Driver(tailer)
    t0 = time.time()
    driver.until(lambda: len(_by_path(driver)) == 2, now=lambda: t0)
    (parked,) = [Path(s.path) for s in tailer.stats().files if s.parked]
    return tailer, driver, t0, parked


def test_more_files_than_descriptors_every_file_is_read_once(tmp_path: Path) -> None:
    """40 files with bytes to read, 8 descriptors: files take turns, each is read whole,
    and never more than 8 are open."""
    paths = _pods(tmp_path, 40, lines=300)
    tailer = Tailer(tailer_config(tmp_path, max_open_files=8, slice_bytes=4096))
    driver = Driver(tailer)
    most_open = 0

    def all_read() -> bool:
        nonlocal most_open
        most_open = max(most_open, tailer.stats().files_open)
        return _by_path(driver) == {str(p): list(range(300)) for p in paths}

    driver.until(all_read, timeout_s=30)
    assert most_open == 8
    stats = tailer.stats()
    assert stats.files_open + stats.files_parked == 40
    assert stats.parks > 0 and stats.bytes_missed == 0


def test_a_parked_file_is_reopened_when_written_and_read_from_its_offset(
    tmp_path: Path,
) -> None:
    first, second, third = _pods(tmp_path, 3, lines=5)
    tailer = Tailer(tailer_config(tmp_path, max_open_files=2))
    driver = Driver(tailer)
    t0 = time.time()
    driver.step(t0)
    driver.step(t0 + 1)
    assert sorted(map(len, _by_path(driver).values())) == [5, 5, 5]
    parked = [s.path for s in tailer.stats().files if s.parked]
    assert len(parked) == 1
    path = Path(parked[0])
    _append(path, range(5, 8))
    # inotify names the file written; no scan needed.
    tailer.changed([str(path)])
    driver.step(t0 + 2, scan=False)
    assert _by_path(driver)[str(path)] == list(range(8))
    assert tailer.stats().reopens == 1 and tailer.stats().files_open == 2
    # A scan finds a parked file that changed without inotify (polling) too.
    now_parked = next(Path(s.path) for s in tailer.stats().files if s.parked)
    _append(now_parked, range(5, 7))
    driver.step(t0 + 3)
    assert _by_path(driver)[str(now_parked)] == list(range(7))
    assert {str(first), str(second), str(third)} == set(_by_path(driver))


def test_a_parked_file_rotated_away_is_read_to_its_end_from_its_offset(tmp_path: Path) -> None:
    _pods(tmp_path, 2, lines=5)
    tailer = Tailer(tailer_config(tmp_path, max_open_files=1), last_look=0.0)
    driver = Driver(tailer)
    t0 = time.time()
    driver.until(lambda: len(_by_path(driver)) == 2, now=lambda: t0)
    (parked,) = [Path(s.path) for s in tailer.stats().files if s.parked]
    # While it has no descriptor: more lines, kubelet's rename, the runtime's new 0.log.
    _append(parked, range(5, 9))
    os.rename(parked, parked.parent / "0.log.20261202-100000")
    parked.write_bytes(cri_line(100))
    driver.until(lambda: _by_path(driver).get(str(parked)) == [*range(9), 100], now=lambda: t0)
    assert tailer.stats().bytes_missed == 0


def test_a_parked_file_deleted_is_closed_and_only_its_unread_bytes_are_missed(
    tmp_path: Path,
) -> None:
    tailer, driver, t0, parked = _two_files_one_descriptor(tmp_path)
    parked.unlink()  # read to its end before it was parked: nothing lost
    driver.step(t0 + 1)
    (closed,) = driver.closed
    assert (closed.path, closed.reason, closed.missed_bytes) == (str(parked), "deleted", 0)
    assert tailer.stats().bytes_missed == 0 and tailer.stats().files_parked == 0


def test_a_parked_file_truncated_meanwhile_is_read_again_from_zero(tmp_path: Path) -> None:
    tailer, driver, t0, parked = _two_files_one_descriptor(tmp_path)
    parked.write_bytes(b"".join(cri_line(n) for n in range(500, 510)))  # truncated, rewritten
    tailer.changed([str(parked)])
    driver.step(t0 + 1, scan=False)
    driver.step(t0 + 2, scan=False)
    assert _by_path(driver)[str(parked)] == [*range(5), *range(500, 510)]
    assert tailer.stats().truncations == 1


def test_a_write_reads_only_the_file_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cost of a wake-up for a write is that file's read, not a read per file."""
    paths = _pods(tmp_path, 200, lines=1)
    tailer = Tailer(tailer_config(tmp_path))
    driver = Driver(tailer)
    driver.step()
    reads: list[int] = []
    real_pread = os.pread

    def counting_pread(fd: int, size: int, offset: int) -> bytes:
        reads.append(fd)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(tailer_module.os, "pread", counting_pread)
    assert driver.step(scan=False) == []
    assert reads == []
    _append(paths[7], range(1, 3))
    tailer.changed([str(paths[7])])
    (chunk,) = driver.step(scan=False)
    assert (chunk.path, numbers(chunk.data)) == (str(paths[7]), [1, 2])
    assert len(set(reads)) == 1


def test_a_forward_wall_clock_step_does_not_abandon_a_draining_deleted_file(
    tmp_path: Path,
) -> None:
    """The grace period is a duration: monotonic. The wall clock jumps an hour ahead while
    a deleted file waits (reading paused); one monotonic second later it is still held
    and is drained after resume."""
    path = container_dir(tmp_path) / "0.log"
    content = b"".join(cri_line(n) for n in range(5000))
    path.write_bytes(content)
    tailer = Tailer(tailer_config(tmp_path, slice_bytes=4096, deleted_grace_s=30.0))
    driver = Driver(tailer)
    wall, mono = time.time(), 1000.0
    driver.step(wall, mono=mono)
    tailer.pause()
    path.unlink()
    driver.step(wall + 1, mono=mono + 1)  # the deletion is seen
    driver.step(wall + 3600, mono=mono + 2)  # NTP steps the wall clock an hour ahead
    assert driver.closed == []
    tailer.resume()
    for tick in range(1, 1000):
        driver.step(wall + 3600, mono=mono + 2 + tick / 1000)
        if driver.closed:
            break
    (closed,) = driver.closed
    assert (closed.reason, closed.missed_bytes) == ("deleted", 0)
    assert list(driver.all_data().values()) == [content]


def test_a_backward_wall_clock_step_does_not_extend_the_grace_or_the_rotate_wait(
    tmp_path: Path,
) -> None:
    """The wall clock steps an hour back: the deleted file's grace and the rotated
    file's wait still end on time, by the monotonic clock."""
    deleted = container_dir(tmp_path, "default_gone_u1") / "0.log"
    deleted.write_bytes(b"".join(cri_line(n) for n in range(5000)))
    rotated_dir = container_dir(tmp_path, "default_rot_u2")
    live = rotated_dir / "0.log"
    live.write_bytes(cri_line(1))
    tailer = Tailer(
        tailer_config(tmp_path, slice_bytes=4096, deleted_grace_s=30.0, rotate_wait_s=5.0)
    )
    driver = Driver(tailer)
    wall, mono = time.time(), 1000.0
    driver.step(wall, mono=mono)
    tailer.pause()
    deleted.unlink()
    os.rename(live, rotated_dir / "0.log.20261202-100000")
    driver.step(wall + 1, mono=mono + 1)
    driver.step(wall - 3600, mono=mono + 10)  # an hour back; 10 s have passed
    assert [c.reason for c in driver.closed] == ["rotated"]
    driver.step(wall - 3580, mono=mono + 31.5)
    assert sorted(c.reason for c in driver.closed) == ["grace_expired", "rotated"]
    assert all(isinstance(c, FileClosed) for c in driver.closed)


def test_the_pool_is_the_descriptor_limit_less_the_reserve() -> None:
    assert open_files_pool(1024, None).size == 1024 - DESCRIPTOR_RESERVE
    assert open_files_pool(1024, None, system_logs=True).size == 1024 - DESCRIPTOR_RESERVE - 16
    assert open_files_pool(1024, 500).size == 500
    lowered = open_files_pool(1024, 5000)
    assert (lowered.size, lowered.lowered) == (1024 - DESCRIPTOR_RESERVE, True)
    assert open_files_pool(10, None).size == 1
