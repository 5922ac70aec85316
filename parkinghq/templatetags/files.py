"""File names, never the server's folders, where a person reads: ``{% load files %}{{ path|basename }}``."""

from __future__ import annotations

from pathlib import PurePath

from django import template

register = template.Library()


@register.filter
def basename(value: object) -> str:
    """The last part of a path (``/app/var/accounting-export/Journal_202611_01.csv`` → the file name)."""
    text = str(value or "").rstrip("/\\")
    return PurePath(text.replace("\\", "/")).name if text else ""
