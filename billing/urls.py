from django.urls import path

from billing import finance_views, sepa_views, views

app_name = "billing"
urlpatterns = [
    path("", views.invoice_list, name="invoice-list"),
    path("invoices/<int:pk>/", views.invoice_detail, name="invoice-detail"),
    path("invoices/<int:pk>/pdf/", views.invoice_pdf, name="invoice-pdf"),
    path("invoices/<int:pk>/xml/", views.invoice_xml, name="invoice-xml"),
    path("invoices/<int:pk>/charge/", views.invoice_charge, name="invoice-charge"),
    path("invoices/<int:pk>/transfer/", views.invoice_transfer, name="invoice-transfer"),
    path("invoices/<int:pk>/send/", views.invoice_send, name="invoice-send"),
    path("invoices/<int:pk>/card-link/", views.card_link_send, name="card-link-send"),
    path("invoices/<int:pk>/credit-note/", views.credit_note_create, name="credit-note-create"),
    path("payments/", views.payment_list, name="payment-list"),
    path("invoices/<int:pk>/refund/", views.invoice_refund, name="invoice-refund"),
    path("payments/<int:pk>/refund/", views.refund_create, name="refund-create"),
    path("refunds/<int:pk>/send/", views.refund_send, name="refund-send"),
    path("credit-notes/", views.credit_note_list, name="credit-note-list"),
    path("credit-notes/<int:pk>/pdf/", views.credit_note_pdf, name="credit-note-pdf"),
    path("exceptions/", views.exception_list, name="exception-list"),
    path("exceptions/<int:pk>/resolve/", views.exception_resolve, name="exception-resolve"),
    path("runs/", finance_views.run_create, name="run-create"),
    path("runs/<int:pk>/", finance_views.run_detail, name="run-detail"),
    path("runs/<int:pk>/confirm/", finance_views.run_confirm, name="run-confirm"),
    path("runs/<int:pk>/cancel/", finance_views.run_cancel, name="run-cancel"),
    path("runs/<int:pk>/refresh/", finance_views.run_refresh, name="run-refresh"),
    path("dunning/", finance_views.dunning_list, name="dunning-list"),
    path("dunning/export.csv", finance_views.dunning_export, name="dunning-export"),
    path("exports/", views.export_list, name="export-list"),
    path("exports/new/", views.export_create, name="export-create"),
    path("exports/<int:pk>/download/", views.export_download, name="export-download"),
    path("customers/<int:pk>/payment-option/", sepa_views.payment_option_change, name="payment-option-change"),
    path("customers/<int:pk>/sepa-mandate/", sepa_views.sepa_mandate_offline, name="sepa-mandate-offline"),
    path("mandates/<int:pk>/", sepa_views.sepa_mandate_detail, name="sepa-mandate-detail"),
    # Public: the customer's card page (signed link) and Stripe's webhook (signature-checked).
    path("card/<str:token>/", views.card_setup, name="card-setup"),
    path("card/<str:token>/done/", views.card_setup_return, name="card-setup-return"),
    path("sepa/<str:token>/", sepa_views.sepa_mandate, name="sepa-mandate"),
    path("stripe/webhook/", views.stripe_webhook, name="stripe-webhook"),
]
