"""The DATEV Buchungsstapel as DATEV's format description has it (EXTF, header version 700, format version 13).

The file is read back as DATEV reads it (Windows-1252, semicolons, the csv module) and checked against
the format, not against the code that wrote it: the 125 column names below are copied from the format
description's column list as the open-source writer ameax/datev-extf (src/DatevExtfWriter.php) gives it.
"""

import csv
import io
import re
from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.urls import reverse

from billing import demo, exports, services
from billing.models import AccountingExport, CreditNote, ExportedDocument, Invoice
from billing.tests.factories import ContractFactory
from carparks import demo as carparks_demo
from carparks.tests.factories import CorporateFactory, CustomerFactory, ProductFactory

pytestmark = pytest.mark.django_db

FORMAT_COLUMNS = (
    "Umsatz (ohne Soll/Haben-Kz);Soll/Haben-Kennzeichen;WKZ Umsatz;Kurs;Basis-Umsatz;WKZ Basis-Umsatz;Konto;"
    "Gegenkonto (ohne BU-Schlüssel);BU-Schlüssel;Belegdatum;Belegfeld 1;Belegfeld 2;Skonto;Buchungstext;"
    "Postensperre;Diverse Adressnummer;Geschäftspartnerbank;Sachverhalt;Zinssperre;Beleglink;"
    "Beleginfo - Art 1;Beleginfo - Inhalt 1;Beleginfo - Art 2;Beleginfo - Inhalt 2;Beleginfo - Art 3;"
    "Beleginfo - Inhalt 3;Beleginfo - Art 4;Beleginfo - Inhalt 4;Beleginfo - Art 5;Beleginfo - Inhalt 5;"
    "Beleginfo - Art 6;Beleginfo - Inhalt 6;Beleginfo - Art 7;Beleginfo - Inhalt 7;Beleginfo - Art 8;"
    "Beleginfo - Inhalt 8;KOST1 - Kostenstelle;KOST2 - Kostenstelle;Kost-Menge;EU-Land u. UStID;EU-Steuersatz;"
    "Abw. Versteuerungsart;Sachverhalt L+L;Funktionsergänzung L+L;BU 49 Hauptfunktionstyp;"
    "BU 49 Hauptfunktionsnummer;BU 49 Funktionsergänzung;"
    + ";".join(f"Zusatzinformation - Art {n};Zusatzinformation - Inhalt {n}" for n in range(1, 21))
    + ";Stück;Gewicht;Zahlweise;Forderungsart;Veranlagungsjahr;Zugeordnete Fälligkeit;Skontotyp;Auftragsnummer;"
    "Buchungstyp;USt-Schlüssel (Anzahlungen);EU-Land (Anzahlungen);Sachverhalt L+L (Anzahlungen);"
    "EU-Steuersatz (Anzahlungen);Erlöskonto (Anzahlungen);Herkunft-Kz;Leerfeld;KOST-Datum;SEPA-Mandatsreferenz;"
    "Skontosperre;Gesellschaftername;Beteiligtennummer;Identifikationsnummer;Zeichnernummer;Postensperre bis;"
    "Bezeichnung SoBil-Sachverhalt;Kennzeichen SoBil-Buchung;Festschreibung;Leistungsdatum;"
    "Datum Zuord. Steuerperiode;Fälligkeit;Generalumkehr;Steuersatz;Land;Abrechnungsreferenz;"
    "BVV-Position (Betriebsvermögensvergleich);EU-Mitgliedstaat u. UStID (Ursprung);EU-Steuersatz (Ursprung);"
    "Abw. Skontokonto"
).split(";")
# Belegfeld 1 and 2: letters, digits and $ % & * + - / only; at most 36 and 12 characters.
BELEGFELD = re.compile(r"[A-Za-z0-9$%&*+\-/]*")
# Windows-1252 has no Ł, Ż or ć: they are transliterated; ó and ü are Windows-1252 and stay.
LUKASZ, LUKASZ_ANSI = "Łukasz Żółć", "Lukasz Zólc"


def _bill(month: date) -> None:
    services.invoicing_run_execute(run=services.invoicing_run_create(period_start=month), deliver=False)


