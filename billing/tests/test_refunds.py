"""Refunds that move money: a credit note and the card refund through a real localstripe, one refund path
for the invoice page and the customer-care processes."""

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from accounts.roles import CARE, FINANCE
from billing import documents, selectors, services
from billing.models import CreditNote, Invoice, Payment
from billing.stripe_api import stripe_client
from billing.tests.factories import ContractFactory
from billing.tests.test_stripe import _event, issued_invoice, post_webhook, save_card, signed
from carparks.models import Case
from carparks.tests.factories import CustomerFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

CUSTOMER_CASE = Path(__file__).resolve().parents[2] / "carparks" / "definitions" / "customer-case.json"


@pytest.fixture
def paid_invoice(client, stripe_settings):
    """A customer with a saved card whose 119.00 invoice was charged through localstripe."""
    customer = CustomerFactory()
    save_card(client, customer)
    invoice = issued_invoice(customer)
    charge = services.invoice_charge(invoice=invoice).payment
    assert charge.status == Payment.Status.SUCCEEDED
    return Invoice.objects.get(pk=invoice.pk), charge


def stripe_refunds(charge: Payment) -> list:
    return list(stripe_client().v1.refunds.list(params={"charge": charge.stripe_charge_id, "limit": 100}))


def refund(invoice, amount, reason="Goodwill", key=""):
    made = services.refund_issue(invoice=invoice, amount=Decimal(amount), reason=reason, key=key)
    return services.refund_send(refund=made)


def test_it_refuses_a_refund_above_the_refundable_amount_at_the_field(client, paid_invoice, finance_user):
    invoice, charge = paid_invoice
    client.force_login(finance_user)
    url = reverse("billing:invoice-refund", args=[invoice.pk])

    page = client.get(reverse("billing:invoice-detail", args=[invoice.pk]))
    assert b"Refundable: <strong" in page.content and b"119.00" in page.content
    response = client.post(url, {"amount": "119,01", "reason": "Too much"})

    assert response.status_code == 200
    form = response.context["refund_form"]
    assert form.errors == {"amount": [f"At most 119.00 EUR can still be refunded for invoice {invoice}."]}
    assert b'aria-invalid="true"' in response.content
    # Wrong formats, NUL bytes and 10,000 characters are answered at the field too.
    bad = [
        ({"amount": "lots", "reason": "x"}, "amount"),
        ({"amount": "1.005", "reason": "x"}, "amount"),
        ({"amount": "-5", "reason": "x"}, "amount"),
        ({"amount": "1e400", "reason": "x"}, "amount"),
        ({"amount": "5", "reason": ""}, "reason"),
        ({"amount": "5", "reason": "bad\x00reason"}, "reason"),
        ({"amount": "5", "reason": "x" * 10_000}, "reason"),
        ({"amount": "5\x00", "reason": "x"}, "amount"),
    ]
    for data, field in bad:
        response = client.post(url, data)
        assert response.status_code == 200, data
        assert list(response.context["refund_form"].errors) == [field], data
    assert not Payment.objects.filter(kind=Payment.Kind.REFUND).exists()
    assert not CreditNote.objects.exists() and stripe_refunds(charge) == []


def test_it_refuses_a_third_partial_refund_above_the_remainder(paid_invoice):
    invoice, charge = paid_invoice

    first = refund(invoice, "19.00")
    second = refund(invoice, "50.00")
    with pytest.raises(services.RefundError) as refused:
        refund(invoice, "50.01")

    assert refused.value.field == "amount" and "At most 50.00 EUR" in str(refused.value)
    assert (first.status, second.status) == (Payment.Status.SUCCEEDED, Payment.Status.SUCCEEDED)
    assert sorted(r.amount for r in stripe_refunds(charge)) == [1900, 5000]
    assert selectors.invoice_refundable(invoice) == Decimal("50.00")
    notes = list(CreditNote.objects.filter(invoice=invoice).order_by("number"))
    assert [(n.gross_total, n.is_partial, n.refund_id) for n in notes] == [
        (Decimal("19.00"), True, first.pk),
        (Decimal("50.00"), True, second.pk),
    ]
    assert notes[1].number == notes[0].number + 1  # the credit-note series, no gaps
    assert Invoice.objects.get(pk=invoice.pk).state == Invoice.State.PAID
    # The rest is refundable to the cent.
    assert refund(invoice, "50.00").status == Payment.Status.SUCCEEDED
    assert selectors.invoice_refundable(invoice) == Decimal("0.00")


