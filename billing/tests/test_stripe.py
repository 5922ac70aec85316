"""Card payments against a real localstripe server (started once per test session)."""

import hashlib
import hmac
import json
import threading
import time
from datetime import date
from decimal import Decimal

import pytest
from django.core import mail
from django.db import close_old_connections, connection
from django.urls import reverse

from billing import services, tasks
from billing.models import BillingException, Invoice, InvoiceEvent, Payment, PaymentMethod, StripeEvent
from billing.stripe_api import stripe_client
from billing.tests.conftest import engine_available
from billing.tests.factories import ContractFactory
from carparks.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

GOOD_CARD = "4242424242424242"
DECLINED_ON_CHARGE = "4000000000000341"


def save_card(client, customer, number=GOOD_CARD) -> PaymentMethod:
    """What the customer does: open the link, let Stripe.js confirm the SetupIntent, come back."""
    token = services.card_setup_token(customer=customer)
    page = client.get(reverse("billing:card-setup", args=[token]))
    assert page.status_code == 200
    setup_intent_id = page.context["setup_intent_id"]
    stripe_client().v1.setup_intents.confirm(
        setup_intent_id,
        params={
            "payment_method_data": {
                "type": "card",
                "card": {"number": number, "exp_month": "12", "exp_year": "2030", "cvc": "123"},
            }
        },
    )
    done = client.get(reverse("billing:card-setup-return", args=[token]), {"setup_intent": setup_intent_id})
    assert done.status_code == 200, done.content
    return PaymentMethod.objects.get(customer=customer, stripe_setup_intent_id=setup_intent_id)


def issued_invoice(customer) -> Invoice:
    ContractFactory(customer=customer, monthly_price=Decimal("119.00"), start_date=date(2026, 1, 1))
    run = services.invoicing_run_create(period_start=date(2026, 3, 1))
    services.invoicing_run_execute(run=run, deliver=False)
    return Invoice.objects.get(customer=customer)


def stripe_charges(customer) -> list:
    customer.refresh_from_db()
    return list(stripe_client().v1.charges.list(params={"customer": customer.stripe_customer_id, "limit": 100}))


def test_it_saves_a_card_through_a_setup_intent(client, stripe_settings):
    customer = CustomerFactory()
    method = save_card(client, customer)
    customer.refresh_from_db()
    assert customer.stripe_customer_id.startswith("cus_")
    assert (method.brand, method.last4, method.is_default) == ("visa", "4242", True)
    remote = stripe_client().v1.payment_methods.retrieve(method.stripe_payment_method_id)
    assert remote.customer == customer.stripe_customer_id
    # The page is public, but a forged or foreign token is refused.
    assert client.get(reverse("billing:card-setup", args=["forged"])).status_code == 400


def test_a_charge_succeeds_and_pays_the_invoice(client, stripe_settings, django_capture_on_commit_callbacks):
    customer = CustomerFactory()
    save_card(client, customer)
    invoice = issued_invoice(customer)

    with django_capture_on_commit_callbacks(execute=False):
        result = services.invoice_charge(invoice=invoice)

    assert result.status == "succeeded"
    invoice.refresh_from_db()
    assert invoice.state == Invoice.State.PAID and invoice.paid_at is not None
    payment = Payment.objects.get(invoice=invoice)
    assert payment.status == Payment.Status.SUCCEEDED and payment.stripe_payment_intent_id.startswith("pi_")
    assert payment.idempotency_key.startswith(f"invoice-{invoice.pk}-charge-1-")  # stored, with a random part
    charges = stripe_charges(customer)
    assert [(c.amount, c.status) for c in charges] == [(11900, "succeeded")]


