"""Forms of the monitoring pages: the filter bar, alert rules and statement subscriptions."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.roles import role_label
from monitoring.models import AlertRule, StatementSubscription
from parkinghq.widgets import LocalDateInput
from workflows.models import WorkflowDefinition

PERIODS = [
    ("1", _("Today")),
    ("7", _("Last 7 days")),
    ("30", _("Last 30 days")),
    ("90", _("Last 90 days")),
    ("365", _("Last year")),
]
MAX_DAYS = 800


class FilterForm(forms.Form):
    """Period, workflow and car park; invalid input falls back to the defaults with a message."""

    period = forms.ChoiceField(choices=[*PERIODS, ("custom", _("Custom dates"))], required=False, initial="30")
    day_from = forms.DateField(label=_("From"), required=False, widget=LocalDateInput(attrs={"class": "form-control"}))
    day_to = forms.DateField(label=_("To"), required=False, widget=LocalDateInput(attrs={"class": "form-control"}))
    workflow = forms.ModelChoiceField(
        queryset=WorkflowDefinition.objects.all(),
        required=False,
        to_field_name="key",
        empty_label=_("All workflows"),
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    carpark = forms.TypedChoiceField(
        label=_("Car park"),
        required=False,
        coerce=int,
        empty_value=None,
        widget=forms.Select(attrs={"class": "form-select"}),
    )

    def __init__(self, *args: Any, carparks: list[tuple[int, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["carpark"].choices = [
            ("", _("All my car parks") if carparks is not None else _("All car parks"))
        ] + [(str(pk), name) for pk, name in (carparks or [])]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        today = timezone.localdate()
        if data.get("period") == "custom":
            start, end = data.get("day_from"), data.get("day_to")
            if not start or not end:
                raise forms.ValidationError(_("Give both dates of a custom period."))
            if end < start:
                raise forms.ValidationError(_("The period ends before it starts."))
            if (end - start).days > MAX_DAYS:
                raise forms.ValidationError(_("Choose a period of at most %(days)s days.") % {"days": MAX_DAYS})
        else:
            days = int(data.get("period") or "30")
            start, end = today - timedelta(days=days - 1), today
        data["start"], data["end"] = start, end
        return data

    @staticmethod
    def defaults() -> tuple[date, date]:
        today = timezone.localdate()
        return today - timedelta(days=29), today


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ["name", "kind", "role", "threshold", "notify_role", "send_email", "is_active"]
        help_texts = {"threshold": _("N, X % or the z-score, depending on the kind (see the list of kinds below).")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("role", "notify_role"):  # the stored group name, shown as the role's translated label
            field = self.fields[name]
            field.choices = [(value, role_label(value) if value else label) for value, label in field.choices]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind, threshold = data.get("kind"), data.get("threshold")
        if threshold is not None and threshold < 0:
            self.add_error("threshold", _("The threshold cannot be negative."))
        if kind == AlertRule.Kind.CARD_FAILURE_RATE and threshold is not None and threshold > 100:
            self.add_error("threshold", _("A failure rate is at most 100 %."))
        if kind == AlertRule.Kind.NO_INVOICING_RUN and threshold is not None and threshold > 28:
            self.add_error("threshold", _("Give a day of the month between 0 and 28."))
        if kind != AlertRule.Kind.OVERDUE_TASKS and data.get("role"):
            data["role"] = ""
        return data


class SubscriptionForm(forms.Form):
    frequencies = forms.MultipleChoiceField(
        label=_("Send me these statements by email"),
        choices=StatementSubscription.Frequency.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
