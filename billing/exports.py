"""Accounting export: DATEV Buchungsstapel (EXTF) and a plain journal CSV, one file per period.

Every export is recorded with its totals, and ``ExportedDocument`` (unique per format and document)
guarantees that no invoice or credit note is exported twice. Files are delivered to
``settings.ACCOUNTING_EXPORT_DIR`` after the export is committed.

Everything that can make an export wrong (a debtor account beyond its range, a document number DATEV
cannot hold) is checked before anything is stored or written, and stops the export with a
:class:`DatevExportError` a person can act on. Texts DATEV cannot hold as they are (characters outside
Windows-1252, text longer than its field) are transliterated or cut, and each such change is listed in
the export's ``changed_values``: nothing is lost silently.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from anyascii import anyascii
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from billing.models import AccountingExport, CreditNote, ExportedDocument, Invoice, NumberSeries, Payment
from billing.payment_options import PaymentOption
from billing.proration import month_period
from parkinghq.csv_cells import csv_text, csv_writer

logger = logging.getLogger(__name__)


class DatevExportError(ValueError):
    """The export cannot be written correctly; the message says what to change. Nothing was stored."""


# The 125 columns of the DATEV-Format "Buchungsstapel" (EXTF, Formatkategorie 21, Formatversion 13), names
# and order as in DATEV's format description (developer.datev.de, dtvf/formate/buchungsstapel) and as the
# open-source writer ameax/datev-extf lists them (src/DatevExtfWriter.php, buildColumnHeader). Field lengths
# used below: Belegfeld 1 36, Belegfeld 2 12, Buchungstext 60, KOST1 36, Zusatzinformation Art 20 / Inhalt 210.
DATEV_COLUMNS = [
    "Umsatz (ohne Soll/Haben-Kz)",
    "Soll/Haben-Kennzeichen",
    "WKZ Umsatz",
    "Kurs",
    "Basis-Umsatz",
    "WKZ Basis-Umsatz",
    "Konto",
    "Gegenkonto (ohne BU-Schlüssel)",
    "BU-Schlüssel",
    "Belegdatum",
    "Belegfeld 1",
    "Belegfeld 2",
    "Skonto",
    "Buchungstext",
    "Postensperre",
    "Diverse Adressnummer",
    "Geschäftspartnerbank",
    "Sachverhalt",
    "Zinssperre",
    "Beleglink",
    *[f"Beleginfo - {kind} {n}" for n in range(1, 9) for kind in ("Art", "Inhalt")],
    "KOST1 - Kostenstelle",
    "KOST2 - Kostenstelle",
    "Kost-Menge",
    "EU-Land u. UStID",
    "EU-Steuersatz",
    "Abw. Versteuerungsart",
    "Sachverhalt L+L",
    "Funktionsergänzung L+L",
    "BU 49 Hauptfunktionstyp",
    "BU 49 Hauptfunktionsnummer",
    "BU 49 Funktionsergänzung",
    *[f"Zusatzinformation - {kind} {n}" for n in range(1, 21) for kind in ("Art", "Inhalt")],
    "Stück",
    "Gewicht",
    "Zahlweise",
    "Forderungsart",
    "Veranlagungsjahr",
    "Zugeordnete Fälligkeit",
    "Skontotyp",
    "Auftragsnummer",
    "Buchungstyp",
    "USt-Schlüssel (Anzahlungen)",
    "EU-Land (Anzahlungen)",
    "Sachverhalt L+L (Anzahlungen)",
    "EU-Steuersatz (Anzahlungen)",
    "Erlöskonto (Anzahlungen)",
    "Herkunft-Kz",
    "Leerfeld",
    "KOST-Datum",
    "SEPA-Mandatsreferenz",
    "Skontosperre",
    "Gesellschaftername",
    "Beteiligtennummer",
    "Identifikationsnummer",
    "Zeichnernummer",
    "Postensperre bis",
    "Bezeichnung SoBil-Sachverhalt",
    "Kennzeichen SoBil-Buchung",
    "Festschreibung",
    "Leistungsdatum",
    "Datum Zuord. Steuerperiode",
    "Fälligkeit",
    "Generalumkehr",
    "Steuersatz",
    "Land",
    "Abrechnungsreferenz",
    "BVV-Position (Betriebsvermögensvergleich)",
    "EU-Mitgliedstaat u. UStID (Ursprung)",
    "EU-Steuersatz (Ursprung)",
    "Abw. Skontokonto",
]
assert len(DATEV_COLUMNS) == 125, "the Buchungsstapel of format version 13 has 125 columns"
DATEV_INDEX = {name: index for index, name in enumerate(DATEV_COLUMNS)}

BELEGFELD_1_LENGTH = 36
BELEGFELD_2_LENGTH = 12
BUCHUNGSTEXT_LENGTH = 60
KOST_LENGTH = 36
ZUSATZ_ART_LENGTH = 20
ZUSATZ_INHALT_LENGTH = 210
# DATEV takes in Belegfeld 1 and 2 only letters, digits and the special characters $ % & * + - / .
BELEGFELD_CHARACTERS = re.compile(r"[A-Za-z0-9$%&*+\-/]+")

JOURNAL_COLUMNS = [
    "date",
    "document_type",
    "document_number",
    "reference",
    "customer_id",
    "customer_name",
    "cost_centre",
    "vat_rate",
    "net",
    "vat",
    "gross",
    "debit_account",
    "credit_account",
]


class Unquoted(float):
    """A value the csv module writes as-is and unquoted (DATEV wants numbers bare, text quoted)."""

    def __new__(cls, text: str) -> Unquoted:
        value = super().__new__(cls, 0.0)
        value.text = text
        return value

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def decimal_comma(value: Decimal) -> Unquoted:
    return Unquoted(f"{value:.2f}".replace(".", ","))


@dataclass
class Booking:
    """One accounting line: a document's amounts for one VAT rate and cost centre.

    ``customer_name`` is the name on the invoice (its billing-address snapshot taken when it was issued),
    not the customer's current name; ``invoice_number`` is the invoice a credit note reverses (for an
    invoice, its own number).
    """

    day: date
    document_type: str  # "invoice" or "credit_note"
    number: str
    reference: str
    customer_id: int
    customer_name: str
    cost_centre: str
    vat_rate: Decimal
    net: Decimal
    vat: Decimal
    gross: Decimal
    debtor_account: int = 0
    invoice_number: str = ""
    method: str = ""  # a payment's option (card, sepa_debit, bank_transfer)
    money_account: int = 0  # a payment's: the bank account or the provider's clearing account

    @property
    def revenue_account(self) -> int:
        accounts = settings.DATEV_REVENUE_ACCOUNTS
        return accounts.get(f"{self.vat_rate:.2f}", accounts.get("19.00", 8400))


def debtor_range() -> tuple[int, int]:
    """``settings.DATEV_DEBTOR_RANGE``, checked: a debtor account has at most one digit more than a G/L account."""
    start, end = settings.DATEV_DEBTOR_RANGE
    digits = settings.DATEV_ACCOUNT_LENGTH + 1
    if not 0 < start < end or len(str(end)) > digits:
        raise DatevExportError(
            f"DATEV_DEBTOR_RANGE {start}–{end} is not a range of debtor accounts of at most {digits} digits "
            f"(DATEV_ACCOUNT_LENGTH {settings.DATEV_ACCOUNT_LENGTH} + 1); correct the setting."
        )
    return start, end


def debtor_account(customer_id: int, customer_name: str, account_range: tuple[int, int]) -> int:
    """Range start + customer id; beyond the range's end an account would be a creditor's, so stop."""
    start, end = account_range
    account = start + customer_id
    if account > end:
        raise DatevExportError(
            f"Customer {customer_name} (id {customer_id}) would get debtor account {account}, beyond the debtor "
            f"range {start}–{end} (DATEV_DEBTOR_RANGE; accounts after it belong to creditors). Nothing was "
            "exported: agree a larger range with the tax adviser and set DATEV_DEBTOR_RANGE_START/_END."
        )
    return account


def _name_on_invoice(invoice: Invoice) -> str:
    """The billing name as issued (the snapshot); the customer's name only for invoices issued without one."""
    return (invoice.billing_address or {}).get("name") or invoice.customer.name


