"""An alert's sentence, stored once and read in each reader's language.

``AlertEvent.message`` keeps a JSON document ``{"code": ..., "params": {...}, "text": ...}``: the code
and the facts (numbers, names, ISO dates), plus the English sentence for whoever reads the raw row.
:func:`alert_text` builds the sentence again with gettext in the active language, so the alert list,
the dashboard, the email and the in-app notification speak German to a German reader and English to an
English one. A message stored before (plain English text) is shown as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from django.utils import timezone, translation
from django.utils.dateformat import format as date_format
from django.utils.translation import gettext, ngettext

from accounts.roles import role_label


def _number(value: float) -> str:
    """Like anomalies._fmt: whole numbers and large ones without decimals, thousands separated."""
    number = float(value)
    return f"{number:,.0f}" if abs(number) >= 100 or number.is_integer() else f"{number:,.1f}"


def _moment(iso: str) -> str:
    return date_format(timezone.localtime(datetime.fromisoformat(iso)), "d M H:i")


def _overdue_tasks(p: dict[str, Any]) -> str:
    values = {"count": p["count"], "limit": p["limit"]}
    if p.get("role"):
        return ngettext(
            "%(count)s task of the role %(role)s is overdue (alert above %(limit)s).",
            "%(count)s tasks of the role %(role)s are overdue (alert above %(limit)s).",
            p["count"],
        ) % {**values, "role": role_label(p["role"])}
    return (
        ngettext(
            "%(count)s task of all roles is overdue (alert above %(limit)s).",
            "%(count)s tasks of all roles are overdue (alert above %(limit)s).",
            p["count"],
        )
        % values
    )


def _incidents(p: dict[str, Any]) -> str:
    steps = ", ".join(
        gettext("%(workflow)s at %(step)s (%(count)s)") % {"workflow": s[0], "step": s[1], "count": s[2]}
        for s in p["steps"]
    )
    return ngettext(
        "%(count)s process with an open incident (alert above %(limit)s): %(steps)s.",
        "%(count)s processes with an open incident (alert above %(limit)s): %(steps)s.",
        p["count"],
    ) % {"count": p["count"], "limit": p["limit"], "steps": steps}


def _sync_kind(kind: str) -> str:
    from connect.models import SyncRun

    try:
        label = str(SyncRun.Kind(kind).label)
    except ValueError:
        return kind
    # English reads "the occupancy sync"; German nouns keep their capital letter.
    return label.lower() if (translation.get_language() or "en").startswith("en") else label


def _cpms_sync_refused(p: dict[str, Any]) -> str:
    return ngettext(
        "The %(kind)s sync with %(connection)s refused %(refused)s record of the feed at %(when)s "
        "(%(percent)s %%, alert above %(limit)s %%).",
        "The %(kind)s sync with %(connection)s refused %(refused)s records of the feed at %(when)s "
        "(%(percent)s %%, alert above %(limit)s %%).",
        p["refused"],
    ) % {
        "kind": _sync_kind(p["kind"]),
        "connection": p["connection"],
        "refused": p["refused"],
        "when": _moment(p["when"]),
        "percent": p["percent"],
        "limit": p["limit"],
    }


def _cpms_sync_failed(p: dict[str, Any]) -> str:
    error = p.get("error") or gettext("no error message")
    if p.get("error_entry"):  # the sync run's message of the portal's own, in the reader's language
        from connect.sync_messages import sync_text

        error = sync_text(error, {error: p["error_entry"]})
    return gettext("The %(kind)s sync with %(connection)s failed at %(when)s: %(error)s") % {
        "kind": _sync_kind(p["kind"]),
        "connection": p["connection"],
        "when": _moment(p["when"]),
        "error": error,
    }


def _card_failure_rate(p: dict[str, Any]) -> str:
    return ngettext(
        "%(failed)s of %(finished)s card payment failed today (%(rate)s %%, alert above %(limit)s %%).",
        "%(failed)s of %(finished)s card payments failed today (%(rate)s %%, alert above %(limit)s %%).",
        p["finished"],
    ) % {"failed": p["failed"], "finished": p["finished"], "rate": f"{p['rate']:g}", "limit": f"{p['limit']:g}"}


def _no_invoicing_run(p: dict[str, Any]) -> str:
    month = date_format(date.fromisoformat(p["month"] + "-01"), "F Y")
    return gettext("No invoicing run has finished in %(month)s yet (expected by day %(day)s).") % {
        "month": month,
        "day": p["day"],
    }


def _anomaly(p: dict[str, Any]) -> str:
    if p["field"] == "started":
        what = gettext("The number of started “%(workflow)s” processes") % {"workflow": p["workflow"]}
        unit = ""
    else:
        what = gettext("The average step duration of “%(workflow)s”") % {"workflow": p["workflow"]}
        unit = " s"
    values = {
        "what": what,
        "when": date_format(date.fromisoformat(p["day"]), "D d M Y"),
        "value": _number(p["value"]) + unit,
        "median": _number(p["median"]) + unit,
        "days": p["days"],
        "spread": _number(p["spread"]) + unit,
        "z": f"{p['z']:+.1f}",
        "threshold": f"{p['threshold']:g}",
    }
    if p["z"] > 0:
        text = gettext(
            "%(what)s on %(when)s was %(value)s, above the usual %(median)s (median of the previous %(days)s days, "
            "typical spread ±%(spread)s): a robust z-score of %(z)s, beyond the threshold of ±%(threshold)s."
        )
    else:
        text = gettext(
            "%(what)s on %(when)s was %(value)s, below the usual %(median)s (median of the previous %(days)s days, "
            "typical spread ±%(spread)s): a robust z-score of %(z)s, beyond the threshold of ±%(threshold)s."
        )
    return text % values


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "overdue_tasks": _overdue_tasks,
    "incidents": _incidents,
    "cpms_sync_refused": _cpms_sync_refused,
    "cpms_sync_failed": _cpms_sync_failed,
    "card_failure_rate": _card_failure_rate,
    "no_invoicing_run": _no_invoicing_run,
    "anomaly": _anomaly,
}


def alert_message(code: str, **params: Any) -> str:
    """What ``AlertEvent.message`` stores for a condition: the code, its facts and the English sentence."""
    with translation.override("en"):
        text = RENDERERS[code](params)
    return json.dumps({"code": code, "params": params, "text": text}, ensure_ascii=False)


def alert_text(stored: str) -> str:
    """The stored alert sentence in the active language; an older plain-text message as it was stored."""
    if not stored or not stored.startswith("{"):
        return stored
    try:
        data = json.loads(stored)
        return RENDERERS[data["code"]](data["params"])
    except (ValueError, KeyError, TypeError, AttributeError):
        try:
            return str(json.loads(stored).get("text") or stored)
        except (ValueError, AttributeError):
            return stored
