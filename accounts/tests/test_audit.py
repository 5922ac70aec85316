"""The audit log: append-only, written by every change to users, roles and responsibilities."""

import pytest
from django.contrib.auth.models import Group

from accounts import roles
from accounts.models import AuditEntry
from accounts.services import audit_record, user_set_roles


@pytest.mark.django_db
def test_it_records_a_role_change_with_old_and_new_value(django_user_model):
    admin = django_user_model.objects.create_user("boss")
    user = django_user_model.objects.create_user("worker")
    user.groups.add(Group.objects.get(name=roles.AGENT))

    user_set_roles(actor=admin, user=user, roles=[roles.SUPERVISOR])

    entry = AuditEntry.objects.get(action="user.roles")
    assert entry.actor == admin
    assert entry.actor_username == "boss"
    assert entry.target_type == "auth.user"
    assert entry.target_id == str(user.pk)
    assert entry.old == [roles.AGENT]
    assert entry.new == [roles.SUPERVISOR]
    assert list(user.groups.values_list("name", flat=True)) == [roles.SUPERVISOR]


@pytest.mark.django_db
def test_it_records_nothing_when_the_roles_do_not_change(django_user_model):
    user = django_user_model.objects.create_user("worker")
    user_set_roles(actor=None, user=user, roles=[roles.AGENT])
    user_set_roles(actor=None, user=user, roles=[roles.AGENT])
    assert AuditEntry.objects.filter(action="user.roles").count() == 1


@pytest.mark.django_db
def test_it_refuses_to_change_or_delete_an_entry(django_user_model):
    entry = audit_record(actor=None, action="test.thing", target=("workflow", "season-contract"), old=1, new=2)
    assert entry.target_repr == "workflow season-contract"
    entry.action = "forged"
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        entry.delete()
    with pytest.raises(TypeError):
        AuditEntry.objects.filter(pk=entry.pk).update(action="forged")
    with pytest.raises(TypeError):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.get(pk=entry.pk).action == "test.thing"


@pytest.mark.django_db
def test_the_database_refuses_to_rewrite_or_delete_an_entry(django_user_model):
    from django.db import connection, transaction
    from django.db.utils import DatabaseError

    actor = django_user_model.objects.create_user("boss")
    entry = audit_record(actor=actor, action="user.roles", target=actor, old=[], new=["Administrator"])
    for sql in (
        "UPDATE accounts_auditentry SET action = 'forged' WHERE id = %s",
        "DELETE FROM accounts_auditentry WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [entry.pk])
    # Deleting the actor is still possible: the entry keeps who it was.
    actor.delete()
    entry = AuditEntry.objects.get(pk=entry.pk)
    assert entry.actor is None
    assert entry.actor_username == "boss"