def test_it_voids_the_invoice_on_a_full_refund_and_not_on_a_partial(client, stripe_settings, paid_invoice):
    invoice, charge = paid_invoice
    refund(invoice, "119.00", reason="Contract cancelled before the month began")
    invoice.refresh_from_db()
    assert invoice.state == Invoice.State.VOID
    note = CreditNote.objects.get(invoice=invoice)
    assert not note.is_partial
    assert (note.net_total, note.vat_total, note.gross_total) == (
        invoice.net_total,
        invoice.vat_total,
        invoice.gross_total,
    )
    assert [r.amount for r in stripe_refunds(charge)] == [11900]

    other = CustomerFactory()
    save_card(client, other)
    partial_invoice = issued_invoice(other)
    services.invoice_charge(invoice=partial_invoice)
    refund(Invoice.objects.get(pk=partial_invoice.pk), "118.99")
    assert Invoice.objects.get(pk=partial_invoice.pk).state == Invoice.State.PAID
    assert CreditNote.objects.get(invoice=partial_invoice).is_partial


def test_it_splits_a_partial_credit_note_per_vat_rate_as_the_invoice(client, stripe_settings):
    customer = CustomerFactory()
    save_card(client, customer)
    ContractFactory(customer=customer, monthly_price=Decimal("119.00"), product=ProductFactory(vat_rate=19))
    ContractFactory(customer=customer, monthly_price=Decimal("53.50"), product=ProductFactory(vat_rate=7))
    services.invoicing_run_execute(run=services.invoicing_run_create(period_start=date(2026, 3, 1)), deliver=False)
    invoice = Invoice.objects.get(customer=customer)
    services.invoice_charge(invoice=invoice)
    assert invoice.gross_total == Decimal("172.50")

    made = refund(invoice, "50.00", reason="Barrier out of order for a week")

    note = made.credit_notes.get()
    assert note.is_partial and note.gross_total == Decimal("50.00")
    by_rate = {Decimal(g["rate"]): g for g in note.vat_breakdown}
    # 119.00 : 53.50 of the gross → 34.49 at 19 % and 15.51 at 7 % (cents shared out, adding up to 50.00).
    assert {rate: Decimal(g["gross"]) for rate, g in by_rate.items()} == {
        Decimal("7.00"): Decimal("15.51"),
        Decimal("19.00"): Decimal("34.49"),
    }
    for rate, group in by_rate.items():
        net, vat, gross = Decimal(group["net"]), Decimal(group["vat"]), Decimal(group["gross"])
        assert net + vat == gross
        assert abs(vat - (net * rate / 100)) <= Decimal("0.01")  # EN 16931 BR-S-09
    assert note.net_total == sum(Decimal(g["net"]) for g in by_rate.values())
    assert note.vat_total == sum(Decimal(g["vat"]) for g in by_rate.values())
    assert note.net_total + note.vat_total == note.gross_total
    # Its e-invoice credits the partial amounts (not the invoice's lines) and is valid Factur-X.
    xml = documents.facturx_xml(invoice, credit_note=note)
    documents.facturx_check(xml)
    assert b"<ram:GrandTotalAmount>50.00</ram:GrandTotalAmount>" in xml
    assert b"<ram:TypeCode>381</ram:TypeCode>" in xml and b"Partially credits invoice" in xml


def test_the_webhook_marks_a_refund_failed_and_frees_its_amount(client, settings, paid_invoice):
    invoice, charge = paid_invoice
    made = refund(invoice, "30.00")
    assert selectors.invoice_refundable(invoice) == Decimal("89.00")

    failed = stripe_client().v1.refunds.retrieve(made.stripe_refund_id).to_dict() | {"status": "failed"}
    payload = _event("evt_refund_failed_partial", "refund.failed", failed)
    response = post_webhook(client, payload, signed(payload, settings.STRIPE_WEBHOOK_SECRET))

    assert response.content == b"refund failed"
    assert Payment.objects.get(pk=made.pk).status == Payment.Status.FAILED
    assert selectors.invoice_refundable(invoice) == Decimal("119.00")
    # Refunding the same amount again pays back the same credit note: nothing is credited twice.
    again = refund(invoice, "30.00", reason="Second try")
    note = CreditNote.objects.get(invoice=invoice)
    assert note.refund_id == again.pk and again.status == Payment.Status.SUCCEEDED
    assert selectors.invoice_refundable(invoice) == Decimal("89.00")
    # Crediting more than the invoice beyond that is refused at the amount.
    with pytest.raises(services.RefundError) as refused:
        refund(invoice, "90.00")
    assert refused.value.field == "amount"


def test_the_same_form_sent_twice_refunds_once(client, paid_invoice, finance_user):
    invoice, charge = paid_invoice
    client.force_login(finance_user)
    data = {"amount": "10", "reason": "Double click", "key": "a1b2c3"}
    for _ in range(2):
        response = client.post(reverse("billing:invoice-refund", args=[invoice.pk]), data)
        assert response.status_code == 302
    assert Payment.objects.filter(kind=Payment.Kind.REFUND).count() == 1
    assert CreditNote.objects.count() == 1 and len(stripe_refunds(charge)) == 1
    page = client.get(reverse("billing:invoice-detail", args=[invoice.pk]))
    note = CreditNote.objects.get()
    assert note.display_number.encode() in page.content and "€109.00".encode() in page.content


