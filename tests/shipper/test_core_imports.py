"""The delivery core is sans-IO: a mechanical scan of ``kk_shipper/core`` imports and calls."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kk_shipper.core

CORE = Path(kk_shipper.core.__file__).parent

FORBIDDEN_MODULES = frozenset(
    {
        "aioquic",
        "asyncio",
        "h11",
        "httpx",
        "os",
        "selectors",
        "socket",
        "sqlite3",
        "ssl",
        "subprocess",
        "threading",
        "time",
        "zmq",
    }
)
"""IO, clocks and event loops belong to the app and the adapters, never to the core."""

FORBIDDEN_CALLS = frozenset({"open", "input", "print"})
CLOCK_ATTRIBUTES = frozenset({"now", "utcnow", "today", "time", "monotonic"})
"""``datetime.now()`` and friends read a clock: time is passed in as ``now``."""


def violations(source: str) -> list[str]:
    """Every forbidden import, builtin IO call, clock read or module-level random use."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            names = []
        found += [f"import {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"{func.id}()")
            if isinstance(func, ast.Attribute) and func.attr in CLOCK_ATTRIBUTES:
                found.append(f".{func.attr}()")
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "random"
                and func.attr != "Random"
            ):
                # The module-level generator is global state; the core takes an injected Random.
                found.append(f"random.{func.attr}()")
    return found


def core_files() -> list[Path]:
    return sorted(CORE.glob("*.py"))


def test_the_core_has_modules_to_scan() -> None:
    names = {path.name for path in core_files()}
    assert {"delivery.py", "batching.py", "outcomes.py", "backoff.py"} <= names


@pytest.mark.parametrize("path", core_files(), ids=lambda path: path.name)
def test_core_module_does_no_io(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import asyncio", ["import asyncio"]),
        ("from socket import socket", ["import socket"]),
        ("import aioquic.quic.connection as c", ["import aioquic.quic.connection"]),
        ("from httpx import AsyncClient", ["import httpx"]),
        ("import time", ["import time"]),
        ("import sqlite3, zmq", ["import sqlite3", "import zmq"]),
        ("data = open('x').read()", ["open()"]),
        ("from datetime import datetime\nx = datetime.now()", [".now()"]),
        ("import random\nx = random.random()", ["random.random()"]),
        ("import random\nrng = random.Random(1)", []),
        ("from . import batching", []),
    ],
)
def test_the_scan_catches_what_it_should(source: str, expected: list[str]) -> None:
    """The scanner itself: a scan that can never fail would prove nothing."""
    assert violations(source) == expected
