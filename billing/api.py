"""REST API v1 for the eCommerce, App and Web modules: a contract's invoices and their PDFs.

Same tokens, scopes and throttling as the car-park API (``contracts:read``), so a customer portal
can list a customer's invoices and offer the PDF (with its embedded Factur-X e-invoice). A client
reads only the invoices of its own contracts and customers (``invoices_for_client``); others are 404.
"""

from __future__ import annotations

from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.documents import invoice_documents_render
from billing.models import Invoice, InvoiceLine
from billing.selectors import invoices_for_client
from carparks.access import contracts_for_client
from carparks.api.views import ERROR, ApiView
from carparks.models import ApiClient


class InvoiceLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = InvoiceLine
        fields = [
            "contract",
            "description",
            "cost_centre",
            "service_start",
            "service_end",
            "days",
            "vat_rate",
            "net",
            "gross",
        ]


class InvoiceSerializer(serializers.ModelSerializer):
    number = serializers.CharField(source="display_number")
    lines = InvoiceLineSerializer(many=True)
    pdf_url = serializers.SerializerMethodField()

    class Meta:
        model = Invoice
        fields = [
            "id", "number", "state", "period_start", "period_end", "issue_date", "due_date", "currency",
            "net_total", "vat_total", "gross_total", "lines", "pdf_url",
        ]  # fmt: skip

    def get_pdf_url(self, invoice: Invoice) -> str:
        url = reverse("billing-api:invoice-pdf", args=[invoice.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class ContractInvoices(ApiView):
    required_scopes = {"GET": ApiClient.Scope.CONTRACTS_READ}

    @extend_schema(
        summary="The invoices that bill a contract, newest first",
        responses={200: InvoiceSerializer(many=True), 404: ERROR, 401: ERROR, 403: ERROR},
    )
    def get(self, request: Request, pk: int) -> Response:
        contract = get_object_or_404(contracts_for_client(self.client()), pk=pk)
        invoices = (
            invoices_for_client(self.client())
            .filter(pk__in=InvoiceLine.objects.filter(contract=contract).values("invoice_id"))
            .exclude(state=Invoice.State.DRAFT)
            .prefetch_related("lines")
            .order_by("-period_start", "-number")
        )
        return Response(InvoiceSerializer(invoices, many=True, context={"request": request}).data)


class InvoicePdf(ApiView):
    required_scopes = {"GET": ApiClient.Scope.CONTRACTS_READ}

    @extend_schema(
        summary="An invoice as PDF/A-3 with its embedded Factur-X (EN 16931) e-invoice",
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The invoice PDF."),
            404: ERROR,
            401: ERROR,
            403: ERROR,
        },
    )
    def get(self, request: Request, pk: int) -> FileResponse:
        issued = Invoice.objects.exclude(state=Invoice.State.DRAFT)
        invoice = get_object_or_404(invoices_for_client(self.client(), issued), pk=pk)
        invoice = invoice_documents_render(invoice=invoice)
        return FileResponse(invoice.pdf.open("rb"), content_type="application/pdf", filename=f"{invoice}.pdf")
