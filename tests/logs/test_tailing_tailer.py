"""The tailer against real files: rotation, truncation, deletion, fairness, pause, errors."""

from __future__ import annotations

import errno
import gzip
import os
import threading
import time
from pathlib import Path

import pytest

from kk_logs.tailing import FileClosed, FileRotated, Tailer
from kk_logs.tailing import tailer as tailer_module
from tests.logs.tailing_support import Driver, container_dir, cri_line, numbers, tailer_config


class _Writer(threading.Thread):
    """Writes numbered CRI lines to ``<dir>/0.log`` at about ``rate`` lines/s and, like
    containerd's ReopenContainerLog, keeps writing to the old (renamed) file until asked
    to reopen."""

    def __init__(self, directory: Path, rate: int = 10_000) -> None:
        super().__init__(daemon=True)
        self.path = directory / "0.log"
        self.rate = rate
        self.written = 0
        self.reopen = threading.Event()
        self.reopened = threading.Event()
        self.stop = threading.Event()
        self._f = self.path.open("ab", buffering=0)

    def run(self) -> None:
        batch = max(1, self.rate // 100)
        started = time.monotonic()
        while not self.stop.is_set():
            lines = b"".join(cri_line(n) for n in range(self.written, self.written + batch))
            self._f.write(lines)
            self.written += batch
            if self.reopen.is_set():
                self.reopen.clear()
                self._f.close()
                self._f = self.path.open("ab", buffering=0)
                self.reopened.set()
            ahead = self.written / self.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)  # the writer's pace (10k lines/s), not a test wait
        self._f.close()


def test_kubelet_rotation_at_10k_lines_per_second_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    """rename 0.log -> 0.log.<ts>, the runtime reopens 0.log, the previous rotated file is
    gzipped and deleted; every line number is read exactly once, in order within a file."""
    directory = container_dir(tmp_path)
    tailer = Tailer(tailer_config(tmp_path, slice_bytes=64 * 1024))
    driver = Driver(tailer)
    writer = _Writer(directory)
    writer.start()
    rotations = 6
    try:
        rotated: list[Path] = []
        for i in range(rotations):
            target = writer.written + 1500
            driver.until(lambda t=target: writer.written >= t, pace_s=0.002)
            renamed = directory / f"0.log.20261126-0000{i:02d}"
            os.rename(writer.path, renamed)
            writer.reopened.clear()
            writer.reopen.set()
            driver.until(writer.reopened.is_set, pace_s=0.002)
            if rotated:  # kubelet compresses the previous rotated file later
                previous = rotated[-1]
                Path(f"{previous}.gz").write_bytes(gzip.compress(previous.read_bytes()))
                previous.unlink()
            rotated.append(renamed)
        target = writer.written + 1500  # the newest 0.log gets lines too
        driver.until(lambda: writer.written >= target, pace_s=0.002)
    finally:
        writer.stop.set()
        writer.join()
    total = writer.written
    driver.until(lambda: driver.total_bytes() >= sum(len(cri_line(n)) for n in range(total)))
    driver.step()

    per_file = [numbers(data) for data in driver.all_data().values()]
    for seq in per_file:
        assert seq == sorted(seq), "lines out of order within a file"
    everything = sorted(n for seq in per_file for n in seq)
    assert everything == list(range(total))
    assert len(per_file) == rotations + 1
    stats = tailer.stats()
    assert stats.rotations == rotations
    assert stats.files_closed_deleted == rotations - 1  # the gzipped-and-deleted ones
    assert stats.bytes_missed == 0
    assert len(driver.of(FileRotated)) == rotations


