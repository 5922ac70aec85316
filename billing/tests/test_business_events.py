"""Billing emits business events and the workflows bound to them start: a declined card (localstripe),
billing exceptions and the schedule's monthly run. Real engine, real system steps."""

import json
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from billing import services, tasks
from billing.models import BillingException, Invoice, InvoicingRun, Payment
from billing.tests.conftest import DEFINITIONS
from billing.tests.factories import ContractFactory
from billing.tests.test_stripe import DECLINED_ON_CHARGE, issued_invoice, save_card
from carparks.tests.factories import CustomerFactory
from workflows import authoring
from workflows.models import BusinessEvent, Process, StartBinding, Task
from workflows.services import definition_install, task_complete
from workflows.testing import fire_due_timers, run_pending_system_steps

pytestmark = pytest.mark.django_db


def events(name: str, obj=None):
    found = BusinessEvent.objects.filter(name=name)
    if obj is not None:
        found = found.filter(content_type=ContentType.objects.get_for_model(obj), object_id=obj.pk)
    return found


def processes_about(obj):
    return Process.objects.filter(content_type=ContentType.objects.get_for_model(obj), object_id=obj.pk)


def test_it_binds_the_billing_workflows_to_their_events():
    bound = dict(StartBinding.objects.values_list("definition__key", "event"))
    assert bound["failed-payment"] == "payment.failed"
    assert bound["billing-exception"] == "billing.exception_raised"


def test_it_emits_payment_failed_and_starts_dunning_once_also_when_the_charge_is_retried(client, stripe_settings):
    customer = CustomerFactory()
    save_card(client, customer, DECLINED_ON_CHARGE)
    invoice = issued_invoice(customer)

    assert services.invoice_charge(invoice=invoice).status == "failed"
    payment = Payment.objects.get(invoice=invoice, kind=Payment.Kind.CHARGE)
    event = events("payment.failed", invoice).get()
    assert event.event_id == f"payment.failed:{invoice.pk}:{payment.pk}"
    assert event.state == BusinessEvent.State.STARTED
    assert event.payload["invoice_id"] == invoice.pk and event.payload["amount"] == str(invoice.gross_total)
    assert event.payload["customer_id"] == customer.pk and event.payload["method"] == "card"
    assert event.payload["failure"]  # what Stripe said
    process = event.process
    assert (process.definition.key, process.business_object) == ("failed-payment", invoice)

    # Finance retries the card by hand: declined again, the running dunning goes on, nothing new starts.
    assert services.invoice_charge(invoice=invoice).status == "failed"
    # The dunning's own retry (after three days) is declined too.
    run_pending_system_steps()
    with time_machine.travel(timezone.now() + timedelta(days=3, minutes=1), tick=False):
        fire_due_timers()
        run_pending_system_steps()
    assert Payment.objects.filter(invoice=invoice, status=Payment.Status.FAILED).count() == 3
    assert events("payment.failed", invoice).count() == 1
    assert processes_about(invoice).count() == 1
    assert not BillingException.objects.filter(invoice=invoice, kind=BillingException.Kind.CHARGE_FAILED).exists()


def test_without_a_workflow_on_payment_failed_finance_gets_the_exception_as_before(client, stripe_settings):
    # An admin made the dunning workflow one that is started by hand: nothing is bound to payment.failed now.
    spec = json.loads((DEFINITIONS / "failed-payment.json").read_text())
    spec["steps"][0].pop("event")
    spec["steps"][0].pop("condition")  # its condition on the card method goes with the event
    definition_install(spec=spec)
    # What stays bound to payment.failed is for other methods (SEPA Direct Debit, bank transfer): not a card's.
    assert not StartBinding.objects.filter(event="payment.failed", definition__key="failed-payment").exists()
    customer = CustomerFactory()
    save_card(client, customer, DECLINED_ON_CHARGE)
    invoice = issued_invoice(customer)

    assert services.invoice_charge(invoice=invoice).status == "failed"

    assert events("payment.failed", invoice).get().state == BusinessEvent.State.UNMATCHED
    exception = BillingException.objects.get(invoice=invoice, kind=BillingException.Kind.CHARGE_FAILED)
    assert "failed" in exception.message
    raised = events("billing.exception_raised", exception).get()
    assert raised.state == BusinessEvent.State.STARTED
    assert raised.payload == {
        "exception_id": exception.pk,
        "kind": "charge_failed",
        "message": exception.message,
        "customer_id": customer.pk,
        "invoice_id": invoice.pk,
    }
    assert raised.process.definition.key == "billing-exception"
    assert Task.objects.get(process=raised.process).role == "Finance"
    assert not Process.objects.filter(definition__key="failed-payment").exists()


