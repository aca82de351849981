"""The final check of every scenario, by record id: each line written arrived exactly once.

The writer numbers its lines (``kkr-000000042``, `reliability_writer`); the agent gives each
record its own deterministic id (file identity and offset). The receiver stores a record id
once and counts a repeat as a duplicate without storing it. So, from the receiver's store
(its SQLite file, read-only, beside the running receiver) and its counters:

* **generated**: lines written (ids ``0 .. generated - 1``);
* **delivered**: distinct written ids stored;
* **lost**: generated - delivered;
* **duplicates stored**: copies of a written id stored beyond the first, i.e. the same line
  stored under two agent record ids (a line read twice from different offsets or files).
  The promise is 0;
* **duplicates re-sent**: records the receiver got again under a record id it already had,
  and dropped (``duplicates`` in its stats): re-sends after crashes and timeouts, harmless by
  design, the cost of never losing a line;
* **unknown**: stored log records with no written id (should be 0).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from reliability_pod import AgentPodProcesses
from reliability_writer import RECORD_ID

from kk_receiver.testing import ReceiverProcess

DATABASE_FILE = "receiver.sqlite3"


@dataclass(frozen=True)
class Delivery:
    """What one scenario generated and what the receiver ended with."""

    generated: int
    delivered: int
    duplicates_stored: int
    duplicates_resent: int
    unknown: int
    missing_sample: tuple[int, ...]
    """Up to 20 lost line numbers (for the failure message)."""
    duplicated_sample: tuple[int, ...]
    """Up to 20 line numbers stored more than once."""

    @property
    def lost(self) -> int:
        return self.generated - self.delivered

    def figures(self) -> dict[str, Any]:
        """The numbers docs/reliability.md shows."""
        out = asdict(self)
        del out["missing_sample"], out["duplicated_sample"]
        return {**out, "lost": self.lost}

    def __str__(self) -> str:
        return (
            f"generated {self.generated}, delivered {self.delivered}, lost {self.lost} "
            f"(e.g. {list(self.missing_sample)}), duplicates stored {self.duplicates_stored} "
            f"(e.g. {list(self.duplicated_sample)}), duplicates re-sent "
            f"{self.duplicates_resent}, unknown {self.unknown}"
        )


def stored_line_numbers(receiver: ReceiverProcess) -> tuple[Counter[int], int]:
    """How often each written line number is stored, and how many log records carry none."""
    uri = f"file:{receiver.data_dir / DATABASE_FILE}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        messages = db.execute(
            "SELECT json_extract(record, '$.message') FROM records WHERE kind = 'logs'"
        ).fetchall()
    counts: Counter[int] = Counter()
    unknown = 0
    for (message,) in messages:
        found = RECORD_ID.search(message or "")
        if found is None:
            unknown += 1
        else:
            counts[int(found[1])] += 1
    return counts, unknown


def audit(receiver: ReceiverProcess, generated: int) -> Delivery:
    """The receiver's account of lines ``0 .. generated - 1``."""
    counts, unknown = stored_line_numbers(receiver)
    written = [n for n in counts if n < generated]
    missing = (n for n in range(generated) if n not in counts)
    duplicated = sorted(n for n, c in counts.items() if c > 1)
    return Delivery(
        generated=generated,
        delivered=len(written),
        duplicates_stored=sum(c - 1 for c in counts.values()),
        duplicates_resent=receiver.stats()["by_kind"]["logs"]["duplicates"],
        unknown=unknown + sum(counts[n] for n in counts if n >= generated),
        missing_sample=tuple(n for _, n in zip(range(20), missing, strict=False)),
        duplicated_sample=tuple(duplicated[:20]),
    )


def wait_all_delivered(pod: AgentPodProcesses, generated: int, timeout: float) -> Delivery:
    """Wait until the receiver holds ``generated`` distinct log records, then audit.

    Polls the receiver's cheap counter (distinct record ids); a line lost keeps it short and
    the wait ends in an assertion that shows the audit and every service's recent logs.
    """

    def enough() -> bool:
        return pod.receiver.stats()["by_kind"]["logs"]["unique_ids"] >= generated

    try:
        pod.wait_for(enough, timeout, f"{generated} log records at the receiver")
    except AssertionError as exc:
        raise AssertionError(f"{audit(pod.receiver, generated)}\n{exc}") from None
    return audit(pod.receiver, generated)


def assert_exactly_once(delivery: Delivery) -> None:
    """Every line arrived, none was stored twice, nothing unknown was stored."""
    assert (delivery.lost, delivery.duplicates_stored, delivery.unknown) == (0, 0, 0), str(delivery)


def stored_containing(receiver: ReceiverProcess, text: str) -> int:
    """How many stored log records have ``text`` in their message."""
    uri = f"file:{receiver.data_dir / DATABASE_FILE}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM records WHERE kind = 'logs'"
            " AND instr(json_extract(record, '$.message'), ?) > 0",
            (text,),
        ).fetchone()
    return int(count)