@pytest.fixture
def march():
    """March 2026: a company billed at 19 % and 7 % (partly refunded), Łukasz (fully credited), Anna (renamed)."""
    with time_machine.travel("2026-03-01 06:00 +01:00", tick=False):
        company = CorporateFactory(name="Bäcker & Söhne GmbH")
        ContractFactory(customer=company, cost_centre="CC-1", monthly_price=Decimal("119.00"))
        ContractFactory(
            customer=company, product=ProductFactory(vat_rate=Decimal("7.00")), monthly_price=Decimal("53.50")
        )
        lukasz = CustomerFactory(name=LUKASZ)
        ContractFactory(customer=lukasz, cost_centre="Gdańsk-Süd", monthly_price=Decimal("89.25"))
        anna = CustomerFactory(name="Anna Alt")
        ContractFactory(customer=anna, monthly_price=Decimal("59.50"))
        _bill(date(2026, 3, 1))
    with time_machine.travel("2026-03-20 10:00 +01:00", tick=False):
        services.credit_note_issue(invoice=Invoice.objects.get(customer=lukasz), reason="Moved away")
        paid = Invoice.objects.get(customer=company)
        services.invoice_record_transfer(invoice=paid, reference="SEPA 1")
        services.refund_issue(invoice=paid, amount=Decimal("20.00"), reason="Barrier broken for two days")
    anna.name = "Anna Neu"  # after the invoice was issued: the booking text keeps the name on the invoice
    anna.save()
    return {"company": company, "lukasz": lukasz, "anna": anna}


def _export(fmt: str = "datev") -> AccountingExport:
    with time_machine.travel("2026-04-01 02:00 +02:00", tick=False):
        return exports.accounting_export_create(period_start=date(2026, 3, 1), format=fmt)


def _read(export: AccountingExport) -> tuple[list[str], list[str], list[dict[str, str]]]:
    """The file as DATEV reads it: strict Windows-1252, semicolons; rows as column name → value."""
    with export.file.open("rb") as handle:
        text = handle.read().decode("cp1252")
    lines = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    header, columns, rows = lines[0], lines[1], lines[2:]
    assert all(len(row) == len(FORMAT_COLUMNS) for row in rows), [len(row) for row in rows]
    return header, columns, [dict(zip(FORMAT_COLUMNS, row, strict=True)) for row in rows]


def test_the_header_line_is_an_extf_buchungsstapel_of_format_version_13(march, settings):
    header, _, _ = _read(_export())
    assert len(header) == 31
    assert header[:5] == ["EXTF", "700", "21", "Buchungsstapel", "13"]
    assert re.fullmatch(r"20260401\d{9}", header[5])  # Erzeugt am: YYYYMMDDHHMMSSFFF
    assert header[7:9] == ["RE", "ParkingHQ"]  # Herkunft, exportiert von
    assert header[10:16] == [
        str(settings.DATEV_CONSULTANT_NUMBER),
        str(settings.DATEV_CLIENT_NUMBER),
        "20260101",  # WJ-Beginn
        "4",  # Sachkontenlänge
        "20260301",  # Datum vom
        "20260331",  # Datum bis
    ]
    assert header[16] == "Rechnungen 03/2026" and len(header[16]) <= 30  # Bezeichnung
    assert header[18:22] == ["1", "0", "0", "EUR"]  # Buchungstyp, Rechnungslegungszweck, Festschreibung, WKZ
    assert header[26] == "03"  # SKR03


def test_every_row_has_the_125_columns_of_the_format_and_leaves_unused_ones_empty(march):
    export = _export()
    _, columns, rows = _read(export)
    assert columns == FORMAT_COLUMNS and len(columns) == 125
    # Invoices: company 7 % and 19 %, Łukasz, Anna; credit notes: Łukasz in full, the company's 20 € in part.
    assert [(r["Soll/Haben-Kennzeichen"], r["Umsatz (ohne Soll/Haben-Kz)"]) for r in rows] == [
        ("S", "53,50"),
        ("S", "119,00"),
        ("S", "89,25"),
        ("S", "59,50"),
        ("H", "89,25"),
        ("H", "6,20"),
        ("H", "13,80"),
        ("S", "172,50"),  # the company's transfer: bank account debited, debtor credited
    ]
    used = {
        "Umsatz (ohne Soll/Haben-Kz)",
        "Soll/Haben-Kennzeichen",
        "WKZ Umsatz",
        "Konto",
        "Gegenkonto (ohne BU-Schlüssel)",
        "Belegdatum",
        "Belegfeld 1",
        "Belegfeld 2",
        "Buchungstext",
        "KOST1 - Kostenstelle",
        "Zusatzinformation - Art 1",
        "Zusatzinformation - Inhalt 1",
        "Festschreibung",
    }
    assert {name for row in rows for name, value in row.items() if value} == used
    assert {row["Festschreibung"] for row in rows} == {"0"}


