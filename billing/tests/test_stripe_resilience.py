"""Money that is never lost: lost Stripe answers, stable idempotency keys, webhooks for intents the
ledger does not know, and disputes.

Stripe runs as localstripe behind :class:`StripeProxy`, which loses answers on purpose and replays
answers per ``Idempotency-Key`` as Stripe does for 24 hours (localstripe ignores the header).
Disputes cannot be made in localstripe: their events are written from Stripe's API reference (the
Dispute object) around real localstripe charges.
"""

from __future__ import annotations

import json
import time

import pytest
from django.urls import reverse

from billing import services
from billing.models import BillingException, Dispute, Invoice, Payment, StripeEvent
from billing.stripe_api import stripe_client
from billing.tests.stripe_proxy import StripeProxy
from billing.tests.test_stripe import issued_invoice, post_webhook, save_card, signed, stripe_charges
from carparks.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

INTENTS = "/v1/payment_intents"


@pytest.fixture
def proxy(stripe_settings, localstripe_url):
    """Stripe (localstripe) behind the proxy; the portal's client talks to the proxy."""
    proxy = StripeProxy(localstripe_url)
    stripe_settings.STRIPE_API_BASE = proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def card_customer(client, stripe_settings):
    customer = CustomerFactory()
    save_card(client, customer)
    return customer


def intents_for(invoice: Invoice) -> list:
    """Every PaymentIntent localstripe holds for the invoice (by the metadata we set)."""
    found = []
    for charge in stripe_charges(invoice.customer):
        intent = stripe_client().v1.payment_intents.retrieve(charge.payment_intent)
        if (intent.to_dict().get("metadata") or {}).get("invoice_id") == str(invoice.pk):
            found.append(intent)
    return found


# --- finding 9: a charge whose answer is lost ----------------------------------------------------


def test_a_lost_answer_is_retried_by_the_client_with_the_same_key(proxy, card_customer):
    invoice = issued_invoice(card_customer)
    proxy.drop("POST", INTENTS, times=1)

    result = services.invoice_charge(invoice=invoice)

    assert result.status == "succeeded"
    sent = proxy.seen("POST", INTENTS)
    assert len(sent) == 2 and sent[0].dropped and sent[1].replayed  # a network retry, Stripe's stored answer
    assert sent[0].headers["idempotency-key"] == sent[1].headers["idempotency-key"] == result.payment.idempotency_key
    assert len(intents_for(invoice)) == 1


def test_a_charge_whose_answer_never_arrives_stays_pending_and_is_recorded_once_on_retry(proxy, card_customer):
    invoice = issued_invoice(card_customer)
    proxy.drop("POST", INTENTS, times=10)

    with pytest.raises(services.ChargeOutcomeUnknown):
        services.invoice_charge(invoice=invoice)

    # Stripe charged, we did not hear it: the attempt is in the ledger, pending, with the key it sent.
    payment = Payment.objects.get(invoice=invoice)
    assert payment.status == Payment.Status.PENDING
    keys = {r.headers["idempotency-key"] for r in proxy.seen("POST", INTENTS)}
    assert keys == {payment.idempotency_key}
    assert Invoice.objects.get(pk=invoice.pk).state == Invoice.State.ISSUED  # not failed, no dunning

    proxy._drops.clear()
    result = services.invoice_charge(invoice=invoice)

    assert result.status == "succeeded" and result.payment.pk == payment.pk
    assert Payment.objects.filter(invoice=invoice).count() == 1
    assert len(intents_for(invoice)) == 1
    assert Invoice.objects.get(pk=invoice.pk).state == Invoice.State.PAID


def test_after_stripes_key_window_the_retry_finds_the_charge_instead_of_charging_again(proxy, card_customer):
    invoice = issued_invoice(card_customer)
    proxy.drop("POST", INTENTS, times=10)
    with pytest.raises(services.ChargeOutcomeUnknown):
        services.invoice_charge(invoice=invoice)

    proxy._drops.clear()
    proxy.forget_keys()  # more than 24 hours later: Stripe would treat the key as new
    result = services.invoice_charge(invoice=invoice)

    assert result.status == "succeeded"
    assert len(intents_for(invoice)) == 1
    assert len(stripe_charges(card_customer)) == 1
    assert Payment.objects.get(invoice=invoice).stripe_payment_intent_id == intents_for(invoice)[0].id


