"""Statements built on demand as jobs: "Build" queues a :class:`StatementBuild`, a Celery task runs it in
steps (adding up the days, collecting each section's figures, rendering the PDF, storing) and the build's
page polls the progress.

Two requests for the same period while a build of it is queued or running get that build: the statement
is built once. The steps are written as they begin, outside any transaction, so the page sees them.
"""

from __future__ import annotations

import logging
import zlib
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from monitoring.models import Statement, StatementBuild, StatementSubscription
from monitoring.statements import period_for, statement_build, statement_build_steps

logger = logging.getLogger(__name__)
State = StatementBuild.State
UNDER_WAY = (State.QUEUED, State.RUNNING)
# A build still queued or running this long after it was asked for belongs to a worker that died or
# never came: the next request fails it and starts a new one.
ABANDONED_AFTER = timedelta(minutes=30)
ABANDONED_MESSAGE = gettext_noop(
    "The build did not finish within 30 minutes (its worker stopped); it was started again."
)


class StatementBuildError(Exception):
    """A build request that cannot be carried out (a message the person can act on)."""


def _period_lock(frequency: str, period_start: Any) -> None:
    """Serialise requests for the same period (PostgreSQL; SQLite writes one transaction at a time)."""
    if connection.vendor == "postgresql":
        key = zlib.crc32(f"statement-build:{frequency}:{period_start}".encode())
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def statement_build_request(*, frequency: str, user: Any = None, today: Any = None) -> tuple[StatementBuild, bool]:
    """Queue the build of the last closed period's statement; returns the build and whether it is new.

    A build of the same frequency and period that is queued or running is returned instead (nothing is
    queued twice). One abandoned by a dead worker is failed and replaced.
    """
    from monitoring.tasks import statement_build_task

    if frequency not in StatementSubscription.Frequency.values:
        raise StatementBuildError(gettext("Choose daily, weekly or monthly."))
    day_from, day_to = period_for(frequency, today or timezone.localdate())
    now = timezone.now()
    with transaction.atomic():
        _period_lock(frequency, day_from)
        under_way = StatementBuild.objects.select_for_update().filter(
            frequency=frequency, period_start=day_from, state__in=UNDER_WAY
        )
        for build in under_way:
            if build.created_at >= now - ABANDONED_AFTER:
                return build, False
            _failed(build, ABANDONED_MESSAGE)
        build = StatementBuild.objects.create(
            frequency=frequency, period_start=day_from, period_end=day_to, requested_by=user, created_at=now
        )
        transaction.on_commit(lambda: statement_build_task.delay(build.pk))
    logger.info("Statement build %s queued by %s", build, getattr(user, "username", "system"))
    return build, True


def _failed(build: StatementBuild, error: str) -> None:
    StatementBuild.objects.filter(pk=build.pk, state__in=UNDER_WAY).update(
        state=State.FAILED, error=error[:2000], finished_at=timezone.now()
    )


def statement_build_run(*, build: StatementBuild) -> StatementBuild:
    """Run a queued build step by step; the statement is stored and audited as built by who asked.

    Only a queued build runs (a second delivery of the job returns the build as it is). On an error the
    build is failed with the step it stopped at and the reason; the statement stays as it was.
    """
    now = timezone.now()
    if not StatementBuild.objects.filter(pk=build.pk, state=State.QUEUED).update(state=State.RUNNING, started_at=now):
        build.refresh_from_db()
        return build
    build.refresh_from_db()
    total = statement_build_steps(build.period_start, build.period_end)
    StatementBuild.objects.filter(pk=build.pk).update(steps_total=total, steps_done=0)
    begun = 0

    def step(label: str) -> None:
        nonlocal begun
        # The step that begins is the one after those done: written now, so the build's page shows it.
        StatementBuild.objects.filter(pk=build.pk).update(steps_done=min(begun, total), step_label=label[:200])
        begun += 1

    try:
        statement = statement_build(
            frequency=build.frequency, day_from=build.period_start, day_to=build.period_end, step=step
        )
        with transaction.atomic():
            Statement.objects.filter(pk=statement.pk).update(built_by=build.requested_by)
            statement.built_by = build.requested_by
            _audit_build(build.requested_by, statement)
            StatementBuild.objects.filter(pk=build.pk).update(
                state=State.DONE,
                steps_done=total,
                step_label="",
                statement=statement,
                finished_at=timezone.now(),
            )
    except Exception as exc:
        logger.exception("Statement build %s failed", build.pk)
        text = str(exc).strip() or exc.__class__.__name__
        _failed(build, text if len(text) <= 500 else text[:499] + "…")
    build.refresh_from_db()
    return build


def _audit_build(user: Any, statement: Statement) -> None:
    from accounts.services import audit_record

    audit_record(
        actor=user,
        action="statement.build",
        target=statement,
        new={
            "frequency": statement.frequency,
            "period_start": statement.period_start.isoformat(),
            "period_end": statement.period_end.isoformat(),
        },
    )
