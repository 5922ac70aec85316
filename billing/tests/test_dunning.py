"""The failed-payment process end to end: real engine, real localstripe, the clock moved by time_machine."""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from billing import services
from billing.models import Invoice, Payment
from billing.tests.test_stripe import DECLINED_ON_CHARGE, GOOD_CARD, issued_invoice, save_card
from carparks.models import Contract
from carparks.tests.factories import CustomerFactory

pytestmark = [
    pytest.mark.django_db,
]


def process_for(invoice):
    from workflows.models import Process

    return Process.objects.get(definition__key="failed-payment", object_id=invoice.pk)


def advance(days: float):
    from workflows.testing import fire_due_timers, run_pending_system_steps

    with time_machine.travel(timezone.now() + timedelta(days=days), tick=False):
        fire_due_timers()
        run_pending_system_steps()


def reminders():
    return [m for m in mail.outbox if "payment for invoice" in m.subject]


def test_dunning_retries_reminds_hands_over_to_finance_suspends_and_reactivates(client, stripe_settings, finance_user):
    from workflows.models import Task
    from workflows.services import task_complete
    from workflows.testing import run_pending_system_steps

    customer = CustomerFactory(language="en")
    save_card(client, customer, DECLINED_ON_CHARGE)
    invoice = issued_invoice(customer)
    contract = invoice.lines.get().contract

    assert services.invoice_charge(invoice=invoice).status == "failed"
    run_pending_system_steps()
    process = process_for(invoice)
    assert process.current_step == "wait_1" and len(reminders()) == 1
    client.force_login(finance_user)
    page = client.get(reverse("billing:invoice-detail", args=[invoice.pk]))
    assert b"Failed card payment (dunning)" in page.content
    assert b"at Wait for payment (first reminder)" in page.content  # the step by its name
    client.logout()

    advance(3.01)  # first retry fails, second reminder
    process = process_for(invoice)
    assert process.current_step == "wait_2" and len(reminders()) == 2
    assert Payment.objects.filter(invoice=invoice, status="failed").count() == 2

    advance(7.02)  # last retry fails: Finance decides
    assert Payment.objects.filter(invoice=invoice, status="failed").count() == 3
    task = Task.objects.get(process=process, state__in=["open", "escalated"])
    assert task.role == "Finance"
    task_complete(task=task, user=finance_user, outcome="suspend", inputs={"finance_note": "No answer"})
    run_pending_system_steps()
    assert Contract.objects.get(pk=contract.pk).state == Contract.State.SUSPENDED
    assert process_for(invoice).current_step == "wait_payment"

    # The customer saves a new card; Finance charges the invoice from its page.
    save_card(client, customer, GOOD_CARD)
    assert services.invoice_charge(invoice=invoice).status == "succeeded"
    services.payment_received(invoice=Invoice.objects.get(pk=invoice.pk))  # the task queued on commit
    run_pending_system_steps()

    process = process_for(invoice)
    assert process.state == "completed" and process.result == "paid after suspension"
    assert Contract.objects.get(pk=contract.pk).state == Contract.State.ACTIVE


def test_a_payment_while_waiting_ends_dunning_without_suspension(client, stripe_settings):
    from workflows.testing import run_pending_system_steps

    customer = CustomerFactory()
    save_card(client, customer, DECLINED_ON_CHARGE)
    invoice = issued_invoice(customer)
    services.invoice_charge(invoice=invoice)
    run_pending_system_steps()

    save_card(client, customer, GOOD_CARD)
    services.invoice_charge(invoice=invoice)
    services.payment_received(invoice=Invoice.objects.get(pk=invoice.pk))

    process = process_for(invoice)
    assert (process.state, process.result) == ("completed", "paid")
    assert invoice.lines.get().contract.state == Contract.State.ACTIVE