def test_a_declined_card_leaves_the_invoice_open_and_starts_dunning(client, stripe_settings):
    customer = CustomerFactory()
    save_card(client, customer, DECLINED_ON_CHARGE)
    invoice = issued_invoice(customer)

    result = services.invoice_charge(invoice=invoice)

    assert result.status == "failed"
    invoice.refresh_from_db()
    assert invoice.state == Invoice.State.OPEN
    payment = Payment.objects.get(invoice=invoice)
    assert payment.status == Payment.Status.FAILED and payment.failure_code == "card_declined"
    if engine_available():
        from workflows.models import Process

        process = Process.objects.get(object_id=invoice.pk, definition__key="failed-payment")
        assert process.state == "running"
        assert process.variables["invoice_id"] == invoice.pk
    else:
        assert BillingException.objects.get(invoice=invoice).kind == BillingException.Kind.CHARGE_FAILED
    # A second failure for the same invoice does not start a second dunning.
    services.invoice_charge(invoice=invoice)
    assert Payment.objects.filter(invoice=invoice, status="failed").count() == 2
    if not engine_available():
        assert BillingException.objects.filter(invoice=invoice).count() == 1


def test_a_rerun_charge_job_charges_once(client, stripe_settings):
    customer = CustomerFactory()
    save_card(client, customer)
    invoice = issued_invoice(customer)

    assert tasks.invoice_charge_task(invoice.pk) == "succeeded"
    assert tasks.invoice_charge_task(invoice.pk) == "succeeded"
    services.invoice_charge(invoice=invoice)

    assert Payment.objects.filter(invoice=invoice).count() == 1
    assert len(stripe_charges(customer)) == 1


@pytest.mark.django_db(transaction=True)
def test_parallel_charge_jobs_for_one_invoice_charge_once(client, stripe_settings):
    customer = CustomerFactory()
    save_card(client, customer)
    invoice = issued_invoice(customer)
    barrier = threading.Barrier(3)
    results = []

    def job():
        try:
            barrier.wait()
            results.append(services.invoice_charge(invoice=invoice).status)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=job) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == ["succeeded"] * 3
    assert Payment.objects.filter(invoice=invoice).count() == 1
    assert len(stripe_charges(customer)) == 1


def test_finance_refunds_a_payment_from_the_portal(client, stripe_settings, finance_user):
    customer = CustomerFactory()
    save_card(client, customer)
    invoice = issued_invoice(customer)
    payment = services.invoice_charge(invoice=invoice).payment
    client.force_login(finance_user)

    response = client.post(
        reverse("billing:refund-create", args=[payment.pk]), {"amount": "19,00", "reason": "Goodwill"}
    )
    assert response.status_code == 302
    refund = Payment.objects.get(invoice=invoice, kind=Payment.Kind.REFUND)
    assert (refund.amount, refund.status) == (Decimal("19.00"), Payment.Status.SUCCEEDED)
    remote = stripe_client().v1.refunds.retrieve(refund.stripe_refund_id)
    assert remote.amount == 1900
    # More than what is left is refused, and nothing reaches Stripe.
    client.post(reverse("billing:refund-create", args=[payment.pk]), {"amount": "200", "reason": "Too much"})
    assert Payment.objects.filter(kind=Payment.Kind.REFUND).count() == 1


# --- webhooks ------------------------------------------------------------------------------------


