"""A sync run's messages, stored in English and read in each reader's language.

``SyncRun.errors`` stays a list of English sentences (what the log, the alerts and older readers
expect). For each sentence the portal writes itself, ``SyncRun.details["texts"]`` keeps its code and
facts: ``{"<English sentence>": {"code": ..., "params": {...}}}``. :func:`sync_text` shows a sentence
in the active language from those; a sentence without an entry (an older run, or the CPMS's own
words) is shown as stored. The connection's last status ("Occupancy succeeded") is read the same way.
"""

from __future__ import annotations

import re
from typing import Any

from django.utils import formats, translation
from django.utils.translation import gettext, gettext_noop, ngettext

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


_PARTLY = re.compile(
    r"^(?P<kind>.+) partly succeeded: (?P<count>\d+) records? of the feed refused "
    r"\((?P<share>\d+(?:\.\d+)?) %, (?:alerts on any refusal|alert above (?P<limit>\d+) %)\); "
    r"see the sync run for each id and reason\.$"
)


def partly_text(*, kind: str, count: int, share: float, limit: int) -> str:
    """A partly succeeded run in the active language (stored in English, see :func:`status_text`)."""
    refused = ngettext("%(count)s record of the feed refused", "%(count)s records of the feed refused", count) % {
        "count": count
    }
    alert = gettext("alert above %(limit)s %%") % {"limit": limit} if limit else gettext("alerts on any refusal")
    return gettext(
        "%(kind)s partly succeeded: %(refused)s (%(share)s %%, %(alert)s); see the sync run for each id and reason."
    ) % {"kind": _kind(kind), "refused": refused, "share": formats.number_format(share, 1), "alert": alert}


def status_text(message: str) -> str:
    """A connection's last status in the active language: "<kind> succeeded" and "<kind> partly
    succeeded: …" are the portal's own."""
    from connect.models import SyncRun

    with translation.override("en"):
        labels = {str(label): value for value, label in SyncRun.Kind.choices}
        own = {str(MESSAGES["succeeded"]) % {"kind": label}: value for label, value in labels.items()}
    kind = own.get(message)
    if kind:
        return _render("succeeded", {"kind": kind})
    partly = _PARTLY.match(message or "")
    if partly and partly["kind"] in labels:
        return partly_text(
            kind=labels[partly["kind"]],
            count=int(partly["count"]),
            share=float(partly["share"]),
            limit=int(partly["limit"] or 0),
        )
    return message
