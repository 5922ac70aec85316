"""Invoices paid by bank transfer: the option and RF reference at issue, what the PDF, email and Factur-X
say, no charge at the provider, and the overdue-transfer reminder (once per invoice)."""

import io
from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from lxml import etree
from pypdf import PdfReader
from stdnum import iso11649

from billing import bank_transfer, documents, services
from billing.models import BillingException, Invoice, Payment, PaymentMethod
from billing.tests.factories import ContractFactory
from carparks.tests.factories import CorporateFactory, CustomerFactory, january_invoice

pytestmark = pytest.mark.django_db

OPERATOR_IBAN = "DE02120300000000202051"


@pytest.fixture(autouse=True)
def _operator(settings):
    settings.BILLING_OPERATOR = {**settings.BILLING_OPERATOR, "iban": OPERATOR_IBAN, "bic": "BYLADEM1001"}


def _card(customer):
    return PaymentMethod.objects.create(
        customer=customer, stripe_customer_id="cus_x", stripe_payment_method_id=f"pm_{customer.pk}", last4="4242"
    )


def _issued(*customers):
    """Bill March 2026 for one contract per customer; the run issues the invoices (no delivery)."""
    with time_machine.travel("2026-03-01 06:00 +01:00", tick=False):
        for customer in customers:
            ContractFactory(customer=customer, monthly_price=Decimal("119.00"), start_date=date(2026, 1, 1))
        run = services.invoicing_run_create(period_start=date(2026, 3, 1))
        services.invoicing_run_execute(run=run, deliver=False)
    return [Invoice.objects.get(customer=customer) for customer in customers]


def test_the_rf_reference_is_iso_11649_and_derived_from_the_invoice_number():
    assert bank_transfer.creditor_reference("INV2026-000133") == "RF22INV2026000133"
    assert iso11649.is_valid(bank_transfer.creditor_reference("INV2026-000133"))
    assert bank_transfer.creditor_reference("539007547034") == "RF18539007547034"  # ISO 11649's own example
    with pytest.raises(ValueError):
        bank_transfer.creditor_reference("X" * 22)


def test_the_run_sets_each_invoices_option_and_gives_transfer_invoices_an_rf_reference():
    transfer = CorporateFactory(payment_option="bank_transfer")
    card = CustomerFactory(payment_option="card")
    _card(card)
    by_transfer, by_card = _issued(transfer, card)

    assert by_transfer.payment_option == "bank_transfer"
    assert by_transfer.payment_reference == bank_transfer.creditor_reference(by_transfer.display_number)
    assert iso11649.is_valid(by_transfer.payment_reference)
    assert by_transfer.payment_reference.endswith(by_transfer.display_number.replace("-", ""))
    assert (by_card.payment_option, by_card.payment_reference) == ("card", "")
    # A transfer customer needs no saved card: no "missing payment method" exception for them.
    assert not BillingException.objects.filter(customer=transfer).exists()


def test_finalising_a_single_invoice_sets_the_option_and_reference_too():
    customer = CustomerFactory(payment_option="bank_transfer")
    draft = january_invoice(customer, ContractFactory(customer=customer))
    invoice = services.invoice_finalise(invoice=draft)
    invoice.refresh_from_db()
    assert invoice.payment_option == "bank_transfer"
    assert invoice.payment_reference == bank_transfer.creditor_reference(invoice.display_number)


def test_the_pdf_email_and_facturx_give_the_iban_and_reference(settings):
    customer = CorporateFactory(payment_option="bank_transfer", language="en", email="ap@example.com")
    _card(customer)  # a card on file does not make a transfer invoice a card invoice
    (invoice,) = _issued(customer)

    xml = documents.facturx_xml(invoice)
    documents.facturx_check(xml)
    tree = etree.fromstring(xml)
    ns = documents.NS
    means = tree.find(".//ram:SpecifiedTradeSettlementPaymentMeans", ns)
    assert means.findtext("ram:TypeCode", namespaces=ns) == "58"
    assert means.findtext("ram:PayeePartyCreditorFinancialAccount/ram:IBANID", namespaces=ns) == OPERATOR_IBAN
    assert means.findtext("ram:PayeeSpecifiedCreditorFinancialInstitution/ram:BICID", namespaces=ns) == "BYLADEM1001"
    assert tree.findtext(".//ram:PaymentReference", namespaces=ns) == invoice.payment_reference

    services.invoice_send(invoice=invoice)
    invoice.refresh_from_db()
    text = PdfReader(io.BytesIO(invoice.pdf.open("rb").read())).pages[0].extract_text()
    printed = bank_transfer.reference_format(invoice.payment_reference)
    assert "Payment by bank transfer" in text
    assert "DE02 1203 0000 0000 2020 51" in text and printed in text and "BYLADEM1001" in text
    assert "charged to your saved card" not in text
    (email,) = mail.outbox
    assert f"Reference: {printed}" in email.body and "IBAN: DE02 1203 0000 0000 2020 51" in email.body
    assert "Please transfer 119.00 €" in email.body or "Please transfer €119.00" in email.body


def test_a_card_invoice_keeps_type_48_and_its_number_as_reference():
    customer = CustomerFactory(payment_option="card")
    _card(customer)
    (invoice,) = _issued(customer)
    tree = etree.fromstring(documents.facturx_xml(invoice))
    assert tree.findtext(".//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode", namespaces=documents.NS) == "48"
    assert tree.findtext(".//ram:PaymentReference", namespaces=documents.NS) == invoice.display_number
    assert bank_transfer.transfer_instructions(invoice) is None


