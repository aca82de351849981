"""Demo pods for compose.yaml: container logs written as the container runtime writes them.

Files go to ``/var/log/pods/<namespace>_<pod>_<uid>/<container>/0.log`` in CRI format
(``<RFC 3339 time> stdout F <message>``), owned by root with mode 0640, like the kubelet's
(the umask is 027). Every message carries a unique token (``demo-<n>``), so a test can check
that each line reached the receiver exactly once.

Environment: ``DEMO_LINES`` lines in all, then exit 0 (``0``, the default: forever);
``DEMO_INTERVAL`` seconds between rounds (one line per pod per round, default 1).
Standard library only: it runs in any image with Python 3.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path("/var/log/pods")
PODS = (
    ("shop", "checkout-7d9f8b6c5d-x2x7k", "app"),
    ("shop", "cart-5c6d7f8b9-q8r4t", "app"),
    ("kube-system", "coredns-6d4b75cb6d-mz2lk", "coredns"),
)


def pod_log_files() -> list[Path]:
    files = []
    for namespace, pod, container in PODS:
        uid = uuid.uuid5(uuid.NAMESPACE_DNS, pod)
        directory = ROOT / f"{namespace}_{pod}_{uid}" / container
        directory.mkdir(parents=True, exist_ok=True)
        files.append(directory / "0.log")
    return files


def main() -> int:
    total = int(os.environ.get("DEMO_LINES", "0"))
    interval = float(os.environ.get("DEMO_INTERVAL", "1"))
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    os.umask(0o027)
    files = pod_log_files()
    written = 0
    while not stopping and (total == 0 or written < total):
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for path in files:
            if total and written >= total:
                break
            with path.open("a", encoding="utf-8") as log:
                log.write(f'{now} stdout F level=info msg="request handled" token=demo-{written}\n')
            written += 1
        time.sleep(interval)
    print(f"demo-log-writer: wrote {written} lines to {len(files)} pod logs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