def test_copytruncate_is_detected_and_the_new_content_read_from_zero(tmp_path: Path) -> None:
    directory = container_dir(tmp_path)
    path = directory / "0.log"
    old = b"".join(cri_line(n) for n in range(1000))
    path.write_bytes(old)
    tailer = Tailer(tailer_config(tmp_path))
    driver = Driver(tailer)
    driver.step()
    (first_key,) = driver.chunks
    assert driver.data(first_key) == old

    # logrotate copytruncate: copy, truncate in place, the writer goes on.
    (directory / "0.log.1").write_bytes(path.read_bytes())
    os.truncate(path, 0)
    new = b"".join(cri_line(n) for n in range(1000, 1010))
    with path.open("ab") as f:
        f.write(new)
    driver.step()
    driver.step()

    (truncated,) = driver.truncated
    assert truncated.identity.key == first_key and truncated.offset == len(old)
    (second_key,) = set(driver.chunks) - {first_key}
    assert driver.chunks[second_key][0].offset == 0
    assert driver.data(second_key) == new
    assert driver.data(first_key) == old  # nothing appended to the old identity
    assert tailer.stats().truncations == 1


def test_copytruncate_that_grew_back_past_the_offset_is_still_detected(tmp_path: Path) -> None:
    """The file is truncated and rewritten beyond our old offset before we look again:
    the size alone says nothing; the first line gives it away, even to a read round that
    runs before the next scan."""
    path = container_dir(tmp_path) / "0.log"
    old = b"".join(cri_line(n) for n in range(10))
    path.write_bytes(old)
    tailer = Tailer(tailer_config(tmp_path))
    driver = Driver(tailer)
    driver.step()
    (old_key,) = driver.chunks
    os.truncate(path, 0)
    new = b"".join(cri_line(n) for n in range(500, 600))
    with path.open("ab") as f:
        f.write(new)
    # No scan in between: the read itself must notice.
    assert [c for c in tailer.read_round(time.time()) if c.identity.key == old_key] == []
    driver.step()
    driver.step()
    assert tailer.stats().truncations == 1
    assert driver.data(old_key) == old
    (new_key,) = set(driver.chunks) - {old_key}
    assert driver.data(new_key) == new


def test_deleted_file_is_read_to_its_end_then_closed(tmp_path: Path) -> None:
    path = container_dir(tmp_path) / "0.log"
    content = b"".join(cri_line(n, body="x" * 100) for n in range(10_000))  # ~1.3 MB
    path.write_bytes(content)
    tailer = Tailer(tailer_config(tmp_path, slice_bytes=64 * 1024))
    driver = Driver(tailer)
    driver.step()
    assert 0 < driver.total_bytes() < len(content)
    path.unlink()
    driver.until(lambda: bool(driver.closed))
    (key,) = driver.chunks
    assert driver.data(key) == content
    (closed,) = driver.closed
    assert (closed.reason, closed.missed_bytes, closed.offset) == ("deleted", 0, len(content))
    stats = tailer.stats()
    assert (stats.files_closed_deleted, stats.bytes_missed, stats.files_open) == (1, 0, 0)


def test_deleted_file_past_its_grace_while_paused_is_closed_and_counted(
    tmp_path: Path,
) -> None:
    """The only loss: reading is paused (window full) and the deleted file's grace ends."""
    path = container_dir(tmp_path) / "0.log"
    content = b"".join(cri_line(n) for n in range(5000))
    path.write_bytes(content)
    tailer = Tailer(tailer_config(tmp_path, slice_bytes=4096, deleted_grace_s=30.0))
    driver = Driver(tailer)
    t0 = time.time()
    driver.step(t0)
    read = driver.total_bytes()
    tailer.pause()
    path.unlink()
    driver.step(t0 + 1)  # deletion noticed; held open, nothing read while paused
    driver.step(t0 + 29)
    assert driver.total_bytes() == read and driver.closed == []
    assert tailer.stats().files_open == 1
    driver.step(t0 + 31.5)
    (closed,) = driver.closed
    assert closed.reason == "grace_expired"
    assert closed.missed_bytes == len(content) - read
    stats = tailer.stats()
    assert stats.bytes_missed == len(content) - read
    assert (stats.files_closed_deleted, stats.files_closed_grace_expired) == (1, 1)
    assert stats.files_open == 0


