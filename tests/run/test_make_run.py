"""`make run` does what the README says: the four services and the reference receiver start,
demo pod logs and this machine's node metrics reach the receiver over HTTP/3, the health
container says ready, and Ctrl-C (SIGINT) stops everything."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REPORT = re.compile(
    r"receiver stored (?P<stored>\d+) records .*by protocol: (?P<protocols>[^)]*)\) \| agent "
    r"(?P<agent>.*)$"
)
STATS_URL = re.compile(r"stats at (?P<url>http://\S+/api/v1/stats)")


def stored_metrics(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - the local receiver
        return int(json.loads(reply.read())["by_kind"]["metrics"]["unique_ids"])


def free_tcp_port() -> int:
    # Another `make run` or a compose stack on this machine may hold the default 8080.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_make_run_delivers_over_http3_and_reports_ready(tmp_path: Path) -> None:
    run = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "scripts" / "run_local.py"),
            "--dir",
            str(tmp_path),
            "--interval",
            "1",
            "--health-port",
            str(free_tcp_port()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert run.stdout is not None
    seen: list[str] = []
    stats_url = ""
    try:
        for line in run.stdout:
            seen.append(line.rstrip())
            if found := STATS_URL.search(line):
                stats_url = found["url"]
            assert "| exited:" not in line, "\n".join(seen)
            report = REPORT.search(line)
            if report is None:
                continue
            http3 = re.search(r"http/3 (\d+)", report["protocols"])
            if (
                int(report["stored"]) > 0
                and http3
                and int(http3[1]) > 0
                and report["agent"] == "ready"
                and stored_metrics(stats_url) > 0
            ):
                break
            assert len(seen) < 200, "\n".join(seen)
        else:
            raise AssertionError("make run ended early:\n" + "\n".join(seen))
    finally:
        run.send_signal(signal.SIGINT)
        code = run.wait(120)
    assert code == 0, "\n".join(seen)
    assert "agent services running: shipper, health, logs, metrics" in "\n".join(seen)
    assert "not in this checkout yet" not in "\n".join(seen)
    metrics_log = (tmp_path / "metrics.log").read_text()
    assert '"event": "metrics_stopped"' in metrics_log
