"""Password-reset requests are throttled without telling who exists, the session id is renewed
after the second factor, and passwords have at least 12 characters."""

import pytest
from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import roles

RESET = "/accounts/password-reset/"


def request_reset(client, email):
    return client.post(RESET, {"email": email})


# --- Password reset -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_sixth_reset_request_for_an_address_within_the_hour_sends_no_mail(make_user, mailoutbox):
    assert settings.PASSWORD_RESET_RATE == "5/hour"
    make_user("agent", roles.AGENT, email="agent@example.com")
    answers = []
    for number in range(6):
        # From six different places: the limit is on the address asked for.
        answers.append(request_reset(Client(REMOTE_ADDR=f"198.51.100.{number + 1}"), "agent@example.com"))
    assert len(mailoutbox) == 5
    # The sixth answer is the very same as the others: nothing tells that it was held back.
    assert {(answer.status_code, answer["Location"]) for answer in answers} == {
        (302, reverse("accounts:password-reset-done"))
    }
    # Case does not make it a different address.
    request_reset(Client(REMOTE_ADDR="198.51.100.99"), "AGENT@example.com")
    assert len(mailoutbox) == 5
    # Another address is not held back.
    make_user("care", roles.CARE, email="care@example.com")
    request_reset(Client(REMOTE_ADDR="198.51.100.1"), "care@example.com")
    assert len(mailoutbox) == 6


@pytest.mark.django_db
def test_one_client_address_asking_for_many_addresses_is_throttled_too(make_user, mailoutbox, settings):
    settings.PASSWORD_RESET_IP_RATE = "3/hour"
    for number in range(4):
        make_user(f"user{number}", roles.AGENT, email=f"user{number}@example.com")
    client = Client(REMOTE_ADDR="203.0.113.66")
    # Addresses without an account count as well, or the throttle would reveal which exist.
    request_reset(client, "nobody@example.com")
    request_reset(client, "user0@example.com")
    request_reset(client, "user1@example.com")
    response = request_reset(client, "user2@example.com")
    assert response["Location"] == reverse("accounts:password-reset-done")
    assert [message.to for message in mailoutbox] == [["user0@example.com"], ["user1@example.com"]]
    request_reset(Client(REMOTE_ADDR="198.51.100.7"), "user3@example.com")
    assert len(mailoutbox) == 3


# --- Session after the second factor ------------------------------------------------------------


def _code(device):
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


@pytest.mark.django_db
def test_the_session_id_changes_when_the_code_is_accepted(client, make_user):
    admin = make_user("admin", roles.ADMINISTRATOR, password="s3cret-pass-12")
    device = TOTPDevice.objects.create(user=admin, name="phone", confirmed=True)
    client.post(reverse("accounts:login"), {"username": "admin", "password": "s3cret-pass-12"})
    before = client.cookies[settings.SESSION_COOKIE_NAME].value
    csrf_before = client.get(reverse("accounts:otp-verify")).context["csrf_token"]

    response = client.post(reverse("accounts:otp-verify"), {"token": _code(device)})
    assert response.status_code == 302
    after = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert after != before
    assert client.get("/accounts/users/").status_code == 200
    assert client.get(reverse("accounts:profile")).context["csrf_token"] != csrf_before
    # Whoever kept the old session id (it was known before the code) holds nothing.
    stale = Client()
    stale.cookies[settings.SESSION_COOKIE_NAME] = before
    assert stale.get("/accounts/users/")["Location"].startswith(reverse("accounts:login"))


@pytest.mark.django_db
def test_the_session_id_changes_when_a_first_authenticator_is_enrolled(client, make_user):
    make_user("admin", roles.ADMINISTRATOR, password="s3cret-pass-12")
    client.post(reverse("accounts:login"), {"username": "admin", "password": "s3cret-pass-12"})
    client.get(reverse("accounts:otp-enrol"))
    before = client.cookies[settings.SESSION_COOKIE_NAME].value
    device = TOTPDevice.objects.get(confirmed=False)
    response = client.post(reverse("accounts:otp-enrol"), {"token": _code(device)})
    assert response.status_code == 302
    assert client.cookies[settings.SESSION_COOKIE_NAME].value != before
    assert client.get("/accounts/users/").status_code == 200


# --- Password length ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_password_needs_twelve_characters(client, make_user, login):
    user = make_user("agent", roles.AGENT, password="old-pass-1234")
    with pytest.raises(ValidationError, match="at least 12 characters"):
        password_validation.validate_password("Tr0ub4dor&3", user)  # 11
    password_validation.validate_password("Tr0ub4dor&3x", user)  # 12

    login(client, user)
    profile = reverse("accounts:profile")
    refused = client.post(
        profile, {"old_password": "old-pass-1234", "new_password1": "Tr0ub4dor&3", "new_password2": "Tr0ub4dor&3"}
    )
    assert refused.status_code == 200
    assert b"at least 12 characters" in refused.content
    user.refresh_from_db()
    assert user.check_password("old-pass-1234")
    accepted = client.post(
        profile, {"old_password": "old-pass-1234", "new_password1": "Tr0ub4dor&3x", "new_password2": "Tr0ub4dor&3x"}
    )
    assert accepted.status_code == 302
