"""Invoice and credit-note documents: EN 16931 Factur-X XML and PDF/A-3 with the XML embedded.

WeasyPrint renders the operator's letterhead template with local fonts only (a URL fetcher that
refuses anything but local files), reusing one FontConfiguration and stylesheet per process.
factur-x embeds the XML, checks it against the EN 16931 XSD and writes the Factur-X XMP metadata.
"""

from __future__ import annotations

import atexit
import functools
import logging
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import facturx
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext as _
from lxml import etree

from billing.bank_transfer import transfer_instructions
from billing.models import CreditNote, Invoice, PaymentMethod
from billing.payment_options import PaymentOption
from billing.sepa import prenotification as sepa_prenotification

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
EN16931 = "urn:cen.eu:en16931:2017"
STATIC_DIR = Path(__file__).resolve().parent / "static" / "billing" / "pdf"
# WeasyPrint and factur-x narrate every document at INFO; keep workers' logs for what matters.
logging.getLogger("weasyprint").setLevel(logging.WARNING)
logging.getLogger("factur-x").setLevel(logging.WARNING)


class XmlBuilder:
    def __init__(self) -> None:
        self.root = etree.Element(f"{{{NS['rsm']}}}CrossIndustryInvoice", nsmap=NS)

    @staticmethod
    def sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
        prefix, name = tag.split(":")
        element = etree.SubElement(parent, f"{{{NS[prefix]}}}{name}", **attrs)
        if text is not None:
            element.text = text
        return element

    def date(self, parent: etree._Element, tag: str, value: date) -> None:
        self.sub(self.sub(parent, tag), "udt:DateTimeString", value.strftime("%Y%m%d"), format="102")


def _amount(value: Decimal) -> str:
    return f"{value:.2f}"


def _rate(value: Decimal | str) -> str:
    return f"{Decimal(value):.2f}"


def _category(rate: Decimal | str) -> str:
    return "S" if Decimal(rate) > 0 else "Z"


def _party(xb: XmlBuilder, parent: etree._Element, tag: str, data: dict[str, str]) -> None:
    party = xb.sub(parent, tag)
    xb.sub(party, "ram:Name", data.get("name") or "-")
    address = xb.sub(party, "ram:PostalTradeAddress")
    if data.get("postcode"):
        xb.sub(address, "ram:PostcodeCode", data["postcode"])
    if data.get("street"):
        xb.sub(address, "ram:LineOne", data["street"])
    if data.get("city"):
        xb.sub(address, "ram:CityName", data["city"])
    xb.sub(address, "ram:CountryID", (data.get("country") or "DE").upper()[:2])
    if data.get("email"):
        uri = xb.sub(party, "ram:URIUniversalCommunication")
        xb.sub(uri, "ram:URIID", data["email"], schemeID="EM")
    if data.get("vat_id"):
        registration = xb.sub(party, "ram:SpecifiedTaxRegistration")
        xb.sub(registration, "ram:ID", data["vat_id"], schemeID="VA")


def document_lines(invoice: Invoice, credit_note: CreditNote | None = None) -> list[Any]:
    """The lines a document shows: the invoice's, or for a partial credit note one line per VAT rate
    of the credited amount (what it credits is an amount, not the invoice's contracts)."""
    if credit_note is None or not credit_note.is_partial:
        return list(invoice.lines.select_related("vehicle"))
    description = _("Partial credit of invoice %(number)s: %(reason)s") % {
        "number": invoice.display_number,
        "reason": credit_note.reason,
    }
    description = description[:300]
    return [
        SimpleNamespace(
            description=description,
            cost_centre="",
            service_start=invoice.period_start,
            service_end=invoice.period_end,
            days=None,
            days_in_period=None,
            monthly_price=None,
            vat_rate=Decimal(group["rate"]),
            net=Decimal(group["net"]),
            vat=Decimal(group["vat"]),
            gross=Decimal(group["gross"]),
        )
        for group in credit_note.vat_breakdown
    ]


