"""Monitoring's billing figures split by payment option: collected amounts, direct debits under way, failures
(a declined card, a returned debit, an overdue transfer)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.apps import apps
from django.urls import reverse

from monitoring.selectors import billing_figures

from .conftest import at

pytestmark = pytest.mark.django_db


@pytest.fixture
def payments():
    Customer = apps.get_model("carparks.Customer")
    Invoice = apps.get_model("billing.Invoice")
    Payment = apps.get_model("billing.Payment")
    BusinessEvent = apps.get_model("workflows.BusinessEvent")
    customer = Customer.objects.create(name="Erika Muster", email="erika@example.com")
    rows = [
        ("card", "succeeded", "119.00", "pi_1"),
        ("card", "failed", "59.50", "pi_2"),
        ("sepa_debit", "processing", "89.00", "pi_3"),
        ("sepa_debit", "succeeded", "89.00", "pi_4"),
        ("sepa_debit", "failed", "89.00", "pi_5"),
        ("card", "succeeded", "30.00", ""),  # booked by hand from the bank: a transfer, whatever the default says
    ]
    with time_machine.travel(at("2026-03-03", 10), tick=False):
        for n, (method, status, amount, intent) in enumerate(rows):
            invoice = Invoice.objects.create(
                customer=customer, period_start=date(2026, 3, 1), period_end=date(2026, 3, 31), state="issued",
                series="TEST", number=n + 1, issue_date=date(2026, 3, 3), gross_total=Decimal(amount),
            )  # fmt: skip
            Payment.objects.create(
                invoice=invoice, kind="charge", status=status, method=method, amount=Decimal(amount),
                idempotency_key=f"test-{n}", stripe_payment_intent_id=intent,
            )  # fmt: skip
        BusinessEvent.objects.create(
            event_id=f"payment.failed:{invoice.pk}:transfer-overdue", name="payment.failed", state="started",
            payload={"method": "bank_transfer"},
        )  # fmt: skip


def test_the_figures_split_collected_amounts_and_failures_by_method(payments):
    figures = billing_figures(date(2026, 3, 2), date(2026, 3, 8))
    by_method = {row["method"]: row for row in figures["by_method"]}
    assert list(by_method) == ["card", "sepa_debit", "bank_transfer"]
    summary = {m: (r["succeeded"], r["amount"], r["processing"], r["failed"]) for m, r in by_method.items()}
    assert summary == {
        "card": (1, Decimal("119.00"), 0, 1),
        "sepa_debit": (1, Decimal("89.00"), 1, 1),
        "bank_transfer": (1, Decimal("30.00"), 0, 1),
    }
    assert by_method["card"]["failure_rate"] == 50.0


def test_the_dashboard_shows_the_table_to_finance(client, login, staff, payments):
    login(client, staff["finance"])
    with time_machine.travel(at("2026-03-05", 12), tick=False):
        html = client.get(reverse("monitoring:dashboard"), {"period": "7"}).content.decode()
    assert 'id="billing-by-method"' in html
    assert "a direct debit returned by the bank counts as failed" in html
    assert '<tr data-method="sepa_debit"><th scope="row">SEPA Direct Debit</th>' in html
    assert (
        '<tr data-method="bank_transfer"><th scope="row">Bank transfer on invoice</th><td class="text-end">1</td>'
        in html
    )


def test_a_returned_direct_debit_counts_as_failed_for_sepa_and_in_the_totals():
    Customer = apps.get_model("carparks.Customer")
    Invoice = apps.get_model("billing.Invoice")
    Payment = apps.get_model("billing.Payment")
    customer = Customer.objects.create(name="Max Muster", email="max@example.com")
    with time_machine.travel(at("2026-03-03", 10), tick=False):
        invoice = Invoice.objects.create(
            customer=customer, period_start=date(2026, 3, 1), period_end=date(2026, 3, 31), state="open",
            series="TEST", number=1, issue_date=date(2026, 3, 3), gross_total=Decimal("89.00"),
        )  # fmt: skip
        # The debit succeeded, then the customer's bank took the money back; the retry is under way.
        for n, status in enumerate((Payment.Status.RETURNED, Payment.Status.PROCESSING)):
            Payment.objects.create(
                invoice=invoice, kind="charge", status=status, method="sepa_debit", amount=Decimal("89.00"),
                idempotency_key=f"test-returned-{n}", stripe_payment_intent_id=f"pi_returned_{n}", attempt=n + 1,
            )  # fmt: skip

    figures = billing_figures(date(2026, 3, 2), date(2026, 3, 8))

    sepa = next(row for row in figures["by_method"] if row["method"] == "sepa_debit")
    assert (sepa["succeeded"], sepa["amount"], sepa["processing"], sepa["failed"]) == (0, Decimal("0.00"), 1, 1)
    assert sepa["failure_rate"] == 100.0
    assert (figures["payments_succeeded"], figures["payments_failed"], figures["paid_amount"]) == (0, 1, Decimal("0"))
    assert figures["failure_rate"] == 100.0