def test_payment_intents_are_card_only_off_session_with_our_metadata(proxy, card_customer):
    invoice = issued_invoice(card_customer)
    payment = services.invoice_charge(invoice=invoice).payment

    form = proxy.seen("POST", INTENTS)[0].form
    assert form["payment_method_types[0]"] == "card" and "payment_method_types[1]" not in form
    assert (form["off_session"], form["confirm"]) == ("true", "true")
    assert form["metadata[invoice_id]"] == str(invoice.pk) and form["metadata[payment_id]"] == str(payment.pk)


def test_customers_and_setup_intents_are_created_with_stable_idempotency_keys(proxy, client):
    customer = CustomerFactory()
    proxy.drop("POST", "/v1/customers", times=10)
    with pytest.raises(Exception):  # noqa: B017, PT011 - Stripe out of reach
        services.setup_intent_create(customer=customer)
    proxy._drops.clear()
    services.setup_intent_create(customer=customer)

    keys = [r.headers.get("idempotency-key") for r in proxy.seen("POST", "/v1/customers")]
    assert len(keys) == 4 and None not in keys and len(set(keys)) == 1  # our retry reused the key
    customer.refresh_from_db()
    assert customer.stripe_customer_id.startswith("cus_")

    earlier = len(proxy.seen("POST", "/v1/setup_intents"))
    proxy.drop("POST", "/v1/setup_intents", times=10)
    token = services.card_setup_token(customer=customer)
    assert client.get(reverse("billing:card-setup", args=[token])).status_code == 503
    proxy._drops.clear()
    page = client.get(reverse("billing:card-setup", args=[token]))
    setup_keys = [r.headers.get("idempotency-key") for r in proxy.seen("POST", "/v1/setup_intents")[earlier:]]
    assert None not in setup_keys and len(set(setup_keys)) == 1
    assert page.context["setup_intent_id"].startswith("seti_")


# --- webhooks for intents the ledger does not know ------------------------------------------------


def _event(event_id: str, kind: str, obj: dict) -> bytes:
    return json.dumps(
        {"id": event_id, "object": "event", "type": kind, "created": int(time.time()), "data": {"object": obj}}
    ).encode()


def _send(client, settings, payload: bytes):
    return post_webhook(client, payload, signed(payload, settings.STRIPE_WEBHOOK_SECRET))


def _intent_without_ledger_row(customer, invoice, metadata: dict) -> dict:
    method = customer.payment_methods.get()
    return (
        stripe_client()
        .v1.payment_intents.create(
            params={
                "amount": 11900, "currency": "eur", "customer": method.stripe_customer_id,
                "payment_method": method.stripe_payment_method_id, "off_session": True, "confirm": True,
                "payment_method_types": ["card"], "metadata": metadata,
            }
        )
        .to_dict()
    )  # fmt: skip


def test_a_succeeded_intent_the_ledger_never_stored_is_recorded_once_from_its_metadata(client, settings, card_customer):
    invoice = issued_invoice(card_customer)
    intent = _intent_without_ledger_row(card_customer, invoice, {"invoice_id": str(invoice.pk), "payment_id": "999999"})

    first = _send(client, settings, _event("evt_lost_1", "payment_intent.succeeded", intent))
    again = _send(client, settings, _event("evt_lost_2", "payment_intent.succeeded", intent))

    assert first.status_code == again.status_code == 200
    payment = Payment.objects.get(invoice=invoice)
    assert (payment.status, payment.stripe_payment_intent_id) == (Payment.Status.SUCCEEDED, intent["id"])
    assert payment.stripe_charge_id and payment.amount == invoice.gross_total
    assert Invoice.objects.get(pk=invoice.pk).state == Invoice.State.PAID
    assert StripeEvent.objects.get(event_id="evt_lost_2").result == "already recorded"


def test_a_succeeded_intent_without_metadata_opens_a_finance_task(client, settings, card_customer):
    from workflows.models import Task

    invoice = issued_invoice(card_customer)
    intent = _intent_without_ledger_row(card_customer, invoice, {})

    assert _send(client, settings, _event("evt_orphan_1", "payment_intent.succeeded", intent)).status_code == 200
    _send(client, settings, _event("evt_orphan_1b", "payment_intent.succeeded", intent))

    item = BillingException.objects.get(kind=BillingException.Kind.UNMATCHED_PAYMENT)
    assert intent["id"] in item.message and "119.00" in item.message
    assert Task.objects.filter(process__object_id=item.pk, role="Finance", state="open").count() == 1
    assert Payment.objects.filter(invoice=invoice).count() == 0  # Finance decides where it belongs


