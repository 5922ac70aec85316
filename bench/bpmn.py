"""Benchmark of BPMN 2.0 interchange (issue 8): read, write and validate the library and large diagrams.

Pure CPU, no database: each figure is the median of repeated runs in one process.

    .venv/bin/python bench/bpmn.py [--repeat 20] [--record]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parkinghq.settings.test")

import django  # noqa: E402

django.setup()

from bench._record import record  # noqa: E402
from workflows.bpmn import bpmn_to_definition, definition_to_bpmn  # noqa: E402
from workflows.compiler import compile_spec  # noqa: E402

LIBRARY = ROOT / "workflows" / "library"


def chain(steps: int) -> dict:
    """A long review chain: user task → decision (back to the task or on) → system task, repeated."""
    body = [{"id": "start", "type": "start", "next": "u0"}]
    for n in range(steps // 3):
        nxt = f"u{n + 1}" if n + 1 < steps // 3 else "end"
        body += [
            {
                "id": f"u{n}",
                "type": "user",
                "name": f"Check {n}",
                "role": "Back-office agent",
                "due_in": "P1D",
                "inputs": [{"name": f"ok{n}", "type": "bool"}],
                "outcomes": {"done": f"d{n}"},
            },
            {
                "id": f"d{n}",
                "type": "decision",
                "branches": [{"when": f"ok{n} == false", "next": f"u{n}"}],
                "default": f"s{n}",
            },
            {"id": f"s{n}", "type": "system", "task": "carparks.contract_approve", "next": nxt},
        ]
    body.append({"id": "end", "type": "end"})
    return {"key": f"chain-{steps}", "name": "Chain", "steps": body}


def median_ms(func, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()

    rows = []
    for path in sorted(LIBRARY.glob("*.bpmn")):
        data = path.read_bytes()
        result = bpmn_to_definition(data)
        rows.append(
            (
                path.stem,
                len(result.spec["steps"]),
                len(data) // 1024,
                median_ms(lambda d=data: bpmn_to_definition(d), args.repeat),
                median_ms(lambda r=result: definition_to_bpmn(r.spec, layout=r.layout), args.repeat),
                median_ms(lambda r=result: compile_spec(r.spec, check_registry=False), args.repeat),
            )
        )
    for steps in (300, 1500):
        spec = chain(steps)
        xml = definition_to_bpmn(spec)
        repeat = max(3, args.repeat // 4)
        rows.append(
            (
                f"generated chain ({steps} steps, auto layout)",
                len(spec["steps"]),
                len(xml) // 1024,
                median_ms(lambda x=xml: bpmn_to_definition(x), repeat),
                median_ms(lambda s=spec: definition_to_bpmn(s), repeat),
                median_ms(lambda s=spec: compile_spec(s, check_registry=False), repeat),
            )
        )
    lines = [
        "BPMN interchange, median of repeated runs in one process (`bench/bpmn.py`). Read = safe parse "
        "(defusedxml) + mapping to the compact format + diagram positions; write = XML with diagram "
        "interchange (kept layout for library files, automatic layout for generated chains); "
        "compile = the engine's validation of the result.",
        "",
        "| workflow | steps | file KiB | read ms | write ms | compile ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {name} | {steps} | {kib} | {r:.2f} | {w:.2f} | {c:.2f} |" for name, steps, kib, r, w, c in rows]
    text = "\n".join(lines)
    print(text)
    if args.record:
        record("bpmn", text)


if __name__ == "__main__":
    main()
