"""The task basket in headless Chromium: log in, filter the queue by car park (htmx), claim a task,
fill in its inputs and complete it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts import roles
from workflows.models import Process, Task
from workflows.tests.basket_support import CarParkFactory, install, person, start_review

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_an_agent_filters_the_queue_claims_and_completes_a_task(live_server, page, browser_login):
    install()
    north, south = CarParkFactory(name="North garage"), CarParkFactory(name="South garage")
    agent = person("agent1", roles.AGENT, carparks=[north, south])
    agent.set_password("secret-pass-1")
    agent.save()
    north_task = start_review(north, customer_name="Nora North")
    south_task = start_review(south, customer_name="Sam South")

    browser_login(page, live_server, "agent1", "secret-pass-1")
    page.goto(f"{live_server.url}/basket/")
    rows = page.locator("#basket-results tbody tr")
    expect(rows).to_have_count(2)
    badge = page.locator("#basket-badge")
    badge.filter(has_text="2").wait_for()  # the navigation badge, loaded by htmx

    page.get_by_label("Car park").select_option(label="South garage")
    expect(rows).to_have_count(1)
    assert "Sam South" in page.locator("#basket-results").inner_text()
    assert f"carpark={south.pk}" in page.url  # the filter is in the address (htmx push-url)

    page.get_by_role("button", name=f"Claim Review application #{south_task.pk}").click()
    page.wait_for_url(f"**/basket/tasks/{south_task.pk}/")
    assert "You claimed" in page.content()
    page.get_by_label("Note").fill("All documents present")
    page.get_by_label("Deposit amount").fill("25")
    page.get_by_label("Deposit received").check()
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{live_server.url}/basket/")
    assert "completed: approve" in page.content()

    south_task.refresh_from_db()
    assert south_task.state == Task.State.COMPLETED and south_task.completed_by == agent
    assert Process.objects.get(pk=south_task.process_id).variables["note"] == "All documents present"
    north_task.refresh_from_db()
    assert north_task.state == Task.State.OPEN
