"""Rotated files nobody held open, copytruncate with and without a copy, rewrites with the
same first line: the tailer against real files, every event in an explicit order.

A "restart" is a second `Tailer` built from what the first one read (its offsets, as the
offset store would hold them, and its `look_mark`), after the first one closed its files,
as a killed process's descriptors are closed."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import pytest

from kk_common import jsonlog
from kk_logs.tailing import FileOpened, FileRotated, Tailer, TailerConfig
from kk_logs.tailing.tailer import NEW_FILE_SLACK_S
from tests.logs.tailing_support import Driver, container_dir, cri_line, numbers, tailer_config


def _lines(first: int, count: int) -> bytes:
    return b"".join(cri_line(n) for n in range(first, first + count))


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


class _Process:
    """One life of the logs service's tailer: reads, and on `kill` leaves behind what the
    offset store would hold (the offsets it read to) and its look mark."""

    def __init__(
        self, root: Path, stored: dict[str, int] | None = None, last_look: float | None = None
    ) -> None:
        self.stored = dict(stored or {})
        self.tailer = Tailer(
            tailer_config(root, slice_bytes=4096),
            start_offset=lambda identity: self.stored.get(identity.key),
            last_look=last_look,
        )
        self.driver = Driver(self.tailer)

    def read_some(self, budget_bytes: int) -> None:
        self.driver.step(budget_bytes=budget_bytes)

    def read_all(self) -> None:
        self.driver.until(lambda: not self.tailer.more_to_read and self._drained())
        self.driver.step()

    def _drained(self) -> bool:
        self.driver.step()
        return all(f.lag_bytes == 0 for f in self.tailer.stats().files)

    def kill(self) -> tuple[dict[str, int], float | None]:
        """What the offset store holds: like the parser's safe offset, the end of the
        last complete line read."""
        offsets = {
            key: chunks[0].offset + self.driver.data(key).rfind(b"\n") + 1
            for key, chunks in self.driver.chunks.items()
        }
        mark = self.tailer.look_mark
        self.tailer.close()
        return {**self.stored, **offsets}, mark


def _fields(record: logging.LogRecord) -> dict[str, object]:
    """The structured fields of a `log_event` record."""
    return getattr(record, jsonlog._FIELDS_ATTR)


def _everything(*drivers: Driver) -> list[int]:
    """Every complete line read, by number (a killed process's last partial line is read
    again by the next one)."""
    complete = (data[: data.rfind(b"\n") + 1] for d in drivers for data in d.all_data().values())
    return sorted(n for data in complete for n in numbers(data))


def _killed_after_reading_part(
    root: Path, lines: int, budget_bytes: int
) -> tuple[Path, _Process, dict[str, int], float | None]:
    """A live 0.log of ``lines`` lines, read in part by a process that is then killed."""
    live = container_dir(root) / "0.log"
    live.write_bytes(_lines(0, lines))
    first = _Process(root)
    first.read_some(budget_bytes=budget_bytes)
    stored, mark = first.kill()
    return live, first, stored, mark


def test_a_file_renamed_while_the_service_was_down_is_read_on_from_its_stored_offset(
    tmp_path: Path,
) -> None:
    live, first, stored, mark = _killed_after_reading_part(tmp_path, 500, 8192)
    directory = live.parent
    (old_key,) = stored
    assert 0 < stored[old_key] < live.stat().st_size

    # While down: the rest of the old file is written, kubelet rotates, the runtime
    # opens a new 0.log.
    _append(live, _lines(500, 100))
    os.rename(live, directory / "0.log.20261126-100001")
    live.write_bytes(_lines(600, 50))

    second = _Process(tmp_path, stored, mark)
    second.read_all()
    # The old file goes on under its own identity, exactly at the stored offset (the
    # Driver checks that every chunk continues the previous one).
    assert second.driver.chunks[old_key][0].offset == stored[old_key]
    assert _everything(first.driver, second.driver) == list(range(650))
    # It keeps the live path: pod and container metadata come from it.
    assert {c.path for c in second.driver.chunks[old_key]} == {str(live)}
    assert len(second.driver.of(FileRotated)) == 1
    assert second.tailer.stats().bytes_missed == 0


def test_two_rotations_while_down_read_the_never_opened_middle_file_from_zero(
    tmp_path: Path,
) -> None:
    live, first, stored, mark = _killed_after_reading_part(tmp_path, 300, 4096)
    directory = live.parent

    _append(live, _lines(300, 100))
    os.rename(live, directory / "0.log.20261126-100001")
    live.write_bytes(_lines(400, 200))  # a file no process ever opened
    os.rename(live, directory / "0.log.20261126-100002")
    live.write_bytes(_lines(600, 50))

    second = _Process(tmp_path, stored, mark)
    second.read_all()
    assert _everything(first.driver, second.driver) == list(range(650))
    rotated = [e for e in second.driver.events if isinstance(e, FileOpened) and e.path == str(live)]
    # Rotated files in rotation order: the older one (read on), then the newer one (from 0).
    siblings = [e for e in rotated if numbers(second.driver.data(e.identity.key))[0] < 600]
    assert [e.offset for e in siblings] == [stored[next(iter(stored))], 0]
    assert numbers(second.driver.data(siblings[1].identity.key)) == list(range(400, 600))


def test_a_file_created_and_rotated_away_before_the_first_look_is_read(tmp_path: Path) -> None:
    """The forced order of the hanging rotation test: the tailer has looked (the pods
    directory is empty), then a pod's 0.log is created, written and renamed, and a new
    0.log written, all before the tailer's next look."""
    (tmp_path / "pods").mkdir()
    tailer = Tailer(tailer_config(tmp_path))
    driver = Driver(tailer)
    driver.step()
    assert driver.chunks == {}

    directory = container_dir(tmp_path, "default_blink_u2")
    (directory / "0.log").write_bytes(_lines(0, 1000))
    os.rename(directory / "0.log", directory / "0.log.20261126-100001")
    (directory / "0.log").write_bytes(_lines(1000, 10))
    driver.step()

    assert _everything(driver) == list(range(1010))
    assert {c.path for chunks in driver.chunks.values() for c in chunks} == {
        str(directory / "0.log")
    }


