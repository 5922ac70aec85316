"""The payment-provider interface: chosen per option from settings, Stripe behind it (against localstripe)."""

from decimal import Decimal

import pytest

from billing import providers
from billing.models import Payment
from billing.providers.stripe import Provider as StripeProvider
from billing.tests.test_stripe import DECLINED_ON_CHARGE, issued_invoice, save_card
from carparks.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_each_provider_collected_option_has_the_configured_provider_and_a_transfer_none(settings):
    card = providers.provider_for("card")
    assert isinstance(card, StripeProvider) and isinstance(card, providers.PaymentProvider)
    assert providers.provider_for("sepa_debit") is card
    with pytest.raises(providers.ProviderError, match="Bank transfer on invoice is not collected"):
        providers.provider_for("bank_transfer")
    with pytest.raises(providers.ProviderError):
        providers.provider_for("cash")
    settings.BILLING_PROVIDERS = {"card": "stripe"}
    with pytest.raises(providers.ProviderError, match="No payment provider is configured for sepa_debit"):
        providers.provider_for("sepa_debit")
    settings.BILLING_PROVIDERS = {"card": "nonexistent"}
    with pytest.raises(providers.ProviderError, match="no payment provider module billing.providers.nonexistent"):
        providers.provider_for("card")


def _attempt(invoice, method, n=1):
    return Payment.objects.create(
        invoice=invoice, amount=invoice.gross_total, idempotency_key=f"provider-test-{invoice.pk}-{n}",
        payment_method=method,
    )  # fmt: skip


def test_stripe_charges_looks_up_and_reports_a_decline_through_the_interface(client, stripe_settings):
    provider = providers.provider_for("card")
    customer = CustomerFactory()
    method = save_card(client, customer)
    invoice = issued_invoice(customer)
    payment = _attempt(invoice, method)
    assert provider.charge_lookup(payment) is None  # nothing made for the row yet

    result = provider.charge(invoice, payment, method)
    assert result.status == "succeeded" and result.payment_id.startswith("pi_") and result.charge_id
    payment.stripe_payment_intent_id = result.payment_id
    again = provider.charge_lookup(payment)
    assert (again.status, again.payment_id) == ("succeeded", result.payment_id)
    assert invoice.gross_total == Decimal("119.00")

    declined_customer = CustomerFactory()
    declined_method = save_card(client, declined_customer, DECLINED_ON_CHARGE)
    declined_invoice = issued_invoice(declined_customer)
    declined = provider.charge(declined_invoice, _attempt(declined_invoice, declined_method), declined_method)
    assert declined.status == "failed" and declined.failure_code


def test_a_webhook_with_a_bad_signature_is_refused_by_the_provider(settings):
    settings.STRIPE_WEBHOOK_SECRET = "whsec_test"
    with pytest.raises(providers.EventInvalid):
        providers.provider_named("stripe").event_parse(b'{"id": "evt_1"}', "t=1,v1=forged")
