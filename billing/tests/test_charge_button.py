"""The invoice page's Charge button: every answer of the charge service is a message for Finance and a
redirect back to the invoice, for a card, a SEPA Direct Debit and a bank-transfer invoice alike; a result
the page does not know, or a lost answer from Stripe, is a neutral message too, never an error page."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from billing import services, views
from billing.models import Invoice, Payment
from billing.payment_options import PaymentOption
from billing.tests.test_bank_transfer_invoices import _card, _issued
from billing.tests.test_sepa import issue, sepa_customer, stripe_like_stripe  # noqa: F401 - fixture
from billing.tests.test_stripe import issued_invoice
from billing.tests.test_stripe_resilience import INTENTS, card_customer, proxy  # noqa: F401 - fixtures
from carparks.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def charge(client, invoice: Invoice) -> tuple[str, str]:
    """Press the button; the answer must be a redirect to the invoice page, which shows one message."""
    response = client.post(reverse("billing:invoice-charge", args=[invoice.pk]), follow=True)
    assert response.redirect_chain == [(reverse("billing:invoice-detail", args=[invoice.pk]), 302)]
    assert response.status_code == 200
    (message,) = get_messages(response.wsgi_request)
    return message.level_tag, str(message)


def test_charging_a_sepa_invoice_submits_the_debit_once_and_says_the_bank_answers_later(
    client,
    stripe_like_stripe,  # noqa: F811
    finance_user,
):
    _, debits = stripe_like_stripe
    customer, _method = sepa_customer(client)
    invoice = issue(customer)
    assert invoice.payment_option == PaymentOption.SEPA_DEBIT
    client.force_login(finance_user)

    level, text = charge(client, invoice)

    assert level == "info" and "SEPA direct debit is under way" in text
    payment = Payment.objects.get(invoice=invoice, kind=Payment.Kind.CHARGE)
    assert (payment.status, payment.method) == (Payment.Status.PROCESSING, PaymentOption.SEPA_DEBIT)

    # Pressed again while the bank has not answered: the same message, no second debit.
    assert charge(client, invoice) == (level, text)
    assert len(debits.seen("POST", INTENTS)) == 1


def test_charging_a_bank_transfer_invoice_charges_nothing_and_says_the_transfer_pays_it(client, settings, finance_user):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: any call to the provider would fail
    customer = CustomerFactory(payment_option=PaymentOption.BANK_TRANSFER)
    _card(customer)  # a card on file is not used either
    (invoice,) = _issued(customer)
    client.force_login(finance_user)

    level, text = charge(client, invoice)

    assert level == "info" and "paid by bank transfer: nothing is charged" in text
    assert not Payment.objects.filter(invoice=invoice).exists()
    assert Invoice.objects.get(pk=invoice.pk).state == Invoice.State.ISSUED


def test_a_result_the_page_does_not_know_is_a_neutral_message(client, finance_user, monkeypatch):
    (invoice,) = _issued(CustomerFactory())
    monkeypatch.setattr(services, "invoice_charge", lambda **kwargs: services.ChargeResult(None, "on_hold"))
    client.force_login(finance_user)

    assert charge(client, invoice) == ("info", "The charge ended with “on_hold”; see the payments below.")


def test_a_lost_answer_from_stripe_is_a_warning_and_the_attempt_stays_pending(
    client,
    proxy,  # noqa: F811
    card_customer,  # noqa: F811
    finance_user,
):
    invoice = issued_invoice(card_customer)
    proxy.drop("POST", INTENTS, times=10)
    client.force_login(finance_user)

    level, text = charge(client, invoice)

    assert level == "warning" and "answer to the charge was lost" in text
    assert Payment.objects.get(invoice=invoice).status == Payment.Status.PENDING


# Every result ``services.invoice_charge`` answers: its own outcomes and, when a webhook or a parallel job
# settled the attempt first, the ledger row's status.
RESULTS = {
    "succeeded",
    "failed",
    "pending",
    "processing",
    "no_payment_method",
    "not_payable",
    services.AWAITS_TRANSFER,
} | {status for status in Payment.Status.values if status != Payment.Status.PENDING}


@pytest.mark.parametrize("option", PaymentOption.values)
@pytest.mark.parametrize("status", sorted(RESULTS))
def test_every_result_of_the_charge_service_has_its_own_message(option, status):
    level, text = views._charge_message(Invoice(payment_option=option), status)
    assert level in {"success", "info", "warning", "error"} and text
    assert not text.startswith("The charge ended with")  # not the fallback for a result the page does not know


def test_a_sepa_invoice_is_spoken_of_as_a_direct_debit_not_a_card():
    sepa, card = Invoice(payment_option=PaymentOption.SEPA_DEBIT), Invoice(payment_option=PaymentOption.CARD)
    for status in ("succeeded", "failed", "no_payment_method"):
        assert "card" not in views._charge_message(sepa, status)[1]
        assert "card" in views._charge_message(card, status)[1]


def button(client, invoice: Invoice) -> str:
    """The invoice page's charge control (the button, or the note that replaces it)."""
    html = client.get(reverse("billing:invoice-detail", args=[invoice.pk])).content.decode()
    found = re.search(r"<(?:button|span)[^>]*data-charge=[^>]*>.*?</(?:button|span)>", html, re.S)
    assert found, "no charge control on the page"
    return found[0]


def test_the_page_offers_to_debit_a_sepa_invoice_not_to_charge_a_card(client, stripe_like_stripe, finance_user):  # noqa: F811
    customer, _method = sepa_customer(client)
    invoice = issue(customer)
    client.force_login(finance_user)

    control = button(client, invoice)
    assert 'data-charge="sepa_debit"' in control and "Debit the account now" in control
    assert "disabled" not in control  # the accepted mandate is what it debits


def test_a_bank_transfer_invoice_has_no_charge_button_even_with_a_card_on_file(client, finance_user):
    customer = CustomerFactory(payment_option=PaymentOption.BANK_TRANSFER)
    _card(customer)
    (invoice,) = _issued(customer)
    client.force_login(finance_user)

    control = button(client, invoice)
    assert control.startswith("<span") and "Paid by bank transfer: nothing to charge" in control


def test_a_card_invoice_without_a_card_has_the_card_button_disabled_even_with_a_sepa_mandate(
    client,
    stripe_like_stripe,  # noqa: F811
    finance_user,
):
    customer, _method = sepa_customer(client)
    customer.payment_option = PaymentOption.CARD
    customer.save(update_fields=["payment_option"])
    invoice = issue(customer)
    assert invoice.payment_option == PaymentOption.CARD
    client.force_login(finance_user)

    control = button(client, invoice)
    assert 'data-charge="card"' in control and "disabled" in control and "No saved card" in control
