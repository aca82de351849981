"""Logs tests import helper modules from this directory and the shipper's test harness
(``e2e_support``); pytest's importlib mode puts no test directory on ``sys.path``. The
end-to-end modules share the reference receiver and log root fixtures below."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "shipper"))


from kk_receiver.testing import ReceiverProcess  # noqa: E402 - after the path set-up


@pytest.fixture
def receiver() -> Iterator[ReceiverProcess]:
    """A reference receiver process for one test."""
    with ReceiverProcess() as running:
        yield running


@pytest.fixture
def log_root(tmp_path: Path) -> Path:
    """Where a test writes its ``/var/log``-shaped tree."""
    return tmp_path / "var-log"
