"""The portal's roles (Django groups) and the checks every view uses.

Roles are Django groups created by a data migration; responsibility for a car park is the
django-guardian object permission ``carparks.responsible_carpark`` on that CarPark.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.translation import pgettext_lazy

ADMINISTRATOR = "Administrator"
WORKFLOW_ADMIN = "Workflow admin"
SUPERVISOR = "Supervisor"
AGENT = "Back-office agent"
FINANCE = "Finance"
CARE = "Customer care"
MANAGER = "Car-park manager"

ALL_ROLES = [ADMINISTRATOR, WORKFLOW_ADMIN, SUPERVISOR, AGENT, FINANCE, CARE, MANAGER]
# The stored group names are keys (BPMN files, alert rules and tasks name them); people read these labels.
ROLE_LABELS = {
    ADMINISTRATOR: pgettext_lazy("role", "Administrator"),
    WORKFLOW_ADMIN: pgettext_lazy("role", "Workflow admin"),
    SUPERVISOR: pgettext_lazy("role", "Supervisor"),
    AGENT: pgettext_lazy("role", "Back-office agent"),
    FINANCE: pgettext_lazy("role", "Finance"),
    CARE: pgettext_lazy("role", "Customer care"),
    MANAGER: pgettext_lazy("role", "Car-park manager"),
}
# Roles whose members must log in with a second factor (TOTP).
TWO_FACTOR_ROLES = {ADMINISTRATOR, WORKFLOW_ADMIN, SUPERVISOR}
RESPONSIBLE_PERMISSION = "carparks.responsible_carpark"

# Model permissions each role's group holds, as fnmatch patterns over "app_label.codename".
# The data migration accounts/0002 grants what exists then; ``role_permissions_sync`` (run after
# every migrate) grants the same patterns for models added later. Keep the two tables equal.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    ADMINISTRATOR: [
        "auth.*",
        "accounts.*",
        "workflows.*",
        "carparks.*",
        "billing.*",
        "connect.*",
        "monitoring.*",
        "django_otp.*",
        "otp_totp.*",
        "otp_static.*",
    ],
    WORKFLOW_ADMIN: ["workflows.*", "carparks.view_*", "connect.view_*", "monitoring.view_*"],
    SUPERVISOR: [
        "workflows.view_*",
        "workflows.change_task",
        "workflows.change_process",
        "carparks.view_*",
        "carparks.change_contract",
        "carparks.change_customer",
        "billing.view_*",
        "monitoring.view_*",
    ],
    AGENT: [
        "workflows.view_task",
        "workflows.change_task",
        "workflows.view_process",
        "carparks.view_*",
        "carparks.add_customer",
        "carparks.change_customer",
        "carparks.add_vehicle",
        "carparks.change_vehicle",
        "carparks.add_contract",
        "carparks.change_contract",
        "carparks.add_credential",
        "carparks.change_credential",
    ],
    FINANCE: ["billing.*", "carparks.view_*", "workflows.view_task", "workflows.change_task", "monitoring.view_*"],
    CARE: [
        "carparks.view_*",
        "carparks.add_customer",
        "carparks.change_customer",
        "carparks.add_vehicle",
        "carparks.change_vehicle",
        "carparks.add_case",
        "carparks.change_case",
        "billing.view_*",
        "workflows.view_task",
        "workflows.change_task",
    ],
    MANAGER: [
        "carparks.view_*",
        "carparks.change_carpark",
        "carparks.add_product",
        "carparks.change_product",
        "connect.view_*",
        "monitoring.view_*",
        "workflows.view_task",
        "workflows.change_task",
    ],
}


def role_label(name: Any) -> str:
    """The role's name in the reader's language; a group the portal does not know keeps its own name."""
    if not name:
        return ""
    return str(ROLE_LABELS.get(str(name), name))


def role_labels(names: Iterable[Any]) -> str:
    """Several roles' labels, comma separated (for messages that list roles)."""
    return ", ".join(role_label(name) for name in names)


