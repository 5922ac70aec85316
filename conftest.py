"""Shared pytest fixtures for every app's tests.

- ``make_user("name", roles.AGENT, carparks=[cp])``: a user with roles and car-park responsibilities.
- ``login(client, user)``: log a test client in; users of two-factor roles are also marked as
  verified with a TOTP device, so the two-factor middleware lets them through.
- ``browser`` / ``page``: headless Chromium through Playwright (mark such tests ``@pytest.mark.browser``
  and use ``live_server``); ``browser_login(page, live_server, "agent", "demo")`` logs in through the real
  login page.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

CHROMIUM = os.environ.get("PARKINGHQ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def make_user(django_user_model: Any) -> Callable[..., Any]:
    def make(username: str = "user", *role_names: str, carparks: Any = (), password: str = "pw", **fields: Any) -> Any:
        from django.contrib.auth.models import Group
        from guardian.shortcuts import assign_perm

        from accounts.roles import RESPONSIBLE_PERMISSION

        user = django_user_model.objects.create_user(username, password=password, **fields)
        for name in role_names:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
        for carpark in carparks:
            assign_perm(RESPONSIBLE_PERMISSION, user, carpark)
        return user

    return make


def verify_two_factor(client: Any, user: Any) -> Any:
    """Mark the client's session as verified with a (created if need be) confirmed TOTP device."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Test authenticator", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


@pytest.fixture
def login() -> Callable[[Any, Any], Any]:
    def do_login(client: Any, user: Any) -> Any:
        from accounts.two_factor import needs_two_factor

        client.force_login(user)
        if needs_two_factor(user):
            verify_two_factor(client, user)
        return user

    return do_login


# --- Browser tests (Playwright driving Debian's Chromium) ---------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    # Django's async-safety check trips over Playwright's event loop in the test thread.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


def browser_login(page: Any, live_server: Any, username: str, password: str) -> None:
    """Log in through the real login page."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()


@pytest.fixture(name="browser_login")
def browser_login_fixture() -> Callable[..., None]:
    return browser_login
