"""Headless Chromium through the real login page, against a live server."""

import base64

import pytest
from django_otp.oath import totp
from playwright.sync_api import expect

from accounts import roles

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_agent_logs_in_through_the_login_page(page, live_server, make_user, browser_login):
    make_user("agent", roles.AGENT, password="s3cret-pass", first_name="Agnes")
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url

    browser_login(page, live_server, "agent", "wrong")
    expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username and password")

    browser_login(page, live_server, "agent", "s3cret-pass")
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Welcome, Agnes")).to_be_visible()
    # Static files come through (strict CSP, nothing external): Bootstrap styled the navigation.
    assert page.locator("nav.navbar").evaluate("el => getComputedStyle(el).display") == "flex"

    page.get_by_role("button", name="Agnes").click()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{live_server.url}/accounts/login/")


def test_an_administrator_enrols_an_authenticator_at_first_login(page, live_server, make_user, browser_login):
    make_user("admin", roles.ADMINISTRATOR, password="s3cret-pass")
    browser_login(page, live_server, "admin", "s3cret-pass")
    expect(page).to_have_url(f"{live_server.url}/accounts/two-factor/enrol/?next=%2F")
    expect(page.locator("svg.otp-qr")).to_be_visible()
    # No navigation (and none of its htmx polls) before the second factor.
    expect(page.locator("#mainnav .nav-link")).to_have_count(1)  # only the user menu

    secret = page.get_by_test_id("otp-secret").inner_text().replace(" ", "")
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    page.get_by_label("Six-digit code from your authenticator app").fill(f"{totp(key):06d}")
    page.get_by_role("button", name="Confirm and continue").click()
    expect(page.get_by_text("Your authenticator app is set up")).to_be_visible()
    page.goto(f"{live_server.url}/accounts/users/")
    expect(page.get_by_role("heading", name="Administration")).to_be_visible()
