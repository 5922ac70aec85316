"""Move the history of processes finished before a date to the archive table (retention)."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from workflows.archive import ArchiveBatch, history_archive


class Command(BaseCommand):
    help = (
        "Move the history events of processes that finished (completed or cancelled) before --before "
        "(YYYY-MM-DD, the start of that day in the portal's time zone) to the archive table, --batch-size "
        "events per short transaction. Running processes are never touched; running it again moves only "
        "what is left. --dry-run counts without moving."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--before", required=True, help="Archive processes that ended before this day.")
        parser.add_argument("--batch-size", type=int, default=5000, help="Events per transaction (default 5000).")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would move.")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        raw = options["before"]
        try:
            before = date.fromisoformat(raw)
        except ValueError:
            raise CommandError(f"--before “{raw}” is not a date: use YYYY-MM-DD.") from None
        if options["batch_size"] < 1:
            raise CommandError(f"--batch-size {options['batch_size']} is too small: use 1 or more.")

        def progress(batch: ArchiveBatch) -> None:
            rate = batch.events / batch.seconds if batch.seconds else 0
            self.stdout.write(
                f"batch {batch.number}: {batch.events} events moved in {batch.seconds * 1000:.0f} ms "
                f"({batch.total} so far, {rate:,.0f} rows/s)"
            )

        try:
            result = history_archive(
                before=before, batch_size=options["batch_size"], dry_run=options["dry_run"], progress=progress
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if result.dry_run:
            self.stdout.write(
                f"Dry run: {result.events} events of {result.processes} processes finished before "
                f"{before.isoformat()} would move in {result.batches} batches; nothing was changed."
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Moved {result.events} events of {result.processes} processes finished before "
                f"{before.isoformat()} in {result.batches} batches ({result.seconds:.1f} s, "
                f"{result.rows_per_second:,.0f} rows/s)."
            )
        )
