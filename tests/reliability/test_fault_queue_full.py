"""The shipper's disk queue fills up: back-pressure reaches the readers, nothing is lost.

With a tiny ``shipper.queue_max_size`` and the receiver down, the queue fills while pods
keep logging. The order of events is checked, each step waiting for the previous one:

1. the shipper says ``queue_full`` and stops acknowledging the logs service's batches;
2. the logs service's window fills and reading pauses (``reading_paused``); the lines written
   from then on wait in the files (the logs service's lag grows);
3. the receiver comes back: reading resumes (``reading_resumed``), the queue takes batches
   again (``queue_accepting_again``), and every line arrives exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_pod import AgentPodProcesses
from reliability_results import ResultsFile
from reliability_scenario import finish, wait_more_stored
from reliability_writer import LogWriter, pod_files

from kk_receiver.testing import ReceiverProcess

SIZES = {
    # About a second of writing fills the queue (each record counts about 700 bytes); a
    # queue this small also bounds delivery, so the writer must not outpace it for good.
    "ci": {"rate": 1000, "paused_s": 3, "queue_max_size": "1MiB"},
    "full": {"rate": 2000, "paused_s": 30, "queue_max_size": "2MiB"},
}


@pytest.fixture
def receiver() -> Iterator[ReceiverProcess]:
    with ReceiverProcess() as running:
        yield running


def logs_events(pod: AgentPodProcesses, service: str, event: str) -> list[dict[str, object]]:
    """``service``'s ``event`` lines about the logs output."""
    return [e for e in pod.events(service, event) if e.get("output") == "logs"]


def queue_full(pod: AgentPodProcesses) -> bool:
    """The shipper holds the logs service's batches (its last word was ``queue_full``)."""
    return len(logs_events(pod, "shipper", "queue_full")) > len(
        logs_events(pod, "shipper", "queue_accepting_again")
    )


def reading_paused(pod: AgentPodProcesses) -> bool:
    """The logs service's reading is paused (its last word was ``reading_paused``)."""
    return len(pod.events("logs", "reading_paused")) > len(pod.events("logs", "reading_resumed"))


def test_full_queue_pauses_the_readers_and_everything_arrives_after(
    receiver: ReceiverProcess, tmp_path: Path, profile: str, scenario_results: ResultsFile
) -> None:
    size = SIZES[profile]
    overrides = {"shipper": {"queue_max_size": size["queue_max_size"]}}
    with (
        AgentPodProcesses(receiver, tmp_path, overrides=overrides) as pod,
        LogWriter(tmp_path, pod_files(3, "rename"), rate=size["rate"], rotate_every_s=1) as writer,
    ):
        wait_more_stored(pod, "logs", what="first log records")
        receiver.kill()
        pod.wait_for(lambda: queue_full(pod), 120, "the shipper's queue full for logs")
        pod.wait_for(lambda: reading_paused(pod), 60, "logs reading paused")
        resumed_before = len(pod.events("logs", "reading_resumed"))
        lag_when_paused = pod.sample("killkrill_logs_lag_bytes", component="logs") or 0.0
        writer.wait_written(size["rate"] * size["paused_s"])
        pod.wait_for(
            lambda: (
                (pod.sample("killkrill_logs_lag_bytes", component="logs") or 0) > lag_when_paused
            ),
            30,
            "the unread lines waiting in the files",
        )
        assert len(pod.events("logs", "reading_resumed")) == resumed_before, "stays paused"
        accepting_before = len(logs_events(pod, "shipper", "queue_accepting_again"))
        receiver.start()
        pod.wait_for(
            lambda: len(pod.events("logs", "reading_resumed")) > resumed_before,
            60,
            "logs reading resumed",
        )
        full = logs_events(pod, "shipper", "queue_full")[-1]
        paused_s = pod.events("logs", "reading_resumed")[resumed_before]["paused_s"]
        finish(
            pod,
            writer,
            scenario_results,
            "shipper_queue_full",
            note=f"queue_max_size {size['queue_max_size']}, receiver down; queue full at "
            f"{full['used_bytes']} bytes, reading paused for {paused_s} s",
            timeout=600,
        )
        accepting = logs_events(pod, "shipper", "queue_accepting_again")
        assert len(accepting) > accepting_before, "the queue took the held batches"