def test_every_credit_note_names_its_invoice_whole_where_datev_clears_the_open_item(march):
    _, _, rows = _read(_export())
    invoices = {r["Belegfeld 1"] for r in rows if r["Soll/Haben-Kennzeichen"] == "S"}
    assert invoices == _numbers(Invoice)  # every invoice of the month, by its whole number
    credits = [r for r in rows if r["Soll/Haben-Kennzeichen"] == "H"]
    assert len(credits) == 3
    for row in credits:
        note = CreditNote.objects.get(pk=_credit_note_pk(row["Zusatzinformation - Inhalt 1"]))
        # Belegfeld 1: the reversed invoice's number, whole, and an invoice of this very file.
        assert row["Belegfeld 1"] == note.invoice.display_number and row["Belegfeld 1"] in invoices
        # Belegfeld 2: the credit note's own number in at most 12 characters, read back without guessing.
        assert row["Belegfeld 2"] == f"{note.series}-{note.number}" and len(row["Belegfeld 2"]) <= 12
        assert row["Zusatzinformation - Art 1"] == "Gutschrift"
    for row in rows:
        assert len(row["Belegfeld 1"]) <= 36 and BELEGFELD.fullmatch(row["Belegfeld 1"])
        assert len(row["Belegfeld 2"]) <= 12 and BELEGFELD.fullmatch(row["Belegfeld 2"])


def _numbers(model) -> set[str]:
    return {document.display_number for document in model.objects.all()}


def _credit_note_pk(number: str) -> int:
    series, _, counter = number.rpartition("-")
    return CreditNote.objects.get(series=series, number=int(counter)).pk


def test_the_booking_text_is_the_name_on_the_invoice_not_the_renamed_customer(march):
    _, _, rows = _read(_export())
    anna = [r for r in rows if r["Konto"] == str(10000 + march["anna"].pk)]
    assert [r["Buchungstext"] for r in anna] == ["Rechnung Anna Alt"]
    assert not any("Anna Neu" in value for row in rows for value in row.values())
    journal = list(csv.DictReader(io.StringIO(_export("journal").file.open("rb").read().decode())))
    assert {r["customer_name"] for r in journal if r["customer_id"] == str(march["anna"].pk)} == {"Anna Alt"}


def test_characters_outside_windows_1252_are_transliterated_and_each_change_is_listed(march, client, finance_user):
    export = _export()
    _, _, rows = _read(export)
    lukasz = [r for r in rows if r["Konto"] == str(10000 + march["lukasz"].pk)]
    invoice = Invoice.objects.get(customer=march["lukasz"]).display_number
    note = CreditNote.objects.get(invoice__customer=march["lukasz"]).display_number
    assert [(r["Buchungstext"], r["KOST1 - Kostenstelle"]) for r in lukasz] == [
        (f"Rechnung {LUKASZ_ANSI}", "Gdansk-Süd"),
        (f"Gutschrift {note} {LUKASZ_ANSI}", "Gdansk-Süd"),
    ]
    assert not any("?" in value for row in rows for value in row.values())
    assert "Bäcker & Söhne GmbH" in rows[0]["Buchungstext"]  # Windows-1252 characters stay as they are
    transliterated = ["transliterated to Windows-1252"]
    assert export.changed_values == [
        {
            "document": invoice,
            "field": "Buchungstext",
            "original": f"Rechnung {LUKASZ}",
            "written": f"Rechnung {LUKASZ_ANSI}",
            "reasons": transliterated,
        },
        {
            "document": invoice,
            "field": "KOST1 - Kostenstelle",
            "original": "Gdańsk-Süd",
            "written": "Gdansk-Süd",
            "reasons": transliterated,
        },
        {
            "document": note,
            "field": "Buchungstext",
            "original": f"Gutschrift {note} {LUKASZ}",
            "written": f"Gutschrift {note} {LUKASZ_ANSI}",
            "reasons": transliterated,
        },
        {
            "document": note,
            "field": "KOST1 - Kostenstelle",
            "original": "Gdańsk-Süd",
            "written": "Gdansk-Süd",
            "reasons": transliterated,
        },
    ]
    client.force_login(finance_user)
    page = client.get(reverse("billing:export-list")).content.decode()
    assert "4 changed" in page and f"„Rechnung {LUKASZ}“ → „Rechnung {LUKASZ_ANSI}“" in page


