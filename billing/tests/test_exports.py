import csv
import io
from datetime import date
from decimal import Decimal

import pytest
import time_machine

from billing import exports, services
from billing.models import AccountingExport, ExportedDocument, Invoice
from billing.tests.factories import ContractFactory
from carparks.tests.factories import CorporateFactory, CustomerFactory, ProductFactory

pytestmark = pytest.mark.django_db


def _bill(month: date):
    run = services.invoicing_run_create(period_start=month)
    services.invoicing_run_execute(run=run, deliver=False)


@pytest.fixture
def march():
    with time_machine.travel("2026-03-01 06:00 +01:00", tick=False):
        company = CorporateFactory(name="Bäcker & Söhne GmbH")
        ContractFactory(customer=company, cost_centre="CC-1", monthly_price=Decimal("119.00"))
        ContractFactory(
            customer=company, product=ProductFactory(vat_rate=Decimal("7.00")), monthly_price=Decimal("53.50")
        )
        ContractFactory(customer=CustomerFactory(), monthly_price=Decimal("89.25"))
        _bill(date(2026, 3, 1))
    with time_machine.travel("2026-03-20 10:00 +01:00", tick=False):
        services.credit_note_issue(invoice=Invoice.objects.get(customer__name="Bäcker & Söhne GmbH"), reason="Wrong")
    return company


def parse_datev(content: bytes):
    rows = list(csv.reader(io.StringIO(content.decode("cp1252")), delimiter=";"))
    return rows[0], rows[1], rows[2:]


def amount(text: str) -> Decimal:
    return Decimal(text.replace(",", "."))


def test_the_datev_file_parses_back_with_the_expected_columns_and_totals(march, settings):
    with time_machine.travel("2026-04-01 02:00 +02:00", tick=False):
        export = exports.accounting_export_create(period_start=date(2026, 3, 1), format="datev")
    with export.file.open("rb") as handle:
        content = handle.read()
    header, columns, rows = parse_datev(content)

    assert header[:5] == ["EXTF", "700", "21", "Buchungsstapel", "13"]
    assert header[10:16] == [
        str(settings.DATEV_CONSULTANT_NUMBER),
        str(settings.DATEV_CLIENT_NUMBER),
        "20260101",
        "4",
        "20260301",
        "20260331",
    ]
    assert columns[:14] == exports.DATEV_COLUMNS[:14] and columns[36] == "KOST1 - Kostenstelle"
    assert all(len(row) == len(columns) for row in rows)
    # Bookings: company 7 % and 19 % (CC-1), private 19 %, then the credit note's two reversals.
    assert [(r[0], r[1], r[7], r[36]) for r in rows] == [
        ("53,50", "S", "8300", ""),
        ("119,00", "S", "8400", "CC-1"),
        ("89,25", "S", "8400", ""),
        ("53,50", "H", "8300", ""),
        ("119,00", "H", "8400", "CC-1"),
    ]
    assert rows[0][9] == "0103" and rows[3][9] == "2003"
    # A credit note names the invoice it reverses in Belegfeld 1 (DATEV's open-item key), itself in Belegfeld 2.
    assert rows[0][10] == "INV2026-000001" and rows[0][11] == ""
    assert (rows[3][10], rows[3][11]) == ("INV2026-000001", "CN2026-1")
    assert len(columns) == 125 and all(len(row) == 125 for row in rows)
    assert "Bäcker & Söhne" in rows[0][13]  # Windows-1252 keeps the umlauts
    debit = sum(amount(r[0]) for r in rows if r[1] == "S")
    credit = sum(amount(r[0]) for r in rows if r[1] == "H")
    assert debit - credit == export.gross_total == Decimal("89.25")
    assert (export.invoice_count, export.credit_note_count) == (2, 1)
    assert (export.net_total + export.vat_total) == export.gross_total


