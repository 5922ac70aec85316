"""Forms of the task basket: the filters, the step's input form (built from its typed inputs),
delegation, "Can't decide" and absences."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.core.files.storage import default_storage
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from parkinghq.widgets import LocalDateInput
from workflows.basket_selectors import SORTS, BasketFilters
from workflows.models import Task

PRIORITY_CHOICES = [("", _("Any priority")), *[(str(value), label) for value, label in Task.Priority.choices]]


class BasketFilterForm(forms.Form):
    tab = forms.CharField(required=False, widget=forms.HiddenInput)
    # Not "q": the top bar's global search is "q", and a page must not offer two fields of one name.
    task_search = forms.CharField(
        label=_("Search tasks"), required=False, max_length=100, help_text=_("Customer, contract number or plate.")
    )
    workflow = forms.ChoiceField(label=_("Workflow"), required=False)
    step = forms.ChoiceField(label=_("Step"), required=False)
    carpark = forms.TypedChoiceField(label=_("Car park"), required=False, coerce=int, empty_value=None)
    priority = forms.TypedChoiceField(
        label=_("Priority"), required=False, coerce=int, empty_value=None, choices=PRIORITY_CHOICES
    )
    overdue = forms.BooleanField(label=_("Overdue only"), required=False)
    escalated = forms.BooleanField(label=_("Escalated only"), required=False)
    sort = forms.ChoiceField(
        label=_("Sort by"),
        required=False,
        choices=[("due", _("Due date")), ("priority", _("Priority")), ("age", _("Oldest first"))],
    )

    def __init__(self, *args: Any, choices: dict[str, list], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["workflow"].choices = [("", _("All workflows")), *choices["workflows"]]
        self.fields["step"].choices = [("", _("All steps")), *choices["steps"]]
        self.fields["carpark"].choices = [("", _("All car parks")), *[(str(pk), n) for pk, n in choices["carparks"]]]

    def filters(self) -> BasketFilters:
        self.is_valid()  # a value that is not a choice (an old link) is left out, the rest still filter
        data = self.cleaned_data
        sort = data.get("sort") or "due"
        return BasketFilters(
            workflow=data.get("workflow") or "",
            step=data.get("step") or "",
            carpark=data.get("carpark"),
            overdue=bool(data.get("overdue")),
            escalated=bool(data.get("escalated")),
            priority=data.get("priority"),
            q=data.get("task_search") or "",
            sort=sort if sort in SORTS else "due",
        )


def _draft_value(spec: dict[str, Any], value: Any) -> Any:
    if value is None:
        return None
    if spec["type"] == "date" and isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    return value


class TaskInputsForm(forms.Form):
    """The step's inputs as a form: text, number, date, choice, bool and file, with their labels,
    help and required flags; initial values come from the task's saved draft."""

    comment = forms.CharField(label=_("Comment"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, task: Task, **kwargs: Any) -> None:
        self.task = task
        self.specs = task.input_fields
        draft = task.inputs or {}
        kwargs.setdefault("initial", {})
        for spec in self.specs:
            kwargs["initial"].setdefault(spec["name"], _draft_value(spec, draft.get(spec["name"])))
        super().__init__(*args, **kwargs)
        comment = self.fields.pop("comment")
        for spec in self.specs:
            self.fields[spec["name"]] = self._field(spec, draft)
        self.fields["comment"] = comment

    def _field(self, spec: dict[str, Any], draft: dict[str, Any]) -> forms.Field:
        common = {"label": spec["label"], "required": spec["required"], "help_text": spec.get("help", "")}
        kind = spec["type"]
        if kind == "number":
            return forms.DecimalField(**common)
        if kind == "date":
            return forms.DateField(**common, widget=LocalDateInput())
        if kind == "choice":
            return forms.ChoiceField(**common, choices=[("", "—"), *[(c, c) for c in spec.get("choices", [])]])
        if kind == "bool":
            return forms.BooleanField(**common)
        if kind == "file":
            stored = draft.get(spec["name"])
            if stored:
                common["required"] = False
                common["help_text"] = _("Stored: %(file)s. Upload another file to replace it.") % {"file": stored}
            return forms.FileField(**common)
        return forms.CharField(**common, max_length=10_000, widget=forms.Textarea(attrs={"rows": 3}))

    def _store_file(self, name: str, upload: Any) -> str:
        return default_storage.save(f"workflow-inputs/{self.task.pk}/{name}/{upload.name}", upload)

    def inputs(self) -> dict[str, Any]:
        """Validated inputs as the engine takes them (call after ``is_valid()``)."""
        values: dict[str, Any] = {}
        for spec in self.specs:
            name, value = spec["name"], self.cleaned_data.get(spec["name"])
            if spec["type"] == "file":
                value = self._store_file(name, value) if value else (self.task.inputs or {}).get(name)
            elif spec["type"] == "date" and value is not None:
                value = value.isoformat()
            elif spec["type"] == "number" and value is not None:
                value = str(value)
            values[name] = value
        return values

    def draft_refused(self) -> bool:
        """Whether the draft holds what PostgreSQL cannot store (a NUL character): a draft may be incomplete,
        so only those errors are kept on the form, at their fields."""
        names = [spec["name"] for spec in self.specs if spec["type"] not in ("bool", "file")]
        if not any("\x00" in value for name in names for value in self.data.getlist(self.add_prefix(name))):
            return False
        self.full_clean()
        for name, errors in list(self.errors.as_data().items()):
            kept = [e for e in errors if e.code == "null_characters_not_allowed"]
            if kept:
                self._errors[name] = self.error_class(kept)
            else:
                del self._errors[name]
        return True

    def draft(self) -> dict[str, Any]:
        """What has been entered so far, valid or not, to keep on the task."""
        values: dict[str, Any] = {}
        for spec in self.specs:
            name = spec["name"]
            if spec["type"] == "bool":
                values[name] = self.data.get(self.add_prefix(name)) in ("on", "true", "1", "yes")
            elif spec["type"] == "file":
                upload = self.files.get(self.add_prefix(name))
                if upload:
                    values[name] = self._store_file(name, upload)
            else:
                raw = self.data.get(self.add_prefix(name), "")
                values[name] = raw if raw != "" else None
        return values


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        full = obj.get_full_name()
        return f"{full} ({obj.username})" if full else obj.username


class DelegateForm(forms.Form):
    to_user = UserChoiceField(
        label=_("Colleague"),
        queryset=None,
        empty_label=_("Choose a colleague"),
        widget=forms.Select(attrs={"class": "form-select"}),
    )

    def __init__(self, *args: Any, colleagues: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["to_user"].queryset = colleagues


class EscalateForm(forms.Form):
    reason = forms.CharField(
        label=_("Why can't you decide?"),
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("The next person sees this reason and everything you have entered so far."),
    )


class AbsenceForm(forms.Form):
    substitute = UserChoiceField(label=_("Substitute"), queryset=None, empty_label=_("Choose a colleague"))
    starts_on = forms.DateField(label=_("First day away"), widget=LocalDateInput())
    ends_on = forms.DateField(label=_("Last day away"), widget=LocalDateInput())
    note = forms.CharField(label=_("Note"), max_length=200, required=False)

    def __init__(self, *args: Any, substitutes: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["substitute"].queryset = substitutes

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        starts, ends = data.get("starts_on"), data.get("ends_on")
        if starts and ends and ends < starts:
            self.add_error("ends_on", _("The last day must be on or after the first day."))
        if ends and ends < timezone.localdate():
            self.add_error("ends_on", _("This absence would already be over."))
        return data
