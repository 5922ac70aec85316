import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from workflows.archive import process_events
from workflows.models import Process


class Command(BaseCommand):
    help = "Show a process: state, current step, variables, open tasks and its full history."

    def add_arguments(self, parser):
        parser.add_argument("process_id", type=int)

    def handle(self, *args, process_id, **options):
        process = Process.objects.select_related("definition", "version").filter(pk=process_id).first()
        if process is None:
            raise CommandError(f"no process #{process_id}")
        out = self.stdout.write
        out(f"Process #{process.pk}: {process.definition.name} ({process.definition.key} v{process.version.number})")
        out(f"State: {process.state}" + (f" · result {process.result}" if process.result else ""))
        out(
            f"Current step: {process.current_step or '-'}"
            + (f" · waiting for '{process.waiting_for}'" if process.waiting_for else "")
        )
        if process.content_type_id:
            out(
                f"About: {process.content_type.app_label}.{process.content_type.model} "
                f"#{process.object_id} {process.title}"
            )
        if process.incident_open:
            out(self.style.ERROR(f"Incident at '{process.incident_step}': {process.incident_error}"))
        out("Variables: " + json.dumps(process.variables, sort_keys=True, ensure_ascii=False))
        for task in process.tasks.filter(state__in=["open", "claimed"]):
            out(
                f"Open task #{task.pk}: {task.name} · {task.role} · {task.state}"
                + (f" · due {timezone.localtime(task.due_at):%Y-%m-%d %H:%M}" if task.due_at else "")
            )
        out("History:")
        for event in process_events(process):  # archived events included
            who = f" by {event.actor.username}" if event.actor else ""
            took = f" ({event.duration_ms} ms)" if event.duration_ms is not None else ""
            data = f" {json.dumps(event.data, ensure_ascii=False)}" if event.data else ""
            out(
                f"  {timezone.localtime(event.at):%Y-%m-%d %H:%M:%S} {event.kind:<18} "
                f"{event.step_id:<20}{who}{took}{data}"
            )
