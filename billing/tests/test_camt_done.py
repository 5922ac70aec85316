"""The issue's done check, end to end: the 200-credit camt.053 imported against open invoices on PostgreSQL.

The statement (``camt_factory.scenario_200``: exact references, RF references, thirty typos, two part
payments of one invoice, credits known only by amount and name, one unknown) is imported with
``billing.bank_statements.statement_import``; every credit must land on the invoice it was written for,
the unknown one stays queued, and importing the same file again books nothing new.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing.bank_statements import StatementRefused, statement_import
from billing.models import BankEntry, BankStatement, CustomerCredit, Invoice, Payment
from billing.tests.camt_factory import Scenario, scenario_200
from carparks.models import Customer

pytestmark = pytest.mark.django_db


def seed(scenario: Scenario) -> dict[int, int]:
    """The scenario's open invoices in the database; scenario invoice id → database id."""
    names = sorted({inv.customer_name for inv in scenario.invoices})
    customers = Customer.objects.bulk_create(
        [Customer(name=name, email=f"c{k}@example.com") for k, name in enumerate(names)]
    )
    customer_of = {c.name: c for c in customers}
    ids = {}
    for spec in scenario.invoices:
        series, number = spec.number.split("-")
        invoice = Invoice.objects.create(
            customer=customer_of[spec.customer_name],
            period_start=date(2026, 11, 1),
            period_end=date(2026, 11, 30),
            state=Invoice.State.ISSUED,
            series=series,
            number=int(number),
            issue_date=date(2026, 12, 1),
            due_date=date(2026, 12, 15),
            net_total=spec.amount_open,
            gross_total=spec.amount_open,
            payment_option="bank_transfer",
            payment_reference=spec.payment_reference,
        )
        ids[spec.id] = invoice.pk
    return ids


def test_the_200_credit_statement_books_the_right_invoices_queues_the_rest_and_books_nothing_twice():
    scenario = scenario_200()
    db_id = seed(scenario)
    data = scenario.data()

    statement = statement_import(data=data, file_name="camt053-200.xml")

    assert (statement.credits_count, statement.matched_count, statement.queued_count) == (200, 199, 1)
    entries = list(BankEntry.objects.filter(statement=statement).order_by("position"))
    assert len(entries) == 200
    got = [(entry.invoice_id, entry.rule) for entry in entries]
    want = [(db_id[invoice] if invoice else None, rule) for invoice, rule in scenario.expected]
    assert got == want

    # Every credit but the unknown one paid its invoice; the part payments add up to the whole.
    (unknown,) = [entries[i] for i in scenario.groups["unknown"]]
    assert unknown.status == BankEntry.Status.QUEUED
    first, second = [entries[i] for i in scenario.groups["partial"]]
    assert (first.status, second.status) == (BankEntry.Status.PARTIAL, BankEntry.Status.MATCHED)
    assert first.invoice_id == second.invoice_id
    assert Invoice.objects.get(pk=first.invoice_id).state == Invoice.State.PAID
    paid = {db_id[invoice] for invoice, _ in scenario.expected if invoice}
    assert set(Invoice.objects.filter(state=Invoice.State.PAID).values_list("pk", flat=True)) == paid
    assert Payment.objects.filter(bank_entry__isnull=False).count() == 199
    assert not CustomerCredit.objects.exists()

    # The same file again: refused, nothing new.
    with pytest.raises(StatementRefused, match="imported already"):
        statement_import(data=data, file_name="camt053-200-again.xml")
    assert BankStatement.objects.count() == 1
    assert BankEntry.objects.count() == 200
    assert Payment.objects.filter(bank_entry__isnull=False).count() == 199
    assert sum(Invoice.objects.values_list("amount_paid", flat=True), Decimal("0")) == sum(
        (entry.amount for entry in entries if entry.invoice_id), Decimal("0")
    )
