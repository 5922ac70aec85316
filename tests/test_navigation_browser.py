"""In Chromium, two demo roles click every link of the menu: each opens (no 403 page) with one active item."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from accounts.demo import DEMO_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_an_agent_and_finance_click_every_menu_link(page, live_server, browser_login, role_groups):
    call_command("demo_load", stdout=StringIO())
    seen: dict[str, list[str]] = {}
    for username in ("agent", "finance"):
        page.context.clear_cookies()
        browser_login(page, live_server, username, DEMO_PASSWORD)
        menu = page.locator("#mainnav ul.navbar-nav.me-auto a.nav-link")
        labels = [text.strip() for text in menu.all_inner_texts()]
        assert labels, f"{username} sees no menu"
        seen[username] = labels
        for label in labels:
            link = page.locator("#mainnav ul.navbar-nav.me-auto a.nav-link", has_text=label).first
            href = link.get_attribute("href")
            with page.expect_navigation() as navigation:
                link.click()
            response = navigation.value
            assert response is not None and response.status == 200, f"{username}: {label} answered {response}"
            assert "403" not in page.title() and "Forbidden" not in page.title()
            active = page.locator("#mainnav ul.navbar-nav.me-auto a.nav-link.active")
            assert active.count() == 1, f"{username} on {label}: {active.all_inner_texts()} active"
            assert active.get_attribute("href") == href
            assert active.get_attribute("aria-current") == "page"
    # the agent works the basket and contracts but not the books; Finance the other way round
    assert "Billing" not in " ".join(seen["agent"]) and "Basket" in " ".join(seen["agent"])
    assert "Billing" in " ".join(seen["finance"])
    assert not any(name in " ".join(seen["agent"]) for name in ("Workflows", "CPMS", "Monitoring", "Administration"))
