"""Seeded fault plans: which container is hit when, decided before the run (no IO, no clock).

A moment is counted in lines the writer has written, not in seconds: "kill the shipper after
1,240 more lines, start it again after 310 more" happens at a random point of the stream, yet
in an order the test controls and a seed reproduces. `describe` prints a plan, so a failing
run's output says exactly what happened.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class KillStep:
    """SIGKILL ``service`` after ``lines_before`` more lines; restart after ``lines_down``."""

    service: str
    lines_before: int
    lines_down: int


def kill_plan(
    seed: int, services: Sequence[str], rounds: int, rate: float, *, max_gap_s: float = 2.0
) -> list[KillStep]:
    """``rounds`` kills of each service in a seeded order, at seeded moments.

    Each moment falls 0.1 to ``max_gap_s`` seconds of writing after the previous restart,
    and each service stays down for 0.1 to 1.5 seconds of writing; no service is hit twice
    in a row (a restart gets to do some work before the next kill).
    """
    rng = random.Random(seed)
    order: list[str] = []
    for _ in range(rounds):
        batch = list(services)
        rng.shuffle(batch)
        if order and batch[0] == order[-1]:
            batch.append(batch.pop(0))
        order += batch
    return [
        KillStep(
            service,
            lines_before=int(rate * rng.uniform(0.1, max_gap_s)),
            lines_down=int(rate * rng.uniform(0.1, 1.5)),
        )
        for service in order
    ]


def flapping_steps(seed: int, requests: int) -> list[dict[str, object]]:
    """A receiver fault script that flaps between 503 and normal service.

    Runs of one to four 503s alternate with runs of one to four normally served requests
    (a ``delay_s`` of 10 ms is the script's way to say "serve this one"), ``requests`` steps
    in all, starting with a 503.
    """
    rng = random.Random(seed)
    steps: list[dict[str, object]] = []
    failing = True
    planned = 0
    while planned < requests:
        run = min(rng.randint(1, 4), requests - planned)
        step: dict[str, object] = {"status": 503} if failing else {"delay_s": 0.01}
        steps.append({**step, "times": run})
        planned += run
        failing = not failing
    return steps


def describe(steps: Sequence[KillStep]) -> str:
    """One line per step, e.g. ``shipper: kill after 1240 lines, down for 310``."""
    return "\n".join(
        f"{n}. {s.service}: kill after {s.lines_before} lines, down for {s.lines_down}"
        for n, s in enumerate(steps, 1)
    )
