"""Write a workflow's history as an IEEE 1849-2016 XES event log (for process-mining tools)."""

from __future__ import annotations

import os
import tempfile
from datetime import date, datetime, time, timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from workflows.xes import UnknownWorkflow, gzipped, xes_stream


def _day(raw: str, option: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"{option} “{raw}” is not a date: use YYYY-MM-DD.") from None


class Command(BaseCommand):
    help = (
        "Write the processes of workflow KEY started from --from to --to (both days included, in the portal's "
        "time zone) as an XES event log to FILE ('-' for standard output; a FILE ending in .gz is gzipped)."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("key", help="The workflow's key (see workflow_list).")
        parser.add_argument("file", help="Where to write the log; '-' for standard output.")
        parser.add_argument("--from", dest="day_from", required=True, help="First day (YYYY-MM-DD).")
        parser.add_argument("--to", dest="day_to", required=True, help="Last day, included (YYYY-MM-DD).")
        parser.add_argument("--gzip", action="store_true", help="Gzip the log (implied by a FILE ending in .gz).")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        day_from, day_to = _day(options["day_from"], "--from"), _day(options["day_to"], "--to")
        if day_to < day_from:
            raise CommandError(f"--to {day_to} is before --from {day_from}.")
        tz = timezone.get_current_timezone()
        start = timezone.make_aware(datetime.combine(day_from, time.min), tz)
        end = timezone.make_aware(datetime.combine(day_to + timedelta(days=1), time.min), tz)
        try:
            chunks = xes_stream(options["key"], start, end)
        except UnknownWorkflow as exc:
            raise CommandError(f"{exc} See `manage.py workflow_list` for the keys.") from None
        target = options["file"]
        if options["gzip"] or target.endswith(".gz"):
            chunks = gzipped(chunks)
        if target == "-":
            out = getattr(self.stdout._out, "buffer", None)
            for chunk in chunks:
                if out is not None:
                    out.write(chunk)
                else:  # a text stream (call_command in tests): the chunks end on whole elements
                    self.stdout._out.write(chunk.decode())
            return
        path = Path(target)
        if not path.parent.is_dir():
            raise CommandError(f"The folder {path.parent} does not exist.")
        # Written beside the target and renamed at the end: a failed export leaves no half file.
        handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
            os.replace(partial, path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        self.stdout.write(f"Wrote {path} ({path.stat().st_size:,} bytes).")