def signed(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    timestamp = timestamp or int(time.time())
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


@pytest.fixture
def pending_charge(client, stripe_settings):
    """A charge Stripe made whose outcome our ledger has not heard yet (e.g. a worker died)."""
    customer = CustomerFactory(language="en")
    method = save_card(client, customer)
    invoice = issued_invoice(customer)
    payment = Payment.objects.create(
        invoice=invoice, amount=invoice.gross_total, idempotency_key=f"invoice-{invoice.pk}-charge-1",
        payment_method=method,
    )  # fmt: skip
    intent = stripe_client().v1.payment_intents.create(
        params={
            "amount": 11900, "currency": "eur", "customer": method.stripe_customer_id,
            "payment_method": method.stripe_payment_method_id, "off_session": True, "confirm": True,
            "metadata": {"invoice_id": str(invoice.pk), "payment_id": str(payment.pk)},
        }
    )  # fmt: skip
    event = {
        "id": "evt_test_paid_1",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {"object": intent.to_dict()},
    }
    return invoice, payment, json.dumps(event).encode()


def post_webhook(client, payload: bytes, signature: str):
    return client.post(
        reverse("billing:stripe-webhook"), payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
    )


def test_a_webhook_with_a_bad_signature_gets_400_and_changes_nothing(client, settings, pending_charge):
    invoice, payment, payload = pending_charge
    response = post_webhook(client, payload, signed(payload, "whsec_wrong"))
    assert response.status_code == 400
    tampered = payload.replace(b"11900", b"100")
    assert post_webhook(client, tampered, signed(payload, settings.STRIPE_WEBHOOK_SECRET)).status_code == 400
    assert post_webhook(client, payload, "").status_code == 400
    assert StripeEvent.objects.count() == 0
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.PENDING
    assert Invoice.objects.get(pk=invoice.pk).state == Invoice.State.ISSUED


def test_the_same_webhook_twice_changes_things_once(
    client, settings, pending_charge, django_capture_on_commit_callbacks
):
    invoice, payment, payload = pending_charge
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = post_webhook(client, payload, signed(payload, settings.STRIPE_WEBHOOK_SECRET))
        second = post_webhook(client, payload, signed(payload, settings.STRIPE_WEBHOOK_SECRET))
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.content == b"duplicate"
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.SUCCEEDED
    assert Invoice.objects.get(pk=invoice.pk).state == Invoice.State.PAID
    assert StripeEvent.objects.count() == 1
    assert InvoiceEvent.objects.filter(invoice=invoice, to_state="paid").count() == 1
    assert len(callbacks) == 1  # one receipt / payment.succeeded hand-off queued
    tasks.payment_received(invoice.pk)
    tasks.payment_received(invoice.pk)  # a re-delivered job
    assert [m.subject for m in mail.outbox] == [f"Payment received for invoice {invoice.display_number}"]


def test_the_monthly_run_emails_each_invoice_and_charges_the_saved_card(
    client, stripe_settings, django_capture_on_commit_callbacks
):
    customer = CustomerFactory(language="en")
    save_card(client, customer)
    ContractFactory(customer=customer, monthly_price=Decimal("119.00"), start_date=date(2026, 1, 1))
    run = services.invoicing_run_create(period_start=date(2026, 3, 1))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.invoicing_run_execute(run=run)
    assert len(callbacks) == 1  # the delivery of the chunk's invoices is queued after commit
    invoice = Invoice.objects.get(customer=customer)

    assert tasks.invoice_deliver(invoice.pk) == "succeeded"  # what the worker runs
    assert tasks.invoice_deliver(invoice.pk) == "succeeded"  # a re-delivered message

    assert [m.subject for m in mail.outbox] == [f"Your invoice {invoice.display_number} for season parking March 2026"]
    assert mail.outbox[0].attachments[0][2] == "application/pdf"
    assert Invoice.objects.get(pk=invoice.pk).state == Invoice.State.PAID
    assert len(stripe_charges(customer)) == 1


@pytest.mark.django_db(transaction=True)
def test_localstripe_delivers_a_signed_webhook_that_we_verify(client, stripe_settings, live_server, settings):
    """localstripe signs and POSTs the event itself: the real signature format, the real raw body."""
    import urllib.request

    customer = CustomerFactory()
    method = save_card(client, customer)
    invoice = issued_invoice(customer)
    payment = Payment.objects.create(
        invoice=invoice, amount=invoice.gross_total, idempotency_key=f"invoice-{invoice.pk}-charge-1",
        payment_method=method,
    )  # fmt: skip
    hook = urllib.request.Request(
        f"{settings.STRIPE_API_BASE}/_config/webhooks/parkinghq-test",
        data=(
            f"url={live_server.url}{reverse('billing:stripe-webhook')}&secret={settings.STRIPE_WEBHOOK_SECRET}"
            "&events[]=payment_intent.succeeded"
        ).encode(),
        method="POST",
    )
    urllib.request.urlopen(hook, timeout=5).close()  # noqa: S310 - our local localstripe
    try:
        intent = stripe_client().v1.payment_intents.create(
            params={
                "amount": 11900, "currency": "eur", "customer": method.stripe_customer_id,
                "payment_method": method.stripe_payment_method_id, "off_session": True, "confirm": True,
                "metadata": {"invoice_id": str(invoice.pk), "payment_id": str(payment.pk)},
            }
        )  # fmt: skip
        ours = StripeEvent.objects.filter(payload__data__object__id=intent.id)
        deadline = time.monotonic() + 15  # localstripe posts about a second later, from its own loop
        while time.monotonic() < deadline and not ours.exists():
            time.sleep(0.2)
    finally:
        # Point the hook somewhere harmless so later events of this session are not sent to a dead server.
        urllib.request.urlopen(  # noqa: S310
            urllib.request.Request(
                f"{settings.STRIPE_API_BASE}/_config/webhooks/parkinghq-test",
                data=b"url=http://127.0.0.1:9/&secret=x&events[]=none",
                method="POST",
            ),
            timeout=5,
        ).close()
    event = ours.get()
    assert event.type == "payment_intent.succeeded" and event.result == f"invoice {invoice.display_number} paid"
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.SUCCEEDED
    assert Invoice.objects.get(pk=invoice.pk).state == Invoice.State.PAID


# --- refunds made or changed outside the portal ---------------------------------------------------


def _event(event_id: str, kind: str, obj: dict) -> bytes:
    return json.dumps(
        {"id": event_id, "object": "event", "type": kind, "created": int(time.time()), "data": {"object": obj}}
    ).encode()


@pytest.fixture
def paid_invoice(client, stripe_settings):
    customer = CustomerFactory()
    save_card(client, customer)
    invoice = issued_invoice(customer)
    payment = services.invoice_charge(invoice=invoice).payment
    assert payment.status == Payment.Status.SUCCEEDED and payment.stripe_charge_id
    return invoice, payment


def test_a_refund_made_in_the_stripe_dashboard_is_recorded_once(client, settings, paid_invoice, finance_user):
    invoice, payment = paid_invoice
    # What an operator does in the Stripe Dashboard: refund 30.00 of the charge there.
    remote = stripe_client().v1.refunds.create(params={"charge": payment.stripe_charge_id, "amount": 3000})
    charge = stripe_client().v1.charges.retrieve(payment.stripe_charge_id).to_dict()
    secret = settings.STRIPE_WEBHOOK_SECRET

    payload = _event("evt_refunded_1", "charge.refunded", charge)
    response = post_webhook(client, payload, signed(payload, secret))
    assert response.status_code == 200
    assert response.content.decode() == f"refund of 30.00 recorded for invoice {invoice.display_number}"
    refund = Payment.objects.get(invoice=invoice, kind=Payment.Kind.REFUND)
    assert (refund.amount, refund.status, refund.stripe_refund_id) == (
        Decimal("30.00"), Payment.Status.SUCCEEDED, remote.id,
    )  # fmt: skip
    assert InvoiceEvent.objects.filter(invoice=invoice, note__contains=remote.id).count() == 1

    # The same refund reported again by another event type changes nothing.
    payload = _event("evt_refund_created_1", "refund.created", remote.to_dict())
    assert post_webhook(client, payload, signed(payload, secret)).content == b"refund already recorded"
    assert Payment.objects.filter(invoice=invoice, kind=Payment.Kind.REFUND).count() == 1

    # The portal knows only 89.00 is left to refund.
    client.force_login(finance_user)
    client.post(reverse("billing:refund-create", args=[payment.pk]), {"amount": "90", "reason": "Too much"})
    assert Payment.objects.filter(invoice=invoice, kind=Payment.Kind.REFUND).count() == 1
    client.post(reverse("billing:refund-create", args=[payment.pk]), {"amount": "89", "reason": "Rest"})
    assert Payment.objects.filter(invoice=invoice, kind=Payment.Kind.REFUND).count() == 2


def test_a_portal_refund_that_fails_later_frees_its_amount(client, settings, paid_invoice):
    invoice, payment = paid_invoice
    refund = services.refund_create(payment=payment, amount=Decimal("119.00"), reason="Cancelled")
    assert refund.status == Payment.Status.SUCCEEDED
    with pytest.raises(services.BillingError):
        services.refund_create(payment=payment, amount=Decimal("1.00"), reason="More")
    # Stripe reports later that the refund failed (e.g. the card account was closed).
    failed = stripe_client().v1.refunds.retrieve(refund.stripe_refund_id).to_dict() | {"status": "failed"}
    payload = _event("evt_refund_failed_1", "refund.failed", failed)
    response = post_webhook(client, payload, signed(payload, settings.STRIPE_WEBHOOK_SECRET))
    assert response.content == b"refund failed"
    assert Payment.objects.get(pk=refund.pk).status == Payment.Status.FAILED
    assert InvoiceEvent.objects.filter(invoice=invoice, note="Refund of 119.00 EUR failed in Stripe").exists()
    # A late "pending" report does not undo the outcome; the amount can be refunded again.
    payload = _event("evt_refund_pending_1", "refund.updated", failed | {"status": "pending"})
    assert post_webhook(client, payload, signed(payload, settings.STRIPE_WEBHOOK_SECRET)).content == (
        b"refund already failed"
    )
    assert services.refund_create(payment=payment, amount=Decimal("119.00"), reason="Again").status == "succeeded"


def test_a_refund_of_a_charge_we_do_not_know_changes_nothing(client, settings, stripe_settings):
    obj = {"id": "re_foreign", "object": "refund", "amount": 500, "currency": "eur", "status": "succeeded",
           "charge": "ch_foreign", "payment_intent": "pi_foreign"}  # fmt: skip
    payload = _event("evt_foreign_refund", "refund.created", obj)
    response = post_webhook(client, payload, signed(payload, settings.STRIPE_WEBHOOK_SECRET))
    assert response.content == b"refund of an unknown charge"
    assert not Payment.objects.filter(kind=Payment.Kind.REFUND).exists()


def test_when_stripe_cannot_be_read_the_event_is_answered_503_and_kept_for_a_retry(client, settings, paid_invoice):
    invoice, payment = paid_invoice
    charge = stripe_client().v1.charges.retrieve(payment.stripe_charge_id).to_dict()
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: Stripe unreachable
    payload = _event("evt_refunded_later", "charge.refunded", charge)
    response = post_webhook(client, payload, signed(payload, settings.STRIPE_WEBHOOK_SECRET))
    assert response.status_code == 503
    assert not StripeEvent.objects.filter(event_id="evt_refunded_later").exists()  # Stripe's retry is processed


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_of_one_refund_at_once_record_it_once(client, stripe_settings, paid_invoice):
    invoice, payment = paid_invoice
    remote = stripe_client().v1.refunds.create(params={"charge": payment.stripe_charge_id, "amount": 1000})
    charge = stripe_client().v1.charges.retrieve(payment.stripe_charge_id).to_dict()
    events = [
        {"id": "evt_race_a", "type": "refund.created", "data": {"object": remote.to_dict()}},
        {"id": "evt_race_b", "type": "charge.refunded", "data": {"object": charge}},
    ]
    barrier = threading.Barrier(2)
    results: list[str] = []

    def deliver(event: dict) -> None:
        try:
            barrier.wait()
            results.append(services.stripe_event_process(event=event))
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.split(" for ")[0] for r in results) == ["refund already recorded", "refund of 10.00 recorded"]
    assert Payment.objects.filter(invoice=invoice, kind=Payment.Kind.REFUND).count() == 1
