"""Login: password, lockout after repeated failures, two-factor for admin roles, password reset, CSRF."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import roles
from accounts.models import AuditEntry

LOGIN = "/accounts/login/"


def post_login(client, username, password, next_url=""):
    return client.post(LOGIN, {"username": username, "password": password, "next": next_url})


def current_code(device):
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


@pytest.mark.django_db
def test_it_logs_an_agent_in_with_username_and_password(client, make_user):
    make_user("agent", roles.AGENT, password="s3cret-pass")
    response = post_login(client, "agent", "s3cret-pass")
    assert response.status_code == 302
    assert response["Location"] == reverse("portal-home")
    assert client.get(reverse("portal-home")).status_code == 200


@pytest.mark.django_db
def test_it_rejects_a_wrong_password_with_a_message(client, make_user):
    make_user("agent", roles.AGENT, password="s3cret-pass")
    response = post_login(client, "agent", "wrong")
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert client.get(reverse("portal-home")).status_code == 302


@pytest.mark.django_db
def test_it_locks_the_login_after_repeated_failures(client, make_user, settings):
    make_user("agent", roles.AGENT, password="s3cret-pass")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert post_login(client, "agent", "wrong").status_code == 200
    response = post_login(client, "agent", "wrong")
    assert response.status_code == 429
    assert b"Login temporarily locked" in response.content
    # Even the right password does not get in while locked.
    response = post_login(client, "agent", "s3cret-pass")
    assert response.status_code == 429
    assert client.get(reverse("portal-home")).status_code == 302


@pytest.mark.django_db
def test_it_does_not_lock_other_users_out(client, make_user, settings):
    make_user("agent", roles.AGENT, password="s3cret-pass")
    make_user("care", roles.CARE, password="other-pass")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        post_login(client, "agent", "wrong")
    assert post_login(client, "care", "other-pass").status_code == 302


@pytest.mark.django_db
def test_it_makes_an_admin_enrol_a_totp_device_before_anything_else(client, make_user):
    admin = make_user("admin", roles.ADMINISTRATOR, password="s3cret-pass")
    response = post_login(client, "admin", "s3cret-pass", next_url="/accounts/users/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:otp-enrol"))

    # Every portal page sends the half-logged-in admin back to the second step.
    for path in ["/", "/accounts/users/", "/accounts/audit/", "/accounts/profile/", "/django-admin/"]:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith(reverse("accounts:otp-enrol")), path
    assert client.get("/api/v1/", HTTP_ACCEPT="application/json").status_code in (403, 404)

    page = client.get(response["Location"])
    assert page.status_code == 200
    assert b"<svg" in page.content
    secret = re.search(rb'data-testid="otp-secret">([A-Z2-7 ]+)<', page.content).group(1)
    assert len(secret.replace(b" ", b"")) >= 32
    device = TOTPDevice.objects.get(user=admin, confirmed=False)

    wrong = client.post(reverse("accounts:otp-enrol"), {"token": "000000", "next": "/accounts/users/"})
    assert wrong.status_code == 200
    assert b"not valid" in wrong.content

    # A wrong code throttles the device for a second (doubling each time), so wait that out.
    with time_machine.travel(timezone.now() + timedelta(seconds=3), tick=False):
        token = current_code(device)
        response = client.post(reverse("accounts:otp-enrol"), {"token": token, "next": "/accounts/users/"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/users/"
    assert client.get("/accounts/users/").status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    assert AuditEntry.objects.filter(action="user.2fa-enrol", target_id=str(admin.pk)).exists()


@pytest.mark.django_db
def test_it_asks_an_enrolled_admin_for_a_code_after_the_password(client, make_user):
    admin = make_user("admin", roles.ADMINISTRATOR, password="s3cret-pass")
    device = TOTPDevice.objects.create(user=admin, name="phone", confirmed=True)

    response = post_login(client, "admin", "s3cret-pass")
    assert response["Location"].startswith(reverse("accounts:otp-verify"))
    assert client.get("/accounts/users/")["Location"].startswith(reverse("accounts:otp-verify"))
    # With only the password, nobody can enrol a device of their own to get around the code.
    assert client.get(reverse("accounts:otp-enrol"))["Location"].startswith(reverse("accounts:otp-verify"))

    assert b"not valid" in client.post(reverse("accounts:otp-verify"), {"token": "123456"}).content
    device.refresh_from_db()
    # Right code, but straight after a wrong one: throttled.
    assert (
        b"Too many wrong codes" in client.post(reverse("accounts:otp-verify"), {"token": current_code(device)}).content
    )
    with time_machine.travel(timezone.now() + timedelta(seconds=10), tick=False):
        response = client.post(reverse("accounts:otp-verify"), {"token": current_code(device)})
    assert response.status_code == 302
    assert client.get("/accounts/users/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("role", sorted(roles.TWO_FACTOR_ROLES))
def test_it_requires_two_factor_for_each_two_factor_role(client, make_user, role):
    make_user("someone", role, password="s3cret-pass")
    response = post_login(client, "someone", "s3cret-pass")
    assert response["Location"].startswith(reverse("accounts:otp-enrol"))


@pytest.mark.django_db
def test_it_sends_a_working_password_reset_link(client, make_user):
    make_user("agent", roles.AGENT, password="old-pass-123", email="agent@example.com")
    response = client.post(reverse("accounts:password-reset"), {"email": "agent@example.com"})
    assert response["Location"] == reverse("accounts:password-reset-done")
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+)", mail.outbox[0].body).group(1)

    form_page = client.get(link, follow=True)
    assert b"Choose a new password" in form_page.content
    response = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": "N3w-long-pass!", "new_password2": "N3w-long-pass!"}
    )
    assert response["Location"] == reverse("accounts:password-reset-complete")
    assert post_login(Client(), "agent", "N3w-long-pass!").status_code == 302
    assert AuditEntry.objects.filter(action="user.password-reset").exists()


@pytest.mark.django_db
def test_it_enforces_csrf_on_a_post(make_user):
    admin = make_user("admin", roles.ADMINISTRATOR)
    target = make_user("worker", roles.AGENT)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    from conftest import verify_two_factor

    verify_two_factor(client, admin)
    response = client.post(reverse("accounts:user-set-active", args=[target.pk]), {"active": "0"})
    assert response.status_code == 403
    target.refresh_from_db()
    assert target.is_active

    # The same POST with the page's token goes through: the 403 above was CSRF, not permissions.
    page = client.get(reverse("accounts:user-edit", args=[target.pk]))
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
    response = client.post(
        reverse("accounts:user-set-active", args=[target.pk]), {"active": "0", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    target.refresh_from_db()
    assert not target.is_active


@pytest.mark.django_db
def test_it_refuses_background_htmx_requests_before_the_second_factor(client, make_user):
    client.force_login(make_user("admin", roles.ADMINISTRATOR))
    response = client.get("/accounts/users/", HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert "HX-Redirect" not in response
    page = client.get(reverse("accounts:otp-enrol"))
    assert b'id="mainnav"' in page.content
    assert b"Administration" not in page.content  # no navigation before the second factor
