"""In Chromium, on a page with both search boxes (the customer list): Enter in the list's own box filters the
list (``customer_search``), Enter in the top bar's box opens the global search (``q``)."""

from __future__ import annotations

from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import call_command
from django.urls import reverse
from playwright.sync_api import expect

from accounts.demo import DEMO_PASSWORD
from carparks.access import customers_for_user

pytestmark = [pytest.mark.browser]


@pytest.mark.django_db(transaction=True)
def test_in_the_browser_the_lists_box_filters_and_the_top_bar_searches(
    live_server, page, browser_login, django_user_model, role_groups
):
    call_command("demo_load", stdout=StringIO())
    agent = django_user_model.objects.get(username="agent")
    customer = customers_for_user(agent).exclude(email="").order_by("-pk").first()
    browser_login(page, live_server, "agent", DEMO_PASSWORD)
    page.goto(f"{live_server.url}{reverse('carparks:customer-list')}")
    assert page.locator("input[name=q]").count() == 1  # only the top bar's

    page.get_by_label("Search customers", exact=True).fill(customer.name)
    with page.expect_navigation():
        page.get_by_label("Search customers", exact=True).press("Enter")
    assert parse_qs(urlsplit(page.url).query).get("customer_search") == [customer.name]
    assert urlsplit(page.url).path == reverse("carparks:customer-list")
    expect(page.locator("table tbody")).to_contain_text(customer.name)
    expect(page.get_by_label("Search customers", exact=True)).to_have_value(customer.name)

    top = page.locator("#topbar-q")
    top.fill(customer.email)
    with page.expect_navigation():
        top.press("Enter")
    assert urlsplit(page.url).path == reverse("carparks:search")
    assert parse_qs(urlsplit(page.url).query).get("q") == [customer.email]
    expect(page.locator("main")).to_contain_text(customer.name)
