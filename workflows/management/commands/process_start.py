import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from workflows.errors import WorkflowError
from workflows.services import process_start


def parse_var(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise CommandError(f"--var {text!r}: write it as name=value")
    name, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name.strip(), value


class Command(BaseCommand):
    help = "Start a process of the latest published version of KEY."

    def add_arguments(self, parser):
        parser.add_argument("key")
        parser.add_argument(
            "--var", action="append", default=[], help='name=value (JSON values: 5, true, "x"); repeatable'
        )
        parser.add_argument("--user", help="username of the starter")

    def handle(self, *args, key, var, user=None, **options):
        variables = dict(parse_var(v) for v in var)
        started_by = None
        if user:
            started_by = get_user_model().objects.filter(username=user).first()
            if started_by is None:
                raise CommandError(f"no user {user!r}")
        try:
            process = process_start(definition_key=key, variables=variables, started_by=started_by)
        except WorkflowError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(f"Started process #{process.pk} ({key}); now at '{process.current_step}'.")
        )
