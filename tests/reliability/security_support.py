"""What the security scenarios share: sentinel secrets, where to look for them, and a pod
of the agent's services running with them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kk_common.redact import secret_forms
from tests.reliability.input_pod import InputPod

__all__ = ["SENTINEL_API_KEY", "SENTINEL_LICENSE_KEY", "SecretPod", "find_secrets"]

SENTINEL_LICENSE_KEY = "PENG-S3NT-1NEL-L1CE-NSE0-K3Y9"
"""A license key of the valid form that appears nowhere else: any sight of it is a leak."""
SENTINEL_API_KEY = "sentinel-api-key-5f1c9a7e2b"
SECRETS = (SENTINEL_LICENSE_KEY, SENTINEL_API_KEY)


def find_secrets(name: str, data: bytes | str) -> list[str]:
    """``name: form`` for every form (raw, escaped, base64, percent-encoded) of a sentinel
    found in ``data``."""
    text = data if isinstance(data, str) else data.decode("latin-1")
    return [
        f"{name}: {form!r}" for secret in SECRETS for form in secret_forms(secret) if form in text
    ]


def files_under(directory: Path) -> Iterable[Path]:
    return (path for path in sorted(directory.rglob("*")) if path.is_file())


class SecretPod(InputPod):
    """The pod's four services with the sentinel license and API keys in their
    environment (as the DaemonSet passes them from the Secret)."""

    def env(
        self, overrides: Mapping[str, Any] | None = None, name: str = "config"
    ) -> dict[str, str]:
        env = super().env(overrides, name)
        env["KILLKRILL_LICENSE_KEY"] = SENTINEL_LICENSE_KEY
        env["KILLKRILL_API_KEY"] = SENTINEL_API_KEY
        return env

    def leaks(self) -> list[str]:
        """Every sentinel sighting in the pod's files: each service's stdout and stderr,
        config files, the state directory (queue, offsets, spool) and the IPC directory."""
        return [
            leak
            for path in files_under(self.dir)
            for leak in find_secrets(str(path), path.read_bytes())
        ]
