"""A person opens the dashboard (charts drawn, numbers beside them, drill-down) and the BPMN heatmap."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import roles

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_finance_opens_the_dashboard_and_the_heatmap(page, live_server, make_user, browser_login, story, carparks):
    make_user("fiona", roles.FINANCE, password="s3cret-pass")
    start = timezone.now() - timedelta(days=1, hours=3)
    story.full(start, carparks[0], wait=10, work=20)
    story.full(start + timedelta(minutes=30), carparks[1], wait=5, work=15, rework=True)
    story.start(timezone.now() - timedelta(minutes=20), carparks[0])
    errors: list[str] = []
    ours = ("/static/monitoring/", "/static/vendor/chart.js/", "/static/vendor/bpmn-js/", "/monitoring/")
    page.on(
        "console",
        lambda message: (
            errors.append(f"{message.location['url']}: {message.text}")
            if message.type == "error" and message.location["url"].startswith(tuple(live_server.url + p for p in ours))
            else None
        ),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))

    browser_login(page, live_server, "fiona", "s3cret-pass")
    page.goto(f"{live_server.url}/monitoring/")
    assert page.get_by_role("heading", name="Monitoring").is_visible()
    page.wait_for_selector("#chart-throughput[data-rendered='1']")
    page.wait_for_selector("#chart-basket[data-rendered='1']")
    shots = os.environ.get("MONITORING_SCREENSHOTS")  # a folder: look at what a person sees
    if shots:
        page.screenshot(path=f"{shots}/dashboard.png", full_page=True)
    assert page.locator("[data-kpi='running']").inner_text() == "1"
    assert page.locator("#workflow-table").get_by_text("Monitoring review").is_visible()
    flow = page.locator("#flow-table tfoot")
    assert flow.locator("td").nth(1).text_content().strip() == "3"  # started in the last 30 days

    # Drill down from the running count to the process behind it.
    page.locator("a:has([data-kpi='running'])").click()
    page.wait_for_selector("#process-table")
    assert page.locator("#process-table tbody tr").count() == 1
    assert "Running now" in page.content()

    # Analytics → heatmap: the diagram is drawn by bpmn-js with one badge per element.
    page.goto(f"{live_server.url}/monitoring/analytics/?workflow=mon-review")
    assert page.locator("#step-table tr[data-step='review'] td").first.inner_text() == "4"
    page.get_by_role("link", name="Heatmap on the diagram").click()
    page.wait_for_selector("#heatmap[data-overlays]")
    assert page.locator("#heatmap").get_attribute("data-overlays") == "5"
    badge = page.locator(".heat-badge[data-element='review']")
    assert badge.inner_text().startswith("4")
    assert page.locator("#heatmap svg").count() >= 1
    assert page.locator(".djs-element.heat-fill-5").count() >= 1  # the busiest element is coloured
    if shots:
        page.screenshot(path=f"{shots}/heatmap.png", full_page=True)
    assert errors == []
