"""Notifications: the in-app list with an unread count, and emails by per-user preference.

A concern of its own rather than part of the engine: its models (notifications, preferences)
belong to people, not to processes; workflows (assignment, escalation, overdue) is the first
producer, monitoring's alerts and statements can be the next, and none of them should know
how a person wants to be told.
"""

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "notifications"

    def ready(self) -> None:
        from notifications import receivers  # noqa: F401  (connects to the engine's signals)
