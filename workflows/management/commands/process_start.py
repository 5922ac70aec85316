"""``manage.py process_start KEY [--object TYPE:ID] [--var name=value ...] [--user USERNAME]``

Starts the published version of a workflow that is started by hand (a none start event), as the
portal's Start process page does: the values are checked against its start form (required fields,
types) and every problem is printed by field. A workflow bound to a business event is not started
here: emit the event, and the workflow bound to it starts.
"""

import json

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.management.base import BaseCommand, CommandError

from workflows.errors import InvalidInputs, WorkflowError
from workflows.models import WorkflowDefinition, WorkflowVersion
from workflows.starting import manual_start_step, process_start_manual, start_of


def parse_var(text: str) -> tuple[str, object]:
    """``name=value``; the value is read as JSON where it is JSON (5, 2.5, true, null, "x"), else as text."""
    if "=" not in text:
        raise CommandError(f"--var {text!r}: write it as name=value")
    name, raw = text.split("=", 1)
    if not name.strip():
        raise CommandError(f"--var {text!r}: the name before '=' is missing")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name.strip(), value


def parse_object(text: str) -> object:
    """``app_label.model:id`` (e.g. ``carparks.contract:12``) → that object, which must exist."""
    label, sep, pk = text.partition(":")
    if not sep or "." not in label or not pk.strip():
        raise CommandError(f"--object {text!r}: write it as app_label.model:id, e.g. carparks.contract:12")
    try:
        model = apps.get_model(label.strip())
    except (LookupError, ValueError):
        raise CommandError(f"--object {text!r}: there is no model {label.strip()!r}") from None
    try:
        return model._default_manager.get(pk=pk.strip())
    except (ObjectDoesNotExist, ValueError, ValidationError):
        raise CommandError(f"--object {text!r}: there is no {model._meta.verbose_name} with id {pk.strip()}") from None


class Command(BaseCommand):
    help = (
        "Start a process of the published version of KEY, a workflow started by hand. Values are checked "
        "against its start form; a workflow bound to a business event starts when the event is emitted."
    )

    def add_arguments(self, parser):
        parser.add_argument("key")
        parser.add_argument(
            "--var", action="append", default=[], help='name=value (JSON values: 5, true, "x"); repeatable'
        )
        parser.add_argument("--object", dest="business_object", help="the business object, as app_label.model:id")
        parser.add_argument("--user", help="username of the starter")

    def handle(self, *args, key, var, business_object=None, user=None, **options):
        variables = dict(parse_var(v) for v in var)
        obj = parse_object(business_object) if business_object else None
        started_by = None
        if user:
            started_by = get_user_model().objects.filter(username=user).first()
            if started_by is None:
                raise CommandError(f"no user {user!r}")
        definition = WorkflowDefinition.objects.filter(key=key).first()
        version = (
            WorkflowVersion.objects.filter(definition=definition, state=WorkflowVersion.State.PUBLISHED)
            .order_by("-number")
            .first()
            if definition
            else None
        )
        if version is None:
            raise CommandError(f"no published workflow {key!r}")
        start = manual_start_step(version)
        if start is None:
            event = start_of(version.graph)["event"]
            raise CommandError(
                f"'{definition.name}' starts on the business event '{event}', not by hand: emit that event "
                f"(workflows.starting.event_emit) and the workflow bound to it starts."
            )
        declared = {item["name"] for item in start.get("inputs") or []}
        try:
            process = process_start_manual(
                definition=definition,
                user=started_by,
                values={k: v for k, v in variables.items() if k in declared},
                extra_variables={k: v for k, v in variables.items() if k not in declared},
                business_object=obj,
                check_permission=False,
            )
        except InvalidInputs as exc:
            for name, error in exc.field_errors.items():
                self.stderr.write(f"--var {name}: {error}")
            raise CommandError(f"'{definition.name}' was not started: the start form has errors.") from None
        except WorkflowError as exc:
            raise CommandError(str(exc)) from None
        about = f" about {obj._meta.verbose_name} #{obj.pk}" if obj is not None else ""
        self.stdout.write(
            self.style.SUCCESS(f"Started process #{process.pk} ({key}){about}; now at '{process.current_step}'.")
        )