def test_a_name_longer_than_the_booking_text_is_cut_and_listed():
    long_name = "Parkraumbewirtschaftungsgesellschaft Oberschleißheim-Nord mbH & Co. KG"
    with time_machine.travel("2026-03-01 06:00 +01:00", tick=False):
        ContractFactory(customer=CorporateFactory(name=long_name))
        _bill(date(2026, 3, 1))
    export = _export()
    _, _, rows = _read(export)
    assert rows[0]["Buchungstext"] == f"Rechnung {long_name}"[:60]
    [change] = export.changed_values
    assert change["original"] == f"Rechnung {long_name}" and change["reasons"] == ["cut to 60 characters"]


def test_debtor_accounts_stop_before_the_creditor_range_and_nothing_is_written(settings, client, finance_user):
    assert settings.DATEV_DEBTOR_RANGE == (10000, 69999)
    with time_machine.travel("2026-03-01 06:00 +01:00", tick=False):
        last = CustomerFactory(id=59999, name="Last Debtor")
        ContractFactory(customer=last)
        ContractFactory(customer=CustomerFactory(id=60000, name="Zofia Creditor-Range"))
        _bill(date(2026, 3, 1))
    for fmt in ("datev", "journal"):
        with pytest.raises(exports.DatevExportError) as caught:
            _export(fmt)
        message = str(caught.value)
        assert "Zofia Creditor-Range (id 60000)" in message and "70000" in message and "10000–69999" in message
    assert not AccountingExport.objects.exists() and not ExportedDocument.objects.exists()
    assert not list((settings.MEDIA_ROOT).rglob("*.csv")) and not settings.ACCOUNTING_EXPORT_DIR.exists()
    # Finance sees the reason on the exports page, not an error page.
    client.force_login(finance_user)
    response = client.post(reverse("billing:export-create"), {"period": "2026-03", "format": "datev"}, follow=True)
    assert response.status_code == 200 and "Zofia Creditor-Range (id 60000)" in response.content.decode()
    assert not AccountingExport.objects.exists()
    # Without the customer beyond the range, the last debtor gets the range's last account.
    Invoice.objects.filter(customer_id=60000).update(issue_date=date(2026, 2, 28))
    _, _, rows = _read(_export())
    assert {row["Konto"] for row in rows} == {"69999"}


def test_the_debtor_range_is_configurable(march, settings):
    settings.DATEV_DEBTOR_RANGE = (20000, 29999)
    _, _, rows = _read(_export())
    documents = [row for row in rows if row["Zusatzinformation - Art 1"] != "Zahlung"]
    assert {row["Konto"] for row in documents} == {str(20000 + c.pk) for c in march.values()}
    # A payment credits the debtor (Gegenkonto) from the bank or the provider's clearing account (Konto).
    (payment,) = [row for row in rows if row["Zusatzinformation - Art 1"] == "Zahlung"]
    assert (payment["Konto"], payment["Gegenkonto (ohne BU-Schlüssel)"]) == ("1200", str(20000 + march["company"].pk))
    settings.DATEV_DEBTOR_RANGE = (20000, 20000 + max(c.pk for c in march.values()) - 1)
    with pytest.raises(exports.DatevExportError, match="beyond the debtor range"):
        _export("journal")
    settings.DATEV_DEBTOR_RANGE = (100000, 999999)  # six digits: longer than a debtor account (4 + 1)
    with pytest.raises(exports.DatevExportError, match="at most 5 digits"):
        _export("journal")


def test_short_references_keep_the_series_and_read_back_to_the_number():
    assert exports.short_reference("CN2026-1234") == "CN2026-1234"  # fits: whole
    assert exports.short_reference("CN2026-000001") == "CN2026-1"  # zero padding dropped
    assert exports.short_reference("CN2026-123456") == "2026-123456"  # series letters dropped
    assert exports.short_reference("GUTSCHRIFT2026-000042") == "2026-42"
    for number in ("GUTSCHRIFT-2026-123456789", "GUTSCHRIFT-ABCDEF-000001"):
        with pytest.raises(exports.DatevExportError, match="Belegfeld 2"):
            exports.short_reference(number)


def test_two_credit_notes_with_the_same_short_reference_stop_the_export(march):
    note = CreditNote.objects.get(invoice__customer=march["lukasz"])
    CreditNote.objects.filter(pk=note.pk).update(series="GUTSCHRIFT-A2026", number=7)
    CreditNote.objects.filter(is_partial=True).update(series="GUTSCHRIFT-B2026", number=7)
    with pytest.raises(exports.DatevExportError) as caught:
        _export()
    assert "GUTSCHRIFT-A2026-000007 and GUTSCHRIFT-B2026-000007 both shorten to '2026-7'" in str(caught.value)
    assert not AccountingExport.objects.exists() and not ExportedDocument.objects.exists()


