"""Fault: Stripe charges the card but its answer never reaches us.

Real parts: localstripe, the portal's Stripe client, the workflow engine running the built-in
``failed-payment`` process, PostgreSQL. Between the client and localstripe sits a proxy that forwards
the charge request (so the card *is* charged) and then drops the connection, for the first try and
both of the client's network retries. The engine retries the step; the retry must record the charge
Stripe made, once, and must not charge again.

localstripe ignores ``Idempotency-Key``; the proxy replays answers per key as Stripe does for 24 hours.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from billing import services
from billing.models import Invoice, Payment
from billing.stripe_api import stripe_client
from billing.tests.conftest import (  # noqa: F401 - fixtures
    _billing_definitions,
    _media_and_exports,
    localstripe_url,
    stripe_settings,
)
from billing.tests.stripe_proxy import StripeProxy
from billing.tests.test_stripe import DECLINED_ON_CHARGE, GOOD_CARD, issued_invoice, save_card, stripe_charges
from carparks.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def proxy(stripe_settings, localstripe_url):  # noqa: F811
    proxy = StripeProxy(localstripe_url)
    stripe_settings.STRIPE_API_BASE = proxy.start()
    yield proxy
    proxy.stop()


def advance(delta: timedelta) -> None:
    from workflows.testing import fire_due_timers, run_pending_system_steps

    with time_machine.travel(timezone.now() + delta, tick=False):
        fire_due_timers()
        run_pending_system_steps()


def succeeded_intents(invoice: Invoice) -> list[str]:
    found = []
    for charge in stripe_charges(invoice.customer):
        intent = stripe_client().v1.payment_intents.retrieve(charge.payment_intent).to_dict()
        if intent["metadata"].get("invoice_id") == str(invoice.pk) and intent["status"] == "succeeded":
            found.append(intent["id"])
    return found


def test_a_charge_whose_answer_is_lost_is_recorded_once_after_the_engine_retries_it(client, proxy):
    from workflows.models import Process, SystemJob
    from workflows.testing import run_pending_system_steps

    customer = CustomerFactory()
    save_card(client, customer, DECLINED_ON_CHARGE)
    invoice = issued_invoice(customer)
    assert services.invoice_charge(invoice=invoice).status == "failed"  # dunning starts
    run_pending_system_steps()
    process = Process.objects.get(definition__key="failed-payment", object_id=invoice.pk)
    save_card(client, customer, GOOD_CARD)  # the customer fixes the card after the reminder

    # Three days later the process retries the card; Stripe charges it, every answer is lost.
    proxy.drop("POST", "/v1/payment_intents", times=3)
    advance(timedelta(days=3, minutes=1))

    job = SystemJob.objects.get(process=process, step_id="retry_1")
    assert job.state == SystemJob.State.QUEUED and "lost" in job.last_error  # retrying, no failure recorded
    pending = Payment.objects.get(invoice=invoice, status=Payment.Status.PENDING)
    assert len(succeeded_intents(invoice)) == 1  # the money has moved
    assert Invoice.objects.get(pk=invoice.pk).state == Invoice.State.OPEN

    # The engine's retry (after its 10 minutes' back-off) repeats the attempt with the stored key.
    advance(timedelta(days=3, minutes=15))

    assert len(succeeded_intents(invoice)) == 1  # no second charge at Stripe
    charges = Payment.objects.filter(invoice=invoice, kind=Payment.Kind.CHARGE, status=Payment.Status.SUCCEEDED)
    assert [p.pk for p in charges] == [pending.pk]
    assert charges.get().stripe_payment_intent_id == succeeded_intents(invoice)[0]
    assert Invoice.objects.get(pk=invoice.pk).state == Invoice.State.PAID
    keys = {r.headers["idempotency-key"] for r in proxy.seen("POST", "/v1/payment_intents")[-4:]}
    assert keys == {pending.idempotency_key}
    process.refresh_from_db()
    assert (process.state, process.result) == ("completed", "paid")
