"""The steps every fault scenario shares: wait until data flows, wait until a restarted
container is back at work, and the ending (stop writing, wait for every line, audit, record
the figures, check the pod is ready again)."""

from __future__ import annotations

from reliability_audit import Delivery, assert_exactly_once, audit, wait_all_delivered
from reliability_pod import AgentPodProcesses
from reliability_results import ResultsFile
from reliability_writer import LogWriter

BACK_TIMEOUT_S = 90.0
"""How long a restarted container may take to be back at work on a busy 2-core machine."""


def stored(pod: AgentPodProcesses, kind: str = "logs", protocol: str | None = None) -> int:
    """Distinct records of ``kind`` the receiver holds (over ``protocol`` only, if given)."""
    stats = pod.receiver.stats()
    if protocol is None:
        return stats["by_kind"][kind]["unique_ids"]
    return stats["by_protocol"][protocol][kind]["unique_ids"]


def wait_more_stored(
    pod: AgentPodProcesses,
    kind: str = "logs",
    *,
    more: int = 1,
    protocol: str | None = None,
    timeout: float = BACK_TIMEOUT_S,
    what: str = "",
) -> int:
    """Wait until the receiver holds ``more`` more records of ``kind`` than now."""
    target = stored(pod, kind, protocol) + more
    pod.wait_for(
        lambda: stored(pod, kind, protocol) >= target,
        timeout,
        what
        or f"{more} more {kind} records at the receiver"
        + (f" over {protocol}" if protocol else ""),
    )
    return stored(pod, kind, protocol)


def wait_back(pod: AgentPodProcesses, service: str) -> None:
    """Wait until a (re)started ``service`` does its job again, seen from outside the pod.

    The writer must be writing: the shipper and the logs service are back when new log
    records reach the receiver; the metrics service when new samples do; the health
    container when ``/ready`` answers 200 again.
    """
    if service in ("shipper", "logs"):
        wait_more_stored(pod, "logs", what=f"log records flowing after {service} restart")
    elif service == "metrics":
        wait_more_stored(pod, "metrics", what="metrics flowing after the metrics restart")
    elif service == "health":
        wait_ready(pod)
    else:
        raise ValueError(f"unknown service {service!r}")


def wait_ready(pod: AgentPodProcesses, timeout: float = BACK_TIMEOUT_S) -> None:
    """Wait until the health container's ``/ready`` answers 200."""
    pod.wait_for(lambda: pod.ready()[0], timeout, f"/ready 200 (reasons: {pod.ready()[1]})")


def finish(
    pod: AgentPodProcesses,
    writer: LogWriter,
    results: ResultsFile,
    scenario: str,
    *,
    seed: int | None = None,
    note: str = "",
    timeout: float = 180.0,
) -> Delivery:
    """Stop writing, wait until every line is at the receiver, audit and record the figures.

    Asserts that every line arrived exactly once and that the pod is ready again; the
    figures are recorded first, so a failed run still shows them.
    """
    generated = writer.stop()
    try:
        delivery = wait_all_delivered(pod, generated, timeout)
    except AssertionError:
        delivery = audit(pod.receiver, generated)
        results.record(scenario, delivery.figures(), seed=seed, note=f"FAILED: {note}")
        raise
    results.record(scenario, delivery.figures(), seed=seed, note=note)
    assert_exactly_once(delivery)
    wait_ready(pod)
    return delivery
