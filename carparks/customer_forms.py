"""Forms of the customer pages: create/edit a customer, merge two customers.

Every wrong input is answered at its field: NUL bytes and over-long text (Django's CharField
validators), a malformed email, an unknown invoice language or kind, a company number that already
belongs to another customer (named and linked).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from carparks.customer_services import company_number_owner
from carparks.models import Customer

COUNTRY = r"^[A-Za-z]{2}$"
CHANNELS = [
    ("phone", _("Phone")),
    ("counter", _("At the counter")),
    ("portal", _("Back office (letter, email, form)")),
]
LANGUAGES = [("de", _("German")), ("en", _("English"))]


class CustomerForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), choices=Customer.Kind.choices, initial=Customer.Kind.PRIVATE)
    name = forms.CharField(label=_("Name"), max_length=200, help_text=_("The person's full name or the company name."))
    email = forms.EmailField(label=_("Email"), max_length=254)
    phone = forms.CharField(label=_("Phone"), max_length=50, required=False)
    street = forms.CharField(label=_("Street and number"), max_length=200, required=False)
    postcode = forms.CharField(label=_("Postcode"), max_length=20, required=False)
    city = forms.CharField(label=_("City"), max_length=100, required=False)
    country = forms.RegexField(
        label=_("Country"), regex=COUNTRY, max_length=2, initial="DE", help_text=_("Two letters, e.g. DE.")
    )
    company_number = forms.CharField(
        label=_("Company number"),
        max_length=50,
        required=False,
        help_text=_("Needed for corporate customers (e.g. HRB 12345, Munich)."),
    )
    vat_id = forms.CharField(label=_("VAT id"), max_length=50, required=False)
    billing_contact = forms.CharField(label=_("Billing contact"), max_length=200, required=False)
    billing_email = forms.EmailField(
        label=_("Billing email"), max_length=254, required=False, help_text=_("Empty: invoices go to the email above.")
    )
    billing_street = forms.CharField(
        label=_("Billing street and number"),
        max_length=200,
        required=False,
        help_text=_("Leave the billing address empty to bill to the customer's address."),
    )
    billing_postcode = forms.CharField(label=_("Billing postcode"), max_length=20, required=False)
    billing_city = forms.CharField(label=_("Billing city"), max_length=100, required=False)
    billing_country = forms.RegexField(label=_("Billing country"), regex=COUNTRY, max_length=2, required=False)
    cost_centres = forms.CharField(
        label=_("Cost centres"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One per line."),
    )
    language = forms.ChoiceField(
        label=_("Language"),
        choices=LANGUAGES,
        initial="de",
        help_text=_("The language of the customer's emails, invoices and credit notes."),
    )

    def __init__(self, *args: Any, instance: Customer | None = None, **kwargs: Any) -> None:
        self.instance = instance
        if instance is not None and "initial" not in kwargs:
            initial = {name: getattr(instance, name) for name in self.base_fields if hasattr(instance, name)}
            initial["cost_centres"] = "\n".join(instance.cost_centres or [])
            kwargs["initial"] = initial
        super().__init__(*args, **kwargs)

    def clean_country(self) -> str:
        return self.cleaned_data["country"].upper()

    def clean_billing_country(self) -> str:
        return self.cleaned_data["billing_country"].upper()

    def clean_cost_centres(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["cost_centres"].splitlines() if line.strip()]
        too_long = [line for line in lines if len(line) > 50]
        if too_long:
            raise forms.ValidationError(
                _("A cost centre has at most 50 characters (%(start)s… is longer).") % {"start": too_long[0][:20]}
            )
        return list(dict.fromkeys(lines))

    def clean_company_number(self) -> str:
        number = " ".join(self.cleaned_data["company_number"].split())
        if not number:
            return number
        unchanged = self.instance is not None and number == self.instance.company_number
        if not unchanged:
            owner = company_number_owner(number, exclude_id=self.instance.pk if self.instance else None)
            if owner is not None:
                url = reverse("carparks:customer-detail", args=[owner.pk])
                raise forms.ValidationError(
                    format_html(
                        'Company number {} already belongs to <a href="{}">{}</a> (customer {}).',
                        number,
                        url,
                        owner.name,
                        owner.pk,
                    )
                )
        return number

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("kind") == Customer.Kind.CORPORATE and "company_number" in data and not data["company_number"]:
            self.add_error("company_number", _("A corporate customer needs a company number."))
        return data

    def customer_fields(self) -> dict[str, Any]:
        """The cleaned values as ``Customer`` fields."""
        return {name: value for name, value in self.cleaned_data.items() if name not in ("channel", "confirm")}


class CustomerCreateForm(CustomerForm):
    channel = forms.ChoiceField(label=_("Taken by"), choices=CHANNELS, initial="phone")
    confirm = forms.CharField(required=False, widget=forms.HiddenInput, max_length=500)

    field_order = ["channel"]

    def confirmed_ids(self) -> set[int]:
        raw = self.cleaned_data.get("confirm") or ""
        return {int(part) for part in raw.split(",") if part.strip().isdigit()}


class CustomerMergeForm(forms.Form):
    other = forms.IntegerField(
        label=_("Other customer"),
        min_value=1,
        help_text=_("The other customer's number (shown on its page and in the list)."),
    )
    keep = forms.ChoiceField(
        label=_("Customer to keep"),
        choices=[("this", _("This customer")), ("other", _("The other customer"))],
        initial="this",
        widget=forms.RadioSelect,
        help_text=_("Everything of the other one moves to the customer you keep."),
    )
