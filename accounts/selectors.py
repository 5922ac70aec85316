"""Reads of the accounts app: the user list and the audit log, filtered as the pages ask."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AuditEntry
from accounts.roles import ALL_ROLES

User = get_user_model()


def user_list(*, q: str = "", role: str = "", state: str = "") -> QuerySet:
    users = User.objects.annotate(
        has_two_factor=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True))
    ).prefetch_related(Prefetch("groups", queryset=Group.objects.filter(name__in=ALL_ROLES).order_by("name")))
    if q:
        users = users.filter(
            Q(username__icontains=q) | Q(first_name__icontains=q) | Q(last_name__icontains=q) | Q(email__icontains=q)
        )
    if role == "-":
        users = users.exclude(groups__name__in=ALL_ROLES)
    elif role:
        users = users.filter(groups__name=role)
    if state == "inactive":
        users = users.filter(is_active=False)
    elif state != "all":
        users = users.filter(is_active=True)
    return users.order_by("username")


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def audit_entries(
    *,
    q: str = "",
    action: str = "",
    actor: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
    target: Any = None,
) -> QuerySet:
    entries = AuditEntry.objects.all()
    if q:
        entries = entries.filter(Q(target_repr__icontains=q) | Q(action__icontains=q) | Q(target_id=q))
    if action:
        entries = entries.filter(action=action)
    if actor:
        entries = entries.filter(actor_username__icontains=actor)
    if date_from:
        entries = entries.filter(created_at__gte=_start_of(date_from))
    if date_to:
        entries = entries.filter(created_at__lt=_start_of(date_to) + timezone.timedelta(days=1))
    if target is not None:
        meta = target._meta
        entries = entries.filter(target_type=f"{meta.app_label}.{meta.model_name}", target_id=str(target.pk))
    return entries.order_by("-created_at", "-id")
