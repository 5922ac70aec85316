"""Template helpers shared by every app's templates: ``{% load portal %}``."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import forms, template
from django.forms.boundfield import BoundField
from django.utils.formats import number_format
from django.utils.safestring import SafeString
from django.utils.translation import get_language
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def bootstrap(field: BoundField) -> SafeString:
    """Render a form field's widget with the Bootstrap class that fits it (and is-invalid on errors)."""
    widget = field.field.widget
    if isinstance(widget, forms.CheckboxInput | forms.RadioSelect | forms.CheckboxSelectMultiple):
        css = "form-check-input"
    elif isinstance(widget, forms.Select | forms.SelectMultiple):
        css = "form-select"
    else:
        css = "form-control"
    if field.errors:
        css += " is-invalid"
    existing = widget.attrs.get("class", "")
    return field.as_widget(attrs={"class": f"{existing} {css}".strip()})


@register.filter
def is_multi_checkbox(field: BoundField) -> bool:
    return isinstance(field.field.widget, forms.CheckboxSelectMultiple)


@register.filter
def is_checkbox(field: BoundField) -> bool:
    return isinstance(field.field.widget, forms.CheckboxInput)


@register.filter
def audit_value(value: object) -> str:
    """A JSON value of the audit log for people: lists joined, mappings as key: value, None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, list):
        return ", ".join(audit_value(item) for item in value) if value else _("(none)")
    if isinstance(value, dict):
        return "; ".join(f"{key}: {audit_value(item)}" for key, item in value.items()) if value else _("(none)")
    return str(value)


@register.filter
def money(value: object, currency: str = "EUR") -> str:
    """An amount in the active language's format: ``1.234,50 €`` in German, ``€1,234.50`` in English."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    text = number_format(amount, decimal_pos=2, use_l10n=True, force_grouping=True)
    symbol = {"EUR": "€", "CHF": "CHF", "GBP": "£", "USD": "$"}.get(currency, currency)
    if (get_language() or "en").startswith("de"):
        return f"{text}\u00a0{symbol}"
    return f"{symbol}{text}" if len(symbol) == 1 else f"{symbol}\u00a0{text}"


@register.filter
def state_label(value: object, event: object) -> object:
    """A state value from an event row (``from_state``/``to_state``) by the label of its object's state:
    ``in_progress`` of a case's event reads "In progress". Unknown values are shown as they are."""
    from django.core.exceptions import FieldDoesNotExist

    if not value or not hasattr(event, "_meta"):
        return value
    for field in event._meta.get_fields():
        if not (field.many_to_one and field.related_model):
            continue
        try:
            state = field.related_model._meta.get_field("state")
        except FieldDoesNotExist:
            continue
        labels = {str(key): label for key, label in state.flatchoices}
        if str(value) in labels:
            return labels[str(value)]
    return value
