"""Metrics tests import helper modules from this directory, the logs tests' fake servers and
the shipper's test harness; pytest's importlib mode puts no test directory on ``sys.path``."""

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "shipper"))
