"""The license key and the API key never appear in any output of the agent: the four
services run with sentinel keys against a receiver that requires them, deliver logs and
metrics, then meet a receiver whose error answers quote both keys back; a start with a
malformed key and ``killkrill-agent validate`` are run too. Every byte the pod wrote
(each service's stdout and stderr, its state and IPC directories), the health
container's /metrics, /status, /healthz and /ready, and the commands' output are searched
for every form of the sentinels (raw, escaped, base64, percent-encoded).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.reliability.input_pod import BIN, ReceiverProcess, StoredLogs, cri_line, pod_log_dir
from tests.reliability.security_support import (
    SENTINEL_API_KEY,
    SENTINEL_LICENSE_KEY,
    SecretPod,
    find_secrets,
)

UID = "5ec2e7a1-1111-2222-3333-444455556666"
MALFORMED_KEY = "S3NT1NEL-MALFORMED-L1CENSE-KEY"


def write_lines(log_file: Path, prefix: str, count: int) -> list[str]:
    texts = [f"{prefix}-{n}" for n in range(count)]
    with log_file.open("a") as out:
        out.writelines(cri_line(text) for text in texts)
    return texts


def test_the_keys_appear_in_no_log_error_metric_or_file(tmp_path: Path) -> None:
    log_file = pod_log_dir(tmp_path / "var-log", "shop", "web-1", UID, "app") / "0.log"
    expected = write_lines(log_file, "before", 20)
    with ReceiverProcess(license_key=SENTINEL_LICENSE_KEY, api_key=SENTINEL_API_KEY) as receiver:
        pod = SecretPod(receiver, tmp_path / "var-log")
        pod.config["metrics"] = {
            "enabled": True,
            "interval": "1s",
            "sources": [],
            "node": {"proc_path": "/proc", "sys_path": "/sys", "rootfs_path": "/"},
            "output": pod.config["logs"]["output"],
        }
        pod.config["health"] = {"listen_address": "127.0.0.1", "port": 0}
        stored = StoredLogs(receiver)
        seen: dict[str, str] = {}
        with pod:
            pod.start("metrics")
            pod.start("health")
            pod.wait_for(lambda: pod.events("health", "health_listening"), 20, "health listening")
            health = f"http://127.0.0.1:{pod.events('health', 'health_listening')[-1]['port']}"
            pod.wait_for(lambda: set(expected) <= set(stored.messages()), 60, "log lines")
            pod.wait_for(
                lambda: receiver.stats()["by_kind"]["metrics"]["unique_ids"] > 0, 60, "metrics"
            )

            # A receiver (or a proxy before it) that quotes the credentials in its errors.
            echo = f"Bearer {SENTINEL_LICENSE_KEY} / X-API-Key: {SENTINEL_API_KEY}"
            receiver.set_faults(
                [
                    {"status": 503, "body": {"error": f"refused {echo}"}, "times": 3},
                    {"status": 500, "body": {"detail": echo}, "times": 2},
                ]
            )
            expected += write_lines(log_file, "after", 20)
            pod.wait_for(lambda: set(expected) <= set(stored.messages()), 60, "lines after")
            assert receiver.stats()["responses"].get("503", 0) >= 1
            pod.wait_for(
                lambda: len(httpx.get(f"{health}/status", timeout=5).json()["components"]) == 4,
                30,
                "all four components in /status",
            )
            for path in ("/metrics", "/status", "/healthz", "/ready"):
                seen[path] = httpx.get(f"{health}{path}", timeout=5).text
            assert pod.running() == dict.fromkeys(("shipper", "logs", "metrics", "health"), True)

        environment = pod.env()
        validate = subprocess.run(
            [str(BIN / "killkrill-agent"), "validate"], env=environment, capture_output=True,
            text=True, check=False,
        )  # fmt: skip
        assert validate.returncode == 0, validate.stderr
        environment["KILLKRILL_LICENSE_KEY"] = MALFORMED_KEY
        malformed = subprocess.run(
            [str(BIN / "killkrill-shipper")], env=environment, capture_output=True, text=True,
            check=False, timeout=60,
        )  # fmt: skip
        assert malformed.returncode != 0
        assert "KILLKRILL_LICENSE_KEY" in malformed.stdout + malformed.stderr

    leaks = pod.leaks()
    for name, text in seen.items():
        leaks += find_secrets(f"health {name}", text)
    for name, run in (("validate", validate), ("malformed key start", malformed)):
        leaks += find_secrets(name, run.stdout + run.stderr)
    assert leaks == []
    assert MALFORMED_KEY not in malformed.stdout + malformed.stderr
    # The scan could have seen them: the echoed answers reached the shipper's log, with the
    # keys redacted, and every form of a key is found where it is.
    assert "[REDACTED]" in pod.log_text("shipper")
    assert find_secrets("probe", f"x{SENTINEL_LICENSE_KEY}x")
