"""The reliability suite: the assembled agent under faults and bad input (issue 13).

Files here: ``test_fault_*.py`` (the four services as separate processes, as in the pod,
against the reference receiver, under crashes, outages and rotation), ``test_input_*.py`` and
``test_security_*.py`` (bad input, TLS, secrets, manifests), and their support modules
``reliability_*.py`` / ``chaos_*.py``. pytest's importlib mode puts no test directory on
``sys.path``, so this file puts this one there (and ``tests/shipper``, ``tests/logs`` for
their harnesses), and support modules are imported by their unique basenames.

Size: ``KK_TEST_PROFILE`` is ``ci`` (the default, the whole directory within about ten
minutes on a busy 2-core machine) or ``full`` (``make chaos``); `profile` tells a test which.
Randomness: every random choice comes from the `chaos_seed` fixture, which takes
``KK_CHAOS_SEED`` when set and otherwise draws a seed and prints it (``-rA`` or a failure
shows it), so a run can be repeated. Figures: `scenario_results` records what each scenario
generated and delivered into ``KK_RELIABILITY_RESULTS`` (default
``.run/reliability/results-<profile>.json``), which ``scripts/reliability-report`` turns into
the results table of docs/reliability.md.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
for path in (HERE.parent / "shipper", HERE.parent / "logs", HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from reliability_results import ResultsFile, default_results_path  # noqa: E402 - after sys.path

PROFILE = "full" if os.environ.get("KK_TEST_PROFILE") == "full" else "ci"


@pytest.fixture(scope="session")
def profile() -> str:
    """``"ci"`` (default) or ``"full"``, from ``KK_TEST_PROFILE``."""
    return PROFILE


@pytest.fixture
def chaos_seed(request: pytest.FixtureRequest) -> int:
    """The seed of this test's random choices: ``KK_CHAOS_SEED`` or a fresh one, printed."""
    raw = os.environ.get("KK_CHAOS_SEED")
    seed = int(raw) if raw else random.SystemRandom().randrange(2**32)
    request.node.user_properties.append(("chaos_seed", seed))
    print(f"chaos seed {seed} (repeat with KK_CHAOS_SEED={seed})")
    return seed


@pytest.fixture(scope="session")
def results_file() -> Iterator[ResultsFile]:
    """The session's results file; written as each scenario finishes."""
    raw = os.environ.get("KK_RELIABILITY_RESULTS")
    yield ResultsFile(Path(raw) if raw else default_results_path(PROFILE), PROFILE)


@pytest.fixture
def scenario_results(results_file: ResultsFile, request: pytest.FixtureRequest) -> ResultsFile:
    """Where a scenario records its figures (``scenario_results.record(name, figures)``)."""
    results_file.current_test = request.node.nodeid
    return results_file
