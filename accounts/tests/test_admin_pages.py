"""Administration pages: users list, create, edit roles and car parks, deactivate, audit log."""

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from guardian.shortcuts import get_objects_for_user

from accounts import roles
from accounts.models import AuditEntry
from carparks.models import CarPark


@pytest.fixture
def admin_client(client, make_user, login):
    admin = make_user("boss", roles.ADMINISTRATOR)
    login(client, admin)
    client.admin = admin
    return client


@pytest.fixture
def carparks(db):
    return [
        CarPark.objects.create(name="Central Station", code="central"),
        CarPark.objects.create(name="Harbour", code="harbour"),
    ]


@pytest.mark.django_db
def test_it_lists_searches_and_paginates_users(admin_client, make_user, django_assert_max_num_queries):
    for i in range(30):
        make_user(f"agent{i:02d}", roles.AGENT, first_name="Agnes" if i == 7 else "Bob")
    with django_assert_max_num_queries(12):
        response = admin_client.get(reverse("accounts:user-list"))
    assert response.status_code == 200
    assert response.context["page"].paginator.count == 31
    assert len(response.context["users"]) == 25
    assert b"Page 1 of 2" in response.content

    response = admin_client.get(reverse("accounts:user-list"), {"q": "agnes"})
    assert [u.username for u in response.context["users"]] == ["agent07"]
    response = admin_client.get(reverse("accounts:user-list"), {"q": "nobody-like-this"})
    assert b"No users match" in response.content


@pytest.mark.django_db
def test_it_is_only_for_administrators(client, make_user, login):
    login(client, make_user("sup", roles.SUPERVISOR))
    assert client.get(reverse("accounts:user-list")).status_code == 403
    assert client.get(reverse("accounts:audit-log")).status_code == 403


@pytest.mark.django_db
def test_it_creates_a_user_with_roles_and_car_parks_and_emails_a_set_password_link(
    admin_client, carparks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("accounts:user-create"),
            {
                "username": "newbie",
                "first_name": "New",
                "last_name": "Bie",
                "email": "newbie@example.com",
                "roles": [roles.AGENT],
                "carparks": [carparks[0].pk],
            },
        )
    assert response.status_code == 302
    user = admin_client.admin.__class__.objects.get(username="newbie")
    assert list(user.groups.values_list("name", flat=True)) == [roles.AGENT]
    assert list(get_objects_for_user(user, roles.RESPONSIBLE_PERMISSION, accept_global_perms=False)) == [carparks[0]]
    assert len(mail.outbox) == 1
    assert "/accounts/reset/" in mail.outbox[0].body
    actions = set(AuditEntry.objects.filter(target_id=str(user.pk)).values_list("action", flat=True))
    assert actions == {"user.create", "user.roles", "user.carparks"}


@pytest.mark.django_db
def test_it_refuses_a_new_user_without_email_or_password(admin_client):
    response = admin_client.post(reverse("accounts:user-create"), {"username": "x", "roles": [roles.AGENT]})
    assert response.status_code == 200
    assert b"Give an email address" in response.content


@pytest.mark.django_db
def test_it_audits_a_role_change_made_on_the_edit_page(admin_client, make_user, carparks):
    worker = make_user("worker", roles.AGENT, carparks=[carparks[0]])
    response = admin_client.post(
        reverse("accounts:user-edit", args=[worker.pk]),
        {"username": "worker", "email": "w@example.com", "roles": [roles.SUPERVISOR], "carparks": [carparks[1].pk]},
    )
    assert response.status_code == 302
    role_entry = AuditEntry.objects.get(action="user.roles", target_id=str(worker.pk))
    assert (role_entry.actor, role_entry.old, role_entry.new) == (admin_client.admin, [roles.AGENT], [roles.SUPERVISOR])
    carpark_entry = AuditEntry.objects.get(action="user.carparks", target_id=str(worker.pk))
    assert (carpark_entry.old, carpark_entry.new) == (["central"], ["harbour"])
    email_entry = AuditEntry.objects.get(action="user.update", target_id=str(worker.pk))
    assert email_entry.new == {"email": "w@example.com"}

    log = admin_client.get(reverse("accounts:audit-log"), {"action": "user.roles", "q": "worker"})
    assert log.status_code == 200
    assert [e.pk for e in log.context["entries"]] == [role_entry.pk]
    assert roles.SUPERVISOR.encode() in log.content


