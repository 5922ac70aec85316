"""Customer documents and emails speak the customer's language, whoever sends them.

The worker that delivers an invoice has no request and so no language of its own; the staff member who
issues a credit note may work in the other language. Either way the customer reads their own language:
German (``24.12.2026``, ``1.234,50 €``) or English (ISO dates, ``€1,234.50``).
"""

import io
from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import translation
from pypdf import PdfReader

from billing import services, tasks
from billing.forms import RefundForm
from billing.models import Invoice
from billing.tests.factories import ContractFactory
from carparks.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def issued_invoice(language: str) -> Invoice:
    """A December invoice of 1,234.50 € gross (19 % VAT) for a customer speaking ``language``."""
    customer = CustomerFactory(name="Erika Mustermann", language=language)
    ContractFactory(customer=customer, monthly_price=Decimal("1234.50"), start_date=date(2026, 1, 1))
    with time_machine.travel("2026-12-01 06:00 +01:00", tick=False):
        run = services.invoicing_run_create(period_start=date(2026, 12, 1))
        services.invoicing_run_execute(run=run, deliver=False)
    invoice = Invoice.objects.get(customer=customer)
    assert invoice.gross_total == Decimal("1234.50") and invoice.vat_total == Decimal("197.11")
    return invoice


def delivered(invoice: Invoice, *, staff_language: str) -> tuple[str, str, str]:
    """What the worker sends (subject, body, the attached PDF's text), with another language active
    around it: the customer's language must win over whatever is active."""
    with translation.override(staff_language):
        assert tasks.invoice_deliver(invoice.pk) == "no_payment_method"  # the worker's job, no request
    (message,) = mail.outbox
    filename, pdf, mimetype = message.attachments[0]
    assert (filename, mimetype) == (f"{invoice.display_number}.pdf", "application/pdf")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    return message.subject, message.body.replace("\xa0", " "), " ".join(text.replace("\xa0", " ").split())


def test_a_german_customer_gets_a_german_invoice_email_and_pdf():
    invoice = issued_invoice("de")
    number, due = invoice.display_number, invoice.due_date.strftime("%d.%m.%Y")
    subject, body, pdf = delivered(invoice, staff_language="en")

    assert subject == f"Ihre Rechnung {number} für Dauerparken Dezember 2026"
    assert body.startswith("Hallo Erika Mustermann,")
    assert f"anbei erhalten Sie die Rechnung {number} für Ihr Dauerparken vom 01.12.2026 bis 31.12.2026." in body
    assert f"Gesamtbetrag: 1.234,50 € (inkl. 197,11 € USt.), fällig am {due}." in body
    assert "Mit freundlichen Grüßen" in body
    assert "Hello" not in body and "€1,234.50" not in body

    assert "Rechnung – Dauerparken Dezember 2026" in pdf
    assert f"Rechnungsnr. {number}" in pdf
    assert due in pdf and "Fällig" in pdf
    assert "Zeitraum 01.12.2026 – 31.12.2026" in pdf
    assert "Rechnungsbetrag 1.234,50 €" in pdf
    assert "USt. 19 % auf 1.037,39 € 197,11 €" in pdf
    assert f"Bitte überweisen Sie den Betrag bis zum {due}" in pdf
    assert "Seite 1 von 1" in pdf
    assert "Invoice" not in pdf and "Total due" not in pdf


def test_an_english_customer_gets_an_english_invoice_email_and_pdf():
    invoice = issued_invoice("en")
    number, due = invoice.display_number, invoice.due_date.isoformat()
    subject, body, pdf = delivered(invoice, staff_language="de")

    assert subject == f"Your invoice {number} for season parking December 2026"
    assert body.startswith("Hello Erika Mustermann,")
    assert f"please find attached invoice {number} for season parking from 2026-12-01 to 2026-12-31." in body
    assert f"Total: €1,234.50 (including €197.11 VAT), due on {due}." in body
    assert "Hallo" not in body and "1.234,50" not in body

    assert "Invoice – season parking December 2026" in pdf
    assert f"Invoice no. {number}" in pdf
    assert "Period 2026-12-01 – 2026-12-31" in pdf
    assert "Total due €1,234.50" in pdf
    assert f"Please transfer the amount by {due}" in pdf
    assert "Page 1 of 1" in pdf
    assert "Rechnung" not in pdf


