"""A sync run's messages, stored in English and read in each reader's language.

``SyncRun.errors`` stays a list of English sentences (what the log, the alerts and older readers
expect). For each sentence the portal writes itself, ``SyncRun.details["texts"]`` keeps its code and
facts: ``{"<English sentence>": {"code": ..., "params": {...}}}``. :func:`sync_text` shows a sentence
in the active language from those; a sentence without an entry (an older run, or the CPMS's own
words) is shown as stored. The connection's last status ("Occupancy succeeded") is read the same way.
"""

from __future__ import annotations

from typing import Any

from django.utils import translation
from django.utils.translation import gettext, gettext_noop

MESSAGES = {
    "attempt": gettext_noop("Attempt %(attempt)s: %(error)s"),
    "abandoned": gettext_noop(
        "Abandoned: still running %(after)s after it started (the worker stopped); the next run replaces it."
    ),
    "missing_from_feed": gettext_noop("%(count)s linked car park(s) are no longer in the feed: %(ids)s"),
    "review_unmatched": gettext_noop("Review for %(carpark)s not started: no published workflow starts on %(event)s."),
    "review_failed": gettext_noop("Review for %(carpark)s not started: %(error)s"),
    "review_open": gettext_noop("Review for %(carpark)s not started: one is already open."),
    "succeeded": gettext_noop("%(kind)s succeeded"),
}


def _kind(code: str) -> str:
    from connect.models import SyncRun

    try:
        return str(SyncRun.Kind(code).label)
    except ValueError:
        return code


def _render(code: str, params: dict[str, Any]) -> str:
    values = dict(params)
    if "kind" in values:
        values["kind"] = _kind(values["kind"])
    if "error" in values and isinstance(values["error"], dict):  # an inner message of ours
        values["error"] = _render(values["error"]["code"], values["error"]["params"])
    return gettext(MESSAGES[code]) % values


def sync_message(code: str, **params: Any) -> tuple[str, dict[str, Any]]:
    """The English sentence for ``code`` and the entry to keep under ``details["texts"]``."""
    with translation.override("en"):
        text = _render(code, params)
    return text, {"code": code, "params": params}


def sync_text(text: Any, texts: Any = None) -> str:
    """``text`` (an entry of ``SyncRun.errors``) in the active language, from ``details["texts"]``.

    ``texts`` is that mapping, or the SyncRun itself.
    """
    sentence = str(text if text is not None else "")
    if hasattr(texts, "details"):
        texts = texts.details.get("texts") if isinstance(texts.details, dict) else None
    entry = texts.get(sentence) if isinstance(texts, dict) else None
    if not isinstance(entry, dict):
        return sentence
    try:
        return _render(entry["code"], entry["params"])
    except (KeyError, TypeError, ValueError):
        return sentence


def status_text(message: str) -> str:
    """A connection's last status in the active language: "<kind> succeeded" is the portal's own."""
    from connect.models import SyncRun

    with translation.override("en"):
        own = {str(MESSAGES["succeeded"]) % {"kind": str(label)}: value for value, label in SyncRun.Kind.choices}
    kind = own.get(message)
    return _render("succeeded", {"kind": kind}) if kind else message
