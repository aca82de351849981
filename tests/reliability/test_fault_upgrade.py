"""Each container upgraded on its own, mid-stream, while the kubelet rotates files.

An independent upgrade replaces one container of the pod: the kubelet sends SIGTERM, waits
for the exit, and starts the new image with the same volumes. Here the "new image" is the
same code started again, which is what a restart of a process does locally; the images
themselves are rebuilt and swapped by ``tests/deploy/test_compose.py`` (needs Docker). Each
container must stop cleanly (exit status 0) within the grace period, the new one must be
back at work before the next is replaced, and every line must arrive exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_pod import SERVICES, AgentPodProcesses
from reliability_results import ResultsFile
from reliability_scenario import finish, wait_back, wait_more_stored
from reliability_writer import LogWriter, pod_files

from kk_receiver.testing import ReceiverProcess

SIZES = {"ci": {"rate": 1000, "rounds": 1}, "full": {"rate": 5000, "rounds": 3}}
GRACE_S = 30
"""The DaemonSet's terminationGracePeriodSeconds."""


@pytest.fixture
def receiver() -> Iterator[ReceiverProcess]:
    with ReceiverProcess() as running:
        yield running


def test_each_container_replaced_mid_stream_while_files_rotate(
    receiver: ReceiverProcess, tmp_path: Path, profile: str, scenario_results: ResultsFile
) -> None:
    size = SIZES[profile]
    with (
        AgentPodProcesses(receiver, tmp_path) as pod,
        LogWriter(tmp_path, pod_files(3, "rename"), rate=size["rate"], rotate_every_s=1) as writer,
    ):
        wait_more_stored(pod, "logs", what="first log records")
        wait_more_stored(pod, "metrics", what="first samples")
        for _ in range(size["rounds"]):
            for service in SERVICES:
                writer.wait_written(size["rate"])  # a second of writing between upgrades
                assert pod.stop(service, timeout=GRACE_S) == 0, pod.log_tail(service)
                pod.start(service)
                wait_back(pod, service)
        finish(
            pod,
            writer,
            scenario_results,
            "upgrade_each_container",
            note=f"{size['rounds'] * len(SERVICES)} SIGTERM + restart, one container at a "
            f"time, {writer.rotations} rotations, {size['rate']} lines/s",
        )
