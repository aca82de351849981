"""The agent pod of tests/logs (`AgentPod`: shipper + logs processes) for the bad-input
scenarios, plus what they need beside it: a logs process that, like the DaemonSet's
container, runs as root *without* the capabilities that bypass file permissions, and
helpers to read what the receiver stored by message and by record labels.

This directory has no conftest of its own for these modules, so the harness directories
are put on ``sys.path`` here (as tests/logs/conftest.py does for its tests).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
for harness in (TESTS / "logs", TESTS / "shipper"):
    if str(harness) not in sys.path:
        sys.path.insert(0, str(harness))

import transport_support  # noqa: E402
from agent_support import BIN, AgentPod, cri_line, pod_log_dir  # noqa: E402
from e2e_support import (  # noqa: E402
    LICENSE_KEY,
    Producer,
    ShipperProcess,
    TelemetryListener,
    log_records,
)

from kk_receiver.testing import ReceiverProcess  # noqa: E402

__all__ = [
    "BIN",
    "LICENSE_KEY",
    "CapabilityDropUnavailable",
    "InputPod",
    "Producer",
    "ReceiverProcess",
    "ShipperProcess",
    "StoredLogs",
    "TelemetryListener",
    "cri_line",
    "drop_file_capabilities",
    "log_records",
    "pod_log_dir",
    "transport_support",
]

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


class CapabilityDropUnavailable(RuntimeError):
    """This process may not drop capabilities from its bounding set (no CAP_SETPCAP)."""


def drop_file_capabilities() -> None:
    """In a child before exec: remove CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the
    bounding set, so that root after exec is held to file modes as the DaemonSet's
    containers are (``capabilities: drop: [ALL]``). Raises CapabilityDropUnavailable."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise CapabilityDropUnavailable(os.strerror(ctypes.get_errno()))


def file_modes_bind_this_user() -> bool:
    """Whether chmod 000 would stop a logs process started by `InputPod` from reading."""
    if os.geteuid() != 0:
        return True
    probe = subprocess.run(
        [sys.executable, "-c", "pass"], preexec_fn=drop_file_capabilities, check=False
    )
    return probe.returncode == 0


class InputPod(AgentPod):
    """`AgentPod` whose logs process runs without the file-permission capabilities."""

    def start(
        self,
        name: str,
        overrides: Any = None,
        *,
        max_descriptors: int | None = None,
    ) -> None:
        if name != "logs" or os.geteuid() != 0:
            super().start(name, overrides, max_descriptors=max_descriptors)
            return
        log = (self.dir / "logs.log").open("ab")
        env = self.env(overrides, name="config-logs") if overrides else self.env()
        self.processes[name] = subprocess.Popen(
            [str(BIN / "killkrill-logs")],
            env=env,
            stdout=log,
            stderr=log,
            preexec_fn=drop_file_capabilities,
        )
        log.close()
        assert self.processes[name].poll() is None, self.log_tail(name)

    def running(self) -> dict[str, bool]:
        return {name: process.poll() is None for name, process in self.processes.items()}

    def log_text(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


class StoredLogs:
    """The log records a receiver stored, fetched incrementally (a 10 MiB line is about a
    thousand records: each look fetches only what arrived since the last)."""

    def __init__(self, receiver: ReceiverProcess) -> None:
        self._receiver = receiver
        self._after = 0
        self.records: list[dict[str, Any]] = []

    def refresh(self) -> StoredLogs:
        for entry in self._receiver.records("logs", after=self._after):
            self._after = entry["seq"]
            self.records.append(entry["record"])
        return self

    def messages(self) -> Counter[str]:
        return Counter(record["message"] for record in self.refresh().records)

    def with_label(self, key: str, value: str | None = None) -> list[dict[str, Any]]:
        return [
            record
            for record in self.refresh().records
            if key in record["labels"] and value in (None, record["labels"][key])
        ]