def facturx_xml(invoice: Invoice, *, credit_note: CreditNote | None = None) -> bytes:
    """The EN 16931 (Factur-X profile EN 16931) CII XML of an invoice, or of its credit note."""
    xb = XmlBuilder()
    root = xb.root
    context = xb.sub(root, "rsm:ExchangedDocumentContext")
    xb.sub(xb.sub(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", EN16931)

    document = xb.sub(root, "rsm:ExchangedDocument")
    number = credit_note.display_number if credit_note else invoice.display_number
    issued = credit_note.issue_date if credit_note else invoice.issue_date
    xb.sub(document, "ram:ID", number)
    xb.sub(document, "ram:TypeCode", "381" if credit_note else "380")
    xb.date(document, "ram:IssueDateTime", issued)
    note = _("Season parking %(month)s") % {"month": f"{invoice.period_start:%m/%Y}"}
    if credit_note:
        how = _("Partially credits invoice %(number)s") if credit_note.is_partial else _("Reverses invoice %(number)s")
        note = f"{how % {'number': invoice.display_number}}: {credit_note.reason}"
    xb.sub(xb.sub(document, "ram:IncludedNote"), "ram:Content", note)

    transaction_el = xb.sub(root, "rsm:SupplyChainTradeTransaction")
    totals_of = credit_note or invoice  # a full credit note's totals are the invoice's
    for position, line in enumerate(document_lines(invoice, credit_note), start=1):
        item = xb.sub(transaction_el, "ram:IncludedSupplyChainTradeLineItem")
        xb.sub(xb.sub(item, "ram:AssociatedDocumentLineDocument"), "ram:LineID", str(position))
        xb.sub(xb.sub(item, "ram:SpecifiedTradeProduct"), "ram:Name", line.description)
        agreement = xb.sub(item, "ram:SpecifiedLineTradeAgreement")
        xb.sub(xb.sub(agreement, "ram:NetPriceProductTradePrice"), "ram:ChargeAmount", _amount(line.net))
        xb.sub(xb.sub(item, "ram:SpecifiedLineTradeDelivery"), "ram:BilledQuantity", "1", unitCode="C62")
        settlement = xb.sub(item, "ram:SpecifiedLineTradeSettlement")
        tax = xb.sub(settlement, "ram:ApplicableTradeTax")
        xb.sub(tax, "ram:TypeCode", "VAT")
        xb.sub(tax, "ram:CategoryCode", _category(line.vat_rate))
        xb.sub(tax, "ram:RateApplicablePercent", _rate(line.vat_rate))
        period = xb.sub(settlement, "ram:BillingSpecifiedPeriod")
        xb.date(period, "ram:StartDateTime", line.service_start)
        xb.date(period, "ram:EndDateTime", line.service_end)
        summation = xb.sub(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation")
        xb.sub(summation, "ram:LineTotalAmount", _amount(line.net))
        if line.cost_centre:
            xb.sub(xb.sub(settlement, "ram:ReceivableSpecifiedTradeAccountingAccount"), "ram:ID", line.cost_centre)

    agreement = xb.sub(transaction_el, "ram:ApplicableHeaderTradeAgreement")
    xb.sub(agreement, "ram:BuyerReference", f"CUST-{invoice.customer_id}")
    _party(xb, agreement, "ram:SellerTradeParty", settings.BILLING_OPERATOR)
    _party(xb, agreement, "ram:BuyerTradeParty", invoice.billing_address or {"name": str(invoice.customer)})
    xb.sub(transaction_el, "ram:ApplicableHeaderTradeDelivery")

    header = xb.sub(transaction_el, "ram:ApplicableHeaderTradeSettlement")
    mandate = None if credit_note else _sepa_mandate(invoice)
    if mandate is not None:
        xb.sub(header, "ram:CreditorReferenceID", settings.BILLING_OPERATOR["sepa_creditor_id"])  # BT-90
    xb.sub(header, "ram:PaymentReference", _remittance(invoice, credit_note))  # BT-83
    xb.sub(header, "ram:InvoiceCurrencyCode", invoice.currency)
    _payment_means(xb, header, invoice, credit_note, mandate)
    for group in totals_of.vat_breakdown:
        tax = xb.sub(header, "ram:ApplicableTradeTax")
        xb.sub(tax, "ram:CalculatedAmount", _amount(Decimal(group["vat"])))
        xb.sub(tax, "ram:TypeCode", "VAT")
        xb.sub(tax, "ram:BasisAmount", _amount(Decimal(group["net"])))
        xb.sub(tax, "ram:CategoryCode", _category(group["rate"]))
        xb.sub(tax, "ram:RateApplicablePercent", _rate(group["rate"]))
    period = xb.sub(header, "ram:BillingSpecifiedPeriod")
    xb.date(period, "ram:StartDateTime", invoice.period_start)
    xb.date(period, "ram:EndDateTime", invoice.period_end)
    terms = xb.sub(header, "ram:SpecifiedTradePaymentTerms")
    if credit_note:
        xb.sub(terms, "ram:Description", _("The amount is refunded or set off against open invoices."))
    else:
        days = settings.BILLING_PAYMENT_TERMS_DAYS
        xb.sub(terms, "ram:Description", _("Payable within %(days)s days.") % {"days": days})
        if invoice.due_date:
            xb.date(terms, "ram:DueDateDateTime", invoice.due_date)
        if mandate is not None and mandate.mandate_reference:
            xb.sub(terms, "ram:DirectDebitMandateID", mandate.mandate_reference)  # BT-89
    totals = xb.sub(header, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    xb.sub(totals, "ram:LineTotalAmount", _amount(totals_of.net_total))
    xb.sub(totals, "ram:TaxBasisTotalAmount", _amount(totals_of.net_total))
    xb.sub(totals, "ram:TaxTotalAmount", _amount(totals_of.vat_total), currencyID=invoice.currency)
    xb.sub(totals, "ram:GrandTotalAmount", _amount(totals_of.gross_total))
    xb.sub(totals, "ram:DuePayableAmount", _amount(totals_of.gross_total))
    if credit_note:
        referenced = xb.sub(header, "ram:InvoiceReferencedDocument")
        xb.sub(referenced, "ram:IssuerAssignedID", invoice.display_number)
        formatted = xb.sub(referenced, "ram:FormattedIssueDateTime")
        xb.sub(formatted, "qdt:DateTimeString", invoice.issue_date.strftime("%Y%m%d"), format="102")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _remittance(invoice: Invoice, credit_note: CreditNote | None) -> str:
    """BT-83: what a transfer quotes: the invoice's RF creditor reference, else its number."""
    if credit_note is None and invoice.payment_option == PaymentOption.BANK_TRANSFER and invoice.payment_reference:
        return invoice.payment_reference
    return invoice.display_number


def _sepa_mandate(invoice: Invoice) -> PaymentMethod | None:
    """The SEPA account (with an accepted mandate) a direct-debit invoice is collected from."""
    if invoice.payment_option != PaymentOption.SEPA_DEBIT:
        return None
    return (
        PaymentMethod.objects.filter(
            customer_id=invoice.customer_id,
            kind=PaymentMethod.Kind.SEPA_DEBIT,
            detached_at__isnull=True,
            mandate_accepted_at__isnull=False,
        )
        .order_by("-pk")
        .first()
    )


def _masked_iban(method: PaymentMethod) -> str:
    """The debtor's IBAN as far as we keep it: country, masked digits, the last four (``DE**********1234``)."""
    return f"{(method.country or 'DE').upper()}{'*' * 14}{method.last4}"


def _payment_means(
    xb: XmlBuilder,
    header: etree._Element,
    invoice: Invoice,
    credit_note: CreditNote | None,
    mandate: PaymentMethod | None,
) -> None:
    """BG-16 payment instructions: 59 SEPA direct debit (the debtor's masked IBAN, BT-91), 48 card, or 58
    SEPA credit transfer to the operator's IBAN (BT-84) and BIC (BT-86) for bank-transfer invoices, credit
    notes and card customers without a saved card."""
    means = xb.sub(header, "ram:SpecifiedTradeSettlementPaymentMeans")
    if mandate is not None:
        xb.sub(means, "ram:TypeCode", "59")
        xb.sub(xb.sub(means, "ram:PayerPartyDebtorFinancialAccount"), "ram:IBANID", _masked_iban(mandate))
        return
    has_card = PaymentMethod.objects.filter(
        customer_id=invoice.customer_id, kind=PaymentMethod.Kind.CARD, detached_at__isnull=True
    ).exists()
    if has_card and not credit_note and invoice.payment_option == PaymentOption.CARD:
        xb.sub(means, "ram:TypeCode", "48")
        return
    xb.sub(means, "ram:TypeCode", "58")
    account = xb.sub(means, "ram:PayeePartyCreditorFinancialAccount")
    xb.sub(account, "ram:IBANID", settings.BILLING_OPERATOR["iban"].replace(" ", "").upper())
    xb.sub(account, "ram:AccountName", settings.BILLING_OPERATOR["name"])
    if settings.BILLING_OPERATOR.get("bic"):
        institution = xb.sub(means, "ram:PayeeSpecifiedCreditorFinancialInstitution")
        xb.sub(institution, "ram:BICID", settings.BILLING_OPERATOR["bic"])


def facturx_check(xml: bytes) -> None:
    """Raise if the XML does not validate against the Factur-X EN 16931 XSD shipped with factur-x."""
    facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")


# --- PDF -----------------------------------------------------------------------------------------


def _local_only_fetcher() -> Any:
    """WeasyPrint may read local files (fonts) and data: URLs, but never fetch from the network."""
    from weasyprint.urls import URLFetcher

    return URLFetcher(allowed_protocols={"file", "data"})


@functools.lru_cache(maxsize=1)
def _renderer() -> tuple[Any, Any, Any]:
    """One FontConfiguration and stylesheet per process (loading fonts is the slow part)."""
    from weasyprint import CSS
    from weasyprint.text.fonts import FontConfiguration

    font_config = FontConfiguration()
    font_dir = Path(settings.BILLING_FONT_DIR)
    css = (STATIC_DIR / "invoice.css").read_text()
    css = css.replace("{{ font_dir }}", font_dir.as_uri())
    fetcher = _local_only_fetcher()
    stylesheet = CSS(string=css, font_config=font_config, url_fetcher=fetcher)
    return font_config, stylesheet, fetcher


# Drop the font configuration while its C library is still loaded (avoids a noisy __del__ at exit).
atexit.register(_renderer.cache_clear)


def render_pdf(html: str) -> bytes:
    from weasyprint import HTML

    font_config, stylesheet, fetcher = _renderer()
    document = HTML(string=html, base_url=str(STATIC_DIR), url_fetcher=fetcher)
    return document.write_pdf(stylesheets=[stylesheet], font_config=font_config, pdf_variant="pdf/a-3b")


def document_pdf(invoice: Invoice, xml: bytes, *, credit_note: CreditNote | None = None) -> bytes:
    """Render the letterhead PDF and embed the Factur-X XML (PDF/A-3, Factur-X XMP), in the active
    language (the customer's: see ``customer_language``)."""
    html = render_to_string(
        "billing/pdf/invoice.html",
        {
            "invoice": invoice,
            "credit_note": credit_note,
            "lines": document_lines(invoice, credit_note),
            "totals": credit_note or invoice,
            "operator": settings.BILLING_OPERATOR,
            "address": invoice.billing_address,
            "payment_terms_days": settings.BILLING_PAYMENT_TERMS_DAYS,
            "has_card": invoice.payment_option != PaymentOption.BANK_TRANSFER
            and PaymentMethod.objects.filter(customer_id=invoice.customer_id, detached_at__isnull=True).exists(),
            "transfer": transfer_instructions(invoice),
            "sepa": sepa_prenotification(invoice),
        },
    )
    pdf = render_pdf(html)
    number = credit_note.display_number if credit_note else invoice.display_number
    kind = _("Credit note") if credit_note else _("Invoice")
    return facturx.generate_from_binary(
        pdf,
        xml,
        flavor="factur-x",
        level="en16931",
        check_xsd=False,
        check_schematron=False,
        pdf_metadata={
            "author": settings.BILLING_OPERATOR["name"],
            "keywords": "Factur-X, invoice",
            "title": f"{settings.BILLING_OPERATOR['name']}: {kind} {number}",
            "subject": f"{kind} {number}",
        },
        lang=translation.get_language() or settings.LANGUAGE_CODE,
    )


def customer_language(invoice: Invoice) -> str:
    """The language of the customer's documents and emails (not the staff member's who triggers them)."""
    return invoice.customer.language or settings.LANGUAGE_CODE


def invoice_documents_render(*, invoice: Invoice, force: bool = False) -> Invoice:
    """Build, validate and store the invoice's XML and PDF (once, unless ``force``)."""
    if invoice.state == Invoice.State.DRAFT:
        raise ValueError("a draft invoice has no documents")
    if invoice.pdf and invoice.facturx_xml and not force:
        return invoice
    with translation.override(customer_language(invoice)):
        xml = facturx_xml(invoice)
        facturx_check(xml)
        pdf = document_pdf(invoice, xml)
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if locked.pdf and not force:
            return locked
        locked.facturx_xml = xml.decode("utf-8")
        locked.pdf.save(f"{invoice.display_number}.pdf", ContentFile(pdf), save=False)
        locked.save(update_fields=["facturx_xml", "pdf"])
    return locked


def credit_note_documents_render(*, credit_note: CreditNote, force: bool = False) -> CreditNote:
    if credit_note.pdf and credit_note.facturx_xml and not force:
        return credit_note
    invoice = credit_note.invoice
    with translation.override(customer_language(invoice)):
        xml = facturx_xml(invoice, credit_note=credit_note)
        facturx_check(xml)
        pdf = document_pdf(invoice, xml, credit_note=credit_note)
    with transaction.atomic():
        locked = CreditNote.objects.select_for_update().get(pk=credit_note.pk)
        if locked.pdf and not force:
            return locked
        locked.facturx_xml = xml.decode("utf-8")
        locked.pdf.save(f"{credit_note.display_number}.pdf", ContentFile(pdf), save=False)
        locked.save(update_fields=["facturx_xml", "pdf"])
    return locked
