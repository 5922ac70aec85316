"""Helpers for tests of any app that runs processes.

- :func:`run_pending_system_steps` executes queued system steps synchronously with exactly the
  code the Celery worker runs (``workflows.engine.execute_job``).
- :func:`fire_due_timers` fires due timers as the beat tick does (pass ``now`` or move the clock
  with ``time_machine``).
- :func:`install_definition` installs a compact-format dict (shortcut to ``definition_install``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from workflows import engine
from workflows.models import SystemJob


def run_pending_system_steps(max_rounds: int = 50) -> int:
    """Run every queued, due system job, repeatedly (a step may queue the next). Returns how many ran."""
    executed = 0
    for _ in range(max_rounds):
        ids = list(
            SystemJob.objects.filter(state=SystemJob.State.QUEUED, run_after__lte=timezone.now())
            .order_by("id")
            .values_list("pk", flat=True)
        )
        ran = 0
        for job_id in ids:
            if engine.execute_job(job_id) not in ("skipped", "stale"):
                ran += 1
        executed += ran
        if not ran:
            break
    return executed


def fire_due_timers(now: datetime | None = None) -> int:
    """Fire every timer due at ``now`` (default: the current, possibly travelled, time)."""
    return engine.fire_due_timers(now)


def install_definition(spec: dict[str, Any], **kwargs: Any):  # type: ignore[no-untyped-def]
    from workflows.services import definition_install

    return definition_install(spec=spec, **kwargs)
