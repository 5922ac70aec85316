"""Form widgets shared by every app."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.formats import get_format
from django.utils.translation import gettext_lazy as _


class LocalDateInput(forms.DateInput):
    """A date typed in the user's language's format (24.12.2026 in German, 2026-12-24 in English).

    A text field, not ``type=date``: the browser's date picker follows the browser's locale, not the
    portal's, so German staff on an English browser would see mm/dd/yyyy.
    """

    input_type = "text"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs={"inputmode": "numeric", "autocomplete": "off", **(attrs or {})})

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["widget"]["attrs"].setdefault("placeholder", str(_("dd.mm.yyyy")) if self._german() else "yyyy-mm-dd")
        return context

    def format_value(self, value: Any) -> str | None:
        self.format = get_format("DATE_INPUT_FORMATS")[0]
        return super().format_value(value)

    @staticmethod
    def _german() -> bool:
        return get_format("DATE_INPUT_FORMATS")[0].startswith("%d")
