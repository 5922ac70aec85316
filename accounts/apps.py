"""Users, roles (Django groups), car-park responsibility, two-factor login and the audit log.

Identity is its own concern, shared by every other app, so it lives apart from them.
"""

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate, post_save


def _sync_role_permissions(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    # auth's create_permissions receiver (connected earlier, auth is listed first) has already
    # created this app's permissions; grant the roles theirs, also for models added after 0002.
    from accounts.roles import role_permissions_sync

    role_permissions_sync(sender.label)


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = "Accounts and audit"

    def ready(self) -> None:
        post_migrate.connect(_sync_role_permissions, dispatch_uid="accounts-role-permissions")
        from django.contrib.admin.models import LogEntry

        from accounts.services import audit_admin_log_entry

        post_save.connect(audit_admin_log_entry, sender=LogEntry, dispatch_uid="accounts-audit-django-admin")
        import accounts.middleware  # noqa: F401 — the login signal that restores a user's language