def test_a_bank_transfer_is_paid_back_without_stripe(stripe_settings):
    invoice = issued_invoice(CustomerFactory())
    services.invoice_record_transfer(invoice=invoice, reference="BANK-1")

    made = refund(invoice, "20.00", reason="Closed for a day")

    assert made.status == Payment.Status.SUCCEEDED and not made.stripe_refund_id
    assert made.credit_notes.get().is_partial


# --- the customer-care path ----------------------------------------------------------------------


def _case_for(invoice: Invoice):
    from workflows.services import definition_install

    definition_install(spec=json.loads(CUSTOMER_CASE.read_text()))
    from carparks import services as carpark_services

    contract = invoice.lines.get().contract
    return carpark_services.case_open(
        customer=invoice.customer,
        contract=contract,
        invoice_id=invoice.pk,
        kind=Case.Kind.REFUND,
        subject="Charged while the car park was closed",
    )


def _decide(case, amount):
    from django.contrib.contenttypes.models import ContentType

    from workflows.models import Process
    from workflows.services import task_complete

    process = Process.objects.get(
        content_type=ContentType.objects.get_for_model(Case), object_id=case.pk, definition__key="customer-case"
    )
    carpark = case.contract.product.carpark
    care = UserFactory(roles=[CARE])
    assign_perm("carparks.responsible_carpark", care, carpark)
    task_complete(task=process.tasks.get(state="open"), user=care, outcome="refund", inputs={"resolution": ""})
    finance = UserFactory(roles=[FINANCE])
    assign_perm("carparks.responsible_carpark", finance, carpark)
    inputs = {"resolution": "We refund the closed days.", "refund_amount": amount}
    task_complete(task=process.tasks.get(state="open"), user=finance, outcome="approve", inputs=inputs)
    return process


def test_a_retried_refund_step_of_a_case_refunds_once(paid_invoice):
    from workflows.models import SystemJob
    from workflows.registry import SystemTaskContext, get_task
    from workflows.testing import run_pending_system_steps

    invoice, charge = paid_invoice
    process = _decide(_case_for(invoice), "25.50")

    run_pending_system_steps()
    job = SystemJob.objects.get(process=process, task_name="billing.refund_issue")
    assert job.state == SystemJob.State.SUCCEEDED
    process.refresh_from_db()
    assert process.state == "completed"
    assert process.variables["refunded_amount"] == "25.50" and process.variables["refund_status"] == "succeeded"
    # The engine runs the step again with the same key (a crash before it recorded the outcome).
    ctx = SystemTaskContext(
        process=process, step_id=job.step_id, variables=dict(process.variables), idempotency_key=job.idempotency_key
    )
    result = get_task("billing.refund_issue").func(ctx)

    assert result["refund_id"] == process.variables["refund_id"]
    assert Payment.objects.filter(kind=Payment.Kind.REFUND).count() == 1
    assert [r.amount for r in stripe_refunds(charge)] == [2550]
    note = CreditNote.objects.get(invoice=invoice)
    assert note.is_partial and note.gross_total == Decimal("25.50")
    assert note.display_number == process.variables["credit_note_number"]
    assert note.reason == "We refund the closed days."
    assert Case.objects.get(invoice_id=invoice.pk).state == Case.State.RESOLVED


def test_a_refund_decided_without_an_amount_refunds_what_is_refundable(paid_invoice):
    from workflows.testing import run_pending_system_steps

    invoice, charge = paid_invoice
    refund(invoice, "19.00")
    process = _decide(_case_for(invoice), None)

    run_pending_system_steps()

    process.refresh_from_db()
    assert process.variables["refunded_amount"] == "100.00"
    assert sorted(r.amount for r in stripe_refunds(charge)) == [1900, 10000]
    assert selectors.invoice_refundable(invoice) == Decimal("0.00")


def test_the_demo_shows_one_partly_refunded_invoice_without_stripe():
    import io

    from billing import demo

    for _ in range(3):
        ContractFactory()
    demo.load(io.StringIO())
    demo.load(io.StringIO())  # a second load refunds nothing more

    note = CreditNote.objects.get()
    assert note.is_partial and note.gross_total == Decimal("20.00")
    assert note.refund.status == Payment.Status.SUCCEEDED and not note.refund.stripe_refund_id
    assert note.invoice.state == Invoice.State.PAID
    assert selectors.invoice_refundable(note.invoice) == note.invoice.gross_total - Decimal("20.00")
