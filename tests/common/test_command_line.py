"""One command line for the whole agent: every ``killkrill-*`` command has ``--version`` and
``--config``, ``--config`` works before or after a subcommand, help text is plain, and local
inspection needs no credentials."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
COMMANDS = ["agent", "shipper", "logs", "metrics", "health"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / f"killkrill-{args[0]}"), *args[1:]],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_reports_its_version_and_has_plain_help(command: str) -> None:
    version = run(command, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith(f"killkrill-{command} ")
    helped = run(command, "--help")
    assert helped.returncode == 0
    assert "--config" in helped.stdout
    assert "``" not in helped.stdout


def bare_environment(state_dir: Path | None = None) -> dict[str, str]:
    """No license key, no receiver URL, no node name: only what a shell has (and the state
    directory, when given)."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("KILLKRILL_", "NODE_"))}
    return keep if state_dir is None else {**keep, "KILLKRILL_STATE_DIR": str(state_dir)}


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_goes_before_or_after_the_subcommand(tmp_path: Path, where: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"agent:\n  state_dir: {tmp_path / 'from-file'}\n")
    args = (
        ["shipper", "--config", str(config), "dead-letters"]
        if where == "before"
        else ["shipper", "dead-letters", "--config", str(config)]
    )
    listed = run(*args, env=bare_environment())
    assert listed.returncode == 0, listed.stderr
    # The file's state directory is used, so the file was read.
    assert (tmp_path / "from-file" / "shipper" / "queue.db").exists()


def test_dead_letters_and_replay_need_only_the_state_directory(tmp_path: Path) -> None:
    env = bare_environment(tmp_path)
    listed = run("shipper", "dead-letters", env=env)
    assert (listed.returncode, listed.stdout) == (0, ""), listed.stderr
    replayed = run("shipper", "replay", env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 0" in replayed.stdout
    # Running the shipper still needs them all.
    started = run("shipper", "run", env=env)
    assert started.returncode == 2
    assert "KILLKRILL_LICENSE_KEY" in started.stderr


def test_replay_into_a_full_queue_says_what_is_left_and_exits_1(tmp_path: Path) -> None:
    from kk_shipper.storage import DurableQueue

    queue_file = tmp_path / "shipper" / "queue.db"
    body = b'{"message":"' + b"x" * 400 + b'"}'
    with DurableQueue(queue_file) as queue:
        queue.append("logs", [(f"r{n}", body) for n in range(3)], now=0.0)
        queue.dead_letter("logs", [1, 2, 3], reason="refused", now=0.0)
        queue.append("logs", [("queued", body)], now=0.0)
    config = tmp_path / "config.yaml"
    config.write_text(f"agent:\n  state_dir: {tmp_path}\nshipper:\n  queue_max_size: 1KB\n")

    replayed = run("shipper", "replay", "--config", str(config), env=bare_environment())

    assert replayed.returncode == 1, replayed.stderr
    assert "3 remain" in replayed.stderr and "queue is full" in replayed.stderr
    listed = run("shipper", "dead-letters", "--config", str(config), env=bare_environment())
    assert len(listed.stdout.splitlines()) == 3
