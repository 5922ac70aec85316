"""Badges for contract and case states: ``{% load carparks_tags %}{{ contract|state_badge }}``."""

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

STATE_STYLES = {
    "applied": "info",
    "waitlisted": "secondary",
    "offered": "primary",
    "approved": "primary",
    "active": "success",
    "suspended": "warning",
    "terminated": "dark",
    "rejected": "danger",
    "cancelled": "light",
    "open": "info",
    "in_progress": "primary",
    "resolved": "success",
    "closed": "secondary",
    "urgent": "danger",
    "high": "warning",
    "normal": "info",
    "low": "light",
}


@register.filter
def state_badge(obj: object) -> SafeString:
    state = getattr(obj, "state", "")
    label = obj.get_state_display() if hasattr(obj, "get_state_display") else state
    return format_html('<span class="badge text-bg-{}">{}</span>', STATE_STYLES.get(state, "secondary"), label)


@register.filter
def priority_badge(case: object) -> SafeString:
    priority = getattr(case, "priority", "")
    return format_html(
        '<span class="badge text-bg-{}">{}</span>', STATE_STYLES.get(priority, "secondary"), case.get_priority_display()
    )
