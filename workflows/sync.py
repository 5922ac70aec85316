"""Install every app's ``<app>/definitions/*.json`` (used by workflow_sync, the demo loader and tests)."""

from __future__ import annotations

import json
from pathlib import Path

from django.apps import apps

from workflows.errors import DefinitionInvalid


def definition_files() -> list[Path]:
    files: list[Path] = []
    for config in apps.get_app_configs():
        folder = Path(config.path) / "definitions"
        if folder.is_dir():
            files.extend(sorted(folder.glob("*.json")))
    return files


def sync_definitions(*, user=None, stdout=None) -> list[tuple[str, int, bool]]:  # type: ignore[no-untyped-def]
    """Install all definition files; returns (key, version number, new?) per file.

    Raises DefinitionInvalid naming the file and every problem if one does not validate.
    """
    from workflows.models import WorkflowVersion
    from workflows.services import definition_install

    installed = []
    files = definition_files()
    # A call step names its sub-process by key and finds it when it runs, so the order of
    # installation does not matter.
    specs = []
    for path in files:
        try:
            spec = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DefinitionInvalid([f"{path}: not valid JSON: {exc}"]) from None
        specs.append((path, spec))
    for path, spec in specs:
        before = WorkflowVersion.objects.filter(definition__key=spec.get("key")).count()
        try:
            version = definition_install(spec=spec, user=user)
        except DefinitionInvalid as exc:
            raise DefinitionInvalid([f"{path.name}: {e}" for e in exc.errors]) from None
        new = WorkflowVersion.objects.filter(definition__key=spec.get("key")).count() > before
        installed.append((version.definition.key, version.number, new))
        if stdout is not None:
            state = "installed" if new else "unchanged"
            stdout.write(f"{version.definition.key} v{version.number} {state} ({path.relative_to(path.parents[2])})\n")
    return installed
