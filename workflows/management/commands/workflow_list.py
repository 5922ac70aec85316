from django.core.management.base import BaseCommand
from django.db.models import Count, Q

from workflows.models import Process, WorkflowDefinition


class Command(BaseCommand):
    help = "List workflow definitions with their versions and running processes."

    def handle(self, *args, **options):
        definitions = WorkflowDefinition.objects.annotate(
            running=Count("processes", filter=Q(processes__state=Process.State.RUNNING)),
            total=Count("processes"),
        ).order_by("key")
        if not definitions:
            self.stdout.write("No workflow definitions. Run `manage.py workflow_sync` to install the shipped ones.")
            return
        self.stdout.write(f"{'KEY':<28} {'PUBLISHED':<10} {'VERSIONS':<9} {'RUNNING':<8} {'TOTAL':<6} NAME")
        for definition in definitions:
            versions = list(definition.versions.values_list("number", "state"))
            published = next((f"v{n}" for n, s in versions if s == "published"), "-")
            self.stdout.write(
                f"{definition.key:<28} {published:<10} {len(versions):<9} {definition.running:<8} "
                f"{definition.total:<6} {definition.name}"
            )
