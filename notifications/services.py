"""Writes: send a notification (in-app, and by email where the person wants it), mark read, preferences."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from notifications.models import Notification, NotificationPreference
from parkinghq.emails import send_email


def _preferences(user_ids: Iterable[int]) -> dict[int, NotificationPreference]:
    return {p.user_id: p for p in NotificationPreference.objects.filter(user_id__in=list(user_ids))}


def notification_send(
    *, users: Iterable[Any], kind: str, title: str, body: str = "", url: str = "", email_context: dict | None = None
) -> list[Notification]:
    """One in-app notification per user; an email (template ``notification_<kind>``) to each who wants it.

    The emails leave after the surrounding transaction commits.
    """
    people = {user.pk: user for user in users if user is not None and user.is_active}
    if not people:
        return []
    with transaction.atomic():
        created = Notification.objects.bulk_create(
            [Notification(user_id=pk, kind=kind, title=title[:200], body=body, url=url[:500]) for pk in people]
        )
        preferences = _preferences(people)
        recipients = [
            user
            for pk, user in people.items()
            if user.email and preferences.get(pk, NotificationPreference()).wants_email(kind)
        ]
        for user in recipients:
            context = {"user": user, "title": title, "body": body, "url": url, **(email_context or {})}
            transaction.on_commit(
                lambda user=user, context=context: send_email(
                    template=f"notification_{kind}", to=[user.email], context=context
                )
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
