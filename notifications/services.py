"""Writes: send a notification (in-app, and by email where the person wants it), mark read, preferences."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation

from accounts.middleware import preferred_language
from notifications.models import Notification, NotificationPreference
from parkinghq.emails import send_email

# A notification's text: a string, or a function that gives it in the active language (called once per
# recipient inside their language, so each person reads it in the language they chose).
Text = str | Callable[[], str]


def language_of(user: Any) -> str:
    """The language a person is written to in: their own choice, else the portal's default."""
    return preferred_language(user) or settings.LANGUAGE_CODE


def _in_language(text: Text, language: str) -> str:
    if not callable(text):
        return str(text)
    with translation.override(language):
        return str(text())


def send_email_to(user: Any, **kwargs: Any) -> int:
    """``send_email`` to one person, rendered in their language."""
    with translation.override(language_of(user)):
        return send_email(to=[user.email], **kwargs)


def _preferences(user_ids: Iterable[int]) -> dict[int, NotificationPreference]:
    return {p.user_id: p for p in NotificationPreference.objects.filter(user_id__in=list(user_ids))}


def notification_send(
    *, users: Iterable[Any], kind: str, title: Text, body: Text = "", url: str = "", email_context: dict | None = None
) -> list[Notification]:
    """One in-app notification per user; an email (template ``notification_<kind>``) to each who wants it.

    ``title`` and ``body`` may be functions giving the text in the active language: each person's
    notification and email are then in their own language. The emails leave after the surrounding
    transaction commits.
    """
    people = {user.pk: user for user in users if user is not None and user.is_active}
    if not people:
        return []
    texts = {
        pk: (_in_language(title, language_of(user)), _in_language(body, language_of(user)))
        for pk, user in people.items()
    }
    with transaction.atomic():
        created = Notification.objects.bulk_create(
            [
                Notification(user_id=pk, kind=kind, title=texts[pk][0][:200], body=texts[pk][1], url=url[:500])
                for pk in people
            ]
        )
        preferences = _preferences(people)
        recipients = [
            user
            for pk, user in people.items()
            if user.email and preferences.get(pk, NotificationPreference()).wants_email(kind)
        ]
        for user in recipients:
            title_text, body_text = texts[user.pk]
            context = {"user": user, "title": title_text, "body": body_text, "url": url, **(email_context or {})}
            transaction.on_commit(
                lambda user=user, context=context: send_email_to(user, template=f"notification_{kind}", context=context)
            )
    return created


def notifications_mark_read(*, user: Any, ids: Iterable[int] | None = None) -> int:
    """Mark the user's unread notifications read (all of them, or only ``ids``); returns how many."""
    rows = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        rows = rows.filter(pk__in=list(ids))
    return rows.update(read_at=timezone.now())


def preferences_update(*, user: Any, **values: bool) -> NotificationPreference:
    allowed = set(NotificationPreference.EMAIL_FIELDS.values())
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"unknown preferences: {', '.join(sorted(unknown))}")
    preference, _ = NotificationPreference.objects.update_or_create(user=user, defaults=values)
    return preference
