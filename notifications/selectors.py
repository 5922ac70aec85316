"""Reads: a person's notifications and their unread count."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from notifications.models import Notification, NotificationPreference


def notifications_for(user: Any) -> QuerySet[Notification]:
    return Notification.objects.filter(user=user).order_by("-created_at", "-id")


def unread_count(user: Any) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def preferences_for(user: Any) -> NotificationPreference:
    return NotificationPreference.objects.filter(user=user).first() or NotificationPreference(user=user)
