"""Fault injection: a scripted sequence of misbehaviours, then normal service.

A script is a JSON document (``PUT /api/v1/faults`` or ``--faults FILE``)::

    {"steps": [
        {"status": 503, "retry_after": 2},          # answer 503 with Retry-After: 2
        {"status": 429, "times": 3},                 # three requests in a row get 429
        {"delay_s": 1.5},                            # wait, then handle normally
        {"delay_s": 0.5, "status": 500},             # wait, then answer 500
        {"close": true, "protocol": "http/3"},       # drop the next HTTP/3 connection
        {"status": 200, "body": {"status": "success", "processed": 1}}   # canned answer
     ],
     "poison": ["BOOM", "bad_metric_total"]}

Each ingest request consumes the first remaining step whose filters (``protocol``:
``http/3``/``http/1.1``; ``kind``: ``logs``/``metrics``) match it; requests that no step matches
are served normally, and so is everything once the script is used up. A ``delay_s`` step
without ``status`` processes (and stores) the request at once and only holds the answer back,
like a receiver whose reply is slow: a client that times out and retries sends duplicates.

``poison`` is not consumed: a log record whose message contains one of the strings, or a metric
whose name equals one, makes its whole request answer 500 every time (a receiver that chokes
on one record).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .messages import PROTOCOLS
from .validation import KINDS

_STEP_KEYS = frozenset(
    {"status", "retry_after", "delay_s", "close", "protocol", "kind", "times", "body"}
)
_MAX_TIMES = 10_000


class InvalidFaultScript(ValueError):
    """The fault script is malformed; the message says which step and why."""


@dataclass(frozen=True)
class FaultStep:
    """One scripted misbehaviour.

    Attributes:
        status: Answer with this status instead of handling the request (None: handle normally).
        retry_after: Value of the ``Retry-After`` header (seconds, or a raw HTTP-date string).
        delay_s: Wait this long before acting.
        close: Drop the connection without answering.
        protocol: Only requests over this protocol consume the step.
        kind: Only requests to this endpoint (``logs`` or ``metrics``) consume the step.
        body: JSON answer body for ``status`` (default: a generic error object).
    """

    status: int | None = None
    retry_after: int | str | None = None
    delay_s: float = 0.0
    close: bool = False
    protocol: str | None = None
    kind: str | None = None
    body: Any = None

    def matches(self, protocol: str, kind: str) -> bool:
        """True when a request over ``protocol`` to ``kind`` consumes this step."""
        return (self.protocol in (None, protocol)) and (self.kind in (None, kind))

    def describe(self) -> str:
        """A short label for the request log (``status=503``, ``close``, ``delay=1.5s``)."""
        parts = []
        if self.delay_s:
            parts.append(f"delay={self.delay_s:g}s")
        if self.close:
            parts.append("close")
        if self.status is not None:
            parts.append(f"status={self.status}")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The step as it would be written in a script (defaults omitted)."""
        raw = {
            "status": self.status,
            "retry_after": self.retry_after,
            "close": self.close or None,
            "protocol": self.protocol,
            "kind": self.kind,
            "body": self.body,
        }
        out = {key: value for key, value in raw.items() if value is not None}
        if self.delay_s:
            out["delay_s"] = self.delay_s
        return out


@dataclass
class FaultScript:
    """The pending steps and the poison list; mutated only by :meth:`take` and :meth:`replace`."""

    steps: deque[FaultStep] = field(default_factory=deque)
    poison: tuple[str, ...] = ()

    def take(self, protocol: str, kind: str) -> FaultStep | None:
        """Remove and return the first step that matches the request, if any."""
        for index, step in enumerate(self.steps):
            if step.matches(protocol, kind):
                del self.steps[index]
                return step
        return None

    def replace(self, other: FaultScript) -> None:
        """Install ``other``'s steps and poison list instead of the current ones."""
        self.steps = deque(other.steps)
        self.poison = other.poison

    def is_poisoned(self, kind: str, records: Iterable[Any]) -> bool:
        """True when any record matches the poison list (see the module docstring)."""
        if not self.poison:
            return False
        for record in records:
            if not isinstance(record, dict):
                continue
            if kind == "logs":
                message = record.get("message")
                if isinstance(message, str) and any(p in message for p in self.poison):
                    return True
            elif record.get("name") in self.poison:
                return True
        return False

    def to_json(self) -> dict[str, Any]:
        """The pending script, in the format :func:`parse_fault_script` reads."""
        return {"steps": [step.to_json() for step in self.steps], "poison": list(self.poison)}


