"""Django admin (/django-admin/) for master data and API clients.

Contracts and cases are read-only here: their lifecycle changes only through the services
(the portal pages and the processes), so the history stays complete.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from carparks.api.authentication import token_new
from carparks.models import ApiClient, CarPark, Case, Contract, Customer, Product


@admin.register(CarPark)
class CarParkAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "city", "capacity", "occupancy", "is_active"]
    list_filter = ["is_active", "city"]
    search_fields = ["name", "code", "city", "cpms_reference"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "carpark", "monthly_price", "quota", "validity", "is_active"]
    list_filter = ["is_active", "validity", "vehicle_class", "carpark"]
    search_fields = ["name", "carpark__name"]
    # A quota change offers freed places to the waitlist: use the car-park page (services.product_set_quota).
    readonly_fields = ["quota"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "email", "company_number"]
    list_filter = ["kind"]
    search_fields = ["name", "email", "company_number"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Contract)
class ContractAdmin(ReadOnlyAdmin):
    list_display = ["pk", "customer", "product", "state", "start_date", "end_date"]
    list_filter = ["state"]
    search_fields = ["customer__name", "vehicles__plate"]


@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin):
    list_display = ["pk", "subject", "customer", "kind", "priority", "state", "sla_due_at"]
    list_filter = ["state", "kind", "priority"]


class ApiClientForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiClient.Scope.choices, widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = ApiClient
        fields = ["name", "scopes", "carparks", "is_active"]


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    """Clients and their tokens; **Car parks** grants a client the contracts, cases and invoices of those
    car parks (besides what it created itself), audited with the scopes."""

    form = ApiClientForm
    list_display = ["name", "token_prefix", "scopes", "is_active", "last_used_at"]
    readonly_fields = ["token_prefix", "created_at", "last_used_at"]
    filter_horizontal = ["carparks"]

    @admin.display(description=_("Token (development only)"))
    def development_token(self, obj: ApiClient) -> str:
        from parkinghq.dev_token import demo_api_token_shown

        return demo_api_token_shown(obj) or "—"

    def _development(self) -> bool:
        from django.conf import settings

        return getattr(settings, "DEVELOPMENT", False)

    def get_list_display(self, request: HttpRequest) -> Any:
        # In development the demo client's token is shown here; in production a token is shown once, at creation.
        base = super().get_list_display(request)
        return [*base, "development_token"] if self._development() else base

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        base = super().get_readonly_fields(request, obj)
        return [*base, "development_token"] if self._development() and obj is not None else base

    @staticmethod
    def _audited(client: ApiClient) -> dict[str, Any]:
        return {
            "scopes": client.scopes,
            "is_active": client.is_active,
            "carparks": sorted(client.carparks.values_list("pk", flat=True)),
        }

    def save_model(self, request: HttpRequest, obj: ApiClient, form: Any, change: bool) -> None:
        if change:
            obj._audit_old = self._audited(ApiClient.objects.get(pk=obj.pk))
        else:
            token, obj.token_prefix, obj.token_hash = token_new()
            messages.warning(request, f"API token for {obj.name} (shown only now, copy it): {token}")
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Audited here, once the granted car parks are saved too."""
        from accounts.services import audit_record

        super().save_related(request, form, formsets, change)
        obj = form.instance
        audit_record(
            actor=request.user,
            action="api_client.updated" if change else "api_client.created",
            target=obj,
            old=getattr(obj, "_audit_old", None),
            new=self._audited(obj),
        )
