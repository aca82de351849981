"""Rotation and copytruncate against the real processes: the logs service, the shipper and
the reference receiver, audited by record at the receiver (every line once, none twice).

The order of events is forced, never left to timing: files are rotated while the logs
service is killed; a "never opened" rotated file is made outside the globs and moved in
with its directory in one rename; copytruncate happens while reading is paused (the
shipper is not running yet, so the window of unacknowledged batches is full) and after
telemetry shows that the tailer has seen the file's full size."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from agent_support import AgentPod, cri_line, pod_log_dir
from e2e_support import TelemetryListener

from kk_receiver.testing import ReceiverProcess

UID = "6b1f0c2e-1111-2222-3333-444455556666"
OTHER_UID = "6b1f0c2e-7777-2222-3333-444455556666"


def _write(path: Path, prefix: str, numbers: range) -> None:
    with path.open("a") as log:
        log.write("".join(cri_line(f"{prefix} {n}") for n in numbers))


def _expected(*parts: tuple[str, range]) -> list[str]:
    return sorted(f"{prefix} {n}" for prefix, numbers in parts for n in numbers)


def _stored(receiver: ReceiverProcess) -> list[str]:
    return sorted(entry["record"]["message"] for entry in receiver.records("logs"))


def _assert_each_once(receiver: ReceiverProcess, expected: list[str]) -> None:
    stored = _stored(receiver)
    assert len(stored) == len(expected), f"{len(stored)} stored, {len(expected)} written"
    assert stored == expected
    assert receiver.stats()["duplicates"] == 0


@pytest.mark.parametrize("rotations", [1, 2])
def test_killed_then_rotated_then_started_every_line_arrives_once(
    receiver: ReceiverProcess, log_root: Path, rotations: int
) -> None:
    """kill -9, then kubelet rotates once or twice (the middle file of two is one that no
    process ever opened), then the logs service starts again."""
    directory = pod_log_dir(log_root, "shop", "steady-1", UID, "app")
    live = directory / "0.log"
    _write(live, "a", range(2000))
    expected = [("a", range(3000))]
    with AgentPod(receiver, log_root) as agent:
        agent.wait_for(lambda: receiver.stats()["unique_ids"] >= 2000, 30, "first 2000")
        agent.kill("logs")
        # While the logs service is down: more lines in the old file, kubelet's rename
        # and the runtime's new 0.log, which gets lines (and, the second time, is renamed).
        _write(live, "a", range(2000, 3000))
        for rotation in range(1, rotations + 1):
            os.rename(live, directory / f"0.log.20261126-10000{rotation}")
            prefix = "bc"[rotation - 1]
            _write(live, prefix, range(500 * rotation))
            expected.append((prefix, range(500 * rotation)))
        total = sum(len(numbers) for _prefix, numbers in expected)
        agent.start("logs")
        agent.wait_for(lambda: receiver.stats()["unique_ids"] >= total, 30, f"all {total}")
    _assert_each_once(receiver, _expected(*expected))


def test_a_file_rotated_away_before_the_service_first_saw_it_is_read(
    receiver: ReceiverProcess, log_root: Path, tmp_path: Path
) -> None:
    """A pod's 0.log is written and renamed, and a new 0.log written, before the tailer
    could look: the pod's directory is prepared outside the globs and moved in at once."""
    running = pod_log_dir(log_root, "shop", "other-1", OTHER_UID, "app")
    _write(running / "0.log", "x", range(10))
    with AgentPod(receiver, log_root) as agent:
        agent.wait_for(lambda: receiver.stats()["unique_ids"] >= 10, 30, "the running pod")
        staging = pod_log_dir(tmp_path / "staging", "shop", "blink-1", UID, "app")
        _write(staging / "0.log", "a", range(5000))
        os.rename(staging / "0.log", staging / "0.log.20261126-100001")
        _write(staging / "0.log", "b", range(100))
        os.rename(staging.parent, log_root / "pods" / staging.parent.name)
        agent.wait_for(lambda: receiver.stats()["unique_ids"] >= 5110, 30, "all 5110")
    _assert_each_once(receiver, _expected(("x", range(10)), ("a", range(5000)), ("b", range(100))))


def _sample(snapshot: object, name: str) -> float:
    return next(s.value for s in snapshot.samples if s.name == name)  # type: ignore[attr-defined]


