import threading
from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.db import IntegrityError, close_old_connections, connection
from django.db.models import ProtectedError

from billing import services
from billing.models import BillingException, CreditNote, Invoice, InvoiceLine, NumberSeries, PaymentMethod
from billing.tests.factories import ContractFactory, VehicleFactory
from carparks.models import Contract
from carparks.tests.factories import CorporateFactory, CustomerFactory, ProductFactory

pytestmark = pytest.mark.django_db


def _card(customer):
    return PaymentMethod.objects.create(
        customer=customer, stripe_customer_id="cus_x", stripe_payment_method_id=f"pm_{customer.pk}", last4="4242"
    )


def _run(month=date(2026, 3, 1)):
    run = services.invoicing_run_create(period_start=month)
    return services.invoicing_run_execute(run=run, deliver=False)


@time_machine.travel("2026-03-01 06:00 +01:00", tick=False)
def test_it_bills_one_invoice_per_customer_with_a_line_per_contract_and_cost_centre():
    company = CorporateFactory()
    _card(company)
    standard = ProductFactory(vat_rate=Decimal("19.00"))
    reduced = ProductFactory(vat_rate=Decimal("7.00"))
    first = ContractFactory(customer=company, product=standard, monthly_price=Decimal("119.00"), cost_centre="CC-100")
    first.vehicles.add(VehicleFactory(customer=company, plate="M-AB 1"))
    second = ContractFactory(customer=company, product=reduced, monthly_price=Decimal("107.00"))
    second.vehicles.add(VehicleFactory(customer=company, plate="M-AB 2", cost_centre="CC-200"))
    ContractFactory(customer=company, product=standard, state=Contract.State.APPLIED)

    run = _run()

    invoice = Invoice.objects.get(customer=company)
    assert run.invoices_created == 1 and run.lines_created == 2
    assert invoice.state == Invoice.State.ISSUED and invoice.number == 1 and invoice.series == "INV2026"
    lines = {line.contract_id: line for line in invoice.lines.all()}
    assert lines[first.pk].cost_centre == "CC-100" and lines[second.pk].cost_centre == "CC-200"
    assert lines[second.pk].vehicle.plate == "MAB2"
    assert invoice.gross_total == Decimal("226.00")
    assert invoice.net_total == Decimal("200.00") and invoice.vat_total == Decimal("26.00")
    assert invoice.vat_breakdown == [
        {"rate": "7.00", "net": "100.00", "vat": "7.00", "gross": "107.00"},
        {"rate": "19.00", "net": "100.00", "vat": "19.00", "gross": "119.00"},
    ]
    assert invoice.billing_address["name"] == company.name


@time_machine.travel("2026-03-01 06:00 +01:00", tick=False)
def test_a_rerun_bills_no_contract_twice_and_picks_up_new_ones():
    customer = CustomerFactory()
    _card(customer)
    ContractFactory(customer=customer)
    _run()
    _run()
    assert Invoice.objects.count() == 1 and InvoiceLine.objects.count() == 1

    late = ContractFactory(customer=customer, start_date=date(2026, 3, 20))
    run = _run()
    assert run.invoices_created == 1
    assert InvoiceLine.objects.get(contract=late).days == 12
    assert sorted(Invoice.objects.values_list("number", flat=True)) == [1, 2]


def test_the_database_refuses_a_second_line_for_one_contract_and_period():
    contract = ContractFactory()
    invoice = Invoice.objects.create(
        customer=contract.customer, period_start=date(2026, 3, 1), period_end=date(2026, 3, 31)
    )
    values = {
        "invoice": invoice, "contract": contract, "description": "x", "period_start": date(2026, 3, 1),
        "service_start": date(2026, 3, 1), "service_end": date(2026, 3, 31), "days": 31, "days_in_period": 31,
        "monthly_price": 1, "vat_rate": 19, "net": 1, "vat": 0, "gross": 1,
    }  # fmt: skip
    InvoiceLine.objects.create(**values)
    with pytest.raises(IntegrityError):
        InvoiceLine.objects.create(**values)


