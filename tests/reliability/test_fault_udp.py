"""UDP blocked mid-stream: the shipper falls back to HTTP/1.1, then returns to HTTP/3.

The receiver and the pod run in a private network namespace (`chaos_network`); an iptables
rule there drops the UDP of the receiver's HTTP/3 port while pods log, then goes away. The
shipper must move to HTTP/1.1 (``protocol_changed`` to http/1.1, records stored over
HTTP/1.1), then, probing every 2 s (``http3.probe_interval``; 5 min by default), back to
HTTP/3; and every line must arrive exactly once. Skipped, saying why, without root or
iptables.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from chaos_network import UdpBlock, network_unavailable, private_network
from reliability_pod import AgentPodProcesses
from reliability_results import ResultsFile
from reliability_scenario import finish, wait_more_stored
from reliability_writer import LogWriter, pod_files

from kk_receiver.testing import ReceiverProcess

SIZES = {"ci": {"rate": 500, "blocked_s": 5}, "full": {"rate": 2000, "blocked_s": 30}}
PROBE = {"http3": {"probe_interval": "2s"}}


def protocol_changes(pod: AgentPodProcesses) -> list[str]:
    """The logs output's protocol changes so far, e.g. ``["http/1.1", "http/3"]``."""
    return [e["new"] for e in pod.events("shipper", "protocol_changed") if e["output"] == "logs"]


@pytest.mark.skipif(network_unavailable() is not None, reason=str(network_unavailable()))
def test_udp_blocked_mid_stream_falls_back_then_returns_to_http3(
    tmp_path: Path, profile: str, scenario_results: ResultsFile
) -> None:
    size = SIZES[profile]
    overrides = {"logs": {"output": PROBE}, "metrics": {"output": PROBE}}
    with (
        private_network(),
        ReceiverProcess() as receiver,
        AgentPodProcesses(receiver, tmp_path, overrides=overrides) as pod,
        LogWriter(tmp_path, pod_files(3, "rename"), rate=size["rate"], rotate_every_s=1) as writer,
    ):
        assert receiver.h3_port is not None
        firewall = UdpBlock(receiver.h3_port)
        wait_more_stored(pod, "logs", protocol="http/3", what="log records over HTTP/3")

        firewall.block()
        pod.wait_for(lambda: protocol_changes(pod) == ["http/1.1"], 60, "fallback to HTTP/1.1")
        wait_more_stored(pod, "logs", more=size["rate"], protocol="http/1.1")
        writer.wait_written(size["rate"] * size["blocked_s"])  # blocked for a while
        assert firewall.dropped_packets() > 0

        firewall.unblock()
        pod.wait_for(lambda: protocol_changes(pod) == ["http/1.1", "http/3"], 60, "back to HTTP/3")
        wait_more_stored(pod, "logs", protocol="http/3", what="log records over HTTP/3 again")
        stats = receiver.stats()["by_protocol"]
        finish(
            pod,
            writer,
            scenario_results,
            "udp_blocked",
            note=f"UDP dropped for {size['blocked_s']} s of writing; "
            f"{stats['http/1.1']['logs']['unique_ids']} records stored over HTTP/1.1, "
            f"{stats['http/3']['logs']['unique_ids']} over HTTP/3",
        )
