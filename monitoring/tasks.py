"""Celery tasks of monitoring (thin: each calls a service). Schedules live in parkinghq/schedules.py."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="monitoring.tasks.aggregate_daily", ignore_result=True)
def aggregate_daily() -> int:
    """Store the daily figures of the last closed days (idempotent per day)."""
    from monitoring.aggregation import aggregate_pending

    return len(aggregate_pending())


@shared_task(name="monitoring.tasks.evaluate_alerts", ignore_result=True)
def evaluate_alerts() -> dict[str, int]:
    from monitoring.alerts import alerts_evaluate

    return alerts_evaluate()


@shared_task(name="monitoring.tasks.send_statements", ignore_result=True)
def send_statements() -> int:
    """Build and email the statements whose period has closed (a sent one is never sent twice)."""
    from monitoring.aggregation import aggregate_pending
    from monitoring.statements import statements_send_due

    aggregate_pending()
    return len(statements_send_due())


@shared_task(name="monitoring.tasks.statement_build", ignore_result=True)
def statement_build_task(build_id: int) -> str:
    """Run a statement build asked for on the Statements page (the build's page polls its steps)."""
    from monitoring.builds import statement_build_run
    from monitoring.models import StatementBuild

    build = StatementBuild.objects.filter(pk=build_id).first()
    if build is None:
        return "gone"
    return statement_build_run(build=build).state