def test_deleted_file_within_grace_is_drained_after_resume(tmp_path: Path) -> None:
    path = container_dir(tmp_path) / "0.log"
    content = b"".join(cri_line(n) for n in range(5000))
    path.write_bytes(content)
    tailer = Tailer(tailer_config(tmp_path, slice_bytes=4096, deleted_grace_s=30.0))
    driver = Driver(tailer)
    t0 = time.time()
    driver.step(t0)
    tailer.pause()
    path.unlink()
    driver.step(t0 + 10)
    tailer.resume()
    driver.until(lambda: bool(driver.closed), now=lambda: t0 + 20)
    assert list(driver.all_data().values()) == [content]
    assert driver.closed[0].reason == "deleted"
    assert tailer.stats().bytes_missed == 0


def test_first_round_gives_every_file_a_slice(tmp_path: Path) -> None:
    big = container_dir(tmp_path, "default_noisy_u0") / "0.log"
    big.write_bytes(b"".join(cri_line(n, body="y" * 200) for n in range(40_000)))  # ~9 MB
    small = []
    for i in range(5):
        path = container_dir(tmp_path, f"default_quiet{i}_u{i}") / "0.log"
        path.write_bytes(cri_line(i))
        small.append(path)
    slice_bytes = 64 * 1024
    tailer = Tailer(tailer_config(tmp_path, slice_bytes=slice_bytes))
    tailer.scan(time.time())
    chunks = tailer.read_round(time.time())
    assert {c.path for c in chunks} == {str(big), *map(str, small)}
    assert max(len(c.data) for c in chunks) == slice_bytes


def test_round_budget_rotates_through_the_files(tmp_path: Path) -> None:
    paths = []
    for i in range(6):
        path = container_dir(tmp_path, f"default_p{i}_u{i}") / "0.log"
        path.write_bytes(b"".join(cri_line(n) for n in range(5000)))
        paths.append(str(path))
    slice_bytes = 8192
    tailer = Tailer(tailer_config(tmp_path, slice_bytes=slice_bytes))
    tailer.scan(time.time())
    first = tailer.read_round(time.time(), budget_bytes=3 * slice_bytes)
    second = tailer.read_round(time.time(), budget_bytes=3 * slice_bytes)
    assert len(first) == len(second) == 3
    assert sorted(c.path for c in first + second) == sorted(paths)


def test_paused_reads_nothing_and_resume_continues_exactly(tmp_path: Path) -> None:
    path = container_dir(tmp_path) / "0.log"
    path.write_bytes(b"".join(cri_line(n) for n in range(100)))
    tailer = Tailer(tailer_config(tmp_path, slice_bytes=1000))
    driver = Driver(tailer)
    driver.step()
    (key,) = driver.chunks
    stopped_at = driver.chunks[key][-1].end
    tailer.pause()
    with path.open("ab") as f:
        f.write(b"".join(cri_line(n) for n in range(100, 200)))
    for _ in range(5):
        assert driver.step() == []
    assert tailer.stats().files[0].lag_bytes > 0
    tailer.resume()
    (chunk,) = driver.step()
    assert chunk.offset == stopped_at  # and Driver checks contiguity on every chunk
    driver.until(lambda: tailer.stats().files[0].lag_bytes == 0)
    assert numbers(driver.data(key)) == list(range(200))


def test_new_files_are_opened_while_paused(tmp_path: Path) -> None:
    """A short-lived pod's file must be held even while reading is paused."""
    tailer = Tailer(tailer_config(tmp_path))
    driver = Driver(tailer)
    tailer.pause()
    path = container_dir(tmp_path) / "0.log"
    path.write_bytes(cri_line(1))
    driver.step()
    path.unlink()
    driver.step()
    assert tailer.stats().files_open == 1 and driver.chunks == {}
    tailer.resume()
    driver.step()
    assert list(driver.all_data().values()) == [cri_line(1)]
    assert [c.reason for c in driver.closed] == ["deleted"]


