"""Alert rules fire once, notify, do not repeat while the condition holds, and clear; anomalies."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
import time_machine
from django.core import mail

from accounts import roles
from monitoring import anomalies
from monitoring.alerts import alert_acknowledge, alerts_evaluate
from monitoring.models import AlertEvent, AlertRule

from .conftest import at

pytestmark = pytest.mark.django_db


def test_an_overdue_rule_fires_once_notifies_does_not_repeat_and_clears(
    story, carparks, staff, django_capture_on_commit_callbacks
):
    AlertRule.objects.create(
        name="Agents' overdue tasks",
        kind=AlertRule.Kind.OVERDUE_TASKS,
        role=roles.AGENT,
        threshold=1,
        notify_role=roles.SUPERVISOR,
    )
    first = story.start(at("2026-03-02", 9), carparks[0])
    second = story.start(at("2026-03-02", 9, 30), carparks[1])

    with time_machine.travel(at("2026-03-02", 10), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate()["opened"] == 0  # nothing is due yet
    assert AlertEvent.objects.count() == 0

    # 11:45: both review tasks (due 11:00 and 11:30) are overdue, more than the threshold of 1.
    with time_machine.travel(at("2026-03-02", 11, 45), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate() == {"opened": 1, "held": 0, "cleared": 0}
    event = AlertEvent.objects.get()
    assert event.is_open and event.value == 2
    assert "2 tasks of the role Back-office agent are overdue" in event.text
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["admin@example.com", "supervisor@example.com"]
    assert "Agents' overdue tasks" in mail.outbox[0].subject
    from notifications.models import Notification

    inbox = Notification.objects.filter(title="Alert: Agents' overdue tasks")
    assert sorted(inbox.values_list("user__username", flat=True)) == ["admin", "supervisor"]

    # Still overdue five minutes later: the same event is kept, nobody is emailed again.
    with time_machine.travel(at("2026-03-02", 11, 50), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate() == {"opened": 0, "held": 1, "cleared": 0}
    assert AlertEvent.objects.count() == 1
    assert len(mail.outbox) == 1
    assert inbox.count() == 2

    alert_acknowledge(event=event, user=staff["supervisor"])
    event.refresh_from_db()
    assert event.acknowledged_by == staff["supervisor"] and event.is_open

    # One task is done: one overdue left, not above the threshold → the alert clears.
    story.claim(first, at("2026-03-02", 11, 52))
    story.complete(first, at("2026-03-02", 11, 55), "approve")
    with time_machine.travel(at("2026-03-02", 12), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate() == {"opened": 0, "held": 0, "cleared": 1}
    event.refresh_from_db()
    assert not event.is_open
    assert len(mail.outbox) == 1

    # The condition comes back later: a new event, notified again.
    story.start(at("2026-03-02", 12), carparks[0])
    with time_machine.travel(at("2026-03-02", 14, 30), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate()["opened"] == 1
    assert AlertEvent.objects.filter(cleared_at=None).count() == 1
    assert AlertEvent.objects.count() == 2
    assert len(mail.outbox) == 2
    assert second.pk


def test_the_incident_rule_fires_above_zero(story, carparks, staff, django_capture_on_commit_callbacks):
    from workflows.models import Process

    AlertRule.objects.create(name="Incidents", kind=AlertRule.Kind.INCIDENTS, threshold=0)
    process = story.start(at("2026-03-02", 9), carparks[0])
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate()["opened"] == 0
    Process.objects.filter(pk=process.pk).update(incident_open=True, incident_step="review")
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate()["opened"] == 1
    assert "1 process with an open incident" in AlertEvent.objects.get().text
    Process.objects.filter(pk=process.pk).update(incident_open=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate()["cleared"] == 1


def test_an_injected_spike_is_detected_and_a_normal_series_is_not():
    rng = random.Random(7)
    normal = [20 + rng.randint(-4, 4) for _ in range(90)]
    weekly = [30 if day % 7 < 5 else 8 for day in range(90)]
    assert anomalies.scan(normal) == []
    assert anomalies.scan(weekly) == []  # quiet weekends are part of the normal pattern
    spiked = list(normal)
    spiked[60] = 60
    dropped = list(normal)
    dropped[70] = 0
    assert anomalies.scan(spiked) == [60]
    assert anomalies.scan(dropped) == [70]
    found = anomalies.detect(60, normal[32:60])
    assert found is not None and found.z > 3.5
    sentence = anomalies.explain(found, what="Started processes", when="Mon 02 Mar 2026")
    assert sentence.startswith("Started processes on Mon 02 Mar 2026 was 60, above the usual 20")
    assert "robust z-score of +" in sentence and "threshold of ±3.5" in sentence


def test_a_flat_baseline_does_not_make_a_single_event_an_anomaly():
    assert anomalies.detect(1, [0] * 28) is None
    assert anomalies.detect(9, [0] * 28) is not None


def test_the_volume_rule_explains_a_spike_in_started_processes(story, carparks, django_capture_on_commit_callbacks):
    rule = AlertRule.objects.create(name="Volume", kind=AlertRule.Kind.VOLUME_ANOMALY, threshold=3.5)
    first = date(2026, 2, 1)
    for n in range(28):  # two processes a day for four weeks ...
        day = (first + timedelta(days=n)).isoformat()
        story.start(at(day, 9), carparks[0])
        story.start(at(day, 10), carparks[1])
    spike_day = (first + timedelta(days=28)).isoformat()  # ... then twelve on 1 March
    for hour in range(12):
        story.start(at(spike_day, 8, hour * 4), carparks[0])
    with time_machine.travel(at("2026-03-02", 7), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate()["opened"] == 1
    event = AlertEvent.objects.get(rule=rule)
    assert event.text.startswith("The number of started “Monitoring review” processes on Sun 01 Mar 2026 was 12")
    assert "above the usual 2" in event.text


def test_a_failed_cpms_sync_alerts_until_a_later_sync_succeeds(carparks, staff, django_capture_on_commit_callbacks):
    from connect.models import CpmsConnection, SyncRun

    AlertRule.objects.create(name="CPMS", kind=AlertRule.Kind.CPMS_SYNC_FAILED, notify_role=roles.ADMINISTRATOR)
    connection = CpmsConnection.objects.create(name="Simulator", code="sim", base_url="http://127.0.0.1:1/")
    with time_machine.travel(at("2026-03-02", 2), tick=False):
        SyncRun.objects.create(connection=connection, kind="static", status="succeeded", started_at=at("2026-03-02", 2))
        SyncRun.objects.create(
            connection=connection,
            kind="occupancy",
            status="failed",
            started_at=at("2026-03-02", 2, 5),
            finished_at=at("2026-03-02", 2, 6),
            errors=["the CPMS answered 503"],
        )
        with django_capture_on_commit_callbacks(execute=True):
            assert alerts_evaluate()["opened"] == 1
    event = AlertEvent.objects.get()
    assert event.text == "The occupancy sync with Simulator failed at 02 Mar 02:06: the CPMS answered 503"
    assert mail.outbox[0].to == ["admin@example.com"]
    SyncRun.objects.create(connection=connection, kind="occupancy", status="succeeded", started_at=at("2026-03-02", 3))
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate()["cleared"] == 1


def test_card_failures_above_the_rate_today_alert_finance(carparks, staff, django_capture_on_commit_callbacks):
    from decimal import Decimal

    from billing.models import Invoice, Payment
    from carparks.models import Customer

    AlertRule.objects.create(
        name="Card failures", kind=AlertRule.Kind.CARD_FAILURE_RATE, threshold=Decimal("25"), notify_role=roles.FINANCE
    )
    customer = Customer.objects.create(name="Erika Muster", email="erika@example.com")
    with time_machine.travel(at("2026-03-02", 10), tick=False):
        for n, status in enumerate(["succeeded", "failed", "succeeded", "failed"]):
            invoice = Invoice.objects.create(
                customer=customer, period_start=date(2026, 3, 1), period_end=date(2026, 3, 31), state="issued",
                series="T", number=n + 1, issue_date=date(2026, 3, 1), gross_total=Decimal("10.00"),
            )  # fmt: skip
            Payment.objects.create(
                invoice=invoice, kind="charge", status=status, amount=Decimal("10.00"), idempotency_key=f"k{n}"
            )
        with django_capture_on_commit_callbacks(execute=True):
            assert alerts_evaluate()["opened"] == 1
    assert AlertEvent.objects.get().text == "2 of 4 card payments failed today (50 %, alert above 25 %)."
    assert sorted(mail.outbox[0].to) == ["admin@example.com", "finance@example.com"]
    # The next day has no failures yet: the condition of yesterday clears.
    with time_machine.travel(at("2026-03-03", 10), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate()["cleared"] == 1


def test_no_invoicing_run_by_the_chosen_day_alerts(staff, django_capture_on_commit_callbacks):
    from billing.models import InvoicingRun

    AlertRule.objects.create(name="Invoicing", kind=AlertRule.Kind.NO_INVOICING_RUN, threshold=3)
    with time_machine.travel(at("2026-03-02", 10), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate()["opened"] == 0  # not expected before the 3rd
    with time_machine.travel(at("2026-03-04", 10), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate()["opened"] == 1
        assert "No invoicing run has finished in March 2026" in AlertEvent.objects.get().text
        InvoicingRun.objects.create(period_start=date(2026, 3, 1), period_end=date(2026, 3, 31), state="done")
        assert alerts_evaluate()["cleared"] == 1
