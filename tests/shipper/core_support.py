"""Shared pieces of the delivery-core stories: settings, records, answers, and a driver
that runs the core like the app does, with a receiver that answers instantly."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from kk_shipper.core import (
    Attempt,
    Effect,
    OutputDelivery,
    OutputSettings,
    ReachabilityCheck,
    RecordsDelivered,
)
from kk_shipper.types import HttpResponse, Protocol, QueuedRecord, TransportError

H1, H3 = Protocol.H1, Protocol.H3
LICENSE_KEY = "PENG-A1B2-C3D4-E5F6-G7H8-J9K0"
API_KEY = "api-key-0123456789-secret"
URL = "https://recv:8443/api/v1/logs"

Answer = HttpResponse | TransportError
Receiver = Callable[[Attempt, float], Answer]
Reachability = Callable[[ReachabilityCheck, float], TransportError | None]


def settings(**overrides: object) -> OutputSettings:
    values: dict[str, object] = {
        "kind": "logs",
        "url": URL,
        "license_key": LICENSE_KEY,
        "api_key": API_KEY,
        "source": "prod/node-a",
        "cluster_name": "prod",
        "node_name": "node-a",
        "batch_size": 4,
        "flush_interval_s": 5.0,
        "max_in_flight": 2,
        "compression": "none",
    }
    values.update(overrides)
    return OutputSettings(**values)  # type: ignore[arg-type]


def delivery(**overrides: object) -> OutputDelivery:
    return OutputDelivery(settings(**overrides), rng=random.Random(1234))


def records(first: int, count: int, queued_at: float = 0.0) -> list[QueuedRecord]:
    made = []
    for seq in range(first, first + count):
        body = json.dumps(
            {
                "id": f"rec-{seq}",
                "timestamp": "2026-11-26T10:00:00.123456789Z",
                "log_level": "info",
                "message": f"line {seq}",
                "service_name": "checkout",
            }
        ).encode()
        made.append(QueuedRecord(seq=seq, record_id=f"rec-{seq}", body=body, queued_at=queued_at))
    return made


def reply(
    status: int, document: object = None, protocol: Protocol = H3, **headers: str
) -> HttpResponse:
    body = b"" if document is None else json.dumps(document).encode()
    return HttpResponse(status, headers, body, protocol)


def stored(attempt: Attempt) -> HttpResponse:
    """What the reference receiver answers when it stores the whole batch."""
    return reply(200, {"status": "success", "processed": len(attempt.records)}, attempt.protocol)


def quic_down(reason: str = "handshake_timeout") -> TransportError:
    return TransportError(reason, "no QUIC handshake within 1s", protocol=H3)


def feed(core: OutputDelivery, attempt: Attempt, answer: Answer, now: float) -> None:
    if isinstance(answer, TransportError):
        core.attempt_failed(attempt, answer, now)
    else:
        core.attempt_answered(attempt, answer, now)


def always_reachable(check: ReachabilityCheck, now: float) -> TransportError | None:
    return None


def run(
    core: OutputDelivery,
    receiver: Receiver,
    *,
    start: float,
    until: float,
    reachable: Reachability = always_reachable,
) -> list[Attempt]:
    """Drive ``core`` like the app does, with a receiver that answers instantly; reachability
    checks pass unless ``reachable`` returns an error."""
    now, sent = start, []
    while True:
        attempts = core.next_attempts(now)
        for attempt in attempts:
            feed(core, attempt, receiver(attempt, now), now)
        sent += attempts
        checks = core.next_checks(now)
        for check in checks:
            error = reachable(check, now)
            if error is None:
                core.check_passed(check, now)
            else:
                core.check_failed(check, error, now)
        if attempts or checks:
            continue
        deadline = core.next_deadline()
        if deadline is None or deadline > until:
            return sent
        # The timer contract: right after next_attempts, the deadline is in the future.
        assert deadline > now, f"deadline {deadline} would spin at {now}"
        now = deadline


def of_type(effects: list[Effect], kind: type) -> list:  # type: ignore[type-arg]
    return [effect for effect in effects if isinstance(effect, kind)]


def delivered_seqs(effects: list[Effect]) -> list[int]:
    return sorted(seq for e in of_type(effects, RecordsDelivered) for seq in e.seqs)