def test_a_credit_note_and_a_payment_reminder_follow_the_customer_not_the_staff_member():
    invoice = issued_invoice("de")
    with translation.override("en"):  # an English-speaking staff member reverses the invoice
        note = services.credit_note_issue(invoice=invoice, reason="Doppelt berechnet")
        assert services.credit_note_send(credit_note=note) is True
        assert services.payment_reminder_send(invoice=invoice, level=2, key="reminder-2") is True
    credit_mail, reminder = mail.outbox
    assert credit_mail.subject == f"Gutschrift {note.display_number} zur Rechnung {invoice.display_number}"
    assert "(1.234,50\xa0€)" in credit_mail.body and "Grund: Doppelt berechnet" in credit_mail.body
    pdf = PdfReader(io.BytesIO(credit_mail.attachments[0][1])).pages[0].extract_text().replace("\xa0", " ")
    assert f"Gutschrift-Nr. {note.display_number}" in pdf and "Gutschriftsbetrag" in pdf
    assert reminder.subject == (
        f"Zweite Erinnerung: Ihre Kartenzahlung für Rechnung {invoice.display_number} ist fehlgeschlagen"
    )
    assert "wir konnten 1.234,50\xa0€ für die Rechnung" in reminder.body


def test_finance_pages_follow_the_staff_members_language_not_the_customers(client, finance_user):
    invoice = issued_invoice("en")
    client.force_login(finance_user)
    url = reverse("billing:invoice-detail", args=[invoice.pk])

    german = client.get(url, HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert f"Rechnung {invoice.display_number}" in german and "Positionen" in german
    assert "Zeitraum 01.12.2026–31.12.2026" in german
    assert "Überweisung über 1.234,50\xa0€ erfassen" in german

    english = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "period 2026-12-01–2026-12-31" in english and "Record transfer of €1,234.50" in english

    listing = client.get(reverse("billing:invoice-list"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Rechnungen" in listing and "1.234,50\xa0€" in listing and "Ausgestellt" in listing


@pytest.mark.parametrize(
    ("typed", "amount"),
    [
        ("1.234,50", "1234.50"),
        ("1,234.50", "1234.50"),
        ("12,50", "12.50"),
        ("12.50", "12.50"),
        ("1.234,50 €", "1234.50"),
    ],
)
def test_a_refund_amount_is_read_in_either_languages_format(typed, amount):
    form = RefundForm(data={"amount": typed, "reason": "Doppelt berechnet"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["amount"] == Decimal(amount)


def test_the_invoicing_run_page_follows_the_staff_members_language(client, finance_user):
    ContractFactory(customer=CustomerFactory(language="en"), monthly_price=Decimal("1234.50"))
    client.force_login(finance_user)
    with time_machine.travel("2026-12-01 06:00 +01:00", tick=False):
        run = services.invoicing_run_preview_create(period_start=date(2026, 12, 1), user=finance_user)
        url = reverse("billing:run-detail", args=[run.pk])
        german = client.get(url, HTTP_ACCEPT_LANGUAGE="de").content.decode()
        english = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Abrechnungslauf für Dezember 2026" in german and "Vorschau: Was dieser Lauf tun wird" in german
    assert '<dd class="col-sm-7" data-figure="gross">1.234,50\xa0€</dd>' in german
    assert "Berechnet am 01.12.2026" in german and "Bestätigen und ausführen" in german
    assert "Invoicing run for December 2026" in english and '"gross">€1,234.50</dd>' in english
    assert "Worked out 2026-12-01" in english
