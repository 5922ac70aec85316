"""Forms of the car-park edit page and the product and price pages (services do the real checks)."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from billing.payment_options import PaymentOption, default_product_options
from carparks.forms import CarParkForm
from carparks.models import Product
from parkinghq.widgets import LocalDateInput


class CarParkEditForm(CarParkForm):
    opening_hours = forms.CharField(
        label=_("Opening hours"), max_length=200, required=False, help_text=_("For example 'Mo-Su 00:00-24:00'.")
    )
    cpms_reference = forms.CharField(
        label=_("CPMS reference"), max_length=100, required=False, help_text=_("The car park's id in its CPMS.")
    )
    connection = forms.ModelChoiceField(
        label=_("CPMS connection"),
        required=False,
        queryset=None,
        empty_label=_("Not connected"),
        help_text=_("Links the car park to this CPMS under its CPMS reference (credentials and occupancy follow)."),
    )

    def __init__(self, *args, may_link: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if may_link:
            from connect.models import CpmsConnection

            self.fields["connection"].queryset = CpmsConnection.objects.order_by("name")
        else:
            del self.fields["connection"]


class ProductForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    audience = forms.ChoiceField(label=_("Sold to"), choices=Product.Audience.choices, initial=Product.Audience.ANY)
    validity = forms.ChoiceField(label=_("Valid"), choices=Product.Validity.choices, initial=Product.Validity.ALL_DAY)
    vehicle_class = forms.ChoiceField(label=_("Vehicle class"), choices=Product.VehicleClass.choices)
    is_addon = forms.BooleanField(
        label=_("E-charging or other add-on"), required=False, help_text=_("Sold on top of a season product.")
    )
    monthly_price = forms.DecimalField(
        label=_("Monthly price (gross, EUR)"),
        min_value=0,
        max_digits=10,
        decimal_places=2,
        help_text=_("Valid from today."),
    )
    deposit = forms.DecimalField(label=_("Deposit (EUR)"), min_value=0, max_digits=10, decimal_places=2, initial=0)
    vat_rate = forms.DecimalField(
        label=_("VAT rate (%)"), min_value=0, max_value=100, max_digits=5, decimal_places=2, initial=Decimal("19.00")
    )
    notice_period_days = forms.IntegerField(label=_("Notice period (days)"), min_value=0, max_value=3650, initial=30)
    vehicles_per_place = forms.IntegerField(
        label=_("Vehicles per place"), min_value=1, max_value=100, initial=1, help_text=_("A corporate pool's ratio.")
    )
    quota = forms.IntegerField(
        label=_("Quota"), min_value=0, max_value=100000, help_text=_("Places sold at once; never below those held.")
    )
    payment_options = forms.MultipleChoiceField(
        label=_("Payment options offered"),
        choices=PaymentOption.choices,
        initial=default_product_options,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one payment option the product offers.")},
        help_text=_("How customers of this product may pay; each customer uses one of them."),
    )

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            # The price changes through "New price from …", so its history is kept.
            del self.fields["monthly_price"]
            self.fields["is_active"] = forms.BooleanField(
                label=_("Sold"),
                required=False,
                help_text=_("Untick to deactivate: no new contracts, running ones go on."),
            )


class PriceForm(forms.Form):
    monthly_price = forms.DecimalField(
        label=_("New monthly price (gross, EUR)"), min_value=0, max_digits=10, decimal_places=2
    )
    valid_from = forms.DateField(label=_("Valid from"), widget=LocalDateInput(), help_text=_("Today or later."))
