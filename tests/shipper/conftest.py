"""Shipper tests import their helper modules (``e2e_support``) from this directory;
pytest's importlib mode puts no test directory on ``sys.path``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
