"""Writes of the accounts app: the audit log and every change to users, roles and responsibilities.

Each service runs in one transaction and records what it changed with ``audit_record`` in that
same transaction, so a change and its audit row are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.db import models, transaction
from django.utils.translation import gettext as _

from accounts.models import AuditEntry, Preference
from accounts.roles import ALL_ROLES, RESPONSIBLE_PERMISSION, role_labels

User = get_user_model()


def _describe_target(target: Any) -> tuple[str, str, str]:
    if isinstance(target, models.Model):
        meta = target._meta
        return f"{meta.app_label}.{meta.model_name}", str(target.pk or ""), str(target)[:255]
    if isinstance(target, tuple) and len(target) == 2:
        kind, ident = target
        return str(kind), str(ident), f"{kind} {ident}"[:255]
    return "other", "", str(target)[:255]


def audit_record(*, actor: Any, action: str, target: Any, old: Any = None, new: Any = None) -> AuditEntry:
    """Append one entry to the audit log.

    ``actor`` is the user who made the change (``None`` or an anonymous user for the system),
    ``target`` a model instance (or a ``(type, id)`` pair, or a plain description), ``old``/``new``
    JSON-serialisable values before and after the change.
    """
    target_type, target_id, target_repr = _describe_target(target)
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEntry.objects.create(
        actor=actor if is_user else None,
        actor_username=actor.get_username() if is_user else "",
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr,
        old=old,
        new=new,
    )


_ADMIN_ACTIONS = {1: "admin.added", 2: "admin.changed", 3: "admin.deleted"}


def audit_admin_log_entry(sender: Any, instance: Any, created: bool = False, raw: bool = False, **kwargs: Any) -> None:
    """``post_save`` of Django admin's LogEntry: every add, change and delete made in /django-admin/
    (master data, API clients, users and groups) lands in the audit log too, in the same transaction,
    with who did it and the admin's description of what changed."""
    if not created or raw:
        return
    content_type = instance.content_type
    AuditEntry.objects.create(
        actor_id=instance.user_id,
        actor_username=instance.user.get_username() if instance.user_id else "",
        action=_ADMIN_ACTIONS.get(instance.action_flag, "admin.logged"),
        target_type=f"{content_type.app_label}.{content_type.model}" if content_type else "other",
        target_id=str(instance.object_id or "")[:64],
        target_repr=(instance.object_repr or "")[:255],
        new={"change": instance.get_change_message()} if instance.action_flag != 3 else None,
        old={"object": instance.object_repr} if instance.action_flag == 3 else None,
    )


def audit_admin_bulk_delete(*, user: Any, model: type[models.Model], deleted: list[tuple[Any, str]], since: Any) -> int:
    """Audit a bulk delete from the admin's "Delete selected" action. Django logs more than one
    deleted object with ``bulk_create``, which sends no ``post_save``; objects the receiver above
    already audited (since ``since``) are skipped, so each deletion is recorded once."""
    meta = model._meta
    target_type = f"{meta.app_label}.{meta.model_name}"
    done = set(
        AuditEntry.objects.filter(
            action="admin.deleted",
            target_type=target_type,
            target_id__in=[str(pk) for pk, _ in deleted],
            created_at__gte=since,
        ).values_list("target_id", flat=True)
    )
    entries = [
        AuditEntry(
            actor=user,
            actor_username=user.get_username(),
            action="admin.deleted",
            target_type=target_type,
            target_id=str(pk)[:64],
            target_repr=text[:255],
            old={"object": text},
        )
        for pk, text in deleted
        if str(pk) not in done
    ]
    AuditEntry.objects.bulk_create(entries)
    return len(entries)


def _user_snapshot(user: AbstractUser) -> dict[str, Any]:
    return {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": user.is_active,
    }


def user_roles_of(user: AbstractUser) -> list[str]:
    return sorted(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))


def user_carpark_ids_of(user: AbstractUser) -> list[int]:
    from guardian.shortcuts import get_objects_for_user

    return sorted(
        get_objects_for_user(user, RESPONSIBLE_PERMISSION, with_superuser=False, accept_global_perms=False).values_list(
            "pk", flat=True
        )
    )


@transaction.atomic
def user_create(
    *,
    actor: Any,
    username: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    password: str | None = None,
    roles: Iterable[str] = (),
    carparks: Iterable[Any] = (),
) -> AbstractUser:
    """Create a staff user (an unusable password unless one is given) with roles and car parks."""
    user = User.objects.create_user(
        username=username, email=email, first_name=first_name, last_name=last_name, password=password
    )
    audit_record(actor=actor, action="user.create", target=user, old=None, new=_user_snapshot(user))
    user_set_roles(actor=actor, user=user, roles=roles)
    user_set_carparks(actor=actor, user=user, carparks=carparks)
    return user


