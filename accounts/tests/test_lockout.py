"""Login lockout per account and per client address, client addresses behind trusted proxies only,
a lock that ends exactly when configured, and the ways its owner or an administrator lift it."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from axes.helpers import get_cool_off
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from accounts.models import AuditEntry
from parkinghq.http import client_ip
from tests.test_settings import production_env, run_manage

LOGIN = "/accounts/login/"
PROXY = "10.0.0.2"  # the TLS proxy in front of the portal
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def attempt(username, password, *, client_address=None, via_proxy=True, client=None):
    """A login POST as the portal sees it: from the proxy with the client's address appended, or
    straight from ``client_address``."""
    client = client or Client()
    if via_proxy:
        meta = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": client_address or "203.0.113.1"}
    else:
        meta = {"REMOTE_ADDR": client_address or "203.0.113.1"}
    return client.post(LOGIN, {"username": username, "password": password}, **meta)


@pytest.fixture
def behind_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    return settings


# --- The client's address ----------------------------------------------------------------------


def _request(remote, forwarded=None):
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **meta)


def test_forwarded_for_is_ignored_from_a_peer_that_is_not_a_trusted_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert client_ip(_request("198.51.100.4", "1.2.3.4")) == "198.51.100.4"
    settings.TRUSTED_PROXIES = []
    assert client_ip(_request(PROXY, "1.2.3.4")) == PROXY


def test_behind_trusted_proxies_the_right_most_untrusted_address_is_the_client(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24", "192.0.2.10"]
    # The client wrote "6.6.6.6" itself; its real address was appended by the outer proxy.
    assert client_ip(_request(PROXY, "6.6.6.6, 203.0.113.7, 192.0.2.10")) == "203.0.113.7"
    assert client_ip(_request(PROXY, "203.0.113.7")) == "203.0.113.7"
    assert client_ip(_request(PROXY, "2001:db8::7")) == "2001:db8::7"
    # Garbage stops the walk at the proxy that passed it on; no header means the proxy itself.
    assert client_ip(_request(PROXY, "not-an-address, 192.0.2.10")) == "192.0.2.10"
    assert client_ip(_request(PROXY)) == PROXY


def test_a_bad_trusted_proxies_value_stops_manage_py_naming_it():
    result = run_manage("check", TRUSTED_PROXIES="10.0.0.0/24, proxy.internal")
    assert result.returncode == 2
    assert "Configuration error: TRUSTED_PROXIES must list IP addresses" in result.stderr


# --- Locks --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_behind_the_proxy_one_persons_failures_lock_neither_other_accounts_nor_other_people(behind_proxy, make_user):
    make_user("agent", roles.AGENT, password="agent-pass-123")
    make_user("care", roles.CARE, password="care-pass-1234")
    for _ in range(behind_proxy.AXES_FAILURE_LIMIT):
        attempt("agent", "wrong", client_address="203.0.113.66")
    # Everybody else arrives through the same proxy; they are not locked out.
    assert attempt("care", "care-pass-1234", client_address="198.51.100.7").status_code == 302


@pytest.mark.django_db
@pytest.mark.parametrize("via_proxy", [True, False])
def test_an_account_locks_after_the_limit_from_any_mix_of_addresses(behind_proxy, make_user, via_proxy):
    make_user("agent", roles.AGENT, password="agent-pass-123")
    for number in range(behind_proxy.AXES_FAILURE_LIMIT - 1):
        response = attempt("agent", "wrong", client_address=f"203.0.113.{number + 10}", via_proxy=via_proxy)
        assert response.status_code == 200
    assert attempt("agent", "wrong", client_address="198.51.100.99", via_proxy=via_proxy).status_code == 429
    # The right password from yet another address is refused too while the lock lasts.
    assert attempt("agent", "agent-pass-123", client_address="192.0.2.200", via_proxy=via_proxy).status_code == 429


@pytest.mark.django_db
def test_one_address_trying_many_accounts_is_locked_out_without_locking_the_accounts(behind_proxy, make_user):
    behind_proxy.LOGIN_IP_FAILURE_LIMIT = 8
    make_user("care", roles.CARE, password="care-pass-1234")
    sprayer = "203.0.113.66"
    for number in range(behind_proxy.LOGIN_IP_FAILURE_LIMIT - 1):
        assert attempt(f"someone{number}", "Winter2026!", client_address=sprayer).status_code == 200
    assert attempt("someone-else", "Winter2026!", client_address=sprayer).status_code == 429
    # Not even a right password gets through from that address...
    assert attempt("care", "care-pass-1234", client_address=sprayer).status_code == 429
    # ...while the account's owner elsewhere logs in as usual.
    assert attempt("care", "care-pass-1234", client_address="198.51.100.7").status_code == 302


@pytest.mark.django_db
def test_a_forged_forwarded_for_does_not_spread_one_address_over_many(make_user, settings):
    settings.LOGIN_IP_FAILURE_LIMIT = 4
    for number in range(settings.LOGIN_IP_FAILURE_LIMIT - 1):
        response = Client().post(
            LOGIN,
            {"username": f"u{number}", "password": "x"},
            REMOTE_ADDR="203.0.113.66",
            HTTP_X_FORWARDED_FOR=f"10.9.9.{number}",
        )
        assert response.status_code == 200
    response = Client().post(
        LOGIN, {"username": "u-last", "password": "x"}, REMOTE_ADDR="203.0.113.66", HTTP_X_FORWARDED_FOR="10.9.9.99"
    )
    assert response.status_code == 429


@pytest.mark.django_db
def test_logging_in_to_ones_own_account_does_not_reset_the_count_of_ones_address(behind_proxy, make_user):
    behind_proxy.LOGIN_IP_FAILURE_LIMIT = 6
    make_user("mallory", roles.CARE, password="mallory-pass-1")
    sprayer = "203.0.113.66"
    for number in range(behind_proxy.LOGIN_IP_FAILURE_LIMIT - 1):
        attempt(f"victim{number}", "guess", client_address=sprayer)
        assert attempt("mallory", "mallory-pass-1", client_address=sprayer).status_code == 302
    assert attempt("victim-last", "guess", client_address=sprayer).status_code == 429


@pytest.mark.django_db
def test_the_lock_ends_exactly_the_configured_time_after_the_failure_that_caused_it(behind_proxy, make_user):
    # The documented lock (README, docs/security.md): 15 minutes. Tests run on the shipped default.
    duration = get_cool_off()
    assert duration == timedelta(minutes=15)
    make_user("agent", roles.AGENT, password="agent-pass-123")
    with time_machine.travel(START, tick=False):
        for _ in range(behind_proxy.AXES_FAILURE_LIMIT):
            response = attempt("agent", "wrong", client_address="203.0.113.66")
        assert response.status_code == 429
    # Tries while locked (wrong or right) neither get in nor push the end further out.
    with time_machine.travel(START + duration - timedelta(seconds=1), tick=False):
        assert attempt("agent", "wrong", client_address="203.0.113.66").status_code == 429
        assert attempt("agent", "agent-pass-123", client_address="198.51.100.7").status_code == 429
    with time_machine.travel(START + duration + timedelta(seconds=1), tick=False):
        assert attempt("agent", "agent-pass-123", client_address="198.51.100.7").status_code == 302


def test_production_locks_for_fifteen_minutes_after_five_failures():
    probe = (
        "from django.conf import settings; from axes.helpers import get_cool_off; "
        "print(get_cool_off().total_seconds(), settings.AXES_FAILURE_LIMIT)"
    )
    result = run_manage("shell", "--no-imports", "-c", probe, **production_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["900.0", "5"]


@pytest.mark.django_db
def test_the_lock_page_says_which_lock_and_when_it_ends(behind_proxy, make_user):
    make_user("agent", roles.AGENT, password="agent-pass-123")
    with time_machine.travel(START, tick=False):
        for _ in range(behind_proxy.AXES_FAILURE_LIMIT):
            response = attempt("agent", "wrong", client_address="203.0.113.66")
    ends = timezone.localtime(START + get_cool_off()).strftime("%H:%M")
    assert response.status_code == 429
    assert f'data-testid="locked-until">{ends}<' in response.content.decode()
    assert "not even with the right password" in response.content.decode()


@pytest.mark.django_db
def test_setting_a_new_password_through_the_emailed_link_lifts_the_lock(behind_proxy, make_user, mailoutbox):
    import re

    make_user("agent", roles.AGENT, password="agent-pass-123", email="agent@example.com")
    for _ in range(behind_proxy.AXES_FAILURE_LIMIT):
        attempt("agent", "wrong", client_address="203.0.113.66")
    owner = Client()
    owner.post(reverse("accounts:password-reset"), {"email": "agent@example.com"})
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+)", mailoutbox[-1].body).group(1)
    form_page = owner.get(link, follow=True)
    owner.post(form_page.redirect_chain[-1][0], {"new_password1": "N3w-long-pass!", "new_password2": "N3w-long-pass!"})
    assert attempt("agent", "N3w-long-pass!", client_address="198.51.100.7").status_code == 302


@pytest.mark.django_db
def test_an_administrator_sees_the_lock_and_lifts_it_on_the_users_page(behind_proxy, make_user, login):
    agent = make_user("agent", roles.AGENT, password="agent-pass-123")
    for _ in range(behind_proxy.AXES_FAILURE_LIMIT):
        attempt("agent", "wrong", client_address="203.0.113.66")
    admin_client = Client()
    login(admin_client, make_user("admin", roles.ADMINISTRATOR))
    page = admin_client.get(reverse("accounts:user-edit", args=[agent.pk]))
    assert b'data-testid="login-locked"' in page.content
    response = admin_client.post(reverse("accounts:user-unlock", args=[agent.pk]))
    assert response.status_code == 302
    assert attempt("agent", "agent-pass-123", client_address="198.51.100.7").status_code == 302
    assert AuditEntry.objects.filter(action="user.unlock", target_id=str(agent.pk), actor_username="admin").exists()
    page = admin_client.get(reverse("accounts:user-edit", args=[agent.pk]))
    assert b'data-testid="login-locked"' not in page.content
