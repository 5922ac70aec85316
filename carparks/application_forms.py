"""The form of the staff's "New application" page: a season application taken for a customer.

It answers every wrong input at its field: a start date in the past, places for a private customer,
a product of another car park or not offered to the customer's kind, plates that cannot be plates
(each refusal names the line and the reason), NUL bytes and over-long text. What the service checks
besides (a plate on a running contract of another customer, vehicles beyond the places × the
product's vehicles per place) comes back to the field the service names.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from carparks import services
from carparks.access import carparks_for_user
from carparks.models import CarPark, Customer, Product
from parkinghq.widgets import LocalDateInput

CHANNELS = [
    ("phone", _("Phone")),
    ("counter", _("At the counter")),
    ("email", _("Email")),
    ("portal", _("Portal (letter, form)")),
]
MAX_PLACES = 500


class ProductChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Product) -> str:
        per = f", {obj.vehicles_per_place} vehicles per place" if obj.vehicles_per_place > 1 else ""
        return f"{obj.name} — {obj.monthly_price} EUR a month{per}"


def products_for(customer: Customer, carparks: QuerySet[CarPark]) -> QuerySet[Product]:
    """Season products sold at ``carparks`` and offered to the customer's kind (add-ons are not applied for)."""
    return (
        Product.objects.filter(is_active=True, is_addon=False, carpark__in=carparks, carpark__is_active=True)
        .filter(Q(audience=Product.Audience.ANY) | Q(audience=customer.kind))
        .select_related("carpark")
        .order_by("carpark__name", "name")
    )


class ApplicationForm(forms.Form):
    channel = forms.ChoiceField(label=_("Channel"), choices=CHANNELS, help_text=_("How the customer applied."))
    carpark = forms.ModelChoiceField(label=_("Car park"), queryset=CarPark.objects.none(), empty_label=_("Choose…"))
    product = ProductChoiceField(
        label=_("Product"),
        queryset=Product.objects.none(),
        empty_label=_("Choose…"),
        help_text=_("The season products of the car park offered to this customer."),
    )
    start_date = forms.DateField(label=_("Start date"), widget=LocalDateInput(), help_text=_("Today or later."))
    places = forms.IntegerField(
        label=_("Places"),
        min_value=1,
        max_value=MAX_PLACES,
        initial=1,
        help_text=_("How many vehicles may park at once; each place counts against the product's quota."),
    )
    vehicles = forms.CharField(
        label=_("Vehicles"),
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 4, "class": "font-monospace"}),
        error_messages={"required": _("Enter at least one plate, one per line.")},
        help_text=_(
            "One plate per line; add the country after a comma when it is not German "
            "(e.g. <code>W-12345 X, A</code>, <code>ZH 123456, CH</code>, <code>AB-123-CD, F</code>)."
        ),
    )
    cost_centre = forms.CharField(label=_("Cost centre"), max_length=50, required=False)

    def __init__(self, *args: Any, customer: Customer, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.customer = customer
        carparks = carparks_for_user(user, CarPark.objects.filter(is_active=True)).order_by("name")
        self.fields["carpark"].queryset = carparks
        products = products_for(customer, carparks)
        chosen = self._chosen_carpark()
        self.fields["product"].queryset = products.filter(carpark_id=chosen) if chosen else products
        self.fields["start_date"].initial = timezone.localdate()
        if customer.kind != Customer.Kind.CORPORATE:
            del self.fields["places"]
            del self.fields["cost_centre"]
        elif customer.cost_centres:
            self.fields["cost_centre"].help_text = "The company's cost centres: " + ", ".join(
                str(c) for c in customer.cost_centres
            )

    def _chosen_carpark(self) -> int | None:
        raw = self.data.get("carpark") if self.is_bound else self.initial.get("carpark")
        raw = getattr(raw, "pk", raw)
        return int(raw) if str(raw or "").isdigit() and len(str(raw)) < 12 else None

    def clean_start_date(self) -> Any:
        start = self.cleaned_data["start_date"]
        if start < timezone.localdate():
            raise forms.ValidationError(_("The start date cannot be in the past."))
        return start

    def clean_vehicles(self) -> list[services.PlateInput]:
        try:
            return services.plates_parse(self.cleaned_data["vehicles"])
        except services.CarparkError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        carpark, product = data.get("carpark"), data.get("product")
        if carpark and product and product.carpark_id != carpark.pk:
            self.add_error(
                "product",
                _("%(product)s is sold at %(sold_at)s, not at %(carpark)s.")
                % {"product": product.name, "sold_at": product.carpark.name, "carpark": carpark.name},
            )
        return data

    def add_service_error(self, exc: services.CarparkError) -> None:
        """Show a refusal of the service at the field it names (plates → vehicles)."""
        field = {"plate": "vehicles", "plates": "vehicles", "end_date": "start_date"}.get(exc.field or "", exc.field)
        self.add_error(field if field in self.fields else None, str(exc))
