"""manage.py workflow_export KEY [--version N] [--output FILE]: a workflow version as BPMN 2.0 XML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workflows.authoring import version_bpmn, version_for
from workflows.errors import DefinitionNotFound


class Command(BaseCommand):
    help = "Write a workflow version (default: the published one) as BPMN 2.0 XML with diagram interchange."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # our --version (a workflow version number) replaces Django's --version (its own release)
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", help="workflow key")
        parser.add_argument("--version", type=int, dest="number", help="version number (default: published)")
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            version = version_for(options["key"], options["number"])
        except DefinitionNotFound as exc:
            raise CommandError(str(exc)) from None
        xml = version_bpmn(version)
        if options["output"]:
            Path(options["output"]).write_text(xml, encoding="utf-8")
            self.stderr.write(f"{options['key']} v{version.number} ({version.state}) → {options['output']}")
        else:
            self.stdout.write(xml, ending="")