@transaction.atomic
def user_update(*, actor: Any, user: AbstractUser, **fields: Any) -> AbstractUser:
    """Change name and email fields; audits the fields that changed."""
    allowed = {"first_name", "last_name", "email"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"user_update cannot change {', '.join(sorted(unknown))}")
    old = {name: getattr(user, name) for name in fields if getattr(user, name) != fields[name]}
    if not old:
        return user
    for name in old:
        setattr(user, name, fields[name])
    user.save(update_fields=list(old))
    audit_record(actor=actor, action="user.update", target=user, old=old, new={name: fields[name] for name in old})
    return user


@transaction.atomic
def user_set_roles(*, actor: Any, user: AbstractUser, roles: Iterable[str]) -> None:
    """Make ``roles`` exactly the user's roles; audits old and new role lists when they differ."""
    wanted = sorted(set(roles))
    unknown = set(wanted) - set(ALL_ROLES)
    if unknown:
        raise ValueError(_("Unknown role(s): %(roles)s") % {"roles": ", ".join(sorted(unknown))})
    old = user_roles_of(user)
    if old == wanted:
        return
    groups = {group.name: group for group in Group.objects.filter(name__in=ALL_ROLES)}
    missing = set(wanted) - set(groups)
    if missing:
        raise ValueError(
            _("Role group(s) missing, run migrations: %(roles)s") % {"roles": role_labels(sorted(missing))}
        )
    user.groups.remove(*[groups[name] for name in old if name not in wanted])
    user.groups.add(*[groups[name] for name in wanted if name not in old])
    for attribute in ("_portal_roles", "_portal_carparks", "_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(attribute, None)
    audit_record(actor=actor, action="user.roles", target=user, old=old, new=wanted)


@transaction.atomic
def user_set_carparks(*, actor: Any, user: AbstractUser, carparks: Iterable[Any]) -> None:
    """Make ``carparks`` exactly the car parks the user is responsible for (guardian object permission)."""
    from guardian.shortcuts import assign_perm, remove_perm

    from carparks.models import CarPark

    wanted_ids = sorted({carpark.pk if isinstance(carpark, models.Model) else int(carpark) for carpark in carparks})
    old_ids = user_carpark_ids_of(user)
    if old_ids == wanted_ids:
        return
    removed = CarPark.objects.filter(pk__in=set(old_ids) - set(wanted_ids))
    added = CarPark.objects.filter(pk__in=set(wanted_ids) - set(old_ids))
    if removed:
        remove_perm(RESPONSIBLE_PERMISSION, user, removed)
    if added:
        assign_perm(RESPONSIBLE_PERMISSION, user, added)
    user.__dict__.pop("_portal_carparks", None)
    names = dict(CarPark.objects.filter(pk__in=set(old_ids) | set(wanted_ids)).values_list("pk", "code"))
    audit_record(
        actor=actor,
        action="user.carparks",
        target=user,
        old=[names.get(pk, pk) for pk in old_ids],
        new=[names.get(pk, pk) for pk in wanted_ids],
    )


@transaction.atomic
def user_set_active(*, actor: Any, user: AbstractUser, active: bool) -> None:
    """Deactivate (or reactivate) a user; a deactivated user can no longer log in."""
    if user.is_active == active:
        return
    user.is_active = active
    user.save(update_fields=["is_active"])
    audit_record(
        actor=actor, action="user.activate" if active else "user.deactivate", target=user, old=not active, new=active
    )


@transaction.atomic
def user_set_password(*, actor: Any, user: AbstractUser, password: str) -> None:
    """Set a new password; the audit row says that it changed, never what it is."""
    user.set_password(password)
    user.save(update_fields=["password"])
    audit_record(actor=actor, action="user.password", target=user, old=None, new=None)


@transaction.atomic
def user_set_language(*, actor: Any, user: AbstractUser, language: str) -> None:
    """Keep the portal's language the user chose ('' = their browser's); audited when it changes."""
    preference, _created = Preference.objects.select_for_update().get_or_create(user=user)
    if preference.language != language:
        old = preference.language
        preference.language = language
        preference.save(update_fields=["language"])
        audit_record(actor=actor, action="user.language", target=user, old=old or None, new=language or None)


@transaction.atomic
def user_login_unlock(*, actor: Any, user: AbstractUser) -> None:
    """Lift the user's login lock (failed logins counted against the account) before it ends."""
    from accounts.lockout import account_locked_until, lockout_clear

    until = account_locked_until(user.get_username())
    lockout_clear(user.get_username())
    audit_record(
        actor=actor,
        action="user.unlock",
        target=user,
        old={"locked_until": until.isoformat() if until else None},
        new=None,
    )
