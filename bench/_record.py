"""Write a benchmark's figures into its own section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import time
from datetime import UTC, datetime
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    cores = os.cpu_count()
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        mem = "unknown memory"
    return f"{platform.machine()}, {cores} cores, {mem}, Python {platform.python_version()}, {platform.system()}"


def python_speed_ms() -> float:
    """The machine's speed for pure Python right now: the best of five runs of a fixed loop (2 M additions).
    The 2-core machine's speed varies with its neighbours; this puts a run's figures in proportion."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def record(section: str, markdown: str) -> None:
    """Replace the text between ``<!-- bench:SECTION -->`` markers (appending the section if new)."""
    stamp = f"_Recorded {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}._\n\n"
    body = f"<!-- bench:{section} -->\n{stamp}{markdown.strip()}\n<!-- /bench:{section} -->"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- bench:{re.escape(section)} -->.*?<!-- /bench:{re.escape(section)} -->", re.S)
    text = pattern.sub(lambda _: body, text) if pattern.search(text) else text.rstrip() + f"\n\n{body}\n"
    DOC.write_text(text)
