"""A process's variables as a person reads them: a label and a formatted value per variable, no JSON.

Labels come from what the workflow declares: the ``label`` of each input of its user steps and start form;
a variable that came with a business event's payload is named after the catalogue's field; anything else
is its key in words ("deposit_received" → "Deposit received"). Values follow the page's language: dates
and times in the locale's short format, yes/no for booleans, lists joined, money for amounts, a choice
input's value as offered.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import formats, timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from parkinghq.templatetags.portal import money

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
MONEY_WORDS = ("amount", "price", "fee", "deposit_amount", "total", "balance")


def words(key: str) -> str:
    """A key in words: ``deposit_received`` → ``Deposit received``."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(key)).replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:].lower() if text else str(key)


def declared_variables(steps: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Variable name → {label, type} from the inputs of every step (user tasks and start forms)."""
    declared: dict[str, dict[str, Any]] = {}
    for step in (steps or {}).values():
        for item in (step or {}).get("inputs") or []:
            if isinstance(item, dict) and item.get("name") and item["name"] not in declared:
                declared[item["name"]] = {"label": item.get("label") or words(item["name"]), "type": item.get("type")}
    return declared


def _catalogue_types() -> dict[str, str]:
    """Payload field → its kind (date, date-time, money, text …) across the events catalogue."""
    from workflows.events import CATALOGUE

    kinds: dict[str, str] = {}
    for event in CATALOGUE.values():
        for row in event.fields():
            kinds.setdefault(row["name"], row["type"] or "")
    return kinds


def _is_money(name: str, kind: str | None) -> bool:
    lowered = name.lower()
    return kind in (None, "number", "money", "") and any(word in lowered for word in MONEY_WORDS)


def format_value(value: Any, *, name: str = "", kind: str | None = None) -> str:
    """One value as text in the active language."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, list | tuple):
        return ", ".join(format_value(item, name=name) for item in value) if value else "—"
    if isinstance(value, dict):
        parts = [f"{words(k)}: {format_value(v, name=str(k))}" for k, v in value.items()]
        return "; ".join(parts) if parts else "—"
    if isinstance(value, datetime):
        return formats.date_format(
            timezone.localtime(value) if timezone.is_aware(value) else value, "SHORT_DATETIME_FORMAT"
        )
    if isinstance(value, date):
        return formats.date_format(value, "SHORT_DATE_FORMAT")
    if isinstance(value, int | float | Decimal):
        if _is_money(name, kind):
            return money(value)
        return formats.number_format(value, use_l10n=True, force_grouping=isinstance(value, Decimal | float))
    if isinstance(value, str):
        if ISO_DATE.match(value) and (parsed := parse_date(value)):
            return format_value(parsed)
        if ISO_DATETIME.match(value):
            try:
                parsed_dt = parse_datetime(value)
            except ValueError:
                parsed_dt = None
            if parsed_dt:
                return format_value(parsed_dt)
        if _is_money(name, kind) and kind in ("number", "money"):
            try:
                return money(Decimal(value))
            except InvalidOperation:
                return value
        return value
    return str(value)


def variable_rows(variables: dict[str, Any], steps: dict[str, Any]) -> list[dict[str, str]]:
    """[{key, label, value}] for the process page: declared inputs first (in the workflow's order), then the rest
    by label. Keys starting with '_' are the engine's own and are left out."""
    declared = declared_variables(steps)
    catalogue = _catalogue_types()
    rows = []
    for key, value in (variables or {}).items():
        if str(key).startswith("_"):
            continue
        spec = declared.get(key)
        kind = spec["type"] if spec else catalogue.get(key)
        label = spec["label"] if spec else words(key)
        rank = list(declared).index(key) if spec else len(declared)
        rows.append({"key": key, "label": label, "value": format_value(value, name=key, kind=kind), "_rank": rank})
    rows.sort(key=lambda row: (row["_rank"], row["label"].lower()))
    for row in rows:
        del row["_rank"]
    return rows