def test_a_file_rotated_before_the_process_started_its_first_scan_is_read(
    tmp_path: Path,
) -> None:
    """First run: the look mark is the process's start, the scan comes later."""
    directory = container_dir(tmp_path)
    started = time.time()
    (directory / "0.log").write_bytes(_lines(0, 100))
    os.rename(directory / "0.log", directory / "0.log.20261126-100001")
    (directory / "0.log").write_bytes(_lines(100, 10))
    driver = Driver(Tailer(tailer_config(tmp_path), last_look=started))
    driver.step(started + 30)  # a slow start-up
    assert _everything(driver) == list(range(110))


def test_older_rotations_present_at_the_first_look_are_left_alone(tmp_path: Path) -> None:
    directory = container_dir(tmp_path)
    history = directory / "0.log.20261120-000000"
    history.write_bytes(_lines(0, 100))
    old = time.time() - 3600
    os.utime(history, (old, old))
    (directory / "0.log").write_bytes(_lines(100, 10))
    tailer = Tailer(tailer_config(tmp_path), last_look=time.time() - 60)
    driver = Driver(tailer)
    driver.step()
    driver.step()
    assert _everything(driver) == list(range(100, 110))
    assert tailer.stats().files_open == 1  # looked at once, not held open


def test_a_rotated_file_read_to_its_end_is_not_opened_again(tmp_path: Path) -> None:
    directory = container_dir(tmp_path)
    live = directory / "0.log"
    live.write_bytes(_lines(0, 10))
    tailer = Tailer(tailer_config(tmp_path, rotate_wait_s=0.0))
    driver = Driver(tailer)
    t0 = time.time()
    driver.step(t0)
    os.rename(live, directory / "0.log.20261126-100001")
    live.write_bytes(_lines(10, 10))
    driver.step(t0 + 1)
    driver.step(t0 + 2)
    assert [c.reason for c in driver.closed] == ["rotated"]
    opened = tailer.stats().files_opened
    for later in range(3, 6):
        driver.step(t0 + later)
    assert tailer.stats().files_opened == opened
    assert _everything(driver) == list(range(20))


def test_docker_json_file_rotations_are_followed_oldest_first(tmp_path: Path) -> None:
    """docker renames <id>-json.log to .1, .1 to .2 ...: a higher number is older."""
    container_id = "ab" * 32
    directory = tmp_path / "docker" / container_id
    directory.mkdir(parents=True)
    live = directory / f"{container_id}-json.log"
    for n, first in ((2, 0), (1, 100)):
        (directory / f"{live.name}.{n}").write_bytes(_lines(first, 100))
    live.write_bytes(_lines(200, 100))
    tailer = Tailer(TailerConfig(globs=(str(tmp_path / "docker/*/*-json.log"),)), last_look=0.0)
    driver = Driver(tailer)
    driver.step()
    opened = [e for e in driver.events if isinstance(e, FileOpened)]
    assert [numbers(driver.data(e.identity.key))[0] for e in opened] == [200, 0, 100]
    assert _everything(driver) == list(range(300))


def test_a_rotated_file_deleted_before_it_was_read_is_counted_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live, _first, stored, mark = _killed_after_reading_part(tmp_path, 200, 2048)
    directory = live.parent
    rotated = directory / "0.log.20261126-100001"
    os.rename(live, rotated)
    live.write_bytes(b"")

    tailer = Tailer(
        tailer_config(tmp_path, slice_bytes=1024, deleted_grace_s=10.0),
        start_offset=lambda identity: stored.get(identity.key),
        last_look=mark,
    )
    driver = Driver(tailer)
    tailer.pause()  # the window is full: nothing is read
    t0 = time.time()
    driver.step(t0)
    rotated.unlink()  # kubelet removes it (compressed) before we could read it
    driver.step(t0 + 1)
    with caplog.at_level(logging.WARNING):
        driver.step(t0 + 12)
    (closed,) = driver.closed
    missed = len(_lines(0, 200)) - next(iter(stored.values()))
    assert (closed.reason, closed.missed_bytes) == ("grace_expired", missed)
    assert tailer.stats().bytes_missed == missed
    (warning,) = [r for r in caplog.records if r.getMessage() == "tailer_deleted_file_abandoned"]
    fields = _fields(warning)
    assert (fields["file"], fields["missed_bytes"]) == (str(rotated), missed)


