"""Coverage-guided fuzzing with atheris (libFuzzer) of every parser and decoder at once: CRI
and docker log lines, Prometheus text, /stats/summary JSON, the IPC envelope and the config
file (targets and what each accepts as a clean refusal: input_atheris_targets.py).

CI runs 20,000 inputs (about 2 CPU-seconds); ``KK_TEST_PROFILE=full`` runs 500,000. Where
atheris does not install (it ships wheels for CPython on Linux and macOS x86-64) the test
is skipped, saying so; the hypothesis properties beside it cover the same parsers.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

TARGETS = Path(__file__).with_name("input_atheris_targets.py")
RUNS = 500_000 if os.environ.get("KK_TEST_PROFILE") == "full" else 20_000


@pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (pip install atheris: wheels for CPython on x86-64)",
)
def test_no_input_crashes_any_parser_or_decoder(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(TARGETS), f"-runs={RUNS}", "-timeout=30", "-rss_limit_mb=1024"],
        cwd=tmp_path,  # where libFuzzer writes crash-<hash> with the failing input
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    crashes = sorted(path.name for path in tmp_path.glob("crash-*"))
    assert run.returncode == 0, f"crash inputs {crashes}:\n{run.stderr[-4000:]}"
    assert f"Done {RUNS} runs" in run.stderr
