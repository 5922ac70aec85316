"""ISO 8601 durations (``P2D``, ``PT30S``, ``P1M``, ``P1W``) as relativedelta."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta
from django.utils.translation import gettext as _

_PATTERN = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> relativedelta:
    """Parse an ISO 8601 duration; raises ValueError with a readable message."""
    if not isinstance(text, str):
        raise ValueError(
            _("%(value)s is not an ISO 8601 duration (expected a string like 'P2D' or 'PT30M')") % {"value": repr(text)}
        )
    match = _PATTERN.match(text.strip().upper())
    if not match:
        raise ValueError(
            _("%(value)s is not an ISO 8601 duration (expected something like 'P2D' or 'PT30M')")
            % {"value": repr(text)}
        )
    parts = {k: v for k, v in match.groupdict().items() if v is not None}
    seconds = float(parts.pop("seconds", 0) or 0)
    values = {k: int(v) for k, v in parts.items()}
    if any(v > 100_000 for v in values.values()) or seconds > 10**9:
        raise ValueError(_("duration %(value)s is too long") % {"value": repr(text)})
    return relativedelta(**values, seconds=int(seconds), microseconds=int(round((seconds % 1) * 1_000_000)))


def add_duration(moment: datetime, text: str) -> datetime:
    return moment + parse_duration(text)


def duration_seconds(text: str) -> float:
    """Approximate length in seconds (months as 30 days, years as 365)."""
    delta = parse_duration(text)
    return timedelta(
        days=delta.years * 365 + delta.months * 30 + delta.weeks * 0 + delta.days,
        hours=delta.hours,
        minutes=delta.minutes,
        seconds=delta.seconds,
        microseconds=delta.microseconds,
    ).total_seconds()