def test_a_number_datev_cannot_hold_stops_the_export(march):
    Invoice.objects.filter(customer=march["anna"]).update(series="RE 2026")
    number = Invoice.objects.get(customer=march["anna"]).display_number
    with pytest.raises(exports.DatevExportError, match=f"'{number}' cannot be a DATEV Belegfeld"):
        _export()
    assert not AccountingExport.objects.exists()


def test_the_nightly_export_writes_the_format_it_can_and_then_fails_loudly(march):
    Invoice.objects.filter(customer=march["anna"]).update(series="RE 2026")  # DATEV cannot hold it, a journal can
    with time_machine.travel("2026-04-01 02:00 +02:00", tick=False), pytest.raises(exports.DatevExportError) as caught:
        exports.accounting_exports_nightly()
    assert str(caught.value).startswith("datev: Document RE 2026-")
    assert list(AccountingExport.objects.values_list("format", flat=True)) == ["journal"]


def test_the_demo_month_passes_the_datev_check(tmp_path):
    """Done means: a DATEV file of the demo month opens in a check that counts 125 columns per row and finds
    every credit note's invoice reference (the demo bills two months and partly refunds one invoice)."""
    with time_machine.travel("2026-05-12 09:00 +02:00", tick=False):
        carparks_demo.load(io.StringIO())
        demo.load(io.StringIO())
    with time_machine.travel("2026-06-01 02:00 +02:00", tick=False):
        export = exports.accounting_export_create(period_start=date(2026, 5, 1), format="datev")
    _, _, rows = _read(export)
    credit_rows = sum(1 for row in rows if row["Soll/Haben-Kennzeichen"] == "H")
    assert export.invoice_count > 100 and export.credit_note_count == 1 and credit_rows >= 1
    path = tmp_path / export.filename
    path.write_bytes(export.file.open("rb").read())
    out = io.StringIO()
    call_command("datev_check", str(path), stdout=out)
    assert f"rows: {len(rows)}; with 125 columns: {len(rows)}" in out.getvalue()
    report = out.getvalue()
    assert f"credit-note rows: {credit_rows} (credit notes: 1); invoice reference found: {credit_rows}" in report
    assert "missing: 0" in report and "OK" in report


def test_the_check_finds_the_invoice_of_a_later_credit_note_in_an_earlier_export(march, tmp_path):
    _export()
    with time_machine.travel("2026-04-02 10:00 +02:00", tick=False):
        services.credit_note_issue(invoice=Invoice.objects.get(customer=march["anna"]), reason="Contract ended")
        april = exports.accounting_export_create(period_start=date(2026, 4, 1), format="datev")
    path = tmp_path / april.filename
    path.write_bytes(april.file.open("rb").read())
    out = io.StringIO()
    call_command("datev_check", str(path), stdout=out)
    assert "invoice reference found: 1 (0 in this file, 1 in an earlier DATEV export); missing: 0" in out.getvalue()
    # Checked on its own, the file does not hold March's invoice: the check looks, it does not assume.
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 problems"):
        call_command("datev_check", str(path), "--file-only", stdout=io.StringIO(), stderr=err)
    number = Invoice.objects.get(customer=march["anna"]).display_number
    assert f"refers to invoice '{number}', which is in neither this file nor an earlier DATEV export" in err.getvalue()


def test_the_check_refuses_a_short_row_and_a_reference_to_no_invoice(march, tmp_path):
    export = _export()
    lines = export.file.open("rb").read().decode("cp1252").split("\r\n")
    good = tmp_path / "good.csv"
    good.write_bytes("\r\n".join(lines).encode("cp1252"))
    out = io.StringIO()
    call_command("datev_check", str(good), "--file-only", stdout=out)
    assert "rows: 8; with 125 columns: 8" in out.getvalue()
    assert "credit-note rows: 3 (credit notes: 2); invoice reference found: 3 (3 in this file, 0" in out.getvalue()

    bad = list(lines)
    bad[2] = bad[2].rsplit(";", 1)[0]  # one column short
    invoice = Invoice.objects.get(customer=march["lukasz"]).display_number
    bad[6] = bad[6].replace(f'"{invoice}"', '"INV2026-999999"', 1)  # a credit note of an unknown invoice
    broken = tmp_path / "broken.csv"
    broken.write_bytes("\r\n".join(bad).encode("cp1252"))
    err = io.StringIO()
    with pytest.raises(CommandError, match="2 problems"):
        call_command("datev_check", str(broken), stdout=io.StringIO(), stderr=err)
    assert "line 3 has 124 columns, not 125" in err.getvalue()
    assert "refers to invoice 'INV2026-999999'" in err.getvalue()
