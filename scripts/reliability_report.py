"""Put the reliability suite's last figures into docs/reliability.md.

The fault scenarios (tests/reliability/test_fault_*.py) write what each generated and what
the receiver ended with to ``.run/reliability/results-<profile>.json``
(tests/reliability/reliability_results.py). This script renders each profile's file as a
Markdown table and replaces that profile's table in docs/reliability.md, between
``<!-- results:<profile>:begin -->`` and ``<!-- results:<profile>:end -->``; a profile
without a results file keeps its table. ``--print`` shows the tables without touching the
document.

    .venv/bin/python scripts/reliability_report.py            # after a run
    .venv/bin/python scripts/reliability_report.py --print
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "reliability.md"
RESULTS = REPO / ".run" / "reliability"
PROFILES = ("ci", "full")
COLUMNS = (
    ("Scenario", "scenario"),
    ("Generated", "generated"),
    ("Delivered", "delivered"),
    ("Lost", "lost"),
    ("Dup. stored", "duplicates_stored"),
    ("Dup. re-sent", "duplicates_resent"),
    ("Run (UTC)", "date"),
    ("Seed", "seed"),
    ("Notes", "note"),
)


def cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(document: dict) -> str:
    """The Markdown table of one results document, one row per scenario, by name."""
    lines = [
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for name, figures in sorted(document.get("scenarios", {}).items()):
        row = {"scenario": f"`{name}`", **figures}
        row["date"] = str(row.get("date", "")).replace("T", " ").removesuffix("Z")
        row["seed"] = None if row.get("seed") is None else str(row["seed"])  # no grouping
        lines.append("| " + " | ".join(cell(row.get(key)) for _, key in COLUMNS) + " |")
    return "\n".join(lines)


def replace_table(text: str, profile: str, rendered: str) -> str:
    begin, end = f"<!-- results:{profile}:begin -->", f"<!-- results:{profile}:end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{DOC}: no {begin} ... {end} markers")
    return pattern.sub(lambda _: f"{begin}\n{rendered}\n{end}", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--print", action="store_true", help="print the tables only")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args(argv)
    text = DOC.read_text()
    updated = []
    for profile in PROFILES:
        path = args.results / f"results-{profile}.json"
        if not path.exists():
            continue
        rendered = table(json.loads(path.read_text()))
        if args.print:
            print(f"## {profile}\n{rendered}\n")
        text = replace_table(text, profile, rendered)
        updated.append(profile)
    if not updated:
        print(f"no results in {args.results}: run the suite first", file=sys.stderr)
        return 1
    if not args.print:
        DOC.write_text(text)
        print(f"{DOC.relative_to(REPO)}: results of the {' and '.join(updated)} profile updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
