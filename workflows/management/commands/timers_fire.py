from django.core.management.base import BaseCommand

from workflows.engine import fire_due_timers, recover_jobs


class Command(BaseCommand):
    help = "Fire due workflow timers now (what the beat tick does) and re-send lost system jobs."

    def handle(self, *args, **options):
        fired = fire_due_timers()
        jobs = recover_jobs()
        self.stdout.write(self.style.SUCCESS(f"{fired} timers fired, {jobs} system jobs re-sent."))
