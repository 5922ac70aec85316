from datetime import date
from types import SimpleNamespace

import pytest
from django.core import mail

from billing.models import Invoice, InvoicingRun
from billing.tests.factories import ContractFactory
from workflows.registry import SystemTaskContext, get_task

pytestmark = pytest.mark.django_db


def ctx(obj=None, key="p1:step:1", **variables):
    return SystemTaskContext(
        process=SimpleNamespace(business_object=obj, pk=1), step_id="step", variables=variables, idempotency_key=key
    )


def run_task(name, context):
    return get_task(name).func(context)


def test_the_billing_system_tasks_are_registered():
    for name in (
        "billing.invoicing_run", "billing.charge_invoice", "billing.send_invoice", "billing.setup_payment_link",
        "billing.send_payment_reminder", "billing.suspend_contracts", "billing.reactivate_contracts",
        "billing.exception_resolve",
    ):  # fmt: skip
        assert get_task(name).description


def test_invoicing_run_send_invoice_and_card_link_are_idempotent_per_key():
    contract = ContractFactory(customer__language="en")
    result = run_task("billing.invoicing_run", ctx(period_start="2026-03-01"))
    assert result["invoices_created"] == 1 and InvoicingRun.objects.get().period_start == date(2026, 3, 1)
    assert run_task("billing.invoicing_run", ctx(period_start="2026-03-01"))["invoices_created"] == 0
    invoice = Invoice.objects.get()

    run_task("billing.send_invoice", ctx(invoice))
    run_task("billing.send_invoice", ctx(invoice))
    run_task("billing.setup_payment_link", ctx(contract, key="p2:link:1"))
    run_task("billing.setup_payment_link", ctx(contract, key="p2:link:1"))
    run_task("billing.send_payment_reminder", ctx(invoice, key="p3:remind:1"))
    run_task("billing.send_payment_reminder", ctx(invoice, key="p3:remind:1"))

    subjects = sorted(m.subject for m in mail.outbox)
    assert len(subjects) == 3
    assert any(s.startswith("Your invoice") for s in subjects)
    assert "Save a card for your season parking payments" in subjects
    assert any(s.startswith("Reminder") for s in subjects)
    card_mail = next(m for m in mail.outbox if m.subject.startswith("Save a card"))
    assert "/billing/card/" in card_mail.body
