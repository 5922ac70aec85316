"""Apps never name a workflow: they emit business events, and the workflows bound to them start.

The test walks every app's Python source outside ``workflows/`` (tests and migrations aside) and
fails on a call to a start function of the engine, and on a string literal that is the key of a
shipped workflow (a built-in definition or a library workflow).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPS = ["accounts", "billing", "carparks", "connect", "monitoring", "notifications", "parkinghq"]
START_FUNCTIONS = {"process_start", "_process_start", "process_start_manual"}


def shipped_keys() -> set[str]:
    from workflows.bpmn import bpmn_to_definition

    keys = {json.loads(p.read_text())["key"] for p in ROOT.glob("*/definitions/*.json")}
    keys |= {bpmn_to_definition(p.read_bytes()).spec["key"] for p in (ROOT / "workflows" / "library").glob("*.bpmn")}
    return keys


def sources() -> list[Path]:
    files = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = set(path.relative_to(ROOT).parts)
            if parts & {"tests", "migrations"} or path.name.startswith("test_"):
                continue
            files.append(path)
    return files


def offences(path: Path, keys: set[str]) -> list[str]:
    found = []
    label = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in START_FUNCTIONS:
                found.append(f"{label}:{node.lineno}: calls {name}()")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in keys:
            found.append(f"{label}:{node.lineno}: names workflow {node.value!r}")
    return found


def test_it_knows_the_shipped_workflows():
    keys = shipped_keys()
    assert {"season-contract", "customer-case", "failed-payment", "access-card-replacement"} <= keys


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_it_finds_no_workflow_key_in_app_code(path):
    assert offences(path, shipped_keys()) == []


def test_it_would_catch_a_literal_key(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text(
        'from workflows.services import process_start\nprocess_start(definition_key="season-contract")\n'
    )
    assert offences(planted, shipped_keys()) == [
        "planted.py:2: calls process_start()",
        "planted.py:2: names workflow 'season-contract'",
    ]
