"""Shared pytest fixtures for every app's tests.

- ``make_user("name", roles.AGENT, carparks=[cp])``: a user with roles and car-park responsibilities.
- ``login(client, user)``: log a test client in; users of two-factor roles are also marked as
  verified with a TOTP device, so the two-factor middleware lets them through.
- ``browser`` / ``page``: headless Chromium through Playwright (mark such tests ``@pytest.mark.browser``
  and use ``live_server``); ``browser_login(page, live_server, "agent", "demo")`` logs in through the real
  login page by the fields' names, in any language (``parkinghq.browser_login.log_in``).
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


# --- Skipped tests fail `make test` -------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-skips",
        action="store_true",
        help="fail the run when a test was skipped (make test passes it): a missing service or browser "
        "is an error, never a silently smaller suite. Expected failures (xfail) run and are allowed.",
    )


_SKIPPED: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        _SKIPPED.append((report.nodeid, reason))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller decides
        return
    if session.config.getoption("--no-skips") and _SKIPPED and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if config.getoption("--no-skips") and _SKIPPED:
        terminalreporter.section("skipped tests fail this run (--no-skips)", sep="=", red=True, bold=True)
        for nodeid, reason in _SKIPPED:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}", red=True)


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
        # An error, not a skip: a run without Chromium has not tested the pages' behaviour.
        pytest.fail(
            f"no Chromium at {CHROMIUM}: apt-get install chromium, or set PARKINGHQ_CHROMIUM "
            "(or leave the browser tests out: -m 'not browser')",
            pytrace=False,
        )
    # Django's async-safety check trips over Playwright's event loop in the test thread.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(autouse=True)
def _language_reset() -> Iterator[None]:
    """Each test starts and ends in the default language: a request in German (LocaleMiddleware activates
    the language and nothing deactivates it) must not leave German behind for the next test's code."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture
def role_groups() -> None:
    """The role groups, for a transactional test that loads the demo: a browser test before it may have
    flushed the database, and with it the groups a data migration created."""
    from django.contrib.auth.models import Group

    from accounts.roles import ALL_ROLES, role_permissions_sync

    for name in ALL_ROLES:
        Group.objects.get_or_create(name=name)
    role_permissions_sync()


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
    """Log in through the real login page, by the fields' names (so in any language)."""
    from parkinghq.browser_login import log_in

    log_in(page, live_server.url, username, password)


@pytest.fixture(name="browser_login")
def browser_login_fixture() -> Callable[..., None]:
    return browser_login
