"""Forms of the accounts app: the second login step, user administration and the audit-log filter."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError

from accounts.models import AuditEntry
from accounts.roles import ALL_ROLES

User = get_user_model()


def _carpark_queryset():
    from carparks.models import CarPark

    return CarPark.objects.order_by("name")


class TokenForm(forms.Form):
    token = forms.CharField(
        label="Six-digit code from your authenticator app",
        min_length=6,
        max_length=8,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*", "autofocus": True}
        ),
    )

    def clean_token(self) -> str:
        token = self.cleaned_data["token"].replace(" ", "")
        if not token.isdigit():
            raise ValidationError("The code has digits only.")
        return token


class UserForm(forms.Form):
    """Create or edit a portal user: names, email, roles and car-park responsibilities."""

    username = forms.CharField(max_length=150, help_text="Letters, digits and @/./+/-/_ only.")
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    email = forms.EmailField(required=False, help_text="Needed for password reset and notifications.")
    roles = forms.MultipleChoiceField(
        choices=[(role, role) for role in ALL_ROLES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Administrator, Workflow admin and Supervisor log in with a second factor (TOTP).",
    )
    carparks = forms.ModelMultipleChoiceField(
        queryset=None,
        required=False,
        label="Responsible for car parks",
        widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text="Tasks scoped to a car park reach only the users responsible for it. Hold Ctrl to pick several.",
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
                raise ValidationError("A user with this username already exists.")
        return username


class UserCreateForm(UserForm):
    password1 = forms.CharField(
        label="Initial password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to email the user a link to set their own password.",
    )
    password2 = forms.CharField(
        label="Initial password again",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        password1, password2 = data.get("password1"), data.get("password2")
        if password1 or password2:
            if password1 != password2:
                self.add_error("password2", "The two passwords differ.")
            else:
                try:
                    password_validation.validate_password(password1, User(username=data.get("username", "")))
                except ValidationError as exc:
                    self.add_error("password1", exc)
        elif not data.get("email"):
            self.add_error("email", "Give an email address (for the set-password link) or an initial password.")
        return data


class AuditFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, help_text="Who or what was changed.")
    action = forms.ChoiceField(label="Action", required=False)
    actor = forms.CharField(label="Changed by", required=False)
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        actions = AuditEntry.objects.order_by("action").values_list("action", flat=True).distinct()
        self.fields["action"].choices = [("", "All actions")] + [(a, a) for a in actions]


class UserFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, help_text="Username, name or email.")
    role = forms.ChoiceField(
        label="Role", required=False, choices=[("", "All roles"), ("-", "No role")] + [(r, r) for r in ALL_ROLES]
    )
    state = forms.ChoiceField(
        label="State",
        required=False,
        choices=[("", "Active"), ("inactive", "Deactivated"), ("all", "All")],
    )
