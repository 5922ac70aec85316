"""Headless Chromium through the real login page, against a live server."""

import base64

import pytest
from django_otp.oath import totp

from accounts import roles

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_agent_logs_in_through_the_login_page(page, live_server, make_user, browser_login):
    make_user("agent", roles.AGENT, password="s3cret-pass", first_name="Agnes")
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url

    browser_login(page, live_server, "agent", "wrong")
    assert page.get_by_role("alert").inner_text().startswith("Please enter a correct username and password")

    browser_login(page, live_server, "agent", "s3cret-pass")
    assert page.url == f"{live_server.url}/"
    assert page.get_by_role("heading", name="Welcome, Agnes").is_visible()
    # Static files come through (strict CSP, nothing external): Bootstrap styled the navigation.
    assert page.locator("nav.navbar").evaluate("el => getComputedStyle(el).display") == "flex"

    page.get_by_role("button", name="Agnes").click()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{live_server.url}/accounts/login/")


def test_an_administrator_enrols_an_authenticator_at_first_login(page, live_server, make_user, browser_login):
    make_user("admin", roles.ADMINISTRATOR, password="s3cret-pass")
    browser_login(page, live_server, "admin", "s3cret-pass")
    assert "/accounts/two-factor/enrol/" in page.url
    assert page.locator("svg.otp-qr").is_visible()

    secret = page.get_by_test_id("otp-secret").inner_text().replace(" ", "")
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    page.get_by_label("Six-digit code from your authenticator app").fill(f"{totp(key):06d}")
    page.get_by_role("button", name="Confirm and continue").click()
    page.wait_for_load_state()
    assert page.get_by_text("Your authenticator app is set up").is_visible()
    page.goto(f"{live_server.url}/accounts/users/")
    assert page.get_by_role("heading", name="Administration").is_visible()
