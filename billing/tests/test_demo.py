import io

import pytest
from django.urls import reverse

from billing import demo
from billing.models import Invoice, Payment
from billing.tests.factories import ContractFactory

pytestmark = pytest.mark.django_db


def test_the_demo_skips_cleanly_without_contracts():
    out = io.StringIO()
    demo.load(out)
    assert "skipped" in out.getvalue() and not Invoice.objects.exists()


def test_the_demo_bills_two_months_and_is_idempotent():
    for _ in range(3):
        ContractFactory()
    demo.load(io.StringIO())
    snapshot = sorted(Invoice.objects.values_list("pk", "state"))
    demo.load(io.StringIO())
    assert sorted(Invoice.objects.values_list("pk", "state")) == snapshot
    assert Invoice.objects.count() == 6
    assert Invoice.objects.filter(state="paid").count() == 2


def test_finance_records_a_bank_transfer(client, finance_user):
    ContractFactory()
    demo.load(io.StringIO())
    invoice = Invoice.objects.filter(state="issued").first()
    client.force_login(finance_user)
    client.post(reverse("billing:invoice-transfer", args=[invoice.pk]), {"reference": "SEPA 4711"})
    assert Invoice.objects.get(pk=invoice.pk).state == Invoice.State.PAID
    assert Payment.objects.get(invoice=invoice).reason == "Bank transfer: SEPA 4711"
    response = client.post(reverse("billing:invoice-transfer", args=[invoice.pk]), {"reference": "again"}, follow=True)
    assert b"is paid" in response.content
    assert Payment.objects.filter(invoice=invoice).count() == 1
