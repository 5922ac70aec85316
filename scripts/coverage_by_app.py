"""Print line coverage per app from the JSON report of a `make test` run (no threshold: the numbers are read).

Usage: python scripts/coverage_by_app.py var/coverage.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def by_app(report: dict) -> dict[str, tuple[int, int]]:
    """{app: (statements, missed)} summed over the app's files (the first folder of each path)."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for path, data in report["files"].items():
        app = Path(path).parts[0] if len(Path(path).parts) > 1 else "(top level)"
        totals[app][0] += data["summary"]["num_statements"]
        totals[app][1] += data["summary"]["missing_lines"]
    return {app: (statements, missed) for app, (statements, missed) in sorted(totals.items())}


def table(totals: dict[str, tuple[int, int]]) -> str:
    rows = [f"{'app':<16}{'statements':>12}{'missed':>10}{'cover':>9}"]
    for app, (statements, missed) in totals.items():
        rows.append(f"{app:<16}{statements:>12}{missed:>10}{_percent(statements, missed):>9}")
    statements, missed = sum(s for s, _ in totals.values()), sum(m for _, m in totals.values())
    rows.append(f"{'TOTAL':<16}{statements:>12}{missed:>10}{_percent(statements, missed):>9}")
    return "\n".join(rows)


def _percent(statements: int, missed: int) -> str:
    return f"{100 * (statements - missed) / statements:.1f}%" if statements else "-"


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "var/coverage.json")
    if not path.exists():
        print(f"coverage per app: no report at {path} (the test run stopped before writing it)")
        return 0
    print("\ncoverage per app")
    print(table(by_app(json.loads(path.read_text()))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
