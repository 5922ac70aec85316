"""Progress of long work (invoicing runs, CPMS syncs): how long is left, estimated from the pace so far.

``{% load progress %}{% progress_eta run.created_at run.contracts_done run.contracts_total %}``
"""

from __future__ import annotations

import math
from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

register = template.Library()


def eta_seconds(started: datetime | None, done: int, total: int, now: datetime | None = None) -> float | None:
    """Seconds left at the pace since ``started``; None before the first item is done or when finished."""
    if not started or not total or done <= 0 or done >= total:
        return None
    elapsed = ((now or timezone.now()) - started).total_seconds()
    if elapsed <= 0:
        return None
    return elapsed / done * (total - done)


@register.simple_tag
def progress_eta(started: datetime | None, done: int, total: int) -> str:
    seconds = eta_seconds(started, done or 0, total or 0)
    if seconds is None:
        return _("Estimating the time left…") if (total and (done or 0) < total) else ""
    if seconds < 60:
        return _("Less than a minute left")
    minutes = math.ceil(seconds / 60)
    return ngettext("About %(minutes)s minute left", "About %(minutes)s minutes left", minutes) % {"minutes": minutes}
