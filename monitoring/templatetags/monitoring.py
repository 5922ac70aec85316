"""Template helpers of the monitoring pages: ``{% load monitoring %}``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.formats import get_format

from monitoring.selectors import duration_label

register = template.Library()


@register.simple_tag
def drill(filter_query: str, **params: Any) -> str:
    """URL of the drill-down list: the page's filters plus the number's own (status, step, …)."""
    extra = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    query = "&".join(part for part in (filter_query, extra) if part)
    return f"{reverse('monitoring:processes')}?{query}"


@register.filter
def duration(ms: float | None) -> str:
    return duration_label(ms)


@register.filter
def pct(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:g}".replace(".", get_format("DECIMAL_SEPARATOR")) + " %"


@register.filter
def process_url(process: Any) -> str:
    """The engine's page of a process when it has one (else an empty string)."""
    for name in ("workflows:process-detail", "workflows:process"):
        try:
            return reverse(name, args=[process.pk])
        except NoReverseMatch:
            continue
    return ""


@register.filter
def get(mapping: Any, key: Any) -> Any:
    return mapping.get(key) if mapping else None