def test_each_new_billing_exception_emits_one_event_that_starts_the_finance_review():
    contract = ContractFactory()
    for _ in range(2):  # the second run finds the same exception: no second event
        services.invoicing_run_execute(run=services.invoicing_run_create(period_start=date(2026, 3, 1)), deliver=False)
    exception = BillingException.objects.get(customer_id=contract.customer_id, kind="missing_payment_method")
    event = events("billing.exception_raised").get()
    assert (event.event_id, event.state) == (f"billing.exception_raised:{exception.pk}", BusinessEvent.State.STARTED)
    assert event.business_object == exception
    assert processes_about(exception).get().definition.key == "billing-exception"


def test_the_schedule_emits_invoicing_period_due_and_the_review_reviews_its_run_without_billing_twice(finance_user):
    installed = authoring.library_install(slug="monthly-invoicing-review")
    assert installed.valid and installed.version.state == "published"
    ContractFactory(monthly_price=Decimal("95.00"), start_date=date(2026, 1, 1))
    ContractFactory(monthly_price=Decimal("80.00"), start_date=date(2026, 1, 1))

    with time_machine.travel(timezone.make_aware(datetime(2026, 4, 1, 6, 0)), tick=False):
        assert tasks.invoicing_run_monthly() == 2
        run = InvoicingRun.objects.get()
        event = events("invoicing.period_due").get()
        assert event.payload == {"run_id": run.pk, "period_start": "2026-04-01", "period_end": "2026-04-30"}
        assert event.event_id == "invoicing.period_due:2026-04-01"
        process = event.process
        assert (process.definition.key, process.business_object) == ("monthly-invoicing-review", run)
        run_pending_system_steps()

    process.refresh_from_db()
    assert process.variables["invoicing_run_id"] == run.pk and process.variables["invoices_created"] == 2
    assert InvoicingRun.objects.count() == 1 and Invoice.objects.count() == 2  # reviewed, not billed again
    task = Task.objects.get(process=process, step_id="review")
    assert task.role == "Finance"

    # Finance has it run again after fixing contracts: a new run bills what the first one left out (nothing).
    task_complete(task=task, user=finance_user, outcome="rerun")
    run_pending_system_steps()
    process.refresh_from_db()
    assert InvoicingRun.objects.count() == 2 and Invoice.objects.count() == 2
    assert (process.state, process.result) == ("completed", "nothing billed")


def test_a_failed_scheduled_run_is_resumed_by_the_review():
    authoring.library_install(slug="monthly-invoicing-review")
    ContractFactory(monthly_price=Decimal("95.00"), start_date=date(2026, 1, 1))
    run = services.invoicing_run_create(period_start=date(2026, 5, 1))
    InvoicingRun.objects.filter(pk=run.pk).update(state=InvoicingRun.State.FAILED, error="worker lost")

    event = services.invoicing_period_due_emit(run=run)
    run_pending_system_steps()

    process = Process.objects.get(pk=event.process_id)
    assert process.variables["invoices_created"] == 1
    run.refresh_from_db()
    assert run.state == InvoicingRun.State.DONE and InvoicingRun.objects.count() == 1