@pytest.mark.django_db
def test_it_deactivates_a_user_who_then_cannot_log_in(admin_client, make_user):
    worker = make_user("worker", roles.AGENT, password="s3cret-pass")
    response = admin_client.post(reverse("accounts:user-set-active", args=[worker.pk]), {"active": "0"})
    assert response.status_code == 302
    worker.refresh_from_db()
    assert not worker.is_active
    assert AuditEntry.objects.filter(action="user.deactivate", target_id=str(worker.pk), old=True, new=False).exists()
    other = Client()
    assert other.post("/accounts/login/", {"username": "worker", "password": "s3cret-pass"}).status_code == 200


@pytest.mark.django_db
def test_an_admin_cannot_lock_themselves_out(admin_client):
    admin = admin_client.admin
    admin_client.post(reverse("accounts:user-set-active", args=[admin.pk]), {"active": "0"})
    response = admin_client.post(
        reverse("accounts:user-edit", args=[admin.pk]), {"username": "boss", "roles": [roles.AGENT]}
    )
    assert b"cannot take the Administrator role away from yourself" in response.content
    admin.refresh_from_db()
    assert admin.is_active
    assert list(admin.groups.values_list("name", flat=True)) == [roles.ADMINISTRATOR]


@pytest.mark.django_db
def test_it_filters_and_paginates_the_audit_log(admin_client):
    from accounts.services import audit_record

    for i in range(60):
        audit_record(actor=admin_client.admin, action="demo.thing" if i % 2 else "other.thing", target=("x", i))
    response = admin_client.get(reverse("accounts:audit-log"))
    assert len(response.context["entries"]) == 50
    response = admin_client.get(reverse("accounts:audit-log"), {"action": "demo.thing"})
    assert response.context["page"].paginator.count == 30
    response = admin_client.get(reverse("accounts:audit-log"), {"date_from": "not-a-date"})
    assert b"Some filters were not understood" in response.content


@pytest.mark.django_db
def test_the_profile_page_changes_the_password(client, make_user, login):
    user = make_user("agent", roles.AGENT, password="old-pass-123")
    login(client, user)
    page = client.get(reverse("accounts:profile"))
    assert page.status_code == 200
    assert b"Change password" in page.content
    response = client.post(
        reverse("accounts:profile"),
        {"old_password": "old-pass-123", "new_password1": "N3w-long-pass!", "new_password2": "N3w-long-pass!"},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("N3w-long-pass!")
    assert AuditEntry.objects.filter(action="user.password", target_id=str(user.pk)).exists()


@pytest.mark.django_db
def test_an_admin_resets_the_two_factor_devices_of_a_user_who_lost_the_phone(admin_client, make_user):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    sup = make_user("sup", roles.SUPERVISOR)
    TOTPDevice.objects.create(user=sup, name="old phone", confirmed=True)
    response = admin_client.post(reverse("accounts:user-reset-two-factor", args=[sup.pk]))
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=sup).exists()
    entry = AuditEntry.objects.get(action="user.2fa-reset", target_id=str(sup.pk))
    assert (entry.old, entry.new) == (["old phone"], [])


@pytest.mark.django_db
def test_a_user_removes_their_own_device_but_not_someone_elses(client, make_user, login):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = make_user("agent", roles.AGENT)
    other = TOTPDevice.objects.create(user=make_user("care", roles.CARE), name="theirs", confirmed=True)
    mine = TOTPDevice.objects.create(user=user, name="mine", confirmed=True)
    login(client, user)
    assert client.post(reverse("accounts:device-remove", args=[other.pk])).status_code == 404
    assert client.post(reverse("accounts:device-remove", args=[mine.pk])).status_code == 302
    assert list(TOTPDevice.objects.values_list("name", flat=True)) == ["theirs"]