def role_choices() -> list[tuple[str, Any]]:
    """(stored name, translated label) of each portal role, for form fields."""
    return [(role, ROLE_LABELS[role]) for role in ALL_ROLES]


def user_roles(user: Any) -> set[str]:
    """The role names a user holds, cached on the user object for the request."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return set()
    if not hasattr(user, "groups"):
        return set()  # an API client authenticated by token holds no portal role
    cached = getattr(user, "_portal_roles", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        if user.is_superuser:
            cached.add(ADMINISTRATOR)
        user._portal_roles = cached
    return cached


def has_role(user: Any, *roles: str) -> bool:
    """True when the user holds any of ``roles``; administrators hold every role."""
    held = user_roles(user)
    return ADMINISTRATOR in held or bool(held.intersection(roles))


def has_any_role(user: Any) -> bool:
    return bool(user_roles(user))


def roles_allow(user: Any, roles: tuple[str, ...]) -> bool:
    """The check of ``role_required(*roles)``: one of ``roles`` (administrators hold all), any role when none."""
    return has_role(user, *roles) if roles else has_any_role(user)


def role_required(*roles: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Login, then 403 unless the user holds one of ``roles`` (or any role when none are named)."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not roles_allow(request.user, roles):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        # The menu reads the same roles (parkinghq.navigation), so a link shows only where this check passes.
        wrapper.portal_roles = roles  # type: ignore[attr-defined]
        return wrapper

    return decorator


def responsible_carpark_ids(user: Any) -> set[int] | None:
    """Car parks the user is responsible for; ``None`` means all (administrators)."""
    if has_role(user, ADMINISTRATOR) and ADMINISTRATOR in user_roles(user):
        return None
    cached = getattr(user, "_portal_carparks", None)
    if cached is None:
        # The object permissions held directly and through groups, read in one small query
        # (guardian's get_objects_for_user builds a far larger one; this runs on every page).
        from guardian.models import GroupObjectPermission, UserObjectPermission

        app_label, codename = RESPONSIBLE_PERMISSION.split(".")
        held = {"permission__codename": codename, "permission__content_type__app_label": app_label}
        direct = UserObjectPermission.objects.filter(user=user, **held).values_list("object_pk", flat=True)
        via_groups = GroupObjectPermission.objects.filter(group__user=user, **held).values_list("object_pk", flat=True)
        cached = {int(pk) for pk in direct.union(via_groups)}
        user._portal_carparks = cached
    return cached


def users_with_role(role: str, *, active_only: bool = True) -> Iterable[Any]:
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(groups__name=role)
    return users.filter(is_active=True) if active_only else users


def role_permission_matches(role: str, app_label: str, codename: str) -> bool:
    """Whether ``ROLE_PERMISSIONS`` grants ``app_label.codename`` to ``role`` (never responsibility itself)."""
    from fnmatch import fnmatchcase

    name = f"{app_label}.{codename}"
    if name == RESPONSIBLE_PERMISSION:
        return False  # responsibility is only ever an object permission, never a group's global one
    return any(fnmatchcase(name, pattern) for pattern in ROLE_PERMISSIONS.get(role, []))


def role_permissions_sync(app_label: str | None = None) -> int:
    """Grant each role group the permissions its patterns match (additive, idempotent); returns how many."""
    from django.contrib.auth.models import Group, Permission

    permissions = Permission.objects.select_related("content_type")
    if app_label:
        permissions = permissions.filter(content_type__app_label=app_label)
    permissions = list(permissions)
    granted = 0
    for group in Group.objects.filter(name__in=ALL_ROLES):
        wanted = [p for p in permissions if role_permission_matches(group.name, p.content_type.app_label, p.codename)]
        if wanted:
            group.permissions.add(*wanted)
            granted += len(wanted)
    return granted
