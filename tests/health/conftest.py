"""Health tests import helper modules from this directory and the logs and shipper test
harnesses (``agent_support``, ``e2e_support``); pytest's importlib mode puts no test
directory on ``sys.path``."""

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "logs"))
sys.path.insert(0, str(HERE.parent / "shipper"))
