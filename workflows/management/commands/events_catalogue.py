"""Write the business-event catalogue into docs/workflow-engine.md (between its markers), or check it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workflows.events import catalogue_markdown

BEGIN = "<!-- events-catalogue:begin (written by `manage.py events_catalogue`) -->"
END = "<!-- events-catalogue:end -->"


def doc_path() -> Path:
    return Path(settings.BASE_DIR) / "docs" / "workflow-engine.md"


def with_catalogue(text: str) -> str:
    """``text`` with the part between the markers replaced by the catalogue generated from the code."""
    if BEGIN not in text or END not in text:
        raise CommandError(f"{doc_path()} has no catalogue markers ({BEGIN} … {END}).")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{catalogue_markdown()}{END}{tail}"


class Command(BaseCommand):
    help = "Write the business-event catalogue (from workflows/events.py) into docs/workflow-engine.md."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--check", action="store_true", help="Fail if the document is out of date.")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        path = doc_path()
        text = path.read_text()
        updated = with_catalogue(text)
        if options["check"]:
            if updated != text:
                raise CommandError(f"{path} is out of date: run `manage.py events_catalogue`.")
            self.stdout.write("The event catalogue in the docs matches the code.")
            return
        if updated != text:
            path.write_text(updated)
            self.stdout.write(f"Wrote the event catalogue into {path}.")
        else:
            self.stdout.write("The event catalogue in the docs is up to date.")
