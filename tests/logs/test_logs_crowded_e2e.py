"""A crowded node against the real processes: 5,000 log files and a logs service allowed
1,024 descriptors (``RLIMIT_NOFILE``, soft and hard), the shipper restarted in the middle,
audited by record at the reference receiver (every line once, none twice).

The order of events is forced: the second lines of every file are written while the
shipper is down (its restart must be reconnected to with the log files taking every
descriptor they may), and the test waits for the receiver's counts, never for time."""

from __future__ import annotations

from pathlib import Path

from agent_support import AgentPod, cri_line, pod_log_dir

from kk_logs.tailing.descriptors import DESCRIPTOR_RESERVE
from kk_receiver.testing import ReceiverProcess

FILES = 5000
DESCRIPTORS = 1024


def _uid(index: int) -> str:
    return f"6b1f0c2e-1111-2222-3333-{index:012d}"


def _write(paths: list[Path], wave: str) -> list[str]:
    messages = []
    for index, path in enumerate(paths):
        lines = [f"{wave} f{index} {n}" for n in range(2)]
        with path.open("a") as log:
            log.write("".join(cri_line(line) for line in lines))
        messages += lines
    return messages


def _limits(pid: int) -> str:
    return next(
        line
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
        if line.startswith("Max open files")
    )


def test_five_thousand_files_with_1024_descriptors_every_line_arrives_once(
    receiver: ReceiverProcess, log_root: Path
) -> None:
    paths = [
        pod_log_dir(log_root, "crowd", f"pod-{index}", _uid(index), "app") / "0.log"
        for index in range(FILES)
    ]
    expected = _write(paths, "first")
    agent = AgentPod(receiver, log_root)
    try:
        agent.start("shipper")
        agent.start("logs", max_descriptors=DESCRIPTORS)
        assert _limits(agent.processes["logs"].pid).split()[3:5] == ["1024", "1024"]
        agent.wait_for(
            lambda: receiver.stats()["unique_ids"] >= len(expected), 180, "the first lines"
        )
        (pool,) = agent.events("logs", "open_files_pool")
        assert pool["max_open_files"] == DESCRIPTORS - DESCRIPTOR_RESERVE
        # The shipper goes away; every file is written while it is down; it comes back.
        assert agent.stop("shipper") == 0
        expected += _write(paths, "second")
        agent.start("shipper")
        agent.wait_for(
            lambda: receiver.stats()["unique_ids"] >= len(expected), 180, "the second lines"
        )
        assert agent.processes["logs"].poll() is None
        errors = [
            event
            for event in agent.events("logs", "tailer_file_error")
            if event.get("error_code") == "too_many_open_files"
        ]
        assert errors == []
    finally:
        agent.__exit__(None, None, None)
    stored = sorted(entry["record"]["message"] for entry in receiver.records("logs"))
    assert stored == sorted(expected)
    assert receiver.stats()["duplicates"] == 0