class _PausedAgent:
    """The logs service without a shipper: reading stops once its window is full, while
    its scans go on (they see sizes, truncations and copies)."""

    def __init__(self, receiver: ReceiverProcess, log_root: Path) -> None:
        logs = {"window": {"max_batches": 2}, "batch_max_records": 100}
        self.agent = AgentPod(receiver, log_root, logs=logs)
        self.health = TelemetryListener(self.agent.ipc_dir)

    def paused_having_seen(self, size: int) -> float:
        """Wait until reading is paused and the tailer has seen ``size`` bytes in all;
        return the bytes read."""
        seen: dict[str, float] = {}

        def ready() -> bool:
            snapshot = self.health.by_component.get("logs")
            if snapshot is None:
                return False
            window = _sample(snapshot, "killkrill_logs_window_batches")
            read = _sample(snapshot, "killkrill_logs_bytes_read_total")
            lag = _sample(snapshot, "killkrill_logs_lag_bytes")
            seen["read"] = read
            return window == 2 and read + lag == size and read < size

        self.agent.wait_for(ready, 20, f"reading paused with {size} bytes seen")
        return seen["read"]

    def close(self) -> None:
        self.agent.__exit__(None, None, None)
        self.health.close()


def test_copytruncate_with_a_copy_beside_it_loses_nothing(
    receiver: ReceiverProcess, log_root: Path
) -> None:
    directory = pod_log_dir(log_root, "shop", "legacy-1", UID, "app")
    live = directory / "0.log"
    _write(live, "a", range(20_000))  # about 1 MB: more than is read before the pause
    paused = _PausedAgent(receiver, log_root)
    try:
        paused.agent.start("logs")
        paused.paused_having_seen(live.stat().st_size)
        # logrotate copytruncate: copy, truncate in place, the writer goes on.
        shutil.copyfile(live, directory / "0.log.1")
        os.truncate(live, 0)
        _write(live, "b", range(1000))
        paused.agent.start("shipper")
        paused.agent.wait_for(lambda: receiver.stats()["unique_ids"] >= 21_000, 60, "all")
        (event,) = paused.agent.events("logs", "tailer_file_truncated")
        assert (event["missed_bytes"], event["missed_counted_from"]) == (0, "copy")
        assert event["copy_path"] == str(directory / "0.log.1")
    finally:
        paused.close()
    _assert_each_once(receiver, _expected(("a", range(20_000)), ("b", range(1000))))


def test_copytruncate_without_a_copy_counts_and_logs_the_missed_bytes(
    receiver: ReceiverProcess, log_root: Path
) -> None:
    directory = pod_log_dir(log_root, "shop", "legacy-2", UID, "app")
    live = directory / "0.log"
    _write(live, "a", range(20_000))
    size = live.stat().st_size
    paused = _PausedAgent(receiver, log_root)
    try:
        paused.agent.start("logs")
        read = paused.paused_having_seen(size)
        os.truncate(live, 0)  # no copy is kept
        _write(live, "b", range(1000))
        paused.agent.start("shipper")
        paused.agent.wait_for(
            lambda: (
                sum(m.startswith("b ") for m in _stored(receiver)) >= 1000
                and paused.health.sample("killkrill_logs_bytes_missed_total", component="logs")
                == size - read
            ),
            60,
            "the new lines and the missed bytes counted",
        )
        (event,) = paused.agent.events("logs", "tailer_file_truncated")
        assert event["missed_bytes"] == size - read
        assert event["missed_counted_from"] == "last_size_seen"
    finally:
        paused.close()
    stored = _stored(receiver)
    old = [m for m in stored if m.startswith("a ")]
    assert sorted(m for m in stored if m.startswith("b ")) == _expected(("b", range(1000)))
    assert receiver.stats()["duplicates"] == 0
    # What arrived of the old file is a prefix of its lines (the last one possibly cut
    # at the read offset); what did not arrive is what was counted, to within that line.
    whole = [m for m in old if m in set(_expected(("a", range(20_000))))]
    count = len(whole)
    assert sorted(whole) == _expected(("a", range(count)))
    not_arrived = sum(len(cri_line(f"a {n}")) for n in range(count, 20_000))
    assert 0 <= not_arrived - (size - read) < len(cri_line("a 19999"))