def test_a_copytruncate_copy_is_never_read_as_a_file_of_its_own(tmp_path: Path) -> None:
    directory = container_dir(tmp_path)
    live = directory / "0.log"
    live.write_bytes(_lines(0, 100))
    tailer = Tailer(tailer_config(tmp_path), last_look=0.0)
    driver = Driver(tailer)
    driver.step()
    shutil.copyfile(live, directory / "0.log.1")  # logrotate has copied, not truncated yet
    driver.step()
    driver.step()
    assert _everything(driver) == list(range(100))


def test_copytruncate_with_the_copy_beside_it_loses_nothing(tmp_path: Path) -> None:
    """Lines written after our last read and before the truncate are read from the copy,
    as the same identity at the same offsets, so their record ids are what they would
    have been."""
    directory = container_dir(tmp_path)
    live = directory / "0.log"
    live.write_bytes(_lines(0, 100))
    tailer = Tailer(tailer_config(tmp_path))
    driver = Driver(tailer)
    driver.step()
    (old_key,) = driver.chunks
    _append(live, _lines(100, 50))  # not read yet
    shutil.copyfile(live, directory / "0.log.1")
    os.truncate(live, 0)
    _append(live, _lines(150, 20))
    driver.step()
    driver.step()

    (truncated,) = driver.truncated
    assert (truncated.copy_path, truncated.missed_bytes) == (str(directory / "0.log.1"), 0)
    assert truncated.missed_counted_from == "copy"
    assert numbers(driver.data(old_key)) == list(range(150))
    assert _everything(driver) == list(range(170))
    assert tailer.stats().bytes_missed == 0


def test_copytruncate_without_a_copy_counts_what_it_saw_and_did_not_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = container_dir(tmp_path)
    live = directory / "0.log"
    live.write_bytes(_lines(0, 100))
    tailer = Tailer(tailer_config(tmp_path))
    driver = Driver(tailer)
    driver.step()
    tailer.pause()
    unread = _lines(100, 50)
    _append(live, unread)
    driver.step()  # the scan sees the new size; nothing is read while paused
    os.truncate(live, 0)
    _append(live, _lines(150, 20))
    tailer.resume()
    with caplog.at_level(logging.WARNING):
        driver.step()
        driver.step()
    (truncated,) = driver.truncated
    assert (truncated.copy_path, truncated.missed_bytes) == (None, len(unread))
    assert truncated.missed_counted_from == "last_size_seen"
    assert tailer.stats().bytes_missed == len(unread)
    assert _everything(driver) == [*range(100), *range(150, 170)]
    (warning,) = [r for r in caplog.records if r.getMessage() == "tailer_file_truncated"]
    fields = _fields(warning)
    assert (fields["missed_bytes"], fields["missed_counted_from"]) == (
        len(unread),
        "last_size_seen",
    )


BANNER = b"=== service log ===\n"


@pytest.mark.parametrize(
    ("rewritten", "how"),
    [
        (BANNER + _lines(500, 10), "shorter than our offset: the size tells"),
        (BANNER + _lines(1000, 100), "longer: only the bytes before our offset tell"),
    ],
)
def test_a_rewrite_with_the_same_first_line_is_a_new_generation(
    tmp_path: Path, rewritten: bytes, how: str
) -> None:
    """Same inode, same first line: the new content is noticed and must not take the
    old content's ids (the shipper would drop its lines as already sent)."""
    live = container_dir(tmp_path) / "0.log"
    live.write_bytes(BANNER + _lines(0, 10))
    tailer = Tailer(tailer_config(tmp_path))
    driver = Driver(tailer)
    driver.step()
    (old_key,) = driver.chunks
    os.truncate(live, 0)
    _append(live, rewritten)  # before the tailer looks again
    for _ in range(3):
        driver.step()
    assert driver.data(old_key) == BANNER + _lines(0, 10), how
    (new_key,) = set(driver.chunks) - {old_key}
    assert new_key == f"{old_key}.1"
    assert driver.data(new_key) == rewritten
    assert tailer.stats().truncations == 1


def test_new_means_modified_after_the_last_look_less_the_slack(tmp_path: Path) -> None:
    """A sibling a little older than the last look (coarse file times) is still new."""
    directory = container_dir(tmp_path)
    (directory / "0.log").write_bytes(_lines(0, 1))
    look = time.time()
    for name, age in (
        ("0.log.20261126-100001", NEW_FILE_SLACK_S + 5),
        ("0.log.20261126-100002", 0.5),
    ):
        (directory / name).write_bytes(_lines(100 if age < 1 else 50, 5))
        os.utime(directory / name, (look - age, look - age))
    driver = Driver(Tailer(tailer_config(tmp_path), last_look=look))
    driver.step(look + 1)
    assert _everything(driver) == [0, *range(100, 105)]
