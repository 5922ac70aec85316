"""Read-only admin views of the billing ledger (changes go through the Finance pages and services)."""

from django.contrib import admin

from billing.models import (
    AccountingExport,
    BillingException,
    CreditNote,
    Invoice,
    InvoiceLine,
    NumberSeries,
    Payment,
    PaymentMethod,
    StripeEvent,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in InvoiceLine._meta.fields]


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "customer", "period_start", "state", "gross_total", "issue_date"]
    list_filter = ["state", "period_start"]
    search_fields = ["customer__name", "number"]
    inlines = [InvoiceLineInline]


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ["invoice", "kind", "status", "amount", "stripe_payment_intent_id", "created_at"]
    list_filter = ["kind", "status"]


for model in (NumberSeries, CreditNote, PaymentMethod, StripeEvent, AccountingExport, BillingException):
    admin.site.register(model, ReadOnlyAdmin)