# --- finding 10: disputes -------------------------------------------------------------------------


def _dispute(payment: Payment, *, status: str, withdrawn: bool = False, reinstated: bool = False) -> dict:
    """A Dispute object as Stripe's API reference shows it (localstripe has no disputes)."""
    cents = int(payment.amount * 100)
    transactions = []
    if withdrawn:
        transactions.append(
            {"id": "txn_dp_w", "object": "balance_transaction", "amount": -cents, "fee": 1500, "currency": "eur",
             "type": "adjustment", "reporting_category": "dispute", "source": "dp_test_1"}
        )  # fmt: skip
    if reinstated:
        transactions.append(
            {"id": "txn_dp_r", "object": "balance_transaction", "amount": cents, "fee": 0, "currency": "eur",
             "type": "adjustment", "reporting_category": "dispute_reversal", "source": "dp_test_1"}
        )  # fmt: skip
    return {
        "id": "dp_test_1", "object": "dispute", "amount": cents, "currency": "eur",
        "charge": payment.stripe_charge_id, "payment_intent": payment.stripe_payment_intent_id,
        "reason": "fraudulent", "status": status, "is_charge_refundable": False,
        "balance_transactions": transactions, "created": int(time.time()), "livemode": False, "metadata": {},
        "evidence_details": {"due_by": int(time.time()) + 7 * 86400, "has_evidence": False},
    }  # fmt: skip


def test_a_dispute_marks_the_invoice_books_the_withdrawal_and_opens_a_finance_task(client, settings, card_customer):
    from workflows.models import Task

    invoice = issued_invoice(card_customer)
    charge = services.invoice_charge(invoice=invoice).payment

    opened = _dispute(charge, status="needs_response")
    assert _send(client, settings, _event("evt_dp_1", "charge.dispute.created", opened)).status_code == 200
    assert _send(client, settings, _event("evt_dp_1", "charge.dispute.created", opened)).content == b"duplicate"
    withdrawn = _dispute(charge, status="needs_response", withdrawn=True)
    _send(client, settings, _event("evt_dp_2", "charge.dispute.funds_withdrawn", withdrawn))
    _send(client, settings, _event("evt_dp_2b", "charge.dispute.funds_withdrawn", withdrawn))  # Stripe resends

    invoice.refresh_from_db()
    assert invoice.state == Invoice.State.DISPUTED
    dispute = Dispute.objects.get(stripe_dispute_id="dp_test_1")
    assert (dispute.invoice_id, dispute.status, dispute.amount) == (invoice.pk, "needs_response", charge.amount)
    chargeback = Payment.objects.get(invoice=invoice, kind=Payment.Kind.CHARGEBACK)
    assert (chargeback.amount, chargeback.status) == (charge.amount, Payment.Status.SUCCEEDED)
    item = BillingException.objects.get(kind=BillingException.Kind.DISPUTE, invoice=invoice)
    assert Task.objects.filter(process__object_id=item.pk, role="Finance", state="open").count() == 1
    # Stripe refunds no disputed charge: the portal says so instead of trying.
    with pytest.raises(services.RefundError):
        services.refund_issue(invoice=invoice, amount=charge.amount, reason="Goodwill")


def test_a_won_dispute_makes_the_invoice_paid_again_and_a_lost_one_keeps_it_disputed(client, settings, card_customer):
    invoice = issued_invoice(card_customer)
    charge = services.invoice_charge(invoice=invoice).payment
    _send(client, settings, _event("evt_w_1", "charge.dispute.created", _dispute(charge, status="needs_response")))
    withdrawn = _dispute(charge, status="under_review", withdrawn=True)
    _send(client, settings, _event("evt_w_2", "charge.dispute.funds_withdrawn", withdrawn))
    won = _dispute(charge, status="won", withdrawn=True, reinstated=True)
    _send(client, settings, _event("evt_w_3", "charge.dispute.funds_reinstated", won))
    _send(client, settings, _event("evt_w_4", "charge.dispute.closed", won))

    invoice.refresh_from_db()
    assert invoice.state == Invoice.State.PAID
    assert Dispute.objects.get(stripe_dispute_id="dp_test_1").status == "won"
    kinds = sorted(Payment.objects.filter(invoice=invoice).values_list("kind", flat=True))
    assert kinds == ["charge", "chargeback", "reversal"]

    second = issued_invoice_for_new_customer(client)
    charge2 = services.invoice_charge(invoice=second).payment
    lost = _dispute(charge2, status="lost", withdrawn=True) | {"id": "dp_test_2"}
    _send(client, settings, _event("evt_l_1", "charge.dispute.created", lost | {"status": "needs_response"}))
    _send(client, settings, _event("evt_l_2", "charge.dispute.closed", lost))
    second.refresh_from_db()
    assert second.state == Invoice.State.DISPUTED
    assert Dispute.objects.get(stripe_dispute_id="dp_test_2").status == "lost"
    assert BillingException.objects.filter(kind=BillingException.Kind.DISPUTE, invoice=second).count() == 2


