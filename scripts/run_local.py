"""Run the agent locally with no cluster: `make run`.

Starts the bundled reference receiver (HTTP/3 + HTTPS on one port, with its own CA),
writes demo container logs in the kubelet's layout (``<dir>/var/log/pods/<namespace>_
<pod>_<uid>/<container>/0.log``, CRI format) and keeps appending to them, starts every
agent service that exists in this checkout with a config pointing at both, and prints
what the receiver has stored every few seconds. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DEMO_LICENSE_KEY = "PENG-DEMO-LOCA-LRUN-0000-0001"
NODE_NAME = "local-node"
HEALTH_PORT = 8080
HEALTH_URL = f"http://127.0.0.1:{HEALTH_PORT}"
# The services of the DaemonSet, in start order; each is started when its console
# script is installed (i.e. once its issue has landed).
SERVICES = ("shipper", "health", "logs", "metrics")
DEMO_PODS = (
    ("shop", "checkout-7d9f8b6c5d-x2x7k", "app"),
    ("shop", "cart-5c6d7f8b9-q8r4t", "app"),
    ("kube-system", "coredns-6d4b75cb6d-mz2lk", "coredns"),
)


def wait_for(path: Path, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"run-local: {what} did not start within {timeout:.0f}s")
        time.sleep(0.05)


def start_receiver(data_dir: Path, procs: list[subprocess.Popen]) -> dict:
    data_dir.mkdir(parents=True, exist_ok=True)
    ready = data_dir / "ready.json"
    ready.unlink(missing_ok=True)
    env = {**os.environ, "KK_RECEIVER_LICENSE_KEY": DEMO_LICENSE_KEY}
    log = open(data_dir / "receiver.log", "ab")  # noqa: SIM115 - lives as long as the process
    procs.append(
        subprocess.Popen(
            [
                str(VENV_BIN / "killkrill-reference-receiver"),
                "--data-dir",
                str(data_dir),
                "--https-port",
                "0",
                "--http-port",
                "0",
            ],
            env=env,
            stdout=log,
            stderr=log,
        )
    )
    wait_for(ready, 30, "the reference receiver")
    return json.loads(ready.read_text())


class DemoPods:
    """Appends CRI-format lines to demo pod log files, as a container runtime would."""

    def __init__(self, root: Path) -> None:
        self.files: list[Path] = []
        for namespace, pod, container in DEMO_PODS:
            directory = (
                root / f"{namespace}_{pod}_{uuid.uuid5(uuid.NAMESPACE_DNS, pod)}" / container
            )
            directory.mkdir(parents=True, exist_ok=True)
            self.files.append(directory / "0.log")
        self.lines_written = 0

    def write_round(self) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for index, path in enumerate(self.files):
            with path.open("a", encoding="utf-8") as log:
                n = self.lines_written + index
                log.write(f'{now} stdout F level=info msg="request handled" n={n}\n')
                if n % 5 == 0:
                    log.write(f"{now} stderr F ERROR payment timeout after 30s n={n}\n")
                    self.lines_written += 1
            self.lines_written += 1


def write_config(path: Path, pods_root: Path, ipc_dir: Path, state_dir: Path, ca_file: str) -> None:
    path.write_text(
        "# Written by scripts/run_local.py for `make run`.\n"
        "agent:\n"
        f"  node_name: {NODE_NAME}\n"
        "  cluster_name: local\n"
        f"  ipc_dir: {ipc_dir}\n"
        f"  state_dir: {state_dir}\n"
        "logs:\n"
        "  paths:\n"
        f"    - {pods_root}/*/*/*.log\n"
        "  kubernetes:\n"
        "    enabled: false\n"
        "  output:\n"
        "    flush_interval: 1s\n"
        "    tls:\n"
        f"      ca_file: {ca_file}\n"
        "metrics:\n"
        "  interval: 10s\n"
        "  # No kubelet here: this machine's own /proc and /sys stand in for the node's.\n"
        "  sources:\n"
        "    - {name: kubelet, url: 'https://127.0.0.1:10250/metrics', enabled: false}\n"
        "  node:\n"
        "    proc_path: /proc\n"
        "    sys_path: /sys\n"
        "    rootfs_path: /\n"
        "  pods:\n"
        "    enabled: false  # no API server here either\n"
        "  output:\n"
        "    flush_interval: 1s\n"
        "    tls:\n"
        f"      ca_file: {ca_file}\n"
        "health:\n"
        "  listen_address: 127.0.0.1\n"
        f"  port: {HEALTH_PORT}\n"
    )


def installed_services() -> list[str]:
    return [name for name in SERVICES if (VENV_BIN / f"killkrill-{name}").exists()]


def stats(receiver: dict) -> dict:
    with urllib.request.urlopen(receiver["http_url"] + "/api/v1/stats", timeout=5) as reply:  # noqa: S310
        return json.loads(reply.read())


def readiness() -> str:
    """The health container's verdict: "ready", the reasons it is not, or why it is unknown."""
    try:
        with urllib.request.urlopen(HEALTH_URL + "/ready", timeout=2) as reply:  # noqa: S310
            return "ready" if reply.status == 200 else f"HTTP {reply.status}"
    except urllib.error.HTTPError as error:  # 503 with the reasons
        try:
            reasons = json.loads(error.read()).get("reasons") or []
        except ValueError:
            reasons = []
        return "not ready" + (f" ({'; '.join(map(str, reasons))})" if reasons else "")
    except OSError:
        return "health not answering yet"