def _bookings(invoices: list[Invoice], credit_notes: list[CreditNote]) -> list[Booking]:
    bookings: list[Booking] = []
    account_range = debtor_range()

    def split(invoice: Invoice, day: date, kind: str, number: str, reference: str) -> None:
        groups: dict[tuple[Decimal, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
        for line in invoice.lines.all():
            total = groups[(line.vat_rate, line.cost_centre)]
            total[0] += line.net
            total[1] += line.vat
            total[2] += line.gross
        name = _name_on_invoice(invoice)
        account = debtor_account(invoice.customer_id, name, account_range)
        for (rate, cost_centre), (net, vat, gross) in sorted(groups.items()):
            bookings.append(
                Booking(
                    day,
                    kind,
                    number,
                    reference,
                    invoice.customer_id,
                    name,
                    cost_centre,
                    rate,
                    net,
                    vat,
                    gross,
                    account,
                    invoice.display_number,
                )  # fmt: skip
            )

    for invoice in invoices:
        split(invoice, invoice.issue_date, "invoice", invoice.display_number, f"{invoice.period_start:%m/%Y}")
    for note in credit_notes:
        if note.is_partial:
            _partial_credit(bookings, note, account_range)
        else:
            split(note.invoice, note.issue_date, "credit_note", note.display_number, note.invoice.display_number)
    return bookings


# --- payments ------------------------------------------------------------------------------------

#: How a payment is named in DATEV's booking text and the journal.
PAYMENT_LABELS = {"card": "Karte", "sepa_debit": "Lastschrift", "bank_transfer": "Überweisung"}


def payment_method_of(payment: Payment) -> str:
    """The option a payment moved by: a transfer booked from the bank (a statement entry or by hand, no
    provider PaymentIntent) is a bank transfer whatever the row's default says."""
    if payment.bank_entry_id or not payment.stripe_payment_intent_id:
        return PaymentOption.BANK_TRANSFER.value
    return payment.method or PaymentOption.CARD.value


def payment_account(method: str) -> int:
    """Card and SEPA money arrives through the provider (its clearing account, e.g. SKR03 1360 Geldtransit);
    a bank transfer on the bank account (e.g. SKR03 1200)."""
    if method == PaymentOption.BANK_TRANSFER:
        return settings.DATEV_BANK_ACCOUNT
    return settings.DATEV_PROVIDER_CLEARING_ACCOUNT


def _payments_in(start: date, end: date, format: str, now: datetime) -> list[Payment]:  # noqa: A002
    """The received payments (charges succeeded, or a direct debit under way) recorded in the period and not
    in an earlier file of this period and format: a file takes what was recorded after the one before it.
    A payment's record time never changes, so each is in exactly one file."""
    tz = timezone.get_current_timezone()
    since = datetime.combine(start, datetime.min.time(), tzinfo=tz)
    until = min(datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=tz), now)
    previous = AccountingExport.objects.filter(format=format, period_start=start).order_by("-created_at").first()
    after = {"created_at__gt": previous.created_at} if previous is not None else {}
    return list(
        Payment.objects.filter(
            kind=Payment.Kind.CHARGE,
            status__in=[Payment.Status.SUCCEEDED, Payment.Status.PROCESSING],
            created_at__gte=since,
            created_at__lt=until,
            **after,
        )
        .select_related("invoice__customer")
        .order_by("created_at", "pk")
    )


def _payment_bookings(payments: list[Payment]) -> list[Booking]:
    """One booking per payment: the money account (bank or provider clearing) debited, the debtor credited,
    with the invoice's number in Belegfeld 1 so that DATEV clears its open item."""
    account_range = debtor_range()
    bookings = []
    for payment in payments:
        invoice = payment.invoice
        name = _name_on_invoice(invoice)
        method = payment_method_of(payment)
        reference = payment.stripe_payment_intent_id or (payment.reason or "").removeprefix("Bank transfer: ")
        bookings.append(
            Booking(
                day=timezone.localtime(payment.created_at).date(),
                document_type="payment",
                number=f"P{payment.pk}",
                reference=reference or invoice.payment_reference or invoice.display_number,
                customer_id=invoice.customer_id,
                customer_name=name,
                cost_centre="",
                vat_rate=Decimal("0.00"),
                net=payment.amount,
                vat=Decimal("0.00"),
                gross=payment.amount,
                debtor_account=debtor_account(invoice.customer_id, name, account_range),
                invoice_number=invoice.display_number,
                method=method,
                money_account=payment_account(method),
            )
        )
    return bookings


def _partial_credit(bookings: list[Booking], note: CreditNote, account_range: tuple[int, int]) -> None:
    """A partial credit note books its own amounts per VAT rate (the invoice's cost centre when it has one)."""
    invoice = note.invoice
    name = _name_on_invoice(invoice)
    account = debtor_account(invoice.customer_id, name, account_range)
    centres: dict[Decimal, set[str]] = defaultdict(set)
    for line in invoice.lines.all():
        centres[line.vat_rate].add(line.cost_centre)
    for group in note.vat_breakdown:
        rate = Decimal(group["rate"])
        only = centres.get(rate, set())
        bookings.append(
            Booking(
                day=note.issue_date,
                document_type="credit_note",
                number=note.display_number,
                reference=invoice.display_number,
                customer_id=invoice.customer_id,
                customer_name=name,
                cost_centre=next(iter(only)) if len(only) == 1 else "",
                vat_rate=rate,
                net=Decimal(group["net"]),
                vat=Decimal(group["vat"]),
                gross=Decimal(group["gross"]),
                debtor_account=account,
                invoice_number=invoice.display_number,
            )
        )


# --- DATEV texts and document numbers -------------------------------------------------------------


def short_reference(number: str) -> str:
    """A document number for Belegfeld 2 (at most 12 characters), read back to the number without guessing.

    The whole number when it fits; else the counter without its zero padding ("CN2026-000001" → "CN2026-1");
    else, for a long series, its significant part from the first digit ("GUTSCHRIFT2026-123456" →
    "2026-123456"). A number that fits none of these stops the export.
    """
    if len(number) <= BELEGFELD_2_LENGTH:
        return number
    series, _, counter = number.rpartition("-")
    if series and counter.isdigit():
        compact = f"{series}-{int(counter)}"
        if len(compact) <= BELEGFELD_2_LENGTH:
            return compact
        first_digit = next((i for i, char in enumerate(series) if char.isdigit()), None)
        if first_digit is not None:
            significant = f"{series[first_digit:]}-{int(counter)}"
            if len(significant) <= BELEGFELD_2_LENGTH:
                return significant
    raise DatevExportError(
        f"Document number {number} has no form of at most {BELEGFELD_2_LENGTH} characters for DATEV's "
        "Belegfeld 2; shorten the number series' name."
    )


def _short_references(bookings: list[Booking]) -> dict[str, str]:
    """Belegfeld 2 of every credit note: two documents of one export never share a short reference."""
    shorts: dict[str, str] = {}
    owner: dict[str, str] = {}
    for booking in bookings:
        if booking.document_type != "credit_note" or booking.number in shorts:
            continue
        short = short_reference(booking.number)
        if short in owner:
            raise DatevExportError(
                f"Credit notes {owner[short]} and {booking.number} both shorten to {short!r} for DATEV's "
                "Belegfeld 2, so DATEV could not tell them apart; nothing was exported. Rename one number series."
            )
        owner[short] = booking.number
        shorts[booking.number] = short
    return shorts


def _belegfeld(number: str, limit: int, document: str) -> str:
    """A document number as DATEV's Belegfeld takes it, whole: a number it cannot hold stops the export."""
    if len(number) > limit or not BELEGFELD_CHARACTERS.fullmatch(number):
        raise DatevExportError(
            f"Document {document}: {number!r} cannot be a DATEV Belegfeld (at most {limit} letters, digits "
            "and $ % & * + - /); nothing was exported. Change the number series."
        )
    return number


def ansi_text(text: str) -> tuple[str, list[str]]:
    """The text in Windows-1252 (what DATEV imports): characters it lacks transliterated (Ł → L, ő → o).

    Returns the text and why it changed (empty when it did not). Line breaks and tabs become spaces.
    """
    reasons: set[str] = set()
    out: list[str] = []
    for char in unicodedata.normalize("NFC", text):
        if unicodedata.category(char) == "Cc":
            out.append(" ")
            reasons.add("line breaks and tabs replaced by spaces")
            continue
        try:
            char.encode("cp1252")
        except UnicodeEncodeError:
            out.append(anyascii(char))
            reasons.add("transliterated to Windows-1252")
        else:
            out.append(char)
    return "".join(out), sorted(reasons)


@dataclass
class DatevFile:
    """The file's bytes and every text it had to change (see ``AccountingExport.changed_values``)."""

    content: bytes
    changes: list[dict[str, Any]] = field(default_factory=list)


class _Texts:
    """Writes DATEV text fields and records each value that could not be written as it is."""

    def __init__(self) -> None:
        self.changes: list[dict[str, Any]] = []
        self._seen: set[tuple[str, str, str]] = set()

    def __call__(self, value: str, limit: int, *, document: str, field_name: str) -> str:
        original = value or ""
        text, reasons = ansi_text(original)
        written = csv_text(text)
        if len(written) > limit:
            written = written[:limit]
            reasons.append(f"cut to {limit} characters")
        key = (document, field_name, original)
        if reasons and key not in self._seen:
            self._seen.add(key)
            self.changes.append(
                {
                    "document": document,
                    "field": field_name,
                    "original": original,
                    "written": written,
                    "reasons": reasons,
                }
            )
        return written


def _fiscal_year_start(period_start: date) -> date:
    month = settings.DATEV_FISCAL_YEAR_START_MONTH
    return date(period_start.year if period_start.month >= month else period_start.year - 1, month, 1)


def _header(created: datetime, period_start: date, period_end: date) -> list[Any]:
    """The EXTF header line (31 fields, header version 700): what DATEV reads before the bookings."""
    empty = Unquoted("")
    return [
        "EXTF",  # 1 Kennzeichen: a file made outside DATEV
        700,  # 2 Versionsnummer of the header
        21,  # 3 Formatkategorie: Buchungsstapel
        "Buchungsstapel",  # 4 Formatname
        13,  # 5 Formatversion
        int(created.strftime("%Y%m%d%H%M%S") + f"{created.microsecond // 1000:03d}"),  # 6 Erzeugt am
        empty,  # 7 Importiert (set by DATEV)
        "RE",  # 8 Herkunft
        "ParkingHQ",  # 9 Exportiert von
        "",  # 10 Importiert von (set by DATEV)
        settings.DATEV_CONSULTANT_NUMBER,  # 11 Beraternummer
        settings.DATEV_CLIENT_NUMBER,  # 12 Mandantennummer
        int(_fiscal_year_start(period_start).strftime("%Y%m%d")),  # 13 WJ-Beginn
        settings.DATEV_ACCOUNT_LENGTH,  # 14 Sachkontenlänge
        int(period_start.strftime("%Y%m%d")),  # 15 Datum vom
        int(period_end.strftime("%Y%m%d")),  # 16 Datum bis
        f"Rechnungen {period_start:%m/%Y}",  # 17 Bezeichnung (max 30)
        "PH",  # 18 Diktatkürzel
        1,  # 19 Buchungstyp: Finanzbuchführung
        0,  # 20 Rechnungslegungszweck: independent of purpose
        0,  # 21 Festschreibung: no, the tax adviser checks first
        "EUR",  # 22 WKZ
        empty,  # 23 reserviert
        "",  # 24 Derivatskennzeichen
        empty,  # 25 reserviert
        empty,  # 26 reserviert
        "03",  # 27 Sachkontenrahmen (SKR03)
        empty,  # 28 ID der Branchenlösung
        empty,  # 29 reserviert
        "",  # 30 reserviert
        "",  # 31 Anwendungsinformation
    ]


def _datev_row(booking: Booking, shorts: dict[str, str], texts: _Texts) -> list[Any]:
    """One booking in all 125 columns (empty where unused).

    An invoice debits the debtor with its own number in Belegfeld 1. A credit note credits the debtor with
    the number of the invoice it reverses in Belegfeld 1 (DATEV clears an open item only when Belegfeld 1
    equals the invoice's) and its own number short in Belegfeld 2, whole in Zusatzinformation 1.
    """
    credit = booking.document_type == "credit_note"
    document = booking.number
    row: list[Any] = [Unquoted("")] * len(DATEV_COLUMNS)

    def put(name: str, value: Any) -> None:
        row[DATEV_INDEX[name]] = value

    if booking.document_type == "payment":
        return _datev_payment_row(booking, row, put, texts)

    label = "Gutschrift" if credit else "Rechnung"
    text = f"Gutschrift {booking.number} {booking.customer_name}" if credit else f"Rechnung {booking.customer_name}"
    put("Umsatz (ohne Soll/Haben-Kz)", decimal_comma(booking.gross))
    put("Soll/Haben-Kennzeichen", "H" if credit else "S")
    put("WKZ Umsatz", "EUR")
    put("Konto", booking.debtor_account)
    put("Gegenkonto (ohne BU-Schlüssel)", booking.revenue_account)
    put("Belegdatum", Unquoted(booking.day.strftime("%d%m")))
    put("Belegfeld 1", _belegfeld(booking.invoice_number, BELEGFELD_1_LENGTH, document))
    if credit:
        put("Belegfeld 2", _belegfeld(shorts[booking.number], BELEGFELD_2_LENGTH, document))
    put("Buchungstext", texts(text, BUCHUNGSTEXT_LENGTH, document=document, field_name="Buchungstext"))
    if booking.cost_centre:
        put(
            "KOST1 - Kostenstelle",
            texts(booking.cost_centre, KOST_LENGTH, document=document, field_name="KOST1 - Kostenstelle"),
        )
    put("Zusatzinformation - Art 1", label)
    put("Zusatzinformation - Inhalt 1", _belegfeld(booking.number, ZUSATZ_INHALT_LENGTH, document))
    put("Festschreibung", 0)
    return row


def _datev_payment_row(booking: Booking, row: list[Any], put: Any, texts: _Texts) -> list[Any]:
    """A payment: the bank or clearing account (Konto) debited, the debtor (Gegenkonto) credited; Belegfeld 1
    is the invoice paid, so DATEV clears its open item; the provider's or bank's reference in Zusatzinformation."""
    document = f"payment {booking.number} of {booking.invoice_number}"
    label = PAYMENT_LABELS.get(booking.method, booking.method)
    put("Umsatz (ohne Soll/Haben-Kz)", decimal_comma(booking.gross))
    put("Soll/Haben-Kennzeichen", "S")
    put("WKZ Umsatz", "EUR")
    put("Konto", booking.money_account)
    put("Gegenkonto (ohne BU-Schlüssel)", booking.debtor_account)
    put("Belegdatum", Unquoted(booking.day.strftime("%d%m")))
    put("Belegfeld 1", _belegfeld(booking.invoice_number, BELEGFELD_1_LENGTH, document))
    put(
        "Buchungstext",
        texts(
            f"Zahlung {label} {booking.customer_name}",
            BUCHUNGSTEXT_LENGTH,
            document=document,
            field_name="Buchungstext",
        ),
    )
    put("Zusatzinformation - Art 1", "Zahlung")
    put(
        "Zusatzinformation - Inhalt 1",
        texts(booking.reference, ZUSATZ_INHALT_LENGTH, document=document, field_name="Zusatzinformation - Inhalt 1"),
    )
    put("Festschreibung", 0)
    return row


def datev_file(
    bookings: list[Booking], *, period_start: date, period_end: date, created: datetime | None = None
) -> DatevFile:
    """The EXTF Buchungsstapel: header line, column line, one line of 125 fields per booking; Windows-1252.

    Raises :class:`DatevExportError` (before anything is written) for a document number DATEV cannot hold.
    """
    shorts = _short_references(bookings)
    texts = _Texts()
    buffer = io.StringIO()
    writer = csv_writer(buffer, delimiter=";", quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n")
    writer.writerow(_header(created or timezone.now(), period_start, period_end))
    writer.writerow(DATEV_COLUMNS)
    for booking in bookings:
        writer.writerow(_datev_row(booking, shorts, texts))
    # Strict: every text went through ansi_text, so a character Windows-1252 lacks is a bug, never a "?".
    return DatevFile(buffer.getvalue().encode("cp1252"), texts.changes)


def journal_file(bookings: list[Booking]) -> bytes:
    buffer = io.StringIO()
    writer = csv_writer(buffer, lineterminator="\r\n")
    writer.writerow(JOURNAL_COLUMNS)
    cent = Decimal("0.01")
    for booking in bookings:
        sign = Decimal(1) if booking.document_type in ("invoice", "payment") else Decimal(-1)
        debit, credit = booking.debtor_account, booking.revenue_account
        if booking.document_type == "payment":
            debit, credit = booking.money_account, booking.debtor_account
        elif sign < 0:
            debit, credit = credit, debit
        writer.writerow(
            [
                booking.day.isoformat(),
                booking.document_type,
                booking.number,
                booking.reference,
                booking.customer_id,
                booking.customer_name,
                booking.cost_centre,
                f"{booking.vat_rate:.2f}",
                # Decimals, not text: the writer leaves numbers alone (a credit note's "-" is no formula).
                (sign * booking.net).quantize(cent),
                (sign * booking.vat).quantize(cent),
                (sign * booking.gross).quantize(cent),
                debit,
                credit,
            ]
        )
    return buffer.getvalue().encode("utf-8")


def accounting_export_create(*, period_start: date, format: str, user: Any = None) -> AccountingExport | None:  # noqa: A002
    """Export every issued invoice and credit note of the period not yet exported in ``format``.

    Returns ``None`` when there is nothing new. Concurrent exports are serialised on a lock row.
    """
    if format not in AccountingExport.Format.values:
        raise ValueError(f"unknown export format {format!r}")
    start, end = month_period(period_start)
    with transaction.atomic():
        NumberSeries.objects.get_or_create(key=f"EXPORT-{format}")
        NumberSeries.objects.select_for_update().get(key=f"EXPORT-{format}")
        invoices = list(
            Invoice.objects.filter(issue_date__range=(start, end))
            .exclude(state=Invoice.State.DRAFT)
            .exclude(exports__format=format)
            .select_related("customer")
            .prefetch_related("lines")
            .order_by("series", "number")
        )
        credit_notes = list(
            CreditNote.objects.filter(issue_date__range=(start, end))
            .exclude(exports__format=format)
            .select_related("invoice__customer")
            .prefetch_related("invoice__lines")
            .order_by("series", "number")
        )
        payments = _payments_in(start, end, format, timezone.now())
        if not invoices and not credit_notes and not payments:
            return None
        # Everything that can fail (debtor range, document numbers) fails here, before any row or file.
        bookings = _bookings(invoices, credit_notes) + _payment_bookings(payments)
        if format == AccountingExport.Format.DATEV:
            rendered = datev_file(bookings, period_start=start, period_end=end)
        else:
            rendered = DatevFile(journal_file(bookings))
        sign = {"invoice": Decimal(1), "credit_note": Decimal(-1), "payment": Decimal(0)}  # totals: revenue only
        previous = AccountingExport.objects.filter(format=format, period_start=start).order_by("-sequence").first()
        export = AccountingExport.objects.create(
            period_start=start,
            period_end=end,
            format=format,
            sequence=(previous.sequence + 1) if previous else 1,
            invoice_count=len(invoices),
            credit_note_count=len(credit_notes),
            net_total=sum((sign[b.document_type] * b.net for b in bookings), Decimal("0.00")),
            vat_total=sum((sign[b.document_type] * b.vat for b in bookings), Decimal("0.00")),
            gross_total=sum((sign[b.document_type] * b.gross for b in bookings), Decimal("0.00")),
            changed_values=rendered.changes,
            created_by=user,
        )
        ExportedDocument.objects.bulk_create(
            [ExportedDocument(export=export, format=format, invoice=invoice) for invoice in invoices]
            + [ExportedDocument(export=export, format=format, credit_note=note) for note in credit_notes]
        )
        export.file.save(export.filename, ContentFile(rendered.content), save=True)
        for change in rendered.changes:
            logger.info(
                "Export %s: %s of %s changed from %r to %r (%s)",
                export.filename,
                change["field"],
                change["document"],
                change["original"],
                change["written"],
                ", ".join(change["reasons"]),
            )
        export_id = export.pk
        transaction.on_commit(lambda: accounting_export_deliver(export_id=export_id))
    return export


def accounting_export_deliver(*, export_id: int) -> str:
    """Copy the export into the configured folder (write to a temporary name, then rename)."""
    export = AccountingExport.objects.get(pk=export_id)
    folder = Path(settings.ACCOUNTING_EXPORT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / export.filename
    temporary = folder / f".{export.filename}.part"
    with export.file.open("rb") as source:
        temporary.write_bytes(source.read())
    os.replace(temporary, target)
    AccountingExport.objects.filter(pk=export_id).update(delivered_to=str(target))
    return str(target)


def accounting_exports_nightly(*, today: date | None = None) -> list[AccountingExport]:
    """Export the previous month in both formats (nothing new means no file).

    A format that cannot be exported does not keep the other from being exported; the task still fails
    afterwards with every reason, so the failure is seen (and the next run exports the month once fixed).
    """
    today = today or timezone.localdate()
    start, _ = month_period(today.replace(day=1) - timedelta(days=1))
    created = []
    failed: list[str] = []
    for fmt in AccountingExport.Format.values:
        try:
            export = accounting_export_create(period_start=start, format=fmt)
        except DatevExportError as error:
            logger.error("Accounting export %s of %s failed: %s", fmt, f"{start:%m/%Y}", error)
            failed.append(f"{fmt}: {error}")
            continue
        if export is not None:
            created.append(export)
    if failed:
        raise DatevExportError(" | ".join(failed))
    return created
