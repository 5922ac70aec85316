"""A person's notifications and how they want to be told."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Notification(models.Model):
    class Kind(models.TextChoices):
        ASSIGNMENT = "assignment", _("Task assigned")
        ESCALATION = "escalation", _("Task escalated")
        OVERDUE = "overdue", _("Task overdue")
        INFO = "info", _("Information")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.INFO)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="notification_user_created"),
            models.Index(fields=["user"], name="notification_user_unread", condition=models.Q(read_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_unread(self) -> bool:
        return self.read_at is None


class NotificationPreference(models.Model):
    """Which notifications also go out by email (in-app ones are always kept)."""

    # Notification kind → the preference field that switches its email on.
    EMAIL_FIELDS = {
        Notification.Kind.ASSIGNMENT: "email_assignment",
        Notification.Kind.ESCALATION: "email_escalation",
        Notification.Kind.OVERDUE: "email_overdue",
    }

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    email_assignment = models.BooleanField(_("Email me when a task is assigned to me"), default=True)
    email_escalation = models.BooleanField(_("Email me when a task is escalated to me"), default=True)
    email_overdue = models.BooleanField(_("Email me when a task of mine is overdue"), default=True)

    def __str__(self) -> str:
        return f"Notification preferences of {self.user}"

    def wants_email(self, kind: str) -> bool:
        field = self.EMAIL_FIELDS.get(kind)
        return bool(field and getattr(self, field))
