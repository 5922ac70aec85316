"""Forms of the accounts app: the second login step, user administration and the audit-log filter."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from accounts.models import AuditEntry
from accounts.roles import role_choices
from parkinghq.widgets import LocalDateInput

User = get_user_model()


def _carpark_queryset():
    from carparks.models import CarPark

    return CarPark.objects.order_by("name")


class TokenForm(forms.Form):
    token = forms.CharField(
        label=_("Six-digit code from your authenticator app"),
        min_length=6,
        max_length=8,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*", "autofocus": True}
        ),
    )

    def clean_token(self) -> str:
        token = self.cleaned_data["token"].replace(" ", "")
        if not token.isdigit():
            raise ValidationError(_("The code has digits only."))
        return token


class LanguageForm(forms.Form):
    """The portal's language for this user: their browser's, or one of the portal's languages."""

    # The languages keep their own names (Deutsch, English): whoever cannot read the current one still finds theirs.
    language = forms.ChoiceField(
        label=_("Language"),
        required=False,
        choices=[("", _("Browser's language")), *settings.LANGUAGES],
    )


class UserForm(forms.Form):
    """Create or edit a portal user: names, email, roles and car-park responsibilities."""

    username = forms.CharField(label=_("Username"), max_length=150, help_text=_("Letters, digits and @/./+/-/_ only."))
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    email = forms.EmailField(
        label=_("Email"), required=False, help_text=_("Needed for password reset and notifications.")
    )
    roles = forms.MultipleChoiceField(
        label=_("Roles"),
        choices=role_choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Administrator, Workflow admin and Supervisor log in with a second factor (TOTP)."),
    )
    carparks = forms.ModelMultipleChoiceField(
        queryset=None,
        required=False,
        label=_("Responsible for car parks"),
        widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text=_("Tasks scoped to a car park reach only the users responsible for it. Hold Ctrl to pick several."),
    )

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["carparks"].queryset = _carpark_queryset()
        if user is not None:
            self.fields["username"].disabled = True

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if self.user is None:
            User.username_validator(username)
            if User.objects.filter(username__iexact=username).exists():
                raise ValidationError(_("A user with this username already exists."))
        return username


class UserCreateForm(UserForm):
    password1 = forms.CharField(
        label=_("Initial password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("Leave empty to email the user a link to set their own password."),
    )
    password2 = forms.CharField(
        label=_("Initial password again"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        password1, password2 = data.get("password1"), data.get("password2")
        if password1 or password2:
            if password1 != password2:
                self.add_error("password2", _("The two passwords differ."))
            else:
                try:
                    password_validation.validate_password(password1, User(username=data.get("username", "")))
                except ValidationError as exc:
                    self.add_error("password1", exc)
        elif not data.get("email"):
            self.add_error("email", _("Give an email address (for the set-password link) or an initial password."))
        return data


class AuditFilterForm(forms.Form):
    audit_search = forms.CharField(
        label=_("Search the audit log"), required=False, help_text=_("Who or what was changed.")
    )
    action = forms.ChoiceField(label=_("Action"), required=False)
    actor = forms.CharField(label=_("Changed by"), required=False)
    date_from = forms.DateField(
        label=pgettext_lazy("date range", "From"),
        required=False,
        widget=LocalDateInput(attrs={"class": "form-control"}),
    )
    date_to = forms.DateField(
        label=pgettext_lazy("date range", "To"), required=False, widget=LocalDateInput(attrs={"class": "form-control"})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        actions = AuditEntry.objects.order_by("action").values_list("action", flat=True).distinct()
        self.fields["action"].choices = [("", _("All actions"))] + [(a, a) for a in actions]


class UserFilterForm(forms.Form):
    user_search = forms.CharField(label=_("Search users"), required=False, help_text=_("Username, name or email."))
    role = forms.ChoiceField(
        label=_("Role"),
        required=False,
        choices=lambda: [("", _("All roles")), ("-", _("No role")), *role_choices()],
    )
    state = forms.ChoiceField(
        label=_("State"),
        required=False,
        choices=[("", _("Active")), ("inactive", _("Deactivated")), ("all", _("All"))],
    )
