"""The logs service as a real process, with the shipper, the reference receiver and a fake
Kubernetes API server: files in the kubelet's layout are written, rotated, deleted and the
logs process is SIGKILLed; every line must reach the receiver exactly once."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from agent_support import AgentPod, cri_line, pod_log_dir
from e2e_support import TelemetryListener
from fake_apiserver import FakeApiServer, make_pod, owner, write_kubeconfig

from kk_receiver.testing import ReceiverProcess, wait_until

UID = "6b1f0c2e-1111-2222-3333-444455556666"
EXCLUDED_UID = "6b1f0c2e-9999-2222-3333-444455556666"


def messages(receiver: ReceiverProcess) -> list[str]:
    return [entry["record"]["message"] for entry in receiver.records("logs")]


def test_lines_from_both_globs_arrive_once_with_pod_metadata(
    receiver: ReceiverProcess, log_root: Path, tmp_path: Path
) -> None:
    api = FakeApiServer().start()
    try:
        api.add_pod(
            make_pod(
                "checkout-7d9f8b6c5d-x2x7k",
                namespace="shop",
                uid=UID,
                labels={"app.kubernetes.io/name": "checkout", "pod-template-hash": "7d9f8b6c5d"},
                owners=[owner("ReplicaSet", "checkout-7d9f8b6c5d")],
            )
        )
        api.add_pod(
            make_pod(
                "noisy-1",
                namespace="shop",
                uid=EXCLUDED_UID,
                annotations={"killkrill.io/exclude": "true"},
            )
        )
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api)
        app = pod_log_dir(log_root, "shop", "checkout-7d9f8b6c5d-x2x7k", UID, "app")
        noisy = pod_log_dir(log_root, "shop", "noisy-1", EXCLUDED_UID, "app")
        (app / "0.log").write_text("".join(cri_line(f"order {n} placed") for n in range(300)))
        (noisy / "0.log").write_text("".join(cri_line(f"spam {n}") for n in range(50)))
        with AgentPod(receiver, log_root, kubeconfig=kubeconfig) as agent:
            wait_until(
                lambda: receiver.stats()["unique_ids"] >= 300,
                timeout=30,
                message=agent.log_tail("logs"),
            )
            with (app / "0.log").open("a") as log:
                log.write("".join(cri_line(f"order {n} placed") for n in range(300, 400)))
            wait_until(lambda: receiver.stats()["unique_ids"] >= 400, timeout=20)
        assert sorted(messages(receiver)) == sorted(f"order {n} placed" for n in range(400))
        assert receiver.stats()["duplicates"] == 0
        record = receiver.records("logs")[0]["record"]
        labels = record["labels"]
        assert record["service_name"] == "checkout"
        assert (labels["k8s_namespace"], labels["k8s_pod"], labels["k8s_pod_uid"]) == (
            "shop",
            "checkout-7d9f8b6c5d-x2x7k",
            UID,
        )
        assert (labels["k8s_workload"], labels["k8s_workload_kind"]) == ("checkout", "Deployment")
        assert labels["label_app_kubernetes_io_name"] == "checkout"
        assert labels["k8s_cluster"] == "e2e"
    finally:
        api.stop()


class Writer(threading.Thread):
    """Writes ``total`` numbered CRI lines at about ``rate`` lines/s, rotating the file
    kubelet-style (rename, new 0.log) every ``rotate_every`` lines."""

    def __init__(self, directory: Path, total: int, rate: int, rotate_every: int = 0) -> None:
        super().__init__(daemon=True)
        self.directory, self.total, self.rate, self.rotate_every = (
            directory,
            total,
            rate,
            rotate_every,
        )
        self.written = 0
        self.rotations = 0

    def run(self) -> None:
        live = self.directory / "0.log"
        step = max(1, self.rate // 100)
        started = time.monotonic()
        log = live.open("a")
        while self.written < self.total:
            count = min(step, self.total - self.written)
            log.write("".join(cri_line(f"tick {self.written + i}") for i in range(count)))
            log.flush()
            self.written += count
            if self.rotate_every and self.written % self.rotate_every == 0:
                log.close()
                self.rotations += 1
                os.rename(live, self.directory / f"0.log.20261126-10000{self.rotations}")
                log = live.open("a")
            pause = started + self.written / self.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing the writer, not waiting for a condition
        log.close()


def test_rotation_at_ten_thousand_lines_per_second_loses_and_repeats_nothing(
    receiver: ReceiverProcess, log_root: Path
) -> None:
    directory = pod_log_dir(log_root, "shop", "busy-1", UID, "app")
    writer = Writer(directory, total=20_000, rate=10_000, rotate_every=5_000)
    with AgentPod(receiver, log_root) as agent:
        writer.start()
        writer.join(30)
        wait_until(
            lambda: receiver.stats()["unique_ids"] >= 20_000,
            timeout=60,
            interval=0.25,
            message=f"{receiver.stats()}\n{agent.log_tail('logs')}",
        )
    assert writer.rotations == 4
    assert sorted(messages(receiver)) == sorted(f"tick {n}" for n in range(20_000))
    assert receiver.stats()["duplicates"] == 0


def test_logs_killed_mid_stream_lose_nothing_and_store_nothing_twice(
    receiver: ReceiverProcess, log_root: Path
) -> None:
    directory = pod_log_dir(log_root, "shop", "steady-1", UID, "app")
    writer = Writer(directory, total=15_000, rate=5_000)
    with AgentPod(receiver, log_root) as agent:
        writer.start()
        wait_until(lambda: receiver.stats()["unique_ids"] >= 2_000, timeout=20)
        agent.kill("logs")
        agent.start("logs")
        writer.join(30)
        wait_until(
            lambda: receiver.stats()["unique_ids"] >= 15_000,
            timeout=60,
            interval=0.25,
            message=f"{receiver.stats()}\n{agent.log_tail('logs')}",
        )
    stored = messages(receiver)
    assert len(stored) == 15_000
    assert sorted(stored) == sorted(f"tick {n}" for n in range(15_000))


def test_a_pod_that_logs_and_disappears_within_two_seconds_is_read_completely(
    receiver: ReceiverProcess, log_root: Path
) -> None:
    with AgentPod(receiver, log_root) as agent:
        # On a node the agent runs before the pod starts; a pod that came and went while the
        # logs service was still starting is a different story (nothing on disk to read).
        agent.wait_for(lambda: agent.events("logs", "logs_started"), 20, "logs service started")
        directory = pod_log_dir(log_root, "jobs", "blink-1", UID, "main")
        log_file = directory / "0.log"
        log_file.write_text("".join(cri_line(f"blink {n}") for n in range(200)))
        # The pod exits and its directory is deleted as soon as the agent has noticed the file
        # (on an idle node within milliseconds, well inside the two seconds of the story): the
        # order is explicit, so a loaded machine cannot turn this into "never seen".
        agent.wait_for(
            lambda: any(e["path"] == str(log_file) for e in agent.events("logs", "file_opened")),
            20,
            "the file opened",
        )
        shutil.rmtree(directory.parent)
        agent.wait_for(lambda: receiver.stats()["unique_ids"] >= 200, 20, "200 records stored")
    assert sorted(messages(receiver)) == sorted(f"blink {n}" for n in range(200))


def test_logs_telemetry_reaches_the_health_channel(
    receiver: ReceiverProcess, log_root: Path
) -> None:
    directory = pod_log_dir(log_root, "shop", "chatty-1", UID, "app")
    lines = [cri_line(f"line {n}") for n in range(30)]
    lines.insert(10, "this is not a CRI line\n")
    (directory / "0.log").write_text("".join(lines))
    agent = AgentPod(receiver, log_root)
    health = TelemetryListener(agent.ipc_dir)
    try:
        with agent:
            agent.wait_for(lambda: receiver.stats()["unique_ids"] >= 31, 20, "records stored")
            agent.wait_for(
                lambda: health.sample("killkrill_logs_lines_read_total", component="logs") == 31,
                10,
                "logs telemetry",
            )
            assert health.sample("killkrill_logs_parse_errors_total", component="logs") == 1
            assert health.sample("killkrill_logs_files_tailed", component="logs") == 1
            assert health.by_component["logs"].status.ready
    finally:
        health.close()


def test_node_system_logs_are_an_opt_in_source(
    receiver: ReceiverProcess, log_root: Path, tmp_path: Path
) -> None:
    syslog = tmp_path / "syslog"
    syslog.write_text("".join(f"Nov 26 10:00:0{n} node-a kernel: event {n}\n" for n in range(5)))
    directory = pod_log_dir(log_root, "shop", "app-1", UID, "app")
    (directory / "0.log").write_text(cri_line("container line"))
    logs = {"system_logs": {"enabled": True, "paths": [str(syslog)]}}
    with AgentPod(receiver, log_root, logs=logs) as agent:
        agent.wait_for(lambda: receiver.stats()["unique_ids"] >= 6, 20, "6 records stored")
    records = [entry["record"] for entry in receiver.records("logs")]
    system = sorted(
        (r for r in records if r["labels"].get("source") == "system"), key=lambda r: r["message"]
    )
    assert [r["message"] for r in system] == [
        f"Nov 26 10:00:0{n} node-a kernel: event {n}" for n in range(5)
    ]
    assert system[0]["labels"]["log_file"] == str(syslog)
    assert system[0]["labels"]["timestamp_source"] == "read_time"
    assert system[0]["service_name"] == "syslog"
    assert "bad_timestamp" not in system[0]["tags"]
    assert [r["message"] for r in records if "source" not in r["labels"]] == ["container line"]


EARLY_LINES = 20_000


@contextlib.contextmanager
def logs_without_a_shipper(
    receiver: ReceiverProcess, log_root: Path
) -> Iterator[tuple[AgentPod, TelemetryListener]]:
    """A pod whose logs service runs before its shipper, with a window of two batches that
    has filled: about 1 MB of lines waits to be read (more than one read slice, so a blocked
    reader stops early). On leaving, every line must have arrived exactly once."""
    directory = pod_log_dir(log_root, "shop", "early-1", UID, "app")
    lines = "".join(cri_line(f"early {n}") for n in range(EARLY_LINES))
    (directory / "0.log").write_text(lines)
    logs = {"window": {"max_batches": 2}, "batch_max_records": 100}
    agent = AgentPod(receiver, log_root, logs=logs)
    health = TelemetryListener(agent.ipc_dir)
    try:
        agent.start("logs")
        agent.wait_for(
            lambda: health.sample("killkrill_logs_window_batches", component="logs") == 2,
            15,
            "a full window",
        )
        yield agent, health
    finally:
        agent.__exit__(None, None, None)
        health.close()
    assert sorted(messages(receiver)) == sorted(f"early {n}" for n in range(EARLY_LINES))
    assert receiver.stats()["duplicates"] == 0


def test_reading_pauses_while_the_shipper_is_away_and_nothing_is_lost(
    receiver: ReceiverProcess, log_root: Path
) -> None:
    """The logs service starts before the shipper: its window of unacknowledged batches
    fills, reading stops (telemetry shows the full window, the pause is logged once), and
    once the shipper is up everything arrives exactly once."""
    with logs_without_a_shipper(receiver, log_root) as (agent, health):
        read_while_blocked = health.sample("killkrill_logs_records_read_total", component="logs")
        assert read_while_blocked is not None and read_while_blocked < EARLY_LINES
        agent.wait_for(lambda: agent.events("logs", "reading_paused"), 15, "the pause logged")
        agent.wait_for(
            lambda: health.sample("killkrill_logs_reading_paused", component="logs") == 1,
            15,
            "the pause in telemetry",
        )
        agent.start("shipper")
        agent.wait_for(lambda: receiver.stats()["unique_ids"] >= EARLY_LINES, 30, "all records")
        agent.wait_for(lambda: agent.events("logs", "reading_resumed"), 15, "the resume logged")
        assert len(agent.events("logs", "reading_paused")) == 1


def test_sigterm_with_a_full_window_stops_the_logs_service_promptly(
    receiver: ReceiverProcess, log_root: Path
) -> None:
    """No shipper: the window is full and batches already built cannot be sent. SIGTERM
    must still end the process within its drain budget (5 s), not wait for room forever;
    what was not acknowledged is read again at the next start."""
    with logs_without_a_shipper(receiver, log_root) as (agent, _):
        started = time.monotonic()
        assert agent.stop("logs") == 0
        assert time.monotonic() - started < 15
        assert agent.events("logs", "logs_stopped")
        agent.start("shipper")
        agent.start("logs")
        agent.wait_for(lambda: receiver.stats()["unique_ids"] >= EARLY_LINES, 30, "all records")


def test_a_shipper_that_refuses_logs_loses_nothing_and_says_so(
    receiver: ReceiverProcess, log_root: Path
) -> None:
    """The shipper's configuration disables the logs output (a mismatch between the
    containers' configs): it answers `rejected`. The logs service keeps the batches (no
    offset committed past them), reports the refusal once and in health, and after the
    shipper is restarted with logs enabled every line arrives exactly once."""
    with logs_without_a_shipper(receiver, log_root) as (agent, health):
        agent.start("shipper", overrides={"logs": {"enabled": False}})
        agent.wait_for(
            lambda: agent.events("logs", "batch_rejected_by_shipper"), 15, "the refusal logged"
        )

        def refusal_in_health() -> bool:
            logs = health.by_component.get("logs")
            return logs is not None and any(
                "refuses to store logs" in problem for problem in logs.status.problems
            )

        agent.wait_for(refusal_in_health, 15, "the refusal in health")
        assert not health.by_component["logs"].status.ready
        assert receiver.stats()["unique_ids"] == 0
        assert len(agent.events("logs", "batch_rejected_by_shipper")) == 1
        # Nothing committed: a restarted logs service would read the same lines again.
        agent.kill("logs")
        agent.stop("shipper")
        agent.start("shipper")
        agent.start("logs")
        agent.wait_for(lambda: receiver.stats()["unique_ids"] >= EARLY_LINES, 30, "all records")
