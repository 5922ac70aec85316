"""Payment bookings in the accounting export: one row per payment, card and SEPA Direct Debit to the provider's
clearing account, bank transfers to the bank account, each in exactly one file."""

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command

from billing import exports, services
from billing.models import Invoice, Payment
from billing.tests.factories import ContractFactory
from billing.tests.test_datev_extf import FORMAT_COLUMNS
from carparks.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _accounts(settings):
    settings.DATEV_BANK_ACCOUNT = 1200
    settings.DATEV_PROVIDER_CLEARING_ACCOUNT = 1360


def _provider_payment(invoice, method, status, intent):
    return Payment.objects.create(
        invoice=invoice,
        kind=Payment.Kind.CHARGE,
        status=status,
        method=method,
        amount=invoice.gross_total,
        idempotency_key=f"test-{intent}",
        stripe_payment_intent_id=intent,
    )


@pytest.fixture
def march():
    with time_machine.travel("2026-03-01 06:00 +01:00", tick=False):
        customers = {
            name: CustomerFactory(name=name, payment_option=option)
            for name, option in (
                ("Carla Card", "card"),
                ("Sepp Sepa", "sepa_debit"),
                ("Tina Transfer", "bank_transfer"),
            )
        }
        for customer in customers.values():
            ContractFactory(customer=customer, monthly_price=Decimal("119.00"), start_date=date(2026, 1, 1))
        services.invoicing_run_execute(run=services.invoicing_run_create(period_start=date(2026, 3, 1)), deliver=False)
    invoices = {name: Invoice.objects.get(customer=customer) for name, customer in customers.items()}
    with time_machine.travel("2026-03-02 09:00 +01:00", tick=False):
        _provider_payment(invoices["Carla Card"], "card", Payment.Status.SUCCEEDED, "pi_card_1")
        _provider_payment(invoices["Sepp Sepa"], "sepa_debit", Payment.Status.PROCESSING, "pi_sepa_1")
    with time_machine.travel("2026-03-16 11:00 +01:00", tick=False):
        services.invoice_record_transfer(invoice=invoices["Tina Transfer"], reference="STMT-0316-7")
    return invoices


def _rows(export):
    text = export.file.open("rb").read().decode("cp1252")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))[2:]
    return [dict(zip(FORMAT_COLUMNS, row, strict=True)) for row in rows]


def test_each_payment_is_booked_once_to_the_account_of_its_method(march, tmp_path):
    with time_machine.travel("2026-04-01 02:00 +02:00", tick=False):
        export = exports.accounting_export_create(period_start=date(2026, 3, 1), format="datev")
    payments = [row for row in _rows(export) if row["Zusatzinformation - Art 1"] == "Zahlung"]
    debtor = {name: str(10000 + invoice.customer_id) for name, invoice in march.items()}
    assert sorted(
        (r["Konto"], r["Gegenkonto (ohne BU-Schlüssel)"], r["Soll/Haben-Kennzeichen"], r["Umsatz (ohne Soll/Haben-Kz)"],
         r["Belegfeld 1"], r["Zusatzinformation - Inhalt 1"], r["Belegdatum"])
        for r in payments
    ) == sorted([
        ("1360", debtor["Carla Card"], "S", "119,00", march["Carla Card"].display_number, "pi_card_1", "0203"),
        ("1360", debtor["Sepp Sepa"], "S", "119,00", march["Sepp Sepa"].display_number, "pi_sepa_1", "0203"),
        ("1200", debtor["Tina Transfer"], "S", "119,00", march["Tina Transfer"].display_number, "STMT-0316-7", "1603"),
    ])  # fmt: skip
    texts = {r["Buchungstext"] for r in payments}
    assert texts == {"Zahlung Karte Carla Card", "Zahlung Lastschrift Sepp Sepa", "Zahlung Überweisung Tina Transfer"}
    assert export.gross_total == Decimal("357.00")  # the invoices' revenue; payments move no revenue

    path = tmp_path / export.filename
    path.write_bytes(export.file.open("rb").read())
    out = io.StringIO()
    call_command("datev_check", str(path), stdout=out)
    assert "rows: 6; with 125 columns: 6" in out.getvalue() and "OK" in out.getvalue()

    # A later file of the month (a late credit note) books no payment again; a new payment goes in it.
    with time_machine.travel("2026-04-03 10:00 +02:00", tick=False):
        assert exports.accounting_export_create(period_start=date(2026, 3, 1), format="datev") is None
    with time_machine.travel("2026-04-05 10:00 +02:00", tick=False):
        services.credit_note_issue(invoice=march["Carla Card"], reason="Duplicate")
        april = exports.accounting_export_create(period_start=date(2026, 4, 1), format="datev")
    assert [r["Zusatzinformation - Art 1"] for r in _rows(april)] == ["Gutschrift"]


def test_the_journal_debits_the_money_account_and_credits_the_debtor(march):
    with time_machine.travel("2026-04-01 02:00 +02:00", tick=False):
        export = exports.accounting_export_create(period_start=date(2026, 3, 1), format="journal")
    rows = list(csv.DictReader(io.StringIO(export.file.open("rb").read().decode("utf-8"))))
    payments = {r["customer_name"]: (r["debit_account"], r["credit_account"], r["gross"]) for r in rows
                if r["document_type"] == "payment"}  # fmt: skip
    debtor = {name: str(10000 + invoice.customer_id) for name, invoice in march.items()}
    assert payments == {
        "Carla Card": ("1360", debtor["Carla Card"], "119.00"),
        "Sepp Sepa": ("1360", debtor["Sepp Sepa"], "119.00"),
        "Tina Transfer": ("1200", debtor["Tina Transfer"], "119.00"),
    }


def test_a_failed_charge_or_a_refund_is_no_payment_booking(march):
    invoice = march["Carla Card"]
    Payment.objects.filter(invoice=invoice).update(status=Payment.Status.FAILED)
    with time_machine.travel("2026-04-01 02:00 +02:00", tick=False):
        export = exports.accounting_export_create(period_start=date(2026, 3, 1), format="datev")
    payments = [row for row in _rows(export) if row["Zusatzinformation - Art 1"] == "Zahlung"]
    assert len(payments) == 2 and invoice.display_number not in {r["Belegfeld 1"] for r in payments}
