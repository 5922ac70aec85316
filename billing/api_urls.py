"""API v1 routes of billing (mounted under /api/v1/ next to the car-park API)."""

from django.urls import path

from billing import api

app_name = "billing-api"
urlpatterns = [
    path("contracts/<int:pk>/invoices/", api.ContractInvoices.as_view(), name="contract-invoices"),
    path("invoices/<int:pk>/pdf/", api.InvoicePdf.as_view(), name="invoice-pdf"),
]