def test_unreadable_file_is_reported_and_retried_never_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    denied = container_dir(tmp_path, "default_secret_u1") / "0.log"
    denied.write_bytes(cri_line(1))
    fine = container_dir(tmp_path, "default_open_u2") / "0.log"
    fine.write_bytes(cri_line(2))
    real_open = os.open
    refuse = {"on": True}

    def fake_open(path: str, flags: int, *args: int) -> int:
        if refuse["on"] and str(path) == str(denied):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(tailer_module.os, "open", fake_open)
    tailer = Tailer(tailer_config(tmp_path, retry_max_s=30.0))
    driver = Driver(tailer)
    t0 = time.time()
    driver.step(t0)
    driver.step(t0 + 0.1)  # within the backoff: not retried
    assert list(driver.all_data().values()) == [cri_line(2)]
    assert tailer.stats().errors == {"permission_denied": 1}
    driver.step(t0 + 1.5)  # retried, refused again
    assert tailer.stats().errors == {"permission_denied": 2}
    refuse["on"] = False
    driver.step(t0 + 5)
    assert sorted(driver.all_data().values()) == [cri_line(1), cri_line(2)]


def test_rotated_file_is_closed_once_drained_and_idle(tmp_path: Path) -> None:
    directory = container_dir(tmp_path)
    path = directory / "0.log"
    path.write_bytes(cri_line(1))
    tailer = Tailer(tailer_config(tmp_path, rotate_wait_s=5.0))
    driver = Driver(tailer)
    t0 = time.time()
    driver.step(t0)
    os.rename(path, directory / "0.log.20261126-000000")
    with (directory / "0.log.20261126-000000").open("ab") as f:
        f.write(cri_line(2))  # the runtime writes on until it reopens
    path.write_bytes(cri_line(3))
    driver.step(t0 + 1)
    driver.step(t0 + 2)
    assert sorted(driver.all_data().values()) == [cri_line(1) + cri_line(2), cri_line(3)]
    assert driver.closed == []
    driver.step(t0 + 7)
    assert [c.reason for c in driver.closed] == ["rotated"]
    stats = tailer.stats()
    assert (stats.rotations, stats.files_closed_rotated, stats.files_open) == (1, 1, 1)
    # The rotated file keeps the path it was read under (the pod's 0.log).
    assert driver.closed[0].path == str(path)


def test_closed_file_is_not_read_again_if_a_glob_reaches_it_later(tmp_path: Path) -> None:
    directory = container_dir(tmp_path)
    path = directory / "0.log"
    path.write_bytes(cri_line(1))
    tailer = Tailer(tailer_config(tmp_path, rotate_wait_s=0.0))
    driver = Driver(tailer)
    t0 = time.time()
    driver.step(t0)
    os.rename(path, directory / "0.log.x")
    driver.step(t0 + 1)
    driver.step(t0 + 2)
    assert [c.reason for c in driver.closed] == ["rotated"]
    os.rename(directory / "0.log.x", path)  # reachable again
    driver.step(t0 + 3)
    assert list(driver.all_data().values()) == [cri_line(1)]
    assert isinstance(driver.closed[0], FileClosed)


def test_more_to_read_reports_a_backlog_and_is_quiet_while_paused(tmp_path: Path) -> None:
    path = container_dir(tmp_path) / "0.log"
    path.write_bytes(b"".join(cri_line(n) for n in range(1000)))
    tailer = Tailer(tailer_config(tmp_path, slice_bytes=4096))
    driver = Driver(tailer)
    driver.step()
    assert tailer.more_to_read
    tailer.pause()
    assert not tailer.more_to_read  # nothing to do: the wake-up source must not spin
    tailer.resume()
    assert tailer.more_to_read
    driver.until(lambda: not tailer.more_to_read)
    assert numbers(b"".join(driver.all_data().values())) == list(range(1000))


