"""Accounting export: DATEV Buchungsstapel (EXTF) and a plain journal CSV, one file per period.

Every export is recorded with its totals, and ``ExportedDocument`` (unique per format and document)
guarantees that no invoice or credit note is exported twice. Files are delivered to
``settings.ACCOUNTING_EXPORT_DIR`` after the export is committed.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from billing.models import AccountingExport, CreditNote, ExportedDocument, Invoice, NumberSeries
from billing.proration import month_period
from parkinghq.csv_cells import csv_text, csv_writer

logger = logging.getLogger(__name__)

# The first 38 columns of the DATEV Buchungsstapel (format category 21, version 13).
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
]
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
    """One accounting line: a document's amounts for one VAT rate and cost centre."""

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

    @property
    def debtor_account(self) -> int:
        return settings.DATEV_DEBTOR_ACCOUNT + self.customer_id

    @property
    def revenue_account(self) -> int:
        accounts = settings.DATEV_REVENUE_ACCOUNTS
        return accounts.get(f"{self.vat_rate:.2f}", accounts.get("19.00", 8400))


def _bookings(invoices: list[Invoice], credit_notes: list[CreditNote]) -> list[Booking]:
    bookings: list[Booking] = []

    def split(invoice: Invoice, day: date, kind: str, number: str, reference: str) -> None:
        groups: dict[tuple[Decimal, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
        for line in invoice.lines.all():
            total = groups[(line.vat_rate, line.cost_centre)]
            total[0] += line.net
            total[1] += line.vat
            total[2] += line.gross
        for (rate, cost_centre), (net, vat, gross) in sorted(groups.items()):
            bookings.append(
                Booking(
                    day,
                    kind,
                    number,
                    reference,
                    invoice.customer_id,
                    invoice.customer.name,
                    cost_centre,
                    rate,
                    net,
                    vat,
                    gross,
                )  # fmt: skip
            )

    for invoice in invoices:
        split(invoice, invoice.issue_date, "invoice", invoice.display_number, f"{invoice.period_start:%m/%Y}")
    for note in credit_notes:
        if note.is_partial:
            _partial_credit(bookings, note)
        else:
            split(note.invoice, note.issue_date, "credit_note", note.display_number, note.invoice.display_number)
    return bookings


def _partial_credit(bookings: list[Booking], note: CreditNote) -> None:
    """A partial credit note books its own amounts per VAT rate (the invoice's cost centre when it has one)."""
    invoice = note.invoice
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
                customer_name=invoice.customer.name,
                cost_centre=next(iter(only)) if len(only) == 1 else "",
                vat_rate=rate,
                net=Decimal(group["net"]),
                vat=Decimal(group["vat"]),
                gross=Decimal(group["gross"]),
            )
        )


def datev_file(
    bookings: list[Booking], *, period_start: date, period_end: date, created: datetime | None = None
) -> bytes:
    """The EXTF Buchungsstapel: header line, column line, one line per booking; Windows-1252."""
    created = created or timezone.now()
    fiscal_start = date(
        period_start.year if period_start.month >= settings.DATEV_FISCAL_YEAR_START_MONTH else period_start.year - 1,
        settings.DATEV_FISCAL_YEAR_START_MONTH,
        1,
    )
    buffer = io.StringIO()
    writer = csv_writer(buffer, delimiter=";", quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n")
    writer.writerow(
        [
            "EXTF",
            700,
            21,
            "Buchungsstapel",
            13,
            int(created.strftime("%Y%m%d%H%M%S") + f"{created.microsecond // 1000:03d}"),
            Unquoted(""),
            "RE",
            "ParkingHQ",
            "",
            settings.DATEV_CONSULTANT_NUMBER,
            settings.DATEV_CLIENT_NUMBER,
            int(fiscal_start.strftime("%Y%m%d")),
            settings.DATEV_ACCOUNT_LENGTH,
            int(period_start.strftime("%Y%m%d")),
            int(period_end.strftime("%Y%m%d")),
            f"Rechnungen {period_start:%m/%Y}",
            "PH",
            1,
            0,
            0,
            "EUR",
            Unquoted(""),
            "",
            Unquoted(""),
            Unquoted(""),
            "03",
            Unquoted(""),
            Unquoted(""),
            "",
            "",
        ]
    )
    writer.writerow(DATEV_COLUMNS)
    empty = Unquoted("")
    for booking in bookings:
        text = f"{'Gutschrift' if booking.document_type == 'credit_note' else 'Rechnung'} {booking.customer_name}"
        row: list[Any] = [
            decimal_comma(booking.gross),
            "S" if booking.document_type == "invoice" else "H",
            "EUR",
            empty,
            empty,
            "",
            booking.debtor_account,
            booking.revenue_account,
            "",
            Unquoted(booking.day.strftime("%d%m")),
            _datev_text(booking.number, 36),
            _datev_text(booking.reference, 12),
            empty,
            _datev_text(text, 60),
            empty,
            "",
            empty,
            empty,
            empty,
            "",
        ]
        row += [""] * 16
        row += [_datev_text(booking.cost_centre, 36), ""]
        writer.writerow(row)
    return buffer.getvalue().encode("cp1252", errors="replace")


def _datev_text(text: str, limit: int) -> str:
    """A DATEV text field: no double quotes, formulas neutralised before cutting to the field's length."""
    return csv_text((text or "").replace('"', "'"))[:limit]


def journal_file(bookings: list[Booking]) -> bytes:
    buffer = io.StringIO()
    writer = csv_writer(buffer, lineterminator="\r\n")
    writer.writerow(JOURNAL_COLUMNS)
    cent = Decimal("0.01")
    for booking in bookings:
        sign = Decimal(1) if booking.document_type == "invoice" else Decimal(-1)
        debit, credit = booking.debtor_account, booking.revenue_account
        if sign < 0:
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
        if not invoices and not credit_notes:
            return None
        bookings = _bookings(invoices, credit_notes)
        sign = {"invoice": Decimal(1), "credit_note": Decimal(-1)}
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
            created_by=user,
        )
        ExportedDocument.objects.bulk_create(
            [ExportedDocument(export=export, format=format, invoice=invoice) for invoice in invoices]
            + [ExportedDocument(export=export, format=format, credit_note=note) for note in credit_notes]
        )
        if format == AccountingExport.Format.DATEV:
            content = datev_file(bookings, period_start=start, period_end=end)
        else:
            content = journal_file(bookings)
        export.file.save(export.filename, ContentFile(content), save=True)
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
    """Export the previous month in both formats (nothing new means no file)."""
    today = today or timezone.localdate()
    start, _ = month_period(today.replace(day=1) - timedelta(days=1))
    created = []
    for fmt in AccountingExport.Format.values:
        export = accounting_export_create(period_start=start, format=fmt)
        if export is not None:
            created.append(export)
    return created
