"""Container log lines in the CRI format the kubelet's runtimes write (no IO, no clock).

A physical line is ``<RFC 3339 nano timestamp> <stream> <P|F> <text>\\n``, 100-300 bytes
here. The mix roughly follows a node's workloads: JSON application logs, logfmt, Java-style
text, klog, and stderr errors. About 5 % of the logical lines are written as a ``P`` piece
followed by the ``F`` piece of the same line (stdout), which the logs service must join.

Every logical line carries a unique token, ``kkt`` + 9 digits: the benchmark checks delivery
by token, independently of the record ids the agent computes. A joined line carries its
token at both ends, so a line shipped as two records (a broken join) shows up as a token
stored twice, and a lost piece as a token missing.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

TOKEN_PATTERN = re.compile(rb"kkt(\d{9})")
PARTIAL_SHARE = 0.05
T = TypeVar("T")

_METHODS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
_PATHS = ("/api/v1/items", "/api/v1/orders", "/api/v1/cart", "/healthz", "/api/v2/search")
_STATUSES = (200, 200, 200, 200, 201, 204, 304, 400, 404, 500)
_LEVELS = ("info", "info", "info", "info", "debug", "warn", "error")
_LOGGERS = ("http", "db", "cache", "worker", "grpc")
_JAVA_CLASSES = (
    "c.e.shop.OrderService",
    "c.e.shop.CartController",
    "o.h.engine.jdbc.spi.SqlExceptionHelper",
    "c.e.payments.GatewayClient",
)
_KLOG_FILES = ("reconciler.go", "controller.go", "leaderelection.go", "server.go")
_ERRORS = (
    "connection to db-primary:5432 refused",
    "upstream payment-gateway timed out after 30s",
    "context deadline exceeded while calling inventory",
    "TLS handshake with kafka-2:9093 failed: certificate expired",
)


class LineMaker:
    """Makes the CRI bytes of one logical line at a time; seeded, so reproducible."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - test data, not secrets
        self._random = self._rng.random
        self._kinds: tuple[Callable[[str, str], tuple[str, str]], ...] = (
            self._json,
            self._json,
            self._json,
            self._json,
            self._logfmt,
            self._logfmt,
            self._java,
            self._java,
            self._klog,
            self._stderr_error,
        )

    def line(self, token: int, timestamp: str) -> bytes:
        """The physical line(s) of logical line ``token``, written at ``timestamp``
        (RFC 3339 with nanoseconds, e.g. ``2026-12-02T10:00:00.123456789Z``)."""
        tok = f"kkt{token:09d}"
        rnd = self._random
        if rnd() < PARTIAL_SHARE:
            return self._partial(tok, timestamp)
        stream, text = _pick(rnd, self._kinds)(tok, timestamp)
        return f"{timestamp} {stream} F {text}\n".encode()

    # One generator per kind of workload; each returns (stream, text).

    def _json(self, tok: str, timestamp: str) -> tuple[str, str]:
        rnd = self._random
        level = _pick(rnd, _LEVELS)
        text = (
            f'{{"level":"{level}","ts":"{timestamp[:23]}Z",'
            f'"logger":"{_pick(rnd, _LOGGERS)}","msg":"request handled",'
            f'"method":"{_pick(rnd, _METHODS)}",'
            f'"path":"{_pick(rnd, _PATHS)}/{int(rnd() * 100000)}",'
            f'"status":{_pick(rnd, _STATUSES)},'
            f'"duration_ms":{_between(rnd, 1, 900)}.{int(rnd() * 10)},'
            f'"tok":"{tok}"}}'
        )
        return "stdout", text

    def _logfmt(self, tok: str, timestamp: str) -> tuple[str, str]:
        rnd = self._random
        level = _pick(rnd, _LEVELS)
        text = (
            f'time={timestamp[:23]}Z level={level} msg="slow query" db=orders '
            f"table=line_items duration={_between(rnd, 1, 5)}.{int(rnd() * 100):02d}s "
            f"rows={int(rnd() * 20000)} tok={tok}"
        )
        return "stdout", text

    def _java(self, tok: str, timestamp: str) -> tuple[str, str]:
        rnd = self._random
        level = ("INFO ", "INFO ", "WARN ", "DEBUG")[int(rnd() * 4)]
        text = (
            f"{timestamp[:10]} {timestamp[11:23]} {level} "
            f"[http-nio-8080-exec-{_between(rnd, 1, 50)}] "
            f"{_pick(rnd, _JAVA_CLASSES)} - order {int(rnd() * 10**6)} "
            f"placed for customer {int(rnd() * 10**5)}, {_between(rnd, 1, 9)} items, "
            f"total {_between(rnd, 5, 900)}.{int(rnd() * 100):02d} EUR {tok}"
        )
        return "stdout", text

    def _klog(self, tok: str, timestamp: str) -> tuple[str, str]:
        rnd = self._random
        text = (
            f"I{timestamp[5:7]}{timestamp[8:10]} {timestamp[11:26]}       1 "
            f"{_pick(rnd, _KLOG_FILES)}:{_between(rnd, 40, 900)}] "
            f'"Reconciled object" controller="deployment" namespace="shop" '
            f'name="checkout-{int(rnd() * 100)}" duration="{_between(rnd, 1, 90)}ms" {tok}'
        )
        return "stdout", text

    def _stderr_error(self, tok: str, timestamp: str) -> tuple[str, str]:
        rnd = self._random
        text = (
            f"ERROR {_pick(rnd, _ERRORS)}, retrying in "
            f"{_between(rnd, 1, 30)}s (attempt {_between(rnd, 1, 10)}/10) {tok}"
        )
        return "stderr", text

    def _partial(self, tok: str, timestamp: str) -> bytes:
        # A long line the runtime wrote in two pieces; each piece stays within 300 bytes.
        rnd = self._random
        trace = f"{self._rng.getrandbits(384):096x}"
        text = (
            f'{tok} level=error msg="request failed" error="{_pick(rnd, _ERRORS)}" '
            f"trace_id={trace[:32]} span_id={trace[32:48]} request_id={trace[48:]} "
            f"user={int(rnd() * 10**6)} cart_items={int(rnd() * 30)} "
            f"payload_bytes={int(rnd() * 10**6)} attempt={_between(rnd, 1, 5)} {tok}"
        )
        cut = len(text) // 2 + _between(rnd, -20, 20)
        return (f"{timestamp} stdout P {text[:cut]}\n{timestamp} stdout F {text[cut:]}\n").encode()


def _pick(rnd: Callable[[], float], choices: Sequence[T]) -> T:
    # random.choice/randrange cost several times more; these lines need no exactness.
    return choices[int(rnd() * len(choices))]


def _between(rnd: Callable[[], float], low: int, high: int) -> int:
    """A whole number from ``low`` (included) to ``high`` (excluded)."""
    return low + int(rnd() * (high - low))


def synthetic_timestamp(index: int) -> str:
    """A CRI timestamp for backlog line ``index``: 2026-12-02 from 10:00, 20 µs apart."""
    nanos = index * 20_000
    seconds, nanos = divmod(nanos, 1_000_000_000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"2026-12-02T{10 + hours:02d}:{minutes:02d}:{seconds:02d}.{nanos:09d}Z"


def wall_timestamp(epoch_s: float) -> str:
    """A CRI timestamp for wall-clock time ``epoch_s`` (what a runtime writes while live)."""
    whole = datetime.fromtimestamp(int(epoch_s), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{int((epoch_s % 1) * 1e9):09d}Z"
