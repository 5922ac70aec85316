"""Forms of connect: the connection settings (the secret is write-only) and the RightSpecification mapping."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import ENV_REFERENCE, CpmsConnection


class ConnectionForm(forms.ModelForm):
    base_url = forms.URLField(
        max_length=500,
        assume_scheme="https",
        label=_("Base URL"),
        help_text=_("Where the CPMS answers, for example https://cpms.example/v4."),
    )
    secret = forms.CharField(
        required=False,
        label=_("Secret (API token)"),
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_(
            "Leave empty to keep the stored secret. Write env:VARIABLE_NAME to read it from the environment "
            "instead of storing it. Stored secrets are encrypted and never shown in full. With an OAuth2 token URL "
            "this is the client secret."
        ),
    )
    clear_secret = forms.BooleanField(required=False, label=_("Remove the stored secret"))
    # OAuth2 client credentials (APDS 4 securitySchemes.oAuth): kept in the connection's options.
    token_url = forms.CharField(
        required=False,
        max_length=500,
        label=_("OAuth2 token URL"),
        help_text=_(
            "For OAuth2 client-credentials login: the token endpoint, relative to the base URL (for example "
            "auth/token) or absolute. The secret above is then the client secret. Empty: the secret is sent as a "
            "fixed bearer token."
        ),
    )
    client_id = forms.CharField(required=False, max_length=200, label=_("OAuth2 client id"))
    scope = forms.CharField(
        required=False,
        max_length=200,
        label=_("OAuth2 scope"),
        help_text=_("Optional, for example sp (service provider)."),
    )
    token_auth_basic = forms.BooleanField(
        required=False,
        label=_("Send the client id and secret to the token endpoint with HTTP Basic (instead of in the form body)"),
    )

    refused_alert_percent = forms.IntegerField(
        required=False,
        label=_("Alert when more than this percentage of records is refused"),
        help_text=_(
            "A sync that refuses more than this share of the feed's records raises an incident "
            "(0: any refused record alerts). Refused records are listed on the sync run either way."
        ),
    )

    class Meta:
        model = CpmsConnection
        fields = [
            "name",
            "code",
            "kind",
            "base_url",
            "timeout_seconds",
            "refused_alert_percent",
            "options",
            "is_active",
        ]
        labels = {
            "name": _("Name"),
            "code": _("Code"),
            "kind": _("Protocol"),
            "options": _("Options"),
            "timeout_seconds": _("Timeout (seconds)"),
            "is_active": _("Active (synced by beat)"),
        }
        widgets = {"options": forms.Textarea(attrs={"rows": 3})}

    OAUTH_OPTIONS = ("token_url", "client_id", "scope")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        options = self.instance.options if isinstance(self.instance.options, dict) else {}
        for name in self.OAUTH_OPTIONS:
            self.fields[name].initial = options.get(name, "")
        self.fields["token_auth_basic"].initial = str(options.get("token_auth", "")).lower() == "basic"

    def clean_token_url(self) -> str:
        value = (self.cleaned_data.get("token_url") or "").strip()
        if value.startswith(("http://", "https://")):
            forms.URLField().clean(value)
        elif "://" in value or value.startswith("//"):
            raise forms.ValidationError(_("Write the token URL as https://… or as a path relative to the base URL."))
        return value

    def clean(self) -> dict[str, Any]:
        """The OAuth2 fields are stored in the options (they win over the same keys typed there)."""
        cleaned = super().clean()
        options = dict(cleaned.get("options") or {}) if isinstance(cleaned.get("options"), dict) else None
        if options is None:
            return cleaned
        for name in self.OAUTH_OPTIONS:
            value = (cleaned.get(name) or "").strip()
            if value:
                options[name] = value
            else:
                options.pop(name, None)
        if cleaned.get("token_auth_basic"):
            options["token_auth"] = "basic"
        else:
            options.pop("token_auth", None)
        if options.get("token_url") and not options.get("client_id"):
            self.add_error("client_id", _("OAuth2 needs the client id the CPMS gave you (with the token URL)."))
        cleaned["options"] = options
        return cleaned

    def clean_timeout_seconds(self) -> float:
        value = self.cleaned_data["timeout_seconds"]
        if not 0.1 <= value <= 120:
            raise forms.ValidationError(_("Choose a timeout between 0.1 and 120 seconds."))
        return value

    def clean_refused_alert_percent(self) -> int:
        """Left empty (or not sent, as by older forms), the connection keeps its threshold."""
        value = self.cleaned_data.get("refused_alert_percent")
        if value is None:
            return self.instance.refused_alert_percent
        if not 0 <= value <= 100:
            raise forms.ValidationError(_("Give a share between 0 and 100 % (0 alerts on any refused record)."))
        return value

    def clean_options(self) -> Any:
        value = self.cleaned_data.get("options") or {}
        if not isinstance(value, dict):
            raise forms.ValidationError(_('Options must be a JSON object, for example {"city": "dresden"}.'))
        return value

    def clean_secret(self) -> str:
        value = (self.cleaned_data.get("secret") or "").strip()
        if value.startswith("env:") and not ENV_REFERENCE.match(value):
            raise forms.ValidationError(_("Write the reference as env:VARIABLE_NAME (letters, digits, underscores)."))
        return value


class RightMappingForm(forms.Form):
    """One select per product: which of the CPMS's published RightSpecifications its credentials refer to.

    ``rows`` are (product, place id, published specifications for that place, current mapping or None).
    A mapped specification the CPMS no longer publishes stays selectable (marked), so saving the page
    does not silently drop it.
    """

    def __init__(self, *args: Any, rows: list[tuple[Any, str, list[Any], Any]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.rows = rows
        for product, place_id, specs, mapping in rows:
            choices = [("", _("— not mapped —"))] + [(spec.id, spec.label) for spec in specs]
            if mapping and mapping.right_specification_id not in {spec.id for spec in specs}:
                label = mapping.right_specification_name or mapping.right_specification_id
                choices.append(
                    (
                        mapping.right_specification_id,
                        _("%(label)s (%(id)s v%(version)s, no longer published)")
                        % {
                            "label": label,
                            "id": mapping.right_specification_id,
                            "version": mapping.right_specification_version,
                        },
                    )
                )
            self.fields[self.field_name(product)] = forms.ChoiceField(
                choices=choices,
                required=False,
                label=f"{product.name} · {product.carpark.name}",
                initial=mapping.right_specification_id if mapping else "",
                help_text=_("Place %(place)s") % {"place": place_id} if place_id else "",
            )

    @staticmethod
    def field_name(product: Any) -> str:
        return f"product_{product.pk}"

    def rows_with_fields(self) -> list[tuple[Any, str, list[Any], Any, forms.BoundField]]:
        return [(*row, self[self.field_name(row[0])]) for row in self.rows]
