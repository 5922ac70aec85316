"""``{% load roles %}``: a role (Django group) name shown in the reader's language."""

from __future__ import annotations

from typing import Any

from django import template

from accounts import roles

register = template.Library()


@register.filter
def role_label(name: Any) -> str:
    """``{{ task.role|role_label }}``: the translated label of a stored role name."""
    return roles.role_label(name)


@register.filter
def role_labels(names: Any) -> str:
    """``{{ roles|role_labels }}``: several role names, translated and comma separated."""
    return roles.role_labels(names or [])
