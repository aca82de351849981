"""Deploy tests import their helper module (``manifests``) from this directory; pytest's
importlib mode puts no test directory on ``sys.path``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
