"""Load the demo data of every app, in order, idempotently: ``manage.py demo_load``.

Each app may ship ``<app>/demo.py`` with ``load(stdout) -> None``; running it twice changes nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from typing import Any

from django.core.management.base import BaseCommand

DEMO_MODULES = [
    "accounts.demo",
    "workflows.demo",
    "carparks.demo",
    "connect.demo",
    "billing.demo",
    "monitoring.demo",
]


class Command(BaseCommand):
    help = "Load the demo users and data of every app (idempotent; password of every demo user: demo)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--only", nargs="*", help="Load only these modules (for example accounts.demo).")

    def handle(self, *args: Any, only: list[str] | None = None, **options: Any) -> None:
        for name in DEMO_MODULES:
            if only and name not in only:
                continue
            if importlib.util.find_spec(name) is None:
                continue
            module = importlib.import_module(name)
            started = time.monotonic()
            module.load(self.stdout)
            self.stdout.write(f"demo_load: {name} loaded in {time.monotonic() - started:.1f}s")
        self.stdout.write(self.style.SUCCESS("demo_load: done"))
