"""The TLS files a config names: checked by `validate` and by the shipper at startup
(issue 8): every problem names its key path, and the process exits 2 without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kk_common.config import parse_config, tls_file_problems
from kk_receiver.certs import ensure_certificates

LICENSE_KEY = "PENG-A1B2-C3D4-E5F6-G7H8-J9K0"
SHIPPER = Path(sys.executable).with_name("killkrill-shipper")


def environ(config_file: Path | None = None) -> dict[str, str]:
    env = {
        "NODE_NAME": "node-a",
        "KILLKRILL_LICENSE_KEY": LICENSE_KEY,
        "KILLKRILL_LOG_RECEIVER_URL": "https://logs:8443",
    }
    if config_file is not None:
        env["KILLKRILL_CONFIG"] = str(config_file)
    return env


def config_text(tmp_path: Path, **tls: str) -> str:
    lines = [
        "agent:",
        f"  ipc_dir: {tmp_path / 'ipc'}",
        f"  state_dir: {tmp_path / 'state'}",
        "metrics:",
        "  enabled: false",
        "logs:",
        "  output:",
        "    tls:",
        *[f"      {key}: {value}" for key, value in tls.items()],
    ]
    return "\n".join(lines) + "\n"


def problems(tmp_path: Path, **tls: str) -> list[str]:
    config = parse_config(config_text(tmp_path, **tls), environ())
    return [str(problem) for problem in tls_file_problems(config)]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("pki")
    ensure_certificates(directory, ["127.0.0.1"])
    return {name: directory / name for name in ("ca.crt", "server.crt", "server.key", "ca.key")}


def test_files_that_exist_and_parse_pass(tmp_path: Path, pki: dict[str, Path]) -> None:
    found = problems(
        tmp_path,
        ca_file=str(pki["ca.crt"]),
        cert_file=str(pki["server.crt"]),
        key_file=str(pki["server.key"]),
    )
    assert found == []


def test_a_missing_ca_file_names_its_key_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ca.crt"
    assert problems(tmp_path, ca_file=str(missing)) == [
        f"logs.output.tls.ca_file: file not found: {missing}"
    ]


def test_a_directory_or_a_file_that_is_not_pem_is_named(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    found = problems(tmp_path, ca_file=str(tmp_path), cert_file=str(junk), key_file=str(junk))
    assert found == [
        f"logs.output.tls.ca_file: is a directory, not a file: {tmp_path}",
        f"logs.output.tls.cert_file: not a PEM certificate: {junk}",
        f"logs.output.tls.key_file: not a PEM private key: {junk}",
    ]


def test_a_key_that_is_not_the_certificates_is_refused(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    [problem] = problems(tmp_path, cert_file=str(pki["server.crt"]), key_file=str(pki["ca.key"]))
    assert problem.startswith("logs.output.tls.key_file: cannot be used with ")


def test_a_disabled_pipeline_is_not_checked(tmp_path: Path) -> None:
    text = config_text(tmp_path, ca_file=str(tmp_path / "missing.crt"))
    config = parse_config(text.replace("logs:\n", "logs:\n  enabled: false\n"), environ())
    assert tls_file_problems(config) == []


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_validate_and_the_shipper_both_refuse_a_missing_ca_file_with_exit_2(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "ca.crt"
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_text(tmp_path, ca_file=str(missing)))
    expected = f"logs.output.tls.ca_file: file not found: {missing}"

    validate = run([sys.executable, "-m", "kk_common.cli", "validate"], environ(config_file))
    assert validate.returncode == 2
    assert expected in validate.stderr.splitlines()
    assert "Traceback" not in validate.stderr

    shipper = run([str(SHIPPER)], environ(config_file))
    assert shipper.returncode == 2, shipper.stdout + shipper.stderr
    assert expected in shipper.stderr.splitlines()
    assert "Traceback" not in shipper.stderr + shipper.stdout
    assert not (tmp_path / "state").exists()  # refused before opening anything