def protocols(received: dict) -> str:
    """Records per protocol at the receiver, e.g. "http/3 1200, http/1.1 0"."""
    by_protocol = received.get("by_protocol") or {}
    counts = {name: counters.get("unique_ids", 0) for name, counters in by_protocol.items()}
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "none"


@contextlib.contextmanager
def short_ipc_dir() -> Iterator[Path]:
    # ipc:// paths are limited to 107 bytes, so the sockets go to a short directory.
    path = Path(tempfile.mkdtemp(prefix="kkrun", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=REPO / ".run", help="where state goes")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between reports")
    args = parser.parse_args()

    run_dir: Path = args.dir.resolve()
    procs: list[subprocess.Popen] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    with short_ipc_dir() as ipc_dir:
        try:
            receiver = start_receiver(run_dir / "receiver", procs)
            print(
                f"reference receiver: {receiver['https_url']} (HTTP/3 on UDP port "
                f"{receiver['h3_port']}, HTTP/1.1 on TCP), CA file {receiver['ca_file']}"
            )
            print(
                f"                    plain HTTP {receiver['http_url']}; "
                f"stats at {receiver['http_url']}/api/v1/stats"
            )
            pods = DemoPods(run_dir / "var" / "log" / "pods")
            config = run_dir / "config.yaml"
            state_dir = run_dir / "state"
            state_dir.mkdir(parents=True, exist_ok=True)
            write_config(
                config, pods.files[0].parent.parent.parent, ipc_dir, state_dir, receiver["ca_file"]
            )
            env = {
                **os.environ,
                "KILLKRILL_CONFIG": str(config),
                "KILLKRILL_LICENSE_KEY": DEMO_LICENSE_KEY,
                "KILLKRILL_LOG_RECEIVER_URL": receiver["https_url"],
                "KILLKRILL_METRICS_RECEIVER_URL": receiver["https_url"],
                "NODE_NAME": NODE_NAME,
            }
            check = subprocess.run(
                [str(VENV_BIN / "killkrill-agent"), "validate"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if check.returncode != 0:
                print(check.stdout + check.stderr, file=sys.stderr)
                return 1
            services = installed_services()
            missing = [name for name in SERVICES if name not in services]
            for name in services:
                log = open(run_dir / f"{name}.log", "ab")  # noqa: SIM115
                procs.append(
                    subprocess.Popen(
                        [str(VENV_BIN / f"killkrill-{name}")], env=env, stdout=log, stderr=log
                    )
                )
            print(
                f"agent services running: {', '.join(services) or 'none yet'}"
                + (f"; not in this checkout yet: {', '.join(missing)}" if missing else "")
            )
            print(f"demo pod logs: {pods.files[0].parent.parent.parent} (config {config})")
            started = time.monotonic()
            next_report = started
            while not stopping:
                pods.write_round()
                now = time.monotonic()
                if now >= next_report:
                    s = stats(receiver)
                    print(
                        f"[{now - started:6.1f}s] demo lines written this run "
                        f"{pods.lines_written:5d} | receiver stored {s['unique_ids']} records "
                        f"in all ({s['records_received']} received, {s['duplicates']} "
                        f"duplicates, {s['rejected']} rejected; by protocol: "
                        f"{protocols(s)}) | agent {readiness()}",
                        flush=True,
                    )
                    next_report = now + args.interval
                if args.seconds and now - started >= args.seconds:
                    break
                time.sleep(0.5)
        finally:
            # Producers first, then the shipper, then the receiver, each given time to
            # drain: the way a pod's containers would be stopped.
            for proc in reversed(procs):
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
