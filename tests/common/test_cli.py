"""killkrill-agent validate, run as a real process: output, exit codes, and no secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kk_common.config import DEFAULT_CONFIG_PATH

LICENSE_KEY = "PENG-A1B2-C3D4-E5F6-G7H8-J9K0"
API_KEY = "api-key-0123456789-secret"


def run_validate(environ: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m kk_common.cli validate`` with exactly ``environ`` (plus PATH)."""
    return subprocess.run(
        [sys.executable, "-m", "kk_common.cli", "validate", *arguments],
        env={"PATH": os.environ.get("PATH", ""), **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def valid_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A valid environment whose KILLKRILL_CONFIG names an (empty unless rewritten) file.

    Naming a file in tmp_path keeps this machine's /etc/killkrill/config.yaml out of tests.
    """
    config = tmp_path / "config.yaml"
    if not config.exists():
        config.write_text("", encoding="utf-8")
    return {
        "KILLKRILL_CONFIG": str(config),
        "NODE_NAME": "node-a",
        "NODE_IP": "10.1.2.3",
        "KILLKRILL_LICENSE_KEY": LICENSE_KEY,
        "KILLKRILL_API_KEY": API_KEY,
        "KILLKRILL_LOG_RECEIVER_URL": "https://logs:8443",
        "KILLKRILL_METRICS_RECEIVER_URL": "http://metrics:8000",
        **extra,
    }


def test_a_valid_config_prints_a_summary_and_exits_0(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("performance:\n  buffer_size: 64MiB\n", encoding="utf-8")
    result = run_validate(valid_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"config file: {tmp_path / 'config.yaml'}\n" in result.stdout
    assert "logs: https://logs:8443/api/v1/logs over HTTP/3 (HTTP/1.1 fallback)" in result.stdout
    assert "metrics: every 30s -> http://metrics:8000/api/v1/metrics over HTTP/1.1" in result.stdout
    assert "source kubelet: https://10.1.2.3:10250/metrics" in result.stdout
    assert "buffer 64MiB" in result.stdout
    assert "credentials: license key set, API key set" in result.stdout
    assert result.stderr == (
        "warning: metrics.output.url: an http:// URL cannot carry HTTP/3 (QUIC needs TLS): "
        "this output uses HTTP/1.1 only\n"
    )
    assert LICENSE_KEY not in result.stdout + result.stderr
    assert API_KEY not in result.stdout + result.stderr


def test_an_invalid_config_prints_every_problem_to_stderr_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "logs:\n  output:\n    batch_size: abc\nmetrics:\n  interval: 5\n", encoding="utf-8"
    )
    result = run_validate(valid_env(tmp_path, KILLKRILL_LOG_RECIEVER_URL="https://x"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "logs.output.batch_size: expected a whole number greater than 0, got 'abc'",
        "metrics.interval: expected a duration with a unit (ms, s, m or h), got 5; write e.g. '5s'",
        "KILLKRILL_LOG_RECIEVER_URL: unknown KILLKRILL_* variable; "
        "did you mean KILLKRILL_LOG_RECEIVER_URL?",
    ]


def test_a_malformed_license_key_is_not_printed(tmp_path: Path) -> None:
    bad_key = "PENG-a1b2-c3d4-E5F6-G7H8-J9K0"
    result = run_validate(valid_env(tmp_path, KILLKRILL_LICENSE_KEY=bad_key))
    assert result.returncode == 2
    assert result.stderr.startswith("KILLKRILL_LICENSE_KEY: expected a license key of the form")
    for secret in (bad_key, bad_key.lower(), API_KEY):
        assert secret not in result.stdout + result.stderr


def test_the_config_option_names_the_file_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    chosen = tmp_path / "chosen.yaml"
    chosen.write_text("agent:\n  cluster_name: chosen\n", encoding="utf-8")
    found = run_validate(valid_env(tmp_path), "--config", str(chosen))
    assert found.returncode == 0, found.stderr
    assert "cluster chosen" in found.stdout
    missing = run_validate(valid_env(tmp_path), "--config", str(tmp_path / "nope.yaml"))
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr == f"--config: config file not found: {tmp_path / 'nope.yaml'}\n"


def test_the_console_script_is_installed_and_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "killkrill-agent"
    assert script.exists(), "reinstall services/common (pip install -e) to get the script"
    environ = valid_env(tmp_path)
    del environ["KILLKRILL_CONFIG"]  # the default path: a missing file there is fine
    if Path(DEFAULT_CONFIG_PATH).exists():
        pytest.skip(f"{DEFAULT_CONFIG_PATH} exists on this machine")
    result = subprocess.run(
        [str(script), "validate"],
        env={"PATH": os.environ.get("PATH", ""), **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "(not found: built-in defaults and environment only)" in result.stdout


def test_no_command_prints_help_and_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kk_common.cli"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "validate" in result.stderr
