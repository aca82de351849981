"""Rotation every second at a high line rate, rotated files deleted while open.

Five pods log at 10,000 lines/s in all for 60 s in the full profile (3,000 lines/s for 8 s in
the CI profile), while every second:

* two are rotated the kubelet's way (rename to ``0.log.<time>``, new ``0.log``), keeping
  three rotated files: the oldest is deleted, maybe while the logs service still reads it;
* two are rotated the logrotate ``copytruncate`` way (copy to ``0.log.1``, truncate),
  keeping two copies;
* one pod is removed from the node mid-stream, its directory deleted while its file is open
  with lines not yet read.

Every line must arrive exactly once, and the logs service must count no missed bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_audit import stored_containing
from reliability_pod import AgentPodProcesses
from reliability_results import ResultsFile
from reliability_scenario import finish, wait_more_stored
from reliability_writer import LogWriter, PodFile, pod_files

from kk_receiver.testing import ReceiverProcess

SIZES = {"ci": {"rate": 3000, "seconds": 8}, "full": {"rate": 10_000, "seconds": 60}}


@pytest.fixture
def receiver() -> Iterator[ReceiverProcess]:
    with ReceiverProcess() as running:
        yield running


def test_rename_and_copytruncate_every_second_and_files_deleted_while_open(
    receiver: ReceiverProcess, tmp_path: Path, profile: str, scenario_results: ResultsFile
) -> None:
    size = SIZES[profile]
    doomed = PodFile("shop", "doomed", "0c0ffee0-2222-4000-8000-0")
    files = [
        *pod_files(2, "rename", keep_rotated=3),
        *(
            PodFile("legacy", f"cron-{n}", f"0c0ffee0-3333-4000-8000-{n}", "app", "copytruncate", 2)
            for n in range(2)
        ),
        doomed,
    ]
    with (
        AgentPodProcesses(receiver, tmp_path) as pod,
        LogWriter(tmp_path, files, rate=size["rate"], rotate_every_s=1.0) as writer,
    ):
        wait_more_stored(pod, "logs", what="first log records")
        pod.wait_for(
            lambda: stored_containing(receiver, f"pod={doomed.pod} "), 60, "the doomed pod read"
        )
        writer.wait_written(size["rate"])
        writer.delete_pod(doomed)
        writer.wait_written(size["rate"] * size["seconds"])
        delivery = finish(
            pod,
            writer,
            scenario_results,
            "rotation_every_second",
            note=f"{writer.achieved_rate:.0f} lines/s written ({size['rate']} asked) for "
            f"{size['seconds']} s of lines, {writer.rotations} rotations "
            f"(rename and copytruncate), {writer.deleted_files} rotated files and one pod "
            "directory deleted while open",
        )
        assert pod.sample("killkrill_logs_bytes_missed_total", component="logs") == 0
    assert writer.deleted_files > 0
    assert doomed.lines > 0
    print(delivery)
