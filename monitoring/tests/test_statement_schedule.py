"""When statements are due: the monthly one on the first of the month, built by the beat job itself."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from monitoring.models import Statement, StatementSubscription
from monitoring.statements import statements_due
from monitoring.tasks import send_statements
from parkinghq.schedules import BEAT_SCHEDULE

from .conftest import at

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "today",
    [date(2026, 4, 1), date(2026, 6, 1), date(2027, 1, 1), date(2028, 3, 1)],  # 1 June 2026 is a Monday
)
def test_the_monthly_statement_is_due_on_the_first_of_every_month(today):
    assert "monthly" in statements_due(today)


@pytest.mark.parametrize(
    "today",
    [date(2026, 3, 31), date(2026, 4, 2), date(2026, 4, 15), date(2026, 4, 30), date(2028, 2, 29)],
)
def test_the_monthly_statement_is_not_due_on_other_days(today):
    assert "monthly" not in statements_due(today)


def test_the_beat_runs_the_statement_job_every_morning_including_the_first():
    schedule = BEAT_SCHEDULE["monitoring-send-statements"]["schedule"]
    last_run = datetime(2026, 3, 31, 6, 0, tzinfo=UTC)
    with time_machine.travel(datetime(2026, 4, 1, 5, 59, tzinfo=UTC), tick=False):
        assert not schedule.is_due(last_run).is_due
    with time_machine.travel(datetime(2026, 4, 1, 6, 0, 30, tzinfo=UTC), tick=False):
        assert schedule.is_due(last_run).is_due


def test_the_beat_job_builds_and_sends_last_months_statement_on_the_first(staff, django_capture_on_commit_callbacks):
    StatementSubscription.objects.create(user=staff["finance"], frequency="monthly")

    for day in ("2026-03-30", "2026-03-31"):  # the days before: no monthly statement
        with time_machine.travel(at(day, 8), tick=False), django_capture_on_commit_callbacks(execute=True):
            send_statements()
    assert not Statement.objects.filter(frequency="monthly").exists()

    with time_machine.travel(at("2026-04-01", 8), tick=False), django_capture_on_commit_callbacks(execute=True):
        send_statements()

    monthly = Statement.objects.get(frequency="monthly")
    assert (monthly.period_start, monthly.period_end) == (date(2026, 3, 1), date(2026, 3, 31))
    assert bytes(monthly.pdf).startswith(b"%PDF") and monthly.sent_at is not None
    assert monthly.recipients == [staff["finance"].email]
    assert [m.to for m in mail.outbox if "monthly" in m.subject.lower()] == [[staff["finance"].email]]

    # The rest of April builds no other monthly statement, and the job may run twice on the first.
    for offset in (0, 1, 14):
        day = (date(2026, 4, 1) + timedelta(days=offset)).isoformat()
        with time_machine.travel(at(day, 9), tick=False), django_capture_on_commit_callbacks(execute=True):
            send_statements()
    assert Statement.objects.filter(frequency="monthly").count() == 1
    assert len([m for m in mail.outbox if "monthly" in m.subject.lower()]) == 1
