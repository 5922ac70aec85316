"""Statements for a frozen period: figures checked against the history, PDF, email, sent once."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.apps import apps
from django.core import mail

from monitoring.aggregation import day_bounds
from monitoring.models import Statement, StatementSubscription
from monitoring.statements import period_for, statement_build, statements_send_due
from workflows.models import ProcessEvent

from .conftest import at

pytestmark = pytest.mark.django_db


def history(story, carparks):
    a, b = carparks
    story.full(at("2026-03-02", 9), a, wait=10, work=20)
    story.full(at("2026-03-03", 9), b, wait=90, work=60)  # review done after 2.5 h: misses its 2 h due time
    story.full(at("2026-03-04", 9), a, rework=True)
    open_one = story.start(at("2026-03-06", 9), b)
    story.tick(at("2026-03-06", 12, 30))  # escalated
    story.full(at("2026-03-01", 23, 30), a)  # Sunday before the week: started outside, completed inside
    story.full(at("2026-03-09", 9), a)  # the Monday after: outside
    return open_one


def independent_figures(day_from: date, day_to: date) -> dict:
    """The week's figures computed straight from ProcessEvent, with none of monitoring's code."""
    start, _ = day_bounds(day_from)
    _, end = day_bounds(day_to)
    events = ProcessEvent.objects.filter(at__gte=start, at__lt=end)
    completions = events.filter(kind="task_completed").select_related("task")
    with_due = [e for e in completions if e.task.due_at is not None]
    return {
        "started": events.filter(kind="process_started").count(),
        "completed": events.filter(kind="process_completed").count(),
        "cancelled": events.filter(kind="process_cancelled").count(),
        "tasks_completed": completions.count(),
        "escalations": events.filter(kind="task_escalated").count(),
        "incidents": events.filter(kind="incident_opened").count(),
        "sla_due": len(with_due),
        "sla_met": sum(1 for e in with_due if e.at <= e.task.due_at),
    }


def test_periods_are_the_last_closed_day_week_and_month():
    monday = date(2026, 3, 9)
    assert period_for("daily", monday) == (date(2026, 3, 8), date(2026, 3, 8))
    assert period_for("weekly", monday) == (date(2026, 3, 2), date(2026, 3, 8))
    assert period_for("weekly", date(2026, 3, 11)) == (date(2026, 3, 2), date(2026, 3, 8))
    assert period_for("monthly", date(2026, 3, 1)) == (date(2026, 2, 1), date(2026, 2, 28))


def test_a_weekly_statement_holds_the_figures_of_the_history(
    story, carparks, staff, django_capture_on_commit_callbacks
):
    history(story, carparks)
    StatementSubscription.objects.create(user=staff["supervisor"], frequency="weekly")
    StatementSubscription.objects.create(user=staff["finance"], frequency="weekly")
    StatementSubscription.objects.create(user=staff["finance"], frequency="daily")
    StatementSubscription.objects.create(user=staff["agent"], frequency="weekly")  # not a subscriber role

    with time_machine.travel(at("2026-03-09", 7), tick=False), django_capture_on_commit_callbacks(execute=True):
        sent = statements_send_due()
    assert sorted(s.frequency for s in sent) == ["daily", "weekly"]

    weekly = Statement.objects.get(frequency="weekly")
    assert (weekly.period_start, weekly.period_end) == (date(2026, 3, 2), date(2026, 3, 8))
    expected = independent_figures(date(2026, 3, 2), date(2026, 3, 8))
    totals = weekly.figures["totals"]
    assert {k: totals[k] for k in expected} == expected
    # The story in numbers: 4 started in the week, 4 completed (one started on Sunday 1 March),
    # 1 escalation, and of 9 review tasks with a due time 1 was late.
    assert (totals["started"], totals["completed"], totals["escalations"]) == (4, 4, 1)
    assert (totals["sla_due"], totals["sla_met"]) == (5, 4)
    assert [w["key"] for w in weekly.figures["workflows"]] == ["mon-review"]

    # The PDF is a real PDF that shows the same figures.
    pdf = bytes(weekly.pdf)
    assert pdf.startswith(b"%PDF")
    from pypdf import PdfReader

    text = " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).split())
    assert "Weekly statement" in text and "Monitoring review" in text
    assert "2026-03-02 – 2026-03-08" in text  # the English format: ISO dates

    weekly_mails = [m for m in mail.outbox if "weekly" in m.subject.lower()]
    assert sorted(m.to[0] for m in weekly_mails) == ["finance@example.com", "supervisor@example.com"]
    message = weekly_mails[0]
    assert message.attachments[0][0] == "parkinghq-weekly-statement-2026-03-02.pdf"
    assert message.attachments[0][2] == "application/pdf"
    html = message.alternatives[0][0]
    assert 'data-total="started">4<' in html and 'data-total="sla">4/5' in html
    assert sorted(weekly.recipients) == ["finance@example.com", "supervisor@example.com"]

    # The beat runs again: nothing is sent twice.
    before = len(mail.outbox)
    with time_machine.travel(at("2026-03-09", 8), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert statements_send_due() == []
    assert len(mail.outbox) == before


def test_a_statement_reports_billing_totals_and_payment_failures(story, carparks):
    Customer = apps.get_model("carparks.Customer")
    Invoice = apps.get_model("billing.Invoice")
    Payment = apps.get_model("billing.Payment")
    customer = Customer.objects.create(name="Erika Muster", email="erika@example.com")
    with time_machine.travel(at("2026-03-03", 10), tick=False):
        for n, (gross, status) in enumerate([("119.00", "succeeded"), ("59.50", "failed"), ("59.50", "succeeded")]):
            invoice = Invoice.objects.create(
                customer=customer,
                period_start=date(2026, 3, 1),
                period_end=date(2026, 3, 31),
                state="issued",
                series="TEST",
                number=n + 1,
                issue_date=date(2026, 3, 3),
                gross_total=Decimal(gross),
                net_total=(Decimal(gross) / Decimal("1.19")).quantize(Decimal("0.01")),
            )
            Payment.objects.create(
                invoice=invoice, kind="charge", status=status, amount=Decimal(gross), idempotency_key=f"test-{n}"
            )
    with time_machine.travel(at("2026-03-09", 7), tick=False):
        statement = statement_build(frequency="weekly", day_from=date(2026, 3, 2), day_to=date(2026, 3, 8))
    billing = statement.figures["billing"]
    assert billing["invoices"] == 3
    assert billing["invoiced_gross"] == "238.00"
    assert (billing["payments_succeeded"], billing["payments_failed"]) == (2, 1)
    assert billing["paid_amount"] == "178.50"
    assert billing["failure_rate"] == pytest.approx(33.3)