@time_machine.travel("2026-03-01 06:00 +01:00", tick=False)
def test_exceptions_go_to_finance_once_per_period():
    without_card = CustomerFactory()
    ContractFactory(customer=without_card)
    free = ContractFactory(monthly_price=Decimal("0.00"))
    _card(free.customer)
    repriced = ContractFactory(monthly_price=Decimal("99.00"))
    _card(repriced.customer)
    _run(date(2026, 2, 1))
    Contract.objects.filter(pk=repriced.pk).update(monthly_price=Decimal("109.00"))

    _run()
    _run()

    kinds = sorted(BillingException.objects.filter(message__contains="03/2026").values_list("kind", flat=True))
    kinds += sorted(BillingException.objects.filter(kind="price_changed").values_list("kind", flat=True))
    assert BillingException.objects.filter(kind="missing_payment_method", customer=without_card).count() == 2
    assert BillingException.objects.filter(kind="zero_amount", contract=free).count() == 2
    assert BillingException.objects.filter(kind="price_changed", contract=repriced).count() == 1
    assert not InvoiceLine.objects.filter(contract=free).exists()
    assert InvoiceLine.objects.get(contract=repriced, period_start=date(2026, 3, 1)).gross == Decimal("109.00")


@pytest.mark.django_db(transaction=True)
def test_numbers_stay_gap_free_when_invoices_are_finalised_concurrently():
    customer = CustomerFactory()
    drafts = []
    for month in range(1, 9):
        contract = ContractFactory(customer=customer)
        invoice = Invoice.objects.create(
            customer=customer, period_start=date(2026, month, 1), period_end=date(2026, month, 28)
        )
        InvoiceLine.objects.create(
            invoice=invoice, contract=contract, description="Season", period_start=invoice.period_start,
            service_start=invoice.period_start, service_end=invoice.period_end, days=28, days_in_period=28,
            monthly_price=Decimal("119.00"), vat_rate=Decimal("19.00"), net=Decimal("100.00"), vat=Decimal("19.00"),
            gross=Decimal("119.00"),
        )  # fmt: skip
        drafts.append(invoice)
    # One finalisation fails after taking its number: its rollback must give the number back.
    failing = drafts.pop()
    InvoiceLine.objects.filter(invoice=failing).delete()
    barrier = threading.Barrier(len(drafts) + 1)
    errors = []

    def finalise(invoice):
        try:
            barrier.wait()
            services.invoice_finalise(invoice=invoice, issue_date=date(2026, 5, 1))
        except Exception as exc:
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=finalise, args=(d,)) for d in [*drafts, failing]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(errors) == 1 and isinstance(errors[0], services.BillingError)
    numbers = sorted(Invoice.objects.exclude(number=None).values_list("number", flat=True))
    assert numbers == list(range(1, len(drafts) + 1))
    assert NumberSeries.objects.get(key="INV2026").next_number == len(drafts) + 1


@time_machine.travel("2026-03-01 06:00 +01:00", tick=False)
def test_a_credit_note_reverses_an_issued_invoice(finance_user):
    customer = CustomerFactory()
    ContractFactory(customer=customer)
    _run()
    invoice = Invoice.objects.get()

    note = services.credit_note_issue(invoice=invoice, reason="Billed in error", user=finance_user)

    invoice.refresh_from_db()
    assert invoice.state == Invoice.State.VOID
    assert note.display_number == "CN2026-000001"
    assert (note.gross_total, note.net_total, note.vat_total) == (
        invoice.gross_total,
        invoice.net_total,
        invoice.vat_total,
    )
    assert invoice.events.last().note.startswith("Reversed by credit note CN2026-000001")
    with pytest.raises(services.BillingError):
        services.credit_note_issue(invoice=invoice, reason="again")
    assert CreditNote.objects.count() == 1
    with pytest.raises(ProtectedError):
        invoice.delete()
    with pytest.raises(ProtectedError):
        Invoice.objects.filter(pk=invoice.pk).delete()


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_bill_each_contract_once():
    customers = [CustomerFactory() for _ in range(6)]
    for customer in customers:
        ContractFactory(customer=customer)
        ContractFactory(customer=customer)
    barrier = threading.Barrier(2)
    errors = []

    def run():
        try:
            barrier.wait()
            services.invoicing_run_execute(
                run=services.invoicing_run_create(period_start=date(2026, 3, 1)), chunk_size=2, deliver=False
            )
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert InvoiceLine.objects.count() == 12
    assert Invoice.objects.count() == 6
    assert sorted(Invoice.objects.values_list("number", flat=True)) == list(range(1, 7))