def test_billing_exceptions_become_finance_tasks(finance_user):
    from datetime import date

    from billing.models import BillingException
    from billing.tests.factories import ContractFactory
    from workflows.models import Process, Task
    from workflows.services import task_complete
    from workflows.testing import run_pending_system_steps

    first, second = ContractFactory(), ContractFactory()
    run = services.invoicing_run_create(period_start=date(2026, 3, 1))
    services.invoicing_run_execute(run=run, deliver=False)
    services.invoicing_run_execute(run=services.invoicing_run_create(period_start=date(2026, 3, 1)), deliver=False)

    items = {e.customer_id: e for e in BillingException.objects.filter(kind="missing_payment_method")}
    assert set(items) == {first.customer_id, second.customer_id}
    tasks = Task.objects.filter(process__definition__key="billing-exception", role="Finance")
    assert tasks.count() == 2  # the rerun started none

    task = tasks.get(process__object_id=items[first.customer_id].pk)
    task_complete(task=task, user=finance_user, outcome="resolved", inputs={"resolution": "Pays by transfer"})
    run_pending_system_steps()
    assert BillingException.objects.get(pk=items[first.customer_id].pk).resolution == "Pays by transfer"

    services.billing_exception_resolve(exception=items[second.customer_id], user=finance_user, resolution="Called")
    process = Process.objects.get(definition__key="billing-exception", object_id=items[second.customer_id].pk)
    assert process.state == "cancelled"


# --- one dunning per invoice, however many failures arrive at once ---------------------------------


def failed_processes(invoice):
    from workflows.models import Process

    return Process.objects.filter(definition__key="failed-payment", object_id=invoice.pk)


def run_together(jobs) -> list:
    """Run the jobs in threads released by one barrier (each with its own connection); their results."""
    import threading

    from django.db import connection

    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=20)
            results[index] = jobs[index]()
        except BaseException as exc:  # surfaced by the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_failure_webhooks_of_one_invoice_start_one_dunning(settings):
    """A charge whose answer was lost fails at Stripe; two failure events about it (each delivered
    twice) arrive at the same moment."""
    import json

    from django.test import Client

    from billing.tests.test_stripe import post_webhook, signed

    invoice = issued_invoice(CustomerFactory())
    payment = Payment.objects.create(
        invoice=invoice, amount=invoice.gross_total, attempt=1, idempotency_key=f"invoice-{invoice.pk}-charge-1"
    )

    def delivery(event_id: str):
        event = {
            "id": event_id,
            "object": "event",
            "type": "payment_intent.payment_failed",
            "data": {
                "object": {
                    "id": f"pi_lost_{payment.pk}",
                    "object": "payment_intent",
                    "status": "requires_payment_method",
                    "metadata": {"invoice_id": str(invoice.pk), "payment_id": str(payment.pk)},
                    "last_payment_error": {"code": "card_declined", "message": "Your card was declined."},
                }
            },
        }
        payload = json.dumps(event).encode()

        def post():
            response = post_webhook(Client(), payload, signed(payload, settings.STRIPE_WEBHOOK_SECRET))
            return response.status_code, response.content.decode()

        return post

    results = run_together([delivery("evt_a"), delivery("evt_b"), delivery("evt_a"), delivery("evt_b")])

    assert all(isinstance(r, tuple) and r[0] == 200 for r in results), results
    bodies = sorted(body for _, body in results)
    assert bodies == ["already failed", "duplicate", "duplicate", f"invoice {invoice.display_number} payment failed"]
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.FAILED
    assert Invoice.objects.get(pk=invoice.pk).state == Invoice.State.OPEN
    assert failed_processes(invoice).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_failed_charges_of_one_invoice_start_one_dunning(client, stripe_settings):
    """Finance presses "Charge" while the nightly charge job runs, twice over, and once more later:
    every charge is declined."""
    customer = CustomerFactory()
    save_card(client, customer, DECLINED_ON_CHARGE)
    invoice = issued_invoice(customer)

    results = run_together([lambda: services.invoice_charge(invoice=invoice).status for _ in range(3)])
    later = services.invoice_charge(invoice=invoice)

    assert results == ["failed"] * 3 and later.status == "failed"
    assert Payment.objects.filter(invoice=invoice, status="failed").count() >= 2
    assert failed_processes(invoice).count() == 1, "one dunning for the invoice, not one per failed charge"


@pytest.mark.django_db(transaction=True)
def test_concurrent_dunning_starts_for_one_invoice_start_one_process():
    """Whoever calls dunning_start (a demo, a replay, a later caller) at the same moment: one dunning."""
    invoice = issued_invoice(CustomerFactory())
    payments = [
        Payment.objects.create(
            invoice=invoice,
            amount=invoice.gross_total,
            attempt=n,
            status="failed",
            failure_code="card_declined",
            idempotency_key=f"invoice-{invoice.pk}-charge-{n}",
        )
        for n in range(1, 5)
    ]

    results = run_together([lambda p=p: services.dunning_start(invoice=invoice, payment=p) for p in payments])

    assert not [r for r in results if isinstance(r, BaseException)], results
    assert failed_processes(invoice).count() == 1
    assert sum(1 for r in results if r is not None) == 1, results
