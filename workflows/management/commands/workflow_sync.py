from django.core.management.base import BaseCommand, CommandError

from workflows.errors import DefinitionInvalid
from workflows.sync import sync_definitions


class Command(BaseCommand):
    help = "Install every <app>/definitions/*.json workflow (a new version only where the content changed)."

    def handle(self, *args, **options):
        try:
            installed = sync_definitions(stdout=self.stdout)
        except DefinitionInvalid as exc:
            raise CommandError("\n".join(exc.errors)) from None
        new = sum(1 for _, _, is_new in installed if is_new)
        self.stdout.write(self.style.SUCCESS(f"{len(installed)} definitions, {new} new versions."))
