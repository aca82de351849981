"""The core modules stay sans-IO: no sockets, files, clocks, event loop or HTTP library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kk_receiver"
CORE_MODULES = ["core", "messages", "validation", "encoding", "faults", "stats", "outcome"]
FORBIDDEN = {
    "asyncio",
    "socket",
    "ssl",
    "time",
    "sqlite3",
    "os",
    "pathlib",
    "subprocess",
    "aioquic",
    "h11",
    "httpx",
    "random",
    "threading",
}


def imported_modules(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_imports_no_io(module: str) -> None:
    """Each core module imports nothing that does IO or reads a clock."""
    source = (PACKAGE / f"{module}.py").read_text()
    assert imported_modules(source) & FORBIDDEN == set()


def test_checker_detects_forbidden_imports() -> None:
    """The checker itself sees both import forms."""
    assert imported_modules("import time\nfrom asyncio import sleep\n") == {"time", "asyncio"}