def test_no_invoice_is_exported_twice_and_files_are_delivered(march, settings, django_capture_on_commit_callbacks):
    with time_machine.travel("2026-04-01 02:00 +02:00", tick=False), django_capture_on_commit_callbacks(execute=True):
        first = exports.accounting_exports_nightly()
        again = exports.accounting_exports_nightly()
    assert sorted(e.format for e in first) == ["datev", "journal"] and again == []
    assert ExportedDocument.objects.filter(format="datev").count() == 3
    for export in first:
        export.refresh_from_db()
        delivered = settings.ACCOUNTING_EXPORT_DIR / export.filename
        assert export.delivered_to == str(delivered) and delivered.read_bytes() == export.file.open("rb").read()
    # A late document of the same month goes into a second file with only itself in it.
    with time_machine.travel("2026-03-31 12:00 +02:00", tick=False):
        ContractFactory(customer=CustomerFactory(), start_date=date(2026, 3, 30))
        _bill(date(2026, 3, 1))
    late = exports.accounting_export_create(period_start=date(2026, 3, 1), format="datev")
    assert (late.sequence, late.invoice_count, late.credit_note_count) == (2, 1, 0)
    assert AccountingExport.objects.filter(format="datev").count() == 2


def test_the_journal_csv_balances(march):
    export = exports.accounting_export_create(period_start=date(2026, 3, 1), format="journal")
    rows = list(csv.DictReader(io.StringIO(export.file.open("rb").read().decode())))
    assert sum(Decimal(r["gross"]) for r in rows) == export.gross_total == Decimal("89.25")
    assert {r["document_type"] for r in rows} == {"invoice", "credit_note"}


FORMULA_NAME = '=HYPERLINK("http://evil","x")'
FORMULA_CENTRE = "+1+cmd|' /C calc'!A0"


@pytest.fixture
def formulas():
    """A company whose name and cost centre a spreadsheet would run as formulas, billed and partly credited."""
    with time_machine.travel("2026-03-01 06:00 +01:00", tick=False):
        company = CorporateFactory(name=FORMULA_NAME)
        ContractFactory(customer=company, cost_centre=FORMULA_CENTRE, monthly_price=Decimal("119.00"))
        ContractFactory(customer=CustomerFactory(name="-1+1"), monthly_price=Decimal("89.25"))
        _bill(date(2026, 3, 1))
    with time_machine.travel("2026-03-20 10:00 +01:00", tick=False):
        services.credit_note_issue(invoice=Invoice.objects.get(customer=company), reason="Wrong")
    return company


def test_the_journal_csv_neutralises_formulas_but_keeps_amounts_numbers(formulas):
    export = exports.accounting_export_create(period_start=date(2026, 3, 1), format="journal")
    rows = list(csv.DictReader(io.StringIO(export.file.open("rb").read().decode())))
    evil = [r for r in rows if "HYPERLINK" in r["customer_name"]]
    assert len(evil) == 2  # the invoice and its credit note
    assert {r["customer_name"] for r in evil} == {"'" + FORMULA_NAME}
    assert {r["cost_centre"] for r in evil} == {"'" + FORMULA_CENTRE}
    assert [r["customer_name"] for r in rows if "1+1" in r["customer_name"]] == ["'-1+1"]
    # Amounts stay plain numbers, the credit note's negative ones included.
    assert sorted(r["gross"] for r in evil) == ["-119.00", "119.00"]
    assert sum(Decimal(r["gross"]) for r in rows) == export.gross_total == Decimal("89.25")


def test_the_datev_file_neutralises_formulas_but_keeps_amounts_bare(formulas):
    export = exports.accounting_export_create(period_start=date(2026, 3, 1), format="datev")
    raw = export.file.open("rb").read().decode("cp1252")
    _, _, rows = parse_datev(raw.encode("cp1252"))
    evil = [r for r in rows if r[36]]
    assert [r[36] for r in evil] == ["'" + FORMULA_CENTRE] * 2
    assert [(r[0], r[1]) for r in evil] == [("119,00", "S"), ("119,00", "H")]
    # Numbers are written bare (unquoted) as DATEV wants, text quoted and neutralised.
    assert '\r\n119,00;"S";"EUR";' in raw and f';"\'{FORMULA_CENTRE.replace(chr(34), chr(39))}";' in raw
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row)


def test_every_csv_cell_a_spreadsheet_would_compute_is_neutralised():
    from parkinghq.csv_cells import csv_cell, csv_text

    assert [csv_text(v) for v in ("=1+1", "+49 89", "-2", "@SUM(A1)", "\tx", "\rx", "Anna", 12, None, "'=x")] == [
        "'=1+1",
        "'+49 89",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        "Anna",
        "12",
        "",
        "'=x",
    ]
    # Numbers are numbers, never text: they pass through unchanged, negative ones too.
    assert [csv_cell(v) for v in (Decimal("-1.50"), -3, 2.5, "-1+1")] == [Decimal("-1.50"), -3, 2.5, "'-1+1"]
