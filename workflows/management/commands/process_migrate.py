"""``manage.py process_migrate KEY --from N --to M [--map old=new ...] [--step STEP ...] [--dry-run] [--user NAME]``

Moves the running and suspended processes of version N of a workflow to version M, as the portal's
Migrate running processes page does: a process whose current step exists in M with the same type
moves automatically, one at a step named by ``--map old=new`` moves to that step of M (same type),
the others stay (each is printed with the reason). ``--step`` takes only the processes at those
steps. ``--dry-run`` prints the plan and changes nothing. The exit status is non-zero when a process
is not (or would not be) migrated.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from workflows.errors import MigrationNotPossible
from workflows.migration import NOT_POSSIBLE, MigrationReport, processes_migrate
from workflows.models import WorkflowDefinition


def parse_map(values: list[str]) -> dict[str, str]:
    """``old=new`` pairs → {old: new}; a pair without '=' or with an empty side is refused."""
    mapping: dict[str, str] = {}
    for text in values:
        old, sep, new = text.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise CommandError(f"--map {text!r}: write it as old_step=new_step, e.g. --map review=review_application")
        if old.strip() in mapping:
            raise CommandError(f"--map {text!r}: step '{old.strip()}' is mapped twice")
        mapping[old.strip()] = new.strip()
    return mapping


class Command(BaseCommand):
    help = (
        "Move the running and suspended processes of version N of workflow KEY to version M. Steps that exist "
        "in M move automatically; map the others with --map old=new. --dry-run prints the plan only."
    )

    def add_arguments(self, parser):
        parser.add_argument("key")
        parser.add_argument("--from", dest="from_number", type=int, required=True, help="the version they are on (N)")
        parser.add_argument("--to", dest="to_number", type=int, required=True, help="the version they move to (M)")
        parser.add_argument("--map", dest="mappings", action="append", default=[], help="old_step=new_step; repeatable")
        parser.add_argument(
            "--step", dest="steps", action="append", default=[], help="only processes at this step of N; repeatable"
        )
        parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
        parser.add_argument("--user", help="username recorded as who migrated (history and audit log)")

    def handle(self, *args, key, from_number, to_number, mappings, steps, dry_run, user=None, **options):
        step_map = parse_map(mappings)
        definition = WorkflowDefinition.objects.filter(key=key).first()
        if definition is None:
            raise CommandError(f"no workflow {key!r}")
        actor = None
        if user:
            actor = get_user_model().objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"no user {user!r}")
        try:
            report = processes_migrate(
                definition=definition,
                from_number=from_number,
                to_number=to_number,
                step_ids=steps or None,
                step_map=step_map,
                user=actor,
                dry_run=dry_run,
            )
        except MigrationNotPossible as exc:
            raise CommandError(str(exc)) from None
        self._print(report)
        left = len(report.not_migrated)
        if left:
            verb = "would stay" if dry_run else "were not migrated"
            raise CommandError(f"{left} process{'es' if left != 1 else ''} {verb} on version {from_number}.")

    def _print(self, report: MigrationReport) -> None:
        head = "Plan (dry run, nothing changed)" if report.dry_run else "Migration"
        self.stdout.write(
            f"{head}: {report.definition_name} ({report.definition_key}) version {report.from_number} → "
            f"version {report.to_number}"
        )
        if not report.items:
            self.stdout.write(
                "No running or suspended process of that version" + (" at those steps." if report.step_ids else ".")
            )
        for row in report.steps():
            if row["how"] == NOT_POSSIBLE:
                where = f"stay: {row['reason']}"
            else:
                where = (
                    f"→ {row['to_name']} [{row['to_step']}] ({'automatic' if row['how'] == 'automatic' else 'mapped'})"
                )
            self.stdout.write(f"  {row['from_name']} [{row['from_step']}]: {row['count']} process(es) {where}")
        for item in report.items:
            if item.how == NOT_POSSIBLE:
                status = f"stays: {item.reason}"
            elif item.outcome == "failed":
                status = f"FAILED: {item.error}"
            else:
                status = f"{'would move' if report.dry_run else 'moved'} to {item.to_step}"
            self.stdout.write(f"    #{item.process_id} at {item.from_step}: {status}")
        counts = report.counts()
        moved = f"would move {counts['moving']}" if report.dry_run else f"migrated {counts['migrated']}"
        self.stdout.write(
            f"Total: {counts['processes']} process(es); {moved} ({counts['automatic']} automatic, "
            f"{counts['mapped']} mapped); not possible {counts['not_possible']}; failed {counts['failed']}."
        )
