"""The demo's month of history: finished processes shaped like the engine's, aggregated like the nightly
job does, shown by the dashboard, and written once."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
import time_machine
from django.db.models import Sum
from django.urls import reverse

from accounts import demo as accounts_demo
from carparks.tests.factories import CarParkFactory
from monitoring import demo_history
from monitoring.models import DailyWorkflowStat
from workflows.models import Process, ProcessEvent, Task
from workflows.sync import sync_definitions

pytestmark = pytest.mark.django_db
TODAY = date(2026, 6, 15)
DEMO_KEYS = ("season-contract", "customer-case", "contract-termination")


def test_the_demo_history_is_a_finished_month_the_dashboard_shows(client, login, django_user_model):
    accounts_demo.load(io.StringIO())
    sync_definitions()
    CarParkFactory.create_batch(3)
    with time_machine.travel("2026-06-15 10:00+02:00", tick=False):
        written = demo_history.load(today=TODAY)
        assert written > 100
        history = Process.objects.filter(title=demo_history.TITLE)
        assert history.count() == written
        assert set(history.values_list("state", flat=True)) == {Process.State.COMPLETED}
        first, last = TODAY - timedelta(days=29), TODAY - timedelta(days=1)
        assert all(first <= p.started_at.date() and p.ended_at.date() <= last for p in history)
        # the workflows the application, case and termination events start
        assert {p.definition.key for p in history} == set(DEMO_KEYS)

        # every task was done by someone holding its role, and the history reads like the engine's
        for task in Task.objects.filter(process__in=history).select_related("completed_by"):
            assert task.state == Task.State.COMPLETED
            assert task.completed_by.groups.filter(name=task.role).exists()
        process = history.first()
        kinds = list(ProcessEvent.objects.filter(process=process).order_by("at", "id").values_list("kind", flat=True))
        assert kinds[0] == "process_started" and kinds[-1] == "process_completed"
        assert kinds.count("step_entered") == kinds.count("step_left") == process.step_seq

        stats = DailyWorkflowStat.objects.filter(day__gte=first, day__lte=last).aggregate(
            started=Sum("started"), completed=Sum("completed")
        )
        assert stats == {"started": written, "completed": written}

        manager = django_user_model.objects.get(username="supervisor")
        login(client, manager)
        response = client.get(reverse("monitoring:dashboard"), {"period": "30"})
        flow = response.context["flow"]
        assert sum(d["completed"] for d in flow) == written
        assert sum(1 for d in flow if d["started"]) >= 20  # a month of days, not one

        # analytics opens on the workflow most started in the period, not the first by name
        counts = {key: history.filter(definition__key=key).count() for key in DEMO_KEYS}
        analytics = client.get(reverse("monitoring:analytics"), {"period": "30"})
        assert analytics.context["definition"].key == max(counts, key=counts.get)

        assert demo_history.load(today=TODAY) == 0  # once only
        assert Process.objects.filter(title=demo_history.TITLE).count() == written
