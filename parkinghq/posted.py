"""Text read from a form field or a JSON body, checked the way Django's form fields check it.

Small POST forms (a cancel reason, a bank-transfer reference) are read without a ``forms.Form``, so
Django's ``ProhibitNullCharactersValidator`` never ran for them and a NUL character went on to
PostgreSQL, which refuses it with a 500. These helpers give the clear error instead.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext as _


def posted_text(request: HttpRequest, name: str, *, label: str, max_length: int | None = None) -> str:
    """``request.POST[name]`` cleaned as a ``forms.CharField`` cleans it: stripped, NUL refused.

    Text longer than ``max_length`` is cut (the pages' inputs carry the same ``maxlength``).
    Raises ``ValidationError`` whose message starts with ``label``, ready for ``messages.error``.
    """
    field = forms.CharField(required=False)
    try:
        text = field.clean(request.POST.get(name, ""))
    except ValidationError as exc:
        raise ValidationError(_("%(label)s must not contain NUL characters.") % {"label": label}) from exc
    return text[:max_length] if max_length is not None else text


def has_nul(value: Any) -> bool:
    """Whether a decoded JSON value holds a NUL character in any string, key or nested item."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_nul(item) for item in value)
    return False
