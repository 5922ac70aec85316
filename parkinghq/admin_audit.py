"""The Django admin's "Delete selected" action, audited.

Single adds, changes and deletes reach the audit log through Django's own LogEntry
(``accounts.services.audit_admin_log_entry``); a bulk delete of several objects is logged by Django
with ``bulk_create``, which sends no signal, so this action records those deletions itself.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.actions import delete_selected
from django.utils import timezone


@admin.action(permissions=["delete"], description=delete_selected.short_description)
def audited_delete_selected(modeladmin: admin.ModelAdmin, request: Any, queryset: Any) -> Any:
    from accounts.services import audit_admin_bulk_delete

    since = timezone.now()
    selected = [(obj.pk, str(obj)) for obj in queryset]
    response = delete_selected(modeladmin, request, queryset)
    if response is None:  # confirmed and deleted (otherwise the confirmation page is returned)
        gone = set(
            modeladmin.model._default_manager.filter(pk__in=[pk for pk, _ in selected]).values_list("pk", flat=True)
        )
        deleted = [(pk, text) for pk, text in selected if pk not in gone]
        audit_admin_bulk_delete(user=request.user, model=modeladmin.model, deleted=deleted, since=since)
    return response


def install(site: admin.AdminSite) -> None:
    site.add_action(audited_delete_selected, "delete_selected")
