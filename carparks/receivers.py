"""Receivers of carparks' own models: a case's open tasks follow its SLA when the SLA changes (in the
admin or any full save); ``services.case_open`` sets it once the case's process has started."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from carparks.models import Case


@receiver(post_save, sender=Case, dispatch_uid="carparks.case_sla_to_tasks")
def case_sla_to_tasks(sender: Any, instance: Case, created: bool, update_fields: Any = None, **kwargs: Any) -> None:
    if created or (update_fields is not None and "sla_due_at" not in update_fields):
        return
    from carparks.services import case_tasks_follow_sla

    case_tasks_follow_sla(instance)
