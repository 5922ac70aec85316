"""Forms of the car-park pages (labelled, with help text; services do the real checks)."""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from carparks.models import Case, Contract, Customer, Product


class CustomerFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, help_text="Name, email or company number.")
    kind = forms.ChoiceField(label="Kind", required=False, choices=[("", "All"), *Customer.Kind.choices])


class CaseFilterForm(forms.Form):
    STATES = [("open", "Open and in progress"), ("", "All"), *Case.State.choices]
    state = forms.ChoiceField(label="State", required=False, choices=STATES, initial="open")
    kind = forms.ChoiceField(label="Kind", required=False, choices=[("", "All"), *Case.Kind.choices])
    priority = forms.ChoiceField(label="Priority", required=False, choices=[("", "All"), *Case.Priority.choices])
    mine = forms.BooleanField(label="Assigned to me", required=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(label="Reason", required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class TerminationForm(forms.Form):
    end_date = forms.DateField(
        label="Last day",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Leave empty for the earliest day the notice period allows.",
    )
    waive_notice = forms.BooleanField(label="Waive the notice period", required=False)
    reason = forms.CharField(label="Reason", required=False, max_length=500)


class PlateChangeForm(forms.Form):
    old_plate = forms.ChoiceField(label="Current plate")
    new_plate = forms.CharField(label="New plate", max_length=30, help_text="Spaces, dashes and case do not matter.")
    country = forms.CharField(label="Country code", max_length=3, initial="D")

    def __init__(self, *args, contract: Contract, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["old_plate"].choices = [(v.plate, str(v)) for v in contract.vehicles.all()]


class VehiclesAddForm(forms.Form):
    plates = forms.CharField(
        label="Plates",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One plate per line (a fleet may list many).",
    )

    def clean_plates(self) -> list[str]:
        plates = [line.strip() for line in self.cleaned_data["plates"].splitlines() if line.strip()]
        if not plates:
            raise forms.ValidationError("Enter at least one plate.")
        return plates


class QuotaForm(forms.Form):
    quota = forms.IntegerField(label="Quota", min_value=0, max_value=100000)


class CaseForm(forms.Form):
    kind = forms.ChoiceField(label="Kind", choices=Case.Kind.choices)
    subject = forms.CharField(label="Subject", max_length=200)
    description = forms.CharField(label="Description", required=False, widget=forms.Textarea(attrs={"rows": 4}))
    contract = forms.ModelChoiceField(label="Contract", required=False, queryset=Contract.objects.none())
    invoice_id = forms.CharField(
        label="Invoice number",
        required=False,
        max_length=40,
        help_text="As printed on the invoice, e.g. INV2026-000133.",
    )
    priority = forms.ChoiceField(
        label="Priority",
        required=False,
        choices=[("", "Default for the kind"), *Case.Priority.choices],
        help_text="Sets the SLA: urgent 4 hours, high 1 day, normal 3 days, low 5 days.",
    )

    def __init__(self, *args, customer: Customer, contracts: QuerySet[Contract] | None = None, **kwargs):
        """``contracts``: those of the customer the user may choose (the car parks the user sees)."""
        super().__init__(*args, **kwargs)
        contracts = customer.contracts.all() if contracts is None else contracts
        self.fields["contract"].queryset = contracts.select_related("product")


class CaseNoteForm(forms.Form):
    note = forms.CharField(label="Note", widget=forms.Textarea(attrs={"rows": 3}))


class CaseResolveForm(forms.Form):
    resolution = forms.CharField(
        label="Resolution", widget=forms.Textarea(attrs={"rows": 3}), help_text="Sent to the customer."
    )


class StageChangeForm(forms.Form):
    next_product = forms.ModelChoiceField(label="Next product", required=False, queryset=Product.objects.none())
    next_plate = forms.CharField(label="Next vehicle (plate)", required=False, max_length=30)
    country = forms.CharField(label="Country code", max_length=3, initial="D")
    on = forms.DateField(
        label="Takes effect on",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Leave empty for the first of next month.",
    )

    def __init__(self, *args, contract: Contract, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["next_product"].queryset = Product.objects.filter(
            carpark_id=contract.product.carpark_id, is_active=True
        ).exclude(pk=contract.product_id)


def _time_zone_choices() -> list[tuple[str, str]]:
    from zoneinfo import available_timezones

    europe = sorted(z for z in available_timezones() if z.startswith("Europe/"))
    return [(z, z.replace("_", " ")) for z in europe] + [("UTC", "UTC")]


class CarParkForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    street = forms.CharField(label="Street and number", max_length=200, required=False)
    postcode = forms.CharField(label="Postcode", max_length=20, required=False)
    city = forms.CharField(label="City", max_length=100, required=False)
    capacity = forms.IntegerField(label="Capacity", min_value=0, help_text="Number of parking spaces.")
    time_zone = forms.ChoiceField(
        label="Time zone", initial="Europe/Berlin", help_text="Contracts end at midnight in this time zone."
    )
    latitude = forms.DecimalField(
        label="Latitude", required=False, min_value=-90, max_value=90, max_digits=9, decimal_places=6
    )
    longitude = forms.DecimalField(
        label="Longitude", required=False, min_value=-180, max_value=180, max_digits=9, decimal_places=6
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = _time_zone_choices()