def parse_fault_script(document: Any) -> FaultScript:
    """Build a :class:`FaultScript` from its JSON form (see the module docstring).

    Raises:
        InvalidFaultScript: for unknown keys, wrong types or contradictory steps.
    """
    if not isinstance(document, Mapping):
        raise InvalidFaultScript("fault script must be a JSON object")
    unknown = set(document) - {"steps", "poison"}
    if unknown:
        raise InvalidFaultScript(f"unknown keys: {sorted(unknown)}")
    raw_steps = document.get("steps", [])
    if not isinstance(raw_steps, list):
        raise InvalidFaultScript('"steps" must be a list')
    steps: deque[FaultStep] = deque()
    for index, raw in enumerate(raw_steps):
        step, times = _parse_step(raw, index)
        steps.extend([step] * times)
    poison = document.get("poison", [])
    if not isinstance(poison, list) or not all(isinstance(p, str) and p for p in poison):
        raise InvalidFaultScript('"poison" must be a list of non-empty strings')
    return FaultScript(steps=steps, poison=tuple(poison))


def _parse_step(raw: Any, index: int) -> tuple[FaultStep, int]:
    where = f"step {index}"
    if not isinstance(raw, Mapping):
        raise InvalidFaultScript(f"{where}: must be an object")
    unknown = set(raw) - _STEP_KEYS
    if unknown:
        raise InvalidFaultScript(f"{where}: unknown keys {sorted(unknown)}")
    status = raw.get("status")
    if status is not None and (
        isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599
    ):
        raise InvalidFaultScript(f"{where}: status must be an integer from 200 to 599")
    retry_after = raw.get("retry_after")
    if retry_after is not None:
        if isinstance(retry_after, bool) or not isinstance(retry_after, int | str):
            raise InvalidFaultScript(f"{where}: retry_after must be whole seconds or a string")
        if isinstance(retry_after, int) and retry_after < 0:
            raise InvalidFaultScript(f"{where}: retry_after must not be negative")
        if status is None:
            raise InvalidFaultScript(f"{where}: retry_after needs a status")
    delay_s = raw.get("delay_s", 0.0)
    if (
        isinstance(delay_s, bool)
        or not isinstance(delay_s, int | float)
        or not (math.isfinite(delay_s) and 0 <= delay_s <= 3600)
    ):
        raise InvalidFaultScript(f"{where}: delay_s must be a number of seconds from 0 to 3600")
    close = raw.get("close", False)
    if not isinstance(close, bool):
        raise InvalidFaultScript(f"{where}: close must be true or false")
    if close and status is not None:
        raise InvalidFaultScript(f"{where}: close and status exclude each other")
    if not close and status is None and not delay_s:
        raise InvalidFaultScript(f"{where}: needs status, delay_s or close")
    protocol = raw.get("protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        raise InvalidFaultScript(f"{where}: protocol must be one of {list(PROTOCOLS)}")
    kind = raw.get("kind")
    if kind is not None and kind not in KINDS:
        raise InvalidFaultScript(f"{where}: kind must be one of {list(KINDS)}")
    if "body" in raw and status is None:
        raise InvalidFaultScript(f"{where}: body needs a status")
    times = raw.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= _MAX_TIMES:
        raise InvalidFaultScript(f"{where}: times must be an integer from 1 to {_MAX_TIMES}")
    step = FaultStep(
        status=status,
        retry_after=retry_after,
        delay_s=float(delay_s),
        close=close,
        protocol=protocol,
        kind=kind,
        body=raw.get("body"),
    )
    return step, times
