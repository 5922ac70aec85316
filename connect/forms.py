"""Forms of connect: the connection settings (the secret is write-only)."""

from __future__ import annotations

from typing import Any

from django import forms

from .models import ENV_REFERENCE, CpmsConnection


class ConnectionForm(forms.ModelForm):
    base_url = forms.URLField(
        max_length=500,
        assume_scheme="https",
        label="Base URL",
        help_text="Where the CPMS answers, for example https://cpms.example/v4.",
    )
    secret = forms.CharField(
        required=False,
        label="Secret (API token)",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the stored secret. Write env:VARIABLE_NAME to read it from the environment "
        "instead of storing it. Stored secrets are encrypted and never shown in full.",
    )
    clear_secret = forms.BooleanField(required=False, label="Remove the stored secret")

    class Meta:
        model = CpmsConnection
        fields = ["name", "code", "kind", "base_url", "timeout_seconds", "options", "is_active"]
        labels = {"timeout_seconds": "Timeout (seconds)", "is_active": "Active (synced by beat)"}
        widgets = {"options": forms.Textarea(attrs={"rows": 3})}

    def clean_timeout_seconds(self) -> float:
        value = self.cleaned_data["timeout_seconds"]
        if not 0.1 <= value <= 120:
            raise forms.ValidationError("Choose a timeout between 0.1 and 120 seconds.")
        return value

    def clean_options(self) -> Any:
        value = self.cleaned_data.get("options") or {}
        if not isinstance(value, dict):
            raise forms.ValidationError('Options must be a JSON object, for example {"city": "dresden"}.')
        return value

    def clean_secret(self) -> str:
        value = (self.cleaned_data.get("secret") or "").strip()
        if value.startswith("env:") and not ENV_REFERENCE.match(value):
            raise forms.ValidationError("Write the reference as env:VARIABLE_NAME (letters, digits, underscores).")
        return value
