"""Logs written by a real containerd (CRI plugin + runc), rotated the kubelet's way.

A busybox container writes numbered lines, even ones to stdout and odd ones to stderr, so
containerd's two copiers interleave them in one CRI file, while the test rotates the file
as the kubelet does (rename, then ``ReopenContainerLog``: lines written between the two land
in the renamed file). The whole pod ships them; every line must arrive exactly once.

Uses `tests/logs/containerd_support.py`; skipped, with its reason, where containerd cannot
run (not root, packages missing), unless ``KK_REQUIRE_CONTAINERD=1`` (CI), which makes that
a failure.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from containerd_support import ContainerdHarness, ContainerdUnavailable, new_uid
from reliability_audit import assert_exactly_once, wait_all_delivered
from reliability_pod import AgentPodProcesses
from reliability_results import ResultsFile
from reliability_scenario import wait_ready
from reliability_writer import RECORD_ID

from kk_receiver.testing import ReceiverProcess, wait_until

SIZES = {
    # lines in all, lines per 20 ms burst (500 and 2,500 lines/s at most), rotations
    "ci": {"lines": 6000, "burst": 10, "rotations": 3},
    "full": {"lines": 60_000, "burst": 50, "rotations": 12},
}


def writer_command(lines: int, burst: int) -> str:
    """Numbered lines, even to stdout, odd to stderr, ``burst`` lines every 20 ms."""
    return (
        f"i=0; while [ $i -lt {lines} ]; do "
        "if [ $((i % 2)) -eq 0 ]; then printf 'level=info kkr-%09d pod=ctr\\n' $i; "
        "else printf 'level=warn kkr-%09d pod=ctr\\n' $i >&2; fi; "
        f"i=$((i+1)); if [ $((i % {burst})) -eq 0 ]; then usleep 20000; fi; done"
    )


@pytest.fixture
def containerd() -> Iterator[ContainerdHarness]:
    with contextlib.ExitStack() as stack:
        try:
            harness = stack.enter_context(ContainerdHarness())
        except ContainerdUnavailable as exc:
            if os.environ.get("KK_REQUIRE_CONTAINERD") == "1":
                pytest.fail(f"containerd unavailable but KK_REQUIRE_CONTAINERD=1: {exc}")
            pytest.skip(f"containerd unavailable: {exc}")
        yield harness


def stamp() -> str:
    """The kubelet's (and the harness's) rotated-file time stamp for now."""
    return time.strftime("%Y%m%d-%H%M%S")


def lines_in(path: Path) -> int:
    try:
        return len(RECORD_ID.findall(path.read_text(errors="replace")))
    except FileNotFoundError:  # between the rename and the reopen
        return 0


def test_containerd_logs_rotated_by_the_kubelet_arrive_exactly_once(
    containerd: ContainerdHarness, tmp_path: Path, profile: str, scenario_results: ResultsFile
) -> None:
    size = SIZES[profile]
    every = size["lines"] // (size["rotations"] + 1)
    with ReceiverProcess() as receiver, AgentPodProcesses(receiver, tmp_path) as pod:
        ctr = containerd.run_pod(
            "shop",
            "ctr-writer",
            new_uid(),
            {"writer": writer_command(size["lines"], size["burst"])},
            tmp_path / "pods",
        )
        live = ctr.log_path("writer")
        for _ in range(size["rotations"]):
            wait_until(lambda: lines_in(live) >= every, 60, message=f"{every} lines in 0.log")
            # kubelet's rotated names have one-second resolution: one rotation per second.
            last = ctr.rotated.get("writer", [Path("0.log.0")])[-1].name
            wait_until(lambda: f"0.log.{stamp()}" != last, 5, message="the next second")  # noqa: B023
            ctr.rotate("writer")
        assert ctr.wait_exited("writer", timeout=120) == 0
        files = ctr.log_files("writer")
        assert sum(lines_in(path) for path in files) == size["lines"], "containerd lost lines"
        delivery = wait_all_delivered(pod, size["lines"], 180)
        scenario_results.record(
            "containerd_rotation",
            delivery.figures(),
            note=f"containerd 1.6 + runc, stdout and stderr interleaved, "
            f"{len(files) - 1} kubelet rotations (rename + ReopenContainerLog)",
        )
        assert_exactly_once(delivery)
        wait_ready(pod)
