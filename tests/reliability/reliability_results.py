"""The figures of each reliability scenario, kept in one JSON file per profile.

Each scenario records what it generated and what the receiver ended with (see
`reliability_audit.Delivery`), its seed and a short note; ``scripts/reliability-report``
renders the file as the results table of docs/reliability.md. Entries of scenarios that did
not run this time are kept, so a partial run updates only its own rows::

    {"profile": "ci",
     "scenarios": {"kill_each_container": {"test": "tests/reliability/...::test_...",
                                           "date": "2026-12-02T18:00:00Z", "seed": 123,
                                           "generated": 9000, "delivered": 9000,
                                           "duplicates_stored": 0, "duplicates_resent": 412,
                                           "note": "..."}}}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def default_results_path(profile: str) -> Path:
    """``.run/reliability/results-<profile>.json`` in the checkout (ignored by git)."""
    return REPO / ".run" / "reliability" / f"results-{profile}.json"


class ResultsFile:
    """Reads, updates and rewrites the results file, one scenario at a time."""

    def __init__(self, path: Path, profile: str) -> None:
        self.path = path
        self.profile = profile
        self.current_test = ""

    def load(self) -> dict[str, Any]:
        """The file's document, or an empty one for this profile."""
        try:
            document = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            document = {}
        if document.get("profile") != self.profile:
            document = {"profile": self.profile, "scenarios": {}}
        return document

    def record(
        self, scenario: str, figures: Mapping[str, Any], *, seed: int | None = None, note: str = ""
    ) -> None:
        """Store ``scenario``'s figures (replacing its previous entry) and rewrite the file."""
        document = self.load()
        document["scenarios"][scenario] = {
            "test": self.current_test,
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seed": seed,
            **figures,
            "note": note,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        partial.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        partial.replace(self.path)