def test_a_sepa_invoice_is_type_59_with_mandate_creditor_id_and_masked_iban(settings):
    customer = CustomerFactory(payment_option="sepa_debit")
    PaymentMethod.objects.create(
        customer=customer,
        kind="sepa_debit",
        stripe_customer_id="cus_s",
        stripe_payment_method_id=f"pm_sepa_{customer.pk}",
        last4="3000",
        country="DE",
        mandate_reference="PHQ-M-000042",
        mandate_text="I authorise …",
        mandate_accepted_at=timezone.now(),
    )
    (invoice,) = _issued(customer)
    xml = documents.facturx_xml(invoice)
    documents.facturx_check(xml)
    tree = etree.fromstring(xml)
    ns = documents.NS
    means = tree.find(".//ram:SpecifiedTradeSettlementPaymentMeans", ns)
    assert means.findtext("ram:TypeCode", namespaces=ns) == "59"
    debtor = means.findtext("ram:PayerPartyDebtorFinancialAccount/ram:IBANID", namespaces=ns)
    assert debtor.startswith("DE") and debtor.endswith("3000") and "*" in debtor
    settlement = tree.find(".//ram:ApplicableHeaderTradeSettlement", ns)
    assert (
        settlement.findtext("ram:CreditorReferenceID", namespaces=ns) == settings.BILLING_OPERATOR["sepa_creditor_id"]
    )
    assert tree.findtext(".//ram:SpecifiedTradePaymentTerms/ram:DirectDebitMandateID", namespaces=ns) == "PHQ-M-000042"


def test_a_transfer_invoice_is_never_sent_to_the_provider(settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: any call to the provider would fail
    customer = CustomerFactory(payment_option="bank_transfer")
    _card(customer)
    (invoice,) = _issued(customer)

    result = services.invoice_charge(invoice=invoice)
    assert (result.status, result.payment, result.paid) == ("awaits_transfer", None, False)

    from billing.system_tasks import charge_invoice
    from workflows.registry import SystemTaskContext

    ctx = SystemTaskContext(
        process=SimpleNamespace(business_object=invoice), step_id="retry_1", variables={"invoice_id": invoice.pk},
        idempotency_key="test-charge-1",
    )  # fmt: skip
    assert charge_invoice(ctx)["charge_status"] == "awaits_transfer"
    assert not Payment.objects.filter(invoice=invoice).exists()
    invoice.refresh_from_db()
    assert invoice.state == Invoice.State.ISSUED


def test_an_overdue_transfer_starts_the_reminder_workflow_once():
    from workflows.models import BusinessEvent, Process
    from workflows.testing import run_pending_system_steps

    late = CustomerFactory(payment_option="bank_transfer", language="en", email="late@example.com")
    paid = CustomerFactory(payment_option="bank_transfer")
    card = CustomerFactory(payment_option="card")
    late_invoice, paid_invoice, card_invoice = _issued(late, paid, card)
    services.invoice_record_transfer(invoice=paid_invoice, reference="statement 12")
    due = late_invoice.due_date

    with time_machine.travel(f"{due:%Y-%m-%d} 09:00 +01:00", tick=False):
        assert bank_transfer.bank_transfers_overdue_emit() == 0  # due today: not late yet
    with time_machine.travel(f"{due + timedelta(days=1):%Y-%m-%d} 09:00 +01:00", tick=False):
        assert bank_transfer.bank_transfers_overdue_emit() == 1
        assert bank_transfer.bank_transfers_overdue_emit() == 0  # tomorrow's check: nothing new
        bank_transfer.bank_transfer_overdue_start(invoice=late_invoice)  # nor by hand
        run_pending_system_steps()

    (event,) = BusinessEvent.objects.filter(name="payment.failed")
    assert event.payload["method"] == "bank_transfer" and event.object_id == late_invoice.pk
    process = Process.objects.get(object_id=late_invoice.pk)
    assert process.definition.key == "overdue-transfer"
    late_invoice.refresh_from_db()
    assert late_invoice.state == Invoice.State.OPEN
    (reminder,) = [m for m in mail.outbox if "still unpaid" in m.subject]
    assert bank_transfer.reference_format(late_invoice.payment_reference) in reminder.body
    assert "card" not in reminder.body.lower()


def test_the_overdue_check_is_in_the_beat_schedule(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "billing.tasks.bank_transfers_overdue_daily" in tasks


def test_the_invoice_page_shows_the_option_and_the_transfer_reference(client, finance_user):
    from django.urls import reverse

    (invoice,) = _issued(CorporateFactory(payment_option="bank_transfer"))
    client.force_login(finance_user)
    page = client.get(reverse("billing:invoice-detail", args=[invoice.pk])).content.decode()
    assert "Payment option: Bank transfer on invoice" in page
    assert f"Transfer reference: <code>{invoice.payment_reference}</code>" in page


def test_delivering_a_transfer_invoice_emails_it_and_charges_nothing(settings):
    from billing import tasks

    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: any call to the provider would fail
    customer = CustomerFactory(payment_option="bank_transfer", language="en")
    _card(customer)
    (invoice,) = _issued(customer)
    assert tasks.invoice_deliver(invoice.pk) == "awaits_transfer"
    assert len(mail.outbox) == 1 and not Payment.objects.filter(invoice=invoice).exists()
