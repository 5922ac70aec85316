"""Filters for the CPMS panel: what the CPMS said about a car park, in words a person reads."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django import template
from django.utils import formats, timezone
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def sync_text(text: Any, texts: Any = None) -> str:
    """``{{ error|sync_text:run }}``: a message of the sync run in the reader's language."""
    from connect.sync_messages import sync_text as text_of

    return text_of(text, texts)


@register.filter
def status_text(message: Any) -> str:
    """``{{ connection.status_message|status_text }}``: the connection's last status in the reader's language."""
    from connect.sync_messages import status_text as text_of

    return text_of(str(message or ""))


FORECAST_SHOWN = 4


def _when(value: Any) -> datetime | date | None:
    """An ISO date or date-time as stored in a JSON field (None when it is not one)."""
    if isinstance(value, (datetime, date)):
        return value
    text = str(value or "").strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            return None


def _day(value: Any) -> str:
    when = _when(value)
    if when is None:
        return str(value or "")
    if isinstance(when, datetime):
        if timezone.is_aware(when):
            when = timezone.localtime(when)
        if (when.hour, when.minute) != (0, 0):
            return formats.date_format(when, "SHORT_DATETIME_FORMAT")
    return formats.date_format(when, "SHORT_DATE_FORMAT")


@register.filter
def tariff_validity(tariff: Any) -> str:
    """'valid 1 Jan 2025 – 31 Dec 2025', 'valid from 1 Jan 2026', 'valid until …', or '' when open at both ends."""
    if not isinstance(tariff, dict):
        return ""
    start, end = tariff.get("valid_from"), tariff.get("valid_until")
    if start and end:
        return _("valid %(start)s – %(end)s") % {"start": _day(start), "end": _day(end)}
    if start:
        return _("valid from %(start)s") % {"start": _day(start)}
    if end:
        return _("valid until %(end)s") % {"end": _day(end)}
    return ""


@register.filter
def other_names(link: Any) -> list[tuple[str, str]]:
    """The car park's names in other languages than the one shown: [(language code, name)]."""
    names = getattr(link, "names", None)
    if not isinstance(names, dict):
        return []
    shown = getattr(getattr(link, "carpark", None), "name", "")
    return [(str(code).upper(), name) for code, name in names.items() if name and name != shown]


@register.filter
def forecast_rows(link: Any) -> list[dict[str, Any]]:
    """The next expected rows as {'at': datetime|None, 'expected': '120 occupied'}, at most four."""
    rows = getattr(link, "forecast", None)
    if not isinstance(rows, list):
        return []
    shown = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        if row.get("occupied") is not None:
            expected = _("%(count)s occupied") % {"count": row["occupied"]}
        elif row.get("vacant") is not None:
            expected = _("%(count)s free") % {"count": row["vacant"]}
        elif row.get("percent") is not None:
            expected = _("%(percent)s %% full") % {"percent": f"{float(row['percent']):g}"}
        else:
            expected = str(row.get("status") or "")
        if expected:
            shown.append({"at": _when(row.get("at")), "expected": expected})
    shown.sort(key=lambda row: (row["at"] is None, str(row["at"])))
    return shown[:FORECAST_SHOWN]


@register.filter
def opening_rows(link: Any) -> str:
    """The structured opening times the CPMS published, as one line ('Mo–Fr 06:00–22:00; Sa 08:00–20:00')."""
    from connect.services import opening_hours_summary

    rows = getattr(link, "opening_times", None)
    return opening_hours_summary(rows) if isinstance(rows, list) else ""
