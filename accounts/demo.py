"""Demo users, one per role, password ``demo-season-pass``; only ever created by ``manage.py demo_load``.

Users with a two-factor role (admin, wfadmin, supervisor) enrol a TOTP authenticator at their
first login; nothing secret is printed here.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.db import transaction

from accounts import roles
from accounts.services import user_set_roles

# The documented demo password, only set by the demo loader; it passes the password rules too.
DEMO_PASSWORD = "demo-season-pass"  # noqa: S105
DEMO_USERS = [
    ("admin", "Ada", "Admin", roles.ADMINISTRATOR),
    ("wfadmin", "Wolfgang", "Flow", roles.WORKFLOW_ADMIN),
    ("supervisor", "Sven", "Visor", roles.SUPERVISOR),
    ("agent", "Agnes", "Gent", roles.AGENT),
    ("finance", "Fiona", "Nance", roles.FINANCE),
    ("care", "Carla", "Rees", roles.CARE),
    ("manager", "Manuel", "Ager", roles.MANAGER),
]


@transaction.atomic
def load(stdout: Any) -> None:
    User = get_user_model()
    created = 0
    for username, first_name, last_name, role in DEMO_USERS:
        user, is_new = User.objects.get_or_create(
            username=username,
            defaults={
                "first_name": first_name,
                "last_name": last_name,
                "email": f"{username}@parkinghq.example",
                "is_staff": role == roles.ADMINISTRATOR,
            },
        )
        if is_new:
            password_validation.validate_password(DEMO_PASSWORD, user)
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
            user_set_roles(actor=None, user=user, roles=[role])
            created += 1
    stdout.write(f"accounts.demo: {created} demo user(s) created, {len(DEMO_USERS) - created} already there")
