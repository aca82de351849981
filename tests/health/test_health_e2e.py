"""The health container as a real process beside the shipper and the logs service, with the
reference receiver: ``/ready`` turns 200, ``/metrics`` and ``/status`` show both services,
and killing the health container leaves the shipper delivering with its liveness good."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from agent_support import AgentPod, cri_line, pod_log_dir
from prometheus_client.parser import text_string_to_metric_families

from kk_common.heartbeat import heartbeat_path, probe_command
from kk_receiver.testing import ReceiverProcess

UID = "0d3c6a52-1111-2222-3333-444455556666"
HEALTH = {"health": {"listen_address": "127.0.0.1", "port": 0}}


@pytest.fixture
def receiver() -> Iterator[ReceiverProcess]:
    with ReceiverProcess() as running:
        yield running


def write_lines(log_file: Path, first: int, count: int) -> None:
    with log_file.open("a") as out:
        out.writelines(cri_line(f"health-e2e line {n}") for n in range(first, first + count))


def start_health(agent: AgentPod) -> str:
    """Start ``killkrill-health`` on a free port; its base URL once it listens."""
    listening_before = len(agent.events("health", "health_listening"))
    agent.start("health", HEALTH)
    agent.wait_for(
        lambda: len(agent.events("health", "health_listening")) > listening_before,
        20,
        "health listening",
    )
    port = agent.events("health", "health_listening")[-1]["port"]
    return f"http://127.0.0.1:{port}"


def status_code(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.TransportError:
        return None


def liveness_passes(agent: AgentPod, component: str) -> bool:
    command = probe_command(agent.ipc_dir, component)
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


def test_ready_then_the_shipper_outlives_the_health_container(
    receiver: ReceiverProcess, tmp_path: Path
) -> None:
    log_root = tmp_path / "var-log"
    log_file = pod_log_dir(log_root, "shop", "checkout-1", UID, "app") / "0.log"
    write_lines(log_file, 0, 20)
    agent = AgentPod(receiver, log_root)
    with agent:
        try:
            url = start_health(agent)
            agent.wait_for(lambda: status_code(f"{url}/ready") == 200, 60, "/ready 200")
            assert httpx.get(f"{url}/healthz").json()["components"] == {
                "shipper": "ready",
                "logs": "ready",
                "health": "ready",
            }

            families = {
                f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
            }
            delivered = [
                s
                for s in families["killkrill_agent_sent_messages"].samples
                if s.labels["status"] == "success"
            ]
            assert delivered and all(s.labels["component"] == "shipper" for s in delivered)
            assert families["killkrill_agent_send_duration_seconds"].type == "histogram"
            assert families["killkrill_logs_records_read"].samples[0].value >= 20
            [info] = families["killkrill_agent_info"].samples
            assert (info.labels["node"], info.labels["cluster"]) == ("node-a", "e2e")

            status = httpx.get(f"{url}/status").json()
            shipper = next(c for c in status["components"] if c["name"] == "shipper")
            assert shipper["state"] == "ready"
            assert shipper["protocols"] == {"logs": "http/3"}
            # Each container samples its own process and sends it with its telemetry.
            for component in status["components"]:
                assert component["version"], component
            cpu = families["process_cpu_seconds"].samples
            assert {s.labels["component"] for s in cpu} >= {"shipper", "logs", "health"}

            # The health container dies; nothing else notices.
            agent.kill("health")
            killed_at = time.time()
            write_lines(log_file, 20, 20)
            agent.wait_for(
                lambda: len(receiver.records("logs")) >= 40, 60, "lines written after the kill"
            )
            for component in ("shipper", "logs"):
                agent.wait_for(
                    lambda c=component: (
                        heartbeat_path(agent.ipc_dir, c).stat().st_mtime > killed_at
                    ),
                    20,
                    f"{component} heartbeat after the kill",
                )
                assert liveness_passes(agent, component), component
                assert agent.processes[component].poll() is None, component
            assert not liveness_passes(agent, "health-never-started")
            messages = sorted(entry["record"]["message"] for entry in receiver.records("logs"))
            assert messages == sorted(f"health-e2e line {n}" for n in range(40))

            # A new health container picks the telemetry up again.
            url = start_health(agent)
            agent.wait_for(lambda: status_code(f"{url}/ready") == 200, 60, "/ready 200 again")
        finally:
            health = agent.processes.get("health")
            if health is not None and health.poll() is None:
                agent.stop("health")
