"""The parsing core and record builder stay sans-IO: no asyncio, files, sockets or clocks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kk_logs

SRC = Path(kk_logs.__file__).parent
CORE = [*sorted((SRC / "parsing").glob("*.py")), SRC / "records.py"]
FORBIDDEN_MODULES = {"asyncio", "time", "os", "io", "socket", "pathlib", "threading", "zmq"}
FORBIDDEN_CALLS = {"open", "now", "utcnow", "today", "time", "monotonic", "perf_counter"}


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_module_does_no_io_and_reads_no_clock(path: Path) -> None:
    """Times and bytes are passed in; nothing here reaches for them itself."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names = {(node.module or "").split(".")[0]}
        else:
            names = set()
        assert not names & FORBIDDEN_MODULES, (path.name, names)
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            assert name not in FORBIDDEN_CALLS, (path.name, node.lineno, name)
