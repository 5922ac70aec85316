"""Changes made in the Django admin (/django-admin/) reach the audit log, each exactly once."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from accounts.models import AuditEntry
from carparks.models import Customer
from carparks.tests.factories import CustomerFactory
from conftest import verify_two_factor

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    verify_two_factor(client, admin_user)
    return admin_user


def test_adding_and_changing_in_the_admin_is_audited_with_the_fields_changed(client, staff):
    response = client.post("/django-admin/auth/group/add/", {"name": "Night shift"})
    assert response.status_code == 302
    group = Group.objects.get(name="Night shift")
    added = AuditEntry.objects.get(action="admin.added")
    assert (added.actor, added.target_type, added.target_id) == (staff, "auth.group", str(group.pk))
    assert added.target_repr == "Night shift" and added.new == {"change": "Added."}

    client.post(f"/django-admin/auth/group/{group.pk}/change/", {"name": "Night shift (weekends)"})
    changed = AuditEntry.objects.get(action="admin.changed")
    assert changed.target_repr == "Night shift (weekends)" and changed.new == {"change": "Changed Name."}
    assert changed.actor_username == staff.username


@pytest.mark.parametrize("count", [1, 3])
def test_delete_selected_records_each_deleted_object_once(client, staff, count):
    customers = CustomerFactory.create_batch(count)
    keep = CustomerFactory()
    ids = [str(c.pk) for c in customers]
    data = {"action": "delete_selected", "_selected_action": ids}
    confirm = client.post("/django-admin/carparks/customer/", data)
    assert confirm.status_code == 200  # the confirmation page: nothing deleted, nothing audited
    assert not AuditEntry.objects.filter(action="admin.deleted").exists()

    client.post("/django-admin/carparks/customer/", data | {"post": "yes"})
    assert not Customer.objects.filter(pk__in=ids).exists() and Customer.objects.filter(pk=keep.pk).exists()
    entries = AuditEntry.objects.filter(action="admin.deleted")
    assert sorted(e.target_id for e in entries) == sorted(ids)
    assert {e.target_type for e in entries} == {"carparks.customer"} and {e.actor for e in entries} == {staff}
    assert {e.target_repr for e in entries} == {str(c) for c in customers}


def test_the_delete_page_is_audited_once(client, staff):
    customer = CustomerFactory()
    client.post(f"/django-admin/carparks/customer/{customer.pk}/delete/", {"post": "yes"})
    assert not Customer.objects.filter(pk=customer.pk).exists()
    entry = AuditEntry.objects.get(action="admin.deleted")
    assert entry.target_id == str(customer.pk) and entry.old == {"object": str(customer)}
