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

ADMINISTRATOR = "Administrator"
WORKFLOW_ADMIN = "Workflow admin"
SUPERVISOR = "Supervisor"
AGENT = "Back-office agent"
FINANCE = "Finance"
CARE = "Customer care"
MANAGER = "Car-park manager"

ALL_ROLES = [ADMINISTRATOR, WORKFLOW_ADMIN, SUPERVISOR, AGENT, FINANCE, CARE, MANAGER]
# Roles whose members must log in with a second factor (TOTP).
TWO_FACTOR_ROLES = {ADMINISTRATOR, WORKFLOW_ADMIN, SUPERVISOR}
RESPONSIBLE_PERMISSION = "carparks.responsible_carpark"


def user_roles(user: Any) -> set[str]:
    """The role names a user holds, cached on the user object for the request."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return set()
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


def role_required(*roles: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Login, then 403 unless the user holds one of ``roles`` (or any role when none are named)."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            allowed = has_role(request.user, *roles) if roles else has_any_role(request.user)
            if not allowed:
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def responsible_carpark_ids(user: Any) -> set[int] | None:
    """Car parks the user is responsible for; ``None`` means all (administrators)."""
    if has_role(user, ADMINISTRATOR) and ADMINISTRATOR in user_roles(user):
        return None
    cached = getattr(user, "_portal_carparks", None)
    if cached is None:
        from guardian.shortcuts import get_objects_for_user

        cached = set(
            get_objects_for_user(
                user, RESPONSIBLE_PERMISSION, with_superuser=False, accept_global_perms=False
            ).values_list("pk", flat=True)
        )
        user._portal_carparks = cached
    return cached


def users_with_role(role: str, *, active_only: bool = True) -> Iterable[Any]:
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(groups__name=role)
    return users.filter(is_active=True) if active_only else users
