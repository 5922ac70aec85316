import io
from datetime import date

import pytest
from rest_framework.test import APIClient

from billing import services
from billing.models import Invoice
from billing.tests.factories import ContractFactory
from carparks.api.authentication import api_client_create

pytestmark = pytest.mark.django_db


def client_with(*scopes, carparks=()):
    _, token = api_client_create(name=f"shop-{'-'.join(scopes) or 'none'}", scopes=list(scopes), carparks=carparks)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def test_a_portal_lists_a_contracts_invoices_and_downloads_the_pdf():
    contract = ContractFactory()
    ContractFactory(customer=contract.customer)
    services.invoicing_run_execute(run=services.invoicing_run_create(period_start=date(2026, 3, 1)), deliver=False)
    invoice = Invoice.objects.get()
    api = client_with("contracts:read", carparks=[contract.product.carpark])  # the shop of this car park

    response = api.get(f"/api/v1/contracts/{contract.pk}/invoices/")
    assert response.status_code == 200
    [item] = response.json()
    assert item["number"] == invoice.display_number and item["gross_total"] == str(invoice.gross_total)
    assert len(item["lines"]) == 2
    pdf = api.get(item["pdf_url"])
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    import facturx

    _, xml = facturx.get_facturx_xml_from_pdf(io.BytesIO(b"".join(pdf.streaming_content)), check_xsd=False)
    assert invoice.display_number.encode() in xml


def test_the_invoice_api_needs_the_contracts_read_scope():
    contract = ContractFactory()
    assert APIClient().get(f"/api/v1/contracts/{contract.pk}/invoices/").status_code == 401
    assert client_with("carparks:read").get(f"/api/v1/contracts/{contract.pk}/invoices/").status_code == 403
    assert client_with("contracts:read").get("/api/v1/invoices/999/pdf/").status_code == 404
