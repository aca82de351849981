"""The receiver misbehaves while the pod ships: down, slow, flapping.

* **Down**: the receiver process is killed (a crash: nothing answers on TCP or UDP) for
  60 s in the full profile, 15 s in the CI profile, while pods keep logging; the shipper
  must say ``output_down``, keep the backlog on disk, and deliver all of it once the
  receiver is back on the same ports (``output_recovered``).
* **Slow**: every answer takes 2 s (the receiver stores the batch at once and holds the
  answer back), for 10 requests (CI) or 40 (full). Below ``request_timeout`` (30 s) nothing
  may be sent twice; with ``request_timeout: 1s`` (full profile only) every request times
  out, is sent again and the receiver drops the copies: still nothing stored twice.
* **Flapping**: runs of 503s alternate with normal answers, seeded, for 40 (CI) or 200
  (full) requests.

Every scenario ends with the audit by record id.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos_plan import flapping_steps
from reliability_pod import AgentPodProcesses
from reliability_results import ResultsFile
from reliability_scenario import finish, wait_more_stored
from reliability_writer import LogWriter, pod_files

from kk_receiver.testing import ReceiverProcess

SIZES = {
    "ci": {"rate": 500, "outage_s": 15, "slow_requests": 10, "flapping_requests": 40},
    "full": {"rate": 2000, "outage_s": 60, "slow_requests": 40, "flapping_requests": 200},
}
SLOW_S = 2.0


@pytest.fixture
def receiver() -> Iterator[ReceiverProcess]:
    with ReceiverProcess() as running:
        yield running


def faults_left(receiver: ReceiverProcess) -> int:
    """Fault steps the receiver has not used yet (``GET /api/v1/faults``)."""
    with urllib.request.urlopen(f"{receiver.http_url}/api/v1/faults", timeout=10) as reply:  # noqa: S310
        return len(json.loads(reply.read())["steps"])


def test_receiver_down_then_back_everything_arrives_once(
    receiver: ReceiverProcess, tmp_path: Path, profile: str, scenario_results: ResultsFile
) -> None:
    size = SIZES[profile]
    with (
        AgentPodProcesses(receiver, tmp_path) as pod,
        LogWriter(tmp_path, pod_files(3, "rename"), rate=size["rate"], rotate_every_s=1) as writer,
    ):
        wait_more_stored(pod, "logs", what="first log records")
        receiver.kill()
        pod.wait_for(
            lambda: (
                {"logs", "metrics"} <= {e["output"] for e in pod.events("shipper", "output_down")}
            ),
            30,
            "output_down for both outputs",
        )
        writer.wait_written(size["rate"] * size["outage_s"])  # the outage, counted in lines
        queued = pod.sample("killkrill_agent_queued_records", type="logs")
        assert queued, "the backlog should wait in the shipper's queue"
        receiver.start()
        pod.wait_for(
            lambda: (
                {"logs", "metrics"}
                <= {e["output"] for e in pod.events("shipper", "output_recovered")}
            ),
            60,
            "output_recovered for both outputs",
        )
        finish(
            pod,
            writer,
            scenario_results,
            "receiver_down",
            note=f"receiver killed for {size['outage_s']} s of writing "
            f"({size['rate'] * size['outage_s']} lines); {queued:.0f} records queued at the end",
        )
        recovered = [e for e in pod.events("shipper", "output_recovered") if e["output"] == "logs"]
        assert [e["protocol"] for e in recovered] == ["http/3"], "one outage, back on HTTP/3"


@pytest.mark.parametrize("request_timeout", ["30s", "1s"])
def test_receiver_slow_answers_nothing_stored_twice(
    receiver: ReceiverProcess,
    tmp_path: Path,
    profile: str,
    scenario_results: ResultsFile,
    request_timeout: str,
) -> None:
    if request_timeout == "1s" and profile != "full":
        pytest.skip("full profile only (make chaos): every request times out and is re-sent")
    size = SIZES[profile]
    overrides = {"logs": {"output": {"request_timeout": request_timeout}}}
    with (
        AgentPodProcesses(receiver, tmp_path, overrides=overrides) as pod,
        LogWriter(tmp_path, pod_files(3), rate=size["rate"]) as writer,
    ):
        wait_more_stored(pod, "logs", what="first log records")
        receiver.set_faults([{"delay_s": SLOW_S, "kind": "logs", "times": size["slow_requests"]}])
        pod.wait_for(lambda: faults_left(receiver) == 0, 180, "every slow answer given")
        delivery = finish(
            pod,
            writer,
            scenario_results,
            f"receiver_slow_timeout_{request_timeout}",
            note=f"{size['slow_requests']} answers {SLOW_S:g} s late, "
            f"request_timeout {request_timeout}",
        )
    if request_timeout == "30s":
        assert delivery.duplicates_resent == 0, str(delivery)
    else:
        assert delivery.duplicates_resent > 0, "timed-out requests are sent again"


def test_receiver_flapping_between_200_and_503(
    receiver: ReceiverProcess,
    tmp_path: Path,
    profile: str,
    chaos_seed: int,
    scenario_results: ResultsFile,
) -> None:
    size = SIZES[profile]
    steps = flapping_steps(chaos_seed, size["flapping_requests"])
    print(steps)
    with (
        AgentPodProcesses(receiver, tmp_path) as pod,
        LogWriter(tmp_path, pod_files(3, "rename"), rate=size["rate"], rotate_every_s=1) as writer,
    ):
        wait_more_stored(pod, "logs", what="first log records")
        receiver.set_faults(steps)
        pod.wait_for(lambda: faults_left(receiver) == 0, 180, "the flapping script played out")
        responses = receiver.stats()["responses"]
        assert responses.get("503", 0) >= sum(s["times"] for s in steps if "status" in s)
        finish(
            pod,
            writer,
            scenario_results,
            "receiver_flapping",
            seed=chaos_seed,
            note=f"{size['flapping_requests']} requests flapping between 503 and 200",
        )
