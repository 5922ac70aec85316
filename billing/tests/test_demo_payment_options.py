"""The demo shows every payment option: products offering bank transfer, companies paying by transfer (their
invoices carry an RF reference), private customers paying by SEPA Direct Debit with an accepted mandate."""

import io

import pytest
import time_machine
from stdnum import iso11649

from billing import demo
from billing.models import BillingException, Invoice, PaymentMethod
from carparks import demo as carparks_demo
from carparks.models import Customer, Product

pytestmark = pytest.mark.django_db


def test_the_demo_uses_card_sepa_and_bank_transfer():
    with time_machine.travel("2026-05-12 09:00 +02:00", tick=False):
        carparks_demo.load(io.StringIO())
        demo.load(io.StringIO())
        demo.load(io.StringIO())  # a second load adds no mandate

    assert Product.objects.filter(payment_options__contains=["bank_transfer"]).exists()
    assert Product.objects.exclude(payment_options__contains=["bank_transfer"]).exists()
    options = set(Customer.objects.values_list("payment_option", flat=True))
    assert options == {"card", "sepa_debit", "bank_transfer"}

    sepa = Customer.objects.filter(payment_option="sepa_debit")
    methods = PaymentMethod.objects.filter(kind="sepa_debit")
    assert methods.count() == sepa.count() > 0
    assert all(method.is_chargeable and method.mandate_reference for method in methods)

    transfers = Invoice.objects.filter(payment_option="bank_transfer")
    assert transfers.exists() and all(iso11649.is_valid(i.payment_reference) for i in transfers)
    # A company paying by transfer needs no saved card: no missing-method exception for it.
    payers = transfers.values("customer_id")
    assert not BillingException.objects.filter(kind="missing_payment_method", customer_id__in=payers).exists()