def issued_invoice_for_new_customer(client) -> Invoice:
    customer = CustomerFactory()
    save_card(client, customer)
    return issued_invoice(customer)


# --- nightly reconciliation -----------------------------------------------------------------------


def _txn(txn_id: str, kind: str, source: str, cents: int, category: str | None = None) -> dict:
    """A BalanceTransaction as Stripe's API reference shows it (localstripe has no /v1/balance_transactions)."""
    now = int(time.time())
    return {
        "id": txn_id, "object": "balance_transaction", "amount": cents, "available_on": now + 2 * 86400,
        "created": now, "currency": "eur", "description": None, "exchange_rate": None, "fee": 0,
        "fee_details": [], "net": cents, "reporting_category": category or kind, "source": source,
        "status": "pending", "type": kind,
    }  # fmt: skip


def test_the_nightly_reconciliation_opens_one_finance_task_per_difference(proxy, client):
    from django.utils import timezone

    from billing import reconciliation, tasks
    from workflows.models import Task

    first = issued_invoice_for_new_customer(client)
    charge = services.invoice_charge(invoice=first).payment
    refund = services.refund_issue(invoice=first, amount=services.Decimal("19.00"), reason="Goodwill")
    refund = services.refund_send(refund=refund)
    second = issued_invoice_for_new_customer(client)
    unbooked = services.invoice_charge(invoice=second).payment  # Stripe has no transaction for it (below)
    transactions = [
        _txn("txn_1", "charge", charge.stripe_charge_id, 11900),  # matches
        _txn("txn_2", "refund", refund.stripe_refund_id, -2000),  # the ledger says 19.00
        _txn("txn_3", "charge", "ch_not_ours", 5000),  # money the ledger does not know
        _txn("txn_4", "payout", "po_1", -100000),  # not a ledger matter
        _txn("txn_5", "stripe_fee", "", -30),
    ]
    proxy.serve("/v1/balance_transactions", {"object": "list", "url": "/v1/balance_transactions",
                                             "has_more": False, "data": transactions})  # fmt: skip

    items = reconciliation.stripe_reconcile_day(day=timezone.now().date())
    again = reconciliation.stripe_reconcile_day(day=timezone.now().date())

    messages = sorted(item.message for item in items)
    assert len(items) == 3 and {i.pk for i in items} == {i.pk for i in again}
    assert any("ch_not_ours" in m and "not in the ledger" in m for m in messages)
    assert any(refund.stripe_refund_id in m and "-19.00" in m for m in messages)
    assert any(unbooked.stripe_charge_id in m and "no balance transaction" in m for m in messages)
    assert BillingException.objects.filter(kind=BillingException.Kind.RECONCILIATION).count() == 3
    assert Task.objects.filter(process__object_id__in=[i.pk for i in items], role="Finance").count() == 3
    # The query asked Stripe for the day (with a margin), and the beat task runs the same for yesterday.
    sent = proxy.seen("GET", "/v1/balance_transactions")[0]
    assert sent.path == "/v1/balance_transactions"
    assert tasks.stripe_reconcile_nightly() >= 0


def test_the_reconciliation_settles_a_charge_left_pending_before_comparing(proxy, card_customer):
    from datetime import timedelta

    from django.utils import timezone

    from billing import reconciliation

    invoice = issued_invoice(card_customer)
    proxy.drop("POST", INTENTS, times=10)
    with pytest.raises(services.ChargeOutcomeUnknown):
        services.invoice_charge(invoice=invoice)
    proxy._drops.clear()

    assert reconciliation.pending_charges_settle(now=timezone.now() + timedelta(hours=1)) == 1
    payment = Payment.objects.get(invoice=invoice)
    assert payment.status == Payment.Status.SUCCEEDED and len(intents_for(invoice)) == 1