def test_changed_reports_busy_files_and_when_the_oldest_unread_write_was_noticed(
    tmp_path: Path,
) -> None:
    """`changed` marks files for the next round; the tailer says whether one of them is
    busy (its reads bring at least `BUSY_CHUNK_BYTES` of late: one short read between
    long ones does not make it quiet) and since when writes wait unread (the first
    ``mono`` given since a round read them all)."""
    quiet = container_dir(tmp_path, "default_quiet_u0") / "0.log"
    busy = container_dir(tmp_path, "default_busy_u1") / "0.log"
    quiet.write_bytes(cri_line(0))
    busy.write_bytes(b"".join(cri_line(n, body="x" * 100) for n in range(400)))  # ~50 KiB
    tailer = Tailer(tailer_config(tmp_path))
    tailer.scan(1.0)
    tailer.read_round(1.0)
    assert (tailer.busy_written, tailer.marked_since, tailer.files_to_read) == (False, None, 0)

    with quiet.open("ab") as f:
        f.write(cri_line(1))
    tailer.changed([str(quiet)], 5.0)
    tailer.changed([str(quiet)], 6.0)
    assert (tailer.busy_written, tailer.marked_since, tailer.files_to_read) == (False, 5.0, 1)

    with busy.open("ab") as f:
        f.write(cri_line(400))
    tailer.changed([str(busy)], 7.0)
    assert (tailer.busy_written, tailer.marked_since, tailer.files_to_read) == (True, 5.0, 2)

    chunks = tailer.read_round(8.0)
    assert sorted(numbers(c.data)[0] for c in chunks) == [1, 400]
    assert (tailer.busy_written, tailer.marked_since, tailer.files_to_read) == (False, None, 0)

    with busy.open("ab") as f:
        f.write(cri_line(401))
    tailer.changed([str(busy)], 9.0)
    assert tailer.busy_written  # still busy after one short read
    assert 2 * tailer_module.BUSY_CHUNK_BYTES <= 50 * 1024


def test_a_noisy_backlog_lets_a_quiet_file_be_read_in_the_next_round(tmp_path: Path) -> None:
    """Fairness: while a noisy file has megabytes unread, a quiet file written meanwhile is
    read in the very next round, round after round: the noisy file gets one slice per
    round (the app's budget is four slices) and queues behind the files marked after it."""
    noisy = container_dir(tmp_path, "default_noisy_u0") / "0.log"
    quiet = container_dir(tmp_path, "default_quiet_u1") / "0.log"
    noisy.write_bytes(b"".join(cri_line(n, body="y" * 200) for n in range(40_000)))  # ~9 MB
    quiet.write_bytes(cri_line(0))
    slice_bytes = 64 * 1024
    tailer = Tailer(tailer_config(tmp_path, slice_bytes=slice_bytes))
    driver = Driver(tailer)
    driver.step(1.0)
    for n in range(1, 6):
        with quiet.open("ab") as f:
            f.write(cri_line(n))
        tailer.changed([str(quiet)], float(n))
        chunks = driver.step(1.0 + n, budget_bytes=4 * slice_bytes, scan=False)
        quiet_chunks = [c for c in chunks if c.path == str(quiet)]
        assert [numbers(c.data) for c in quiet_chunks] == [[n]]
        assert tailer.more_to_read  # the noisy backlog is still there
    unread = noisy.stat().st_size - sum(len(c.data) for c in driver.chunks[_key(driver, noisy)])
    assert unread > 8 * 1024 * 1024


def _key(driver: Driver, path: Path) -> str:
    (key,) = {k for k, chunks in driver.chunks.items() if chunks[0].path == str(path)}
    return key


def test_a_quiet_file_written_again_with_a_busy_files_worth_waiting_turns_busy(
    tmp_path: Path,
) -> None:
    """A quiet file that starts writing fast is not left waiting for the open batch: when
    it is reported written again before a round read it, and what waits is already a
    busy file's read, it counts as busy."""
    path = container_dir(tmp_path) / "0.log"
    path.write_bytes(cri_line(0))
    tailer = Tailer(tailer_config(tmp_path))
    tailer.scan(1.0)
    tailer.read_round(1.0)

    with path.open("ab") as f:
        f.write(b"".join(cri_line(n, body="z" * 100) for n in range(1, 400)))  # ~50 KiB
    tailer.changed([str(path)], 2.0)
    assert not tailer.busy_written  # first report: its reads were short so far
    tailer.changed([str(path)], 2.05)
    assert tailer.busy_written
