"""SIGKILL of the pod's containers while pods log and the kubelet rotates their files.

* Each container (shipper, health, logs, metrics) is killed at seeded random moments,
  several rounds each, and started again; the next kill waits until the restarted one is
  back at work.
* All four at once, as a node reboot does: the state directory (hostPath) is kept, the IPC
  directory (the pod's emptyDir) starts empty.
* All four at once with the state directory lost (a rebuilt node): the documented
  behaviour is checked (docs/reliability.md): the live files are read again from their
  start and every re-sent line is dropped by the receiver by its id (none stored twice);
  the lines that were only in rotated files and not yet delivered are lost, because a
  first start leaves rotated files it finds alone (history) and the queue that held them is
  gone.

Every scenario ends with the audit by record id (`reliability_audit`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos_plan import describe, kill_plan
from reliability_audit import audit, stored_line_numbers
from reliability_pod import SERVICES, AgentPodProcesses
from reliability_results import ResultsFile
from reliability_scenario import finish, stored, wait_back, wait_more_stored, wait_ready
from reliability_writer import RECORD_ID, LogWriter, PodFile, pod_files

from kk_receiver.testing import ReceiverProcess

SIZES = {
    # lines/s, kill rounds per container, node reboots
    "ci": {"rate": 500, "rounds": 2, "reboots": 1},
    "full": {"rate": 2000, "rounds": 5, "reboots": 3},
}


@pytest.fixture
def receiver() -> Iterator[ReceiverProcess]:
    with ReceiverProcess() as running:
        yield running


def rotating_pods() -> list[PodFile]:
    """Two pods rotated by the kubelet every second (rotated files kept: a deleted file
    could not be read by a logs service that is down) and one that is never rotated."""
    return [*pod_files(2, "rename"), PodFile("shop", "steady", "0c0ffee0-1111-4000-8000-0")]


def test_each_container_killed_at_random_moments_then_restarted(
    receiver: ReceiverProcess,
    tmp_path: Path,
    profile: str,
    chaos_seed: int,
    scenario_results: ResultsFile,
) -> None:
    size = SIZES[profile]
    plan = kill_plan(chaos_seed, SERVICES, size["rounds"], size["rate"])
    print(describe(plan))
    with (
        AgentPodProcesses(receiver, tmp_path) as pod,
        LogWriter(tmp_path, rotating_pods(), rate=size["rate"], rotate_every_s=1.0) as writer,
    ):
        wait_more_stored(pod, "logs", what="first log records")
        wait_more_stored(pod, "metrics", what="first samples")
        for step in plan:
            writer.wait_written(step.lines_before)
            pod.kill(step.service)
            writer.wait_written(step.lines_down)
            pod.start(step.service)
            wait_back(pod, step.service)
        assert pod.starts == dict.fromkeys(SERVICES, 1 + size["rounds"])
        delivery = finish(
            pod,
            writer,
            scenario_results,
            "kill_each_container",
            seed=chaos_seed,
            note=f"{len(plan)} SIGKILLs ({size['rounds']} per container), "
            f"{writer.rotations} rotations, {size['rate']} lines/s",
        )
    print(delivery)


def test_node_reboot_all_killed_at_once_state_kept(
    receiver: ReceiverProcess,
    tmp_path: Path,
    profile: str,
    chaos_seed: int,
    scenario_results: ResultsFile,
) -> None:
    size = SIZES[profile]
    plan = kill_plan(chaos_seed, ["all"], size["reboots"], size["rate"])
    with (
        AgentPodProcesses(receiver, tmp_path) as pod,
        LogWriter(tmp_path, rotating_pods(), rate=size["rate"], rotate_every_s=1.0) as writer,
    ):
        wait_more_stored(pod, "logs", what="first log records")
        for step in plan:
            writer.wait_written(step.lines_before)
            pod.kill()
            pod.wipe_ipc()
            writer.wait_written(step.lines_down)
            pod.start_all()
            wait_back(pod, "logs")
        finish(
            pod,
            writer,
            scenario_results,
            "node_reboot_state_kept",
            seed=chaos_seed,
            note=f"{len(plan)} reboots (all four SIGKILLed, IPC dir emptied), "
            f"{writer.rotations} rotations",
        )


def lines_in(paths: list[Path]) -> set[int]:
    """The line numbers written in ``paths``."""
    return {int(m[1]) for path in paths for m in RECORD_ID.finditer(path.read_text())}


def test_node_rebuilt_all_killed_state_lost(
    receiver: ReceiverProcess, tmp_path: Path, profile: str, scenario_results: ResultsFile
) -> None:
    """A backlog is queued (receiver down), then the node loses the pod and its state."""
    size = SIZES[profile]
    rate = size["rate"]
    with (
        AgentPodProcesses(receiver, tmp_path) as pod,
        LogWriter(tmp_path, rotating_pods(), rate=rate, rotate_every_s=1.0) as writer,
    ):
        wait_more_stored(pod, "logs", more=rate, what="a first second of log records")
        receiver.kill()
        writer.wait_written(3 * rate)  # three rotations' worth of backlog, queued on disk
        pod.wait_for(
            lambda: pod.sample("killkrill_agent_queued_records", type="logs") or 0, 30, "a backlog"
        )
        with writer.paused():
            pod.kill()
            pod.wipe_ipc()
            pod.wipe_state()
            live = [pod_file.live for pod_file in writer.files]
            rotated = [path for pod_file in writer.files for path in pod_file.rotated_files()]
            in_live, in_rotated = lines_in(live), lines_in(rotated)
            delivered_before = delivered_ids(receiver)
            receiver.start()
            pod.start_all()
        wait_more_stored(pod, "logs", what="log records flowing after the rebuild")
        generated = writer.stop()
        written_after = set(range(generated)) - in_live - in_rotated
        # Everything in the live files or written afterwards must arrive; the backlog that
        # was only in rotated files is what the lost state took with it.
        must_arrive = in_live | written_after | delivered_before
        pod.wait_for(
            lambda: must_arrive <= delivered_ids(receiver),
            180,
            f"{len(must_arrive)} lines from live files and after the rebuild",
        )
        wait_ready(pod)
        delivery = audit(receiver, generated)
        lost = set(range(generated)) - delivered_ids(receiver)
        scenario_results.record(
            "node_rebuilt_state_lost",
            delivery.figures(),
            note=f"{len(lost)} lost: backlog lines only in rotated files "
            f"({len(in_rotated - delivered_before)} such lines); live files re-read from 0",
        )
        assert stored(pod, "logs") == delivery.delivered + delivery.duplicates_stored
    print(delivery)
    assert lost <= in_rotated - delivered_before, sorted(lost)[:20]
    assert (delivery.duplicates_stored, delivery.unknown) == (0, 0), str(delivery)
    # The live files were read again from their start: the lines already delivered from
    # them reached the receiver a second time and were dropped there.
    assert delivery.duplicates_resent >= len(in_live & delivered_before)


def delivered_ids(receiver: ReceiverProcess) -> set[int]:
    """The line numbers the receiver has stored (read from its store, running or not)."""
    return set(stored_line_numbers(receiver)[0])
