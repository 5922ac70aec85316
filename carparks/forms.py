"""Forms of the car-park pages (labelled, with help text; services do the real checks)."""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from carparks.models import Case, Contract, Customer, Product
from parkinghq.widgets import LocalDateInput


class CustomerFilterForm(forms.Form):
    # Not "q": that is the top bar's global search on the same page.
    customer_search = forms.CharField(
        label=_("Search customers"), required=False, help_text=_("Name, email or company number.")
    )
    kind = forms.ChoiceField(label=_("Kind"), required=False, choices=[("", _("All")), *Customer.Kind.choices])


class CaseFilterForm(forms.Form):
    STATES = [("open", _("Open and in progress")), ("", _("All")), *Case.State.choices]
    state = forms.ChoiceField(label=_("State"), required=False, choices=STATES, initial="open")
    kind = forms.ChoiceField(label=_("Kind"), required=False, choices=[("", _("All")), *Case.Kind.choices])
    priority = forms.ChoiceField(label=_("Priority"), required=False, choices=[("", _("All")), *Case.Priority.choices])
    mine = forms.BooleanField(label=_("Assigned to me"), required=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"), required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2})
    )


class TerminationForm(forms.Form):
    end_date = forms.DateField(
        label=_("Last day"),
        required=False,
        widget=LocalDateInput(),
        help_text=_("Leave empty for the earliest day the notice period allows."),
    )
    waive_notice = forms.BooleanField(label=_("Waive the notice period"), required=False)
    reason = forms.CharField(label=_("Reason"), required=False, max_length=500)


class PlateChangeForm(forms.Form):
    old_plate = forms.ChoiceField(label=_("Current plate"))
    new_plate = forms.CharField(
        label=_("New plate"), max_length=30, help_text=_("Spaces, dashes and case do not matter.")
    )
    country = forms.CharField(label=_("Country code"), max_length=3, initial="D")

    def __init__(self, *args, contract: Contract, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["old_plate"].choices = [(v.plate, str(v)) for v in contract.vehicles.all()]


class VehiclesAddForm(forms.Form):
    plates = forms.CharField(
        label=_("Plates"),
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One plate per line (a fleet may list many)."),
    )

    def clean_plates(self) -> list[str]:
        plates = [line.strip() for line in self.cleaned_data["plates"].splitlines() if line.strip()]
        if not plates:
            raise forms.ValidationError(_("Enter at least one plate."))
        return plates


class QuotaForm(forms.Form):
    quota = forms.IntegerField(label=_("Quota"), min_value=0, max_value=100000)


class CaseForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), choices=Case.Kind.choices)
    subject = forms.CharField(label=_("Subject"), max_length=200)
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 4}))
    contract = forms.ModelChoiceField(label=_("Contract"), required=False, queryset=Contract.objects.none())
    invoice_id = forms.CharField(
        label=_("Invoice number"),
        required=False,
        max_length=40,
        help_text=_("As printed on the invoice, e.g. INV2026-000133."),
    )
    priority = forms.ChoiceField(
        label=_("Priority"),
        required=False,
        choices=[("", _("Default for the kind")), *Case.Priority.choices],
        help_text=_("Sets the SLA: urgent 4 hours, high 1 day, normal 3 days, low 5 days."),
    )

    def __init__(self, *args, customer: Customer, contracts: QuerySet[Contract] | None = None, **kwargs):
        """``contracts``: those of the customer the user may choose (the car parks the user sees)."""
        super().__init__(*args, **kwargs)
        contracts = customer.contracts.all() if contracts is None else contracts
        self.fields["contract"].queryset = contracts.select_related("product")


class CaseNoteForm(forms.Form):
    note = forms.CharField(label=_("Note"), widget=forms.Textarea(attrs={"rows": 3}))


class CaseResolveForm(forms.Form):
    resolution = forms.CharField(
        label=_("Resolution"), widget=forms.Textarea(attrs={"rows": 3}), help_text=_("Sent to the customer.")
    )


class StageChangeForm(forms.Form):
    next_product = forms.ModelChoiceField(label=_("Next product"), required=False, queryset=Product.objects.none())
    next_plate = forms.CharField(label=_("Next vehicle (plate)"), required=False, max_length=30)
    country = forms.CharField(label=_("Country code"), max_length=3, initial="D")
    on = forms.DateField(
        label=_("Takes effect on"),
        required=False,
        widget=LocalDateInput(),
        help_text=_("Leave empty for the first of next month."),
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
    name = forms.CharField(label=_("Name"), max_length=200)
    street = forms.CharField(label=_("Street and number"), max_length=200, required=False)
    postcode = forms.CharField(label=_("Postcode"), max_length=20, required=False)
    city = forms.CharField(label=_("City"), max_length=100, required=False)
    capacity = forms.IntegerField(label=_("Capacity"), min_value=0, help_text=_("Number of parking spaces."))
    time_zone = forms.ChoiceField(
        label=_("Time zone"), initial="Europe/Berlin", help_text=_("Contracts end at midnight in this time zone.")
    )
    latitude = forms.DecimalField(
        label=_("Latitude"), required=False, min_value=-90, max_value=90, max_digits=9, decimal_places=6
    )
    longitude = forms.DecimalField(
        label=_("Longitude"), required=False, min_value=-180, max_value=180, max_digits=9, decimal_places=6
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = _time_zone_choices()
