"""manage.py workflow_import FILE [--key KEY] [--publish]: a BPMN 2.0 file becomes a workflow's draft."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workflows.authoring import definition_import
from workflows.bpmn import MAX_BYTES, BpmnError


class Command(BaseCommand):
    help = (
        "Import a BPMN 2.0 file (bpmn.io, Camunda Modeler 7 or 8) as the draft of a workflow; with --publish "
        "publish it when it is valid. A refused file changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the .bpmn file")
        parser.add_argument("--key", help="workflow key (default: the process id in the file)")
        parser.add_argument("--publish", action="store_true", help="publish the imported version when it is valid")
        parser.add_argument("--comment", default="", help="note stored with the version")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        if path.stat().st_size > MAX_BYTES:
            raise CommandError(f"{path}: larger than {MAX_BYTES // 1024 // 1024} MB; refused")
        try:
            saved = definition_import(
                data=path.read_bytes(),
                key=options["key"],
                publish=options["publish"],
                comment=options["comment"] or f"Imported from {path.name}",
            )
        except BpmnError as exc:
            lines = [f"{path}: {exc.summary}. Nothing was changed."]
            lines += [f"  - {problem}" for problem in exc.problems if str(problem) != exc.summary]
            raise CommandError("\n".join(lines)) from None
        for warning in saved.warnings:
            self.stderr.write(self.style.WARNING(f"warning: {warning}"))
        version = saved.version
        assert version is not None
        key = version.definition.key
        if saved.problems:
            self.stdout.write(
                self.style.WARNING(f"{key}: saved as draft version {version.number}; it cannot be published yet:")
            )
            for problem in saved.problems:
                where = f"{problem['element_id']}: " if problem["element_id"] else ""
                self.stdout.write(f"  - {where}{problem['message']}")
            if options["publish"]:
                raise CommandError(f"{key}: not published (see the problems above)")
            return
        self.stdout.write(self.style.SUCCESS(f"{key}: version {version.number} is {version.state}."))
