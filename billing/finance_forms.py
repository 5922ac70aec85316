"""Forms of Finance's invoicing-run and dunning pages: every wrong input is answered at its field."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from billing import selectors, services

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def _clean_text(value: str) -> str:
    return (value or "").replace("\x00", "").strip()


class RunPeriodForm(forms.Form):
    period = forms.CharField(
        label=_("Month to bill"),
        max_length=7,
        widget=forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM"}),
        help_text=_("The current or an earlier month; the next month from a few days before it starts."),
    )

    def __init__(self, *args, today: date | None = None, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.today = today

    def clean_period(self) -> date:
        raw = _clean_text(self.cleaned_data["period"])
        match = _MONTH.match(raw)
        if not match:
            raise forms.ValidationError(_("Enter the month as YYYY-MM, for example 2026-03."))
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            raise forms.ValidationError(_("There is no month %(month)02d; enter 01 to 12."), params={"month": month})
        if year < 2000:
            raise forms.ValidationError(_("Choose a month from 2000 on."))
        period = date(year, month, 1)
        try:
            services.invoicing_run_period_check(period_start=period, today=self.today)
        except services.BillingError as exc:
            raise forms.ValidationError(str(exc)) from None
        return period


class RunConfirmForm(forms.Form):
    confirm = forms.BooleanField(
        label=_("I have checked the preview: issue these invoices, email them and charge the saved cards."),
        error_messages={"required": _("Tick the box to confirm the run; nothing is billed until you do.")},
    )


SORT_CHOICES = [
    ("-age", _("Oldest first")),
    ("age", _("Newest first")),
    ("-amount", _("Highest amount")),
    ("amount", _("Lowest amount")),
    ("-level", _("Highest level")),
    ("level", _("Lowest level")),
    ("customer", _("Customer A–Z")),
    ("-customer", _("Customer Z–A")),
    ("due", _("Due date, earliest")),
    ("-due", _("Due date, latest")),
]


class DunningFilterForm(forms.Form):
    # Not "q": that is the top bar's global search on the same page.
    dunning_search = forms.CharField(label=_("Search dunnings by customer"), required=False, max_length=200)
    level = forms.ChoiceField(label=_("Level"), required=False)
    age = forms.ChoiceField(
        label=_("Age"),
        required=False,
        choices=[("", _("Any age"))] + [(key, label) for key, (label, *_rest) in selectors.DUNNING_AGE_BUCKETS.items()],
    )
    amount_min = forms.DecimalField(
        label=_("Amount from (€)"), required=False, min_value=Decimal("0"), max_digits=12, decimal_places=2
    )
    sort = forms.ChoiceField(label=_("Sort"), required=False, choices=SORT_CHOICES)

    def __init__(self, *args, levels: list[tuple[str, str]] = (), **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.fields["level"].choices = [("", _("Any level")), *levels]

    def clean_dunning_search(self) -> str:
        return _clean_text(self.cleaned_data.get("dunning_search", ""))

    def filters(self) -> selectors.DunningFilters:
        """The valid filters (a field with an error is left out and shows its error)."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        return selectors.DunningFilters(
            level=data.get("level") or "",
            age=data.get("age") or "",
            amount_min=data.get("amount_min"),
            q=data.get("dunning_search") or "",
            sort=data.get("sort") or "-age",
        )
