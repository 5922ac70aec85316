"""Log a Playwright page in through the portal's real login page, in any language.

The fields are found by their names (``username``, ``password``), never by their labels, which are in the
browser's language. Used by the tests' ``browser_login`` fixture (conftest.py), the German basket test and
``scripts/screenshot.py``. Playwright is only needed by the caller: this module imports nothing of it.
"""

from __future__ import annotations

from typing import Any

LOGIN_PATH = "/accounts/login/"


def log_in(page: Any, base_url: str, username: str, password: str) -> None:
    """Open the login page at ``base_url``, fill the fields by name and submit; returns once the next page
    has loaded (the portal, or the two-factor step for a user of a two-factor role)."""
    page.goto(f"{base_url.rstrip('/')}{LOGIN_PATH}")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    with page.expect_navigation():
        page.locator("form:has(input[name=password]) button[type=submit]").click()
