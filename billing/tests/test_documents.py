import io
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import facturx
import pytest
import time_machine
from django.core import mail
from lxml import etree
from pypdf import PdfReader

from billing import documents, services
from billing.models import Invoice
from billing.tests.factories import ContractFactory
from carparks.tests.factories import CorporateFactory, ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice():
    with time_machine.travel("2026-03-01 06:00 +01:00", tick=False):
        company = CorporateFactory(street="Leopoldstraße 5", postcode="80802", city="München", vat_id="DE999999999")
        ContractFactory(customer=company, cost_centre="CC-7", monthly_price=Decimal("119.00"))
        ContractFactory(
            customer=company, product=ProductFactory(vat_rate=Decimal("7.00")), start_date=date(2026, 3, 31),
            monthly_price=Decimal("99.00"),
        )  # fmt: skip
        run = services.invoicing_run_create(period_start=date(2026, 3, 1))
        services.invoicing_run_execute(run=run, deliver=False)
    return Invoice.objects.get()


def test_the_facturx_xml_validates_against_the_en16931_xsd(invoice):
    xml = documents.facturx_xml(invoice)
    documents.facturx_check(xml)  # raises on any XSD error
    assert facturx.get_level(etree.fromstring(xml)) == "en16931"
    tree = etree.fromstring(xml)
    ns = documents.NS
    assert tree.findtext(".//rsm:ExchangedDocument/ram:ID", namespaces=ns) == invoice.display_number
    assert tree.findtext(".//ram:GrandTotalAmount", namespaces=ns) == f"{invoice.gross_total:.2f}"
    rates = sorted(
        e.text
        for e in tree.iterfind(
            ".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:RateApplicablePercent", ns
        )
    )
    assert rates == ["19.00", "7.00"]


def test_a_corporate_invoice_with_many_lines_keeps_the_en16931_vat_rules():
    """BR-S-08: each rate's taxable amount is the sum of its line nets; BR-S-09: its VAT is that
    amount × the rate (Factur-X allows a cent of rounding); BR-CO-15: grand total = net + VAT."""
    with time_machine.travel("2026-03-01 06:00 +01:00", tick=False):
        company = CorporateFactory(street="Leopoldstraße 5", postcode="80802", city="München", vat_id="DE999999999")
        for _ in range(50):
            ContractFactory(customer=company, monthly_price=Decimal("99.00"), start_date=date(2026, 1, 1))
        run = services.invoicing_run_create(period_start=date(2026, 3, 1))
        services.invoicing_run_execute(run=run, deliver=False)
    invoice = Invoice.objects.get()
    assert invoice.gross_total == Decimal("4950.00")  # what the customer's 50 prices add up to

    tree = etree.fromstring(documents.facturx_xml(invoice))
    ns = documents.NS
    line_nets = [
        Decimal(e.text)
        for e in tree.iterfind(".//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount", ns)
    ]
    (breakdown,) = tree.iterfind(".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", ns)
    basis = Decimal(breakdown.findtext("ram:BasisAmount", namespaces=ns))
    vat = Decimal(breakdown.findtext("ram:CalculatedAmount", namespaces=ns))
    assert len(line_nets) == 50 and sum(line_nets) == basis == invoice.net_total
    assert abs(vat - (basis * Decimal("0.19")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)) <= Decimal("0.01")
    assert Decimal(tree.findtext(".//ram:GrandTotalAmount", namespaces=ns)) == basis + vat == invoice.gross_total
    lines = list(invoice.lines.all())
    assert sum(line.vat for line in lines) == invoice.vat_total == vat
    assert all(line.net + line.vat == line.gross == Decimal("99.00") for line in lines)


def test_a_broken_xml_fails_the_xsd_check(invoice):
    xml = documents.facturx_xml(invoice).replace(
        b"<ram:TypeCode>380</ram:TypeCode>", b"<ram:Nonsense>380</ram:Nonsense>"
    )
    with pytest.raises(Exception):  # noqa: B017 - factur-x raises its own plain Exception
        documents.facturx_check(xml)


def test_the_pdf_is_pdfa3_with_the_facturx_xml_embedded(invoice):
    invoice = documents.invoice_documents_render(invoice=invoice)
    with invoice.pdf.open("rb") as handle:
        pdf = handle.read()
    assert pdf.startswith(b"%PDF")
    filename, xml = facturx.get_facturx_xml_from_pdf(io.BytesIO(pdf), check_xsd=True)
    assert filename == "factur-x.xml"
    assert xml == invoice.facturx_xml.encode()
    reader = PdfReader(io.BytesIO(pdf))
    metadata = reader.xmp_metadata
    assert (
        "pdfaid" in metadata.rdf_root.toxml()
        or b"pdfaid:part" in reader.trailer["/Root"]["/Metadata"].get_object().get_data()
    )
    fonts = reader.pages[0]["/Resources"]["/Font"]
    assert all("Letterhead" in f.get_object()["/BaseFont"] for f in fonts.values())  # our local font, embedded
    text = reader.pages[0].extract_text()
    assert invoice.display_number in text and "CC-7" in text


def test_the_credit_note_carries_its_own_xml_and_refers_to_the_invoice(invoice):
    note = services.credit_note_issue(invoice=invoice, reason="Duplicate")
    note = documents.credit_note_documents_render(credit_note=note)
    tree = etree.fromstring(note.facturx_xml.encode())
    ns = documents.NS
    assert tree.findtext(".//rsm:ExchangedDocument/ram:TypeCode", namespaces=ns) == "381"
    assert (
        tree.findtext(".//ram:InvoiceReferencedDocument/ram:IssuerAssignedID", namespaces=ns) == invoice.display_number
    )


def test_sending_emails_the_pdf_once(invoice):
    assert services.invoice_send(invoice=invoice) is True
    assert services.invoice_send(invoice=invoice) is False
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [invoice.customer.email]
    assert message.attachments[0][0] == f"{invoice.display_number}.pdf"
    assert Invoice.objects.get(pk=invoice.pk).emailed_at is not None
