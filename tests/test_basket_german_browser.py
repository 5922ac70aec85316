"""The task basket in German: an agent whose browser asks for German claims a review task and
completes it, reading German labels, German dates and German messages on the way."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from accounts import roles
from workflows.models import Process, Task
from workflows.tests.basket_support import CarParkFactory, install, person, start_review

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GERMAN_DATETIME = re.compile(r"\b\d{2}\.\d{2}\.\d{4} \d{2}:\d{2}\b")


@pytest.fixture
def german_page(browser: Any) -> Iterator[Any]:
    """A tab in a browser set to German (it sends Accept-Language: de-DE)."""
    context = browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


def test_a_german_agent_claims_and_completes_a_task_in_german(live_server, german_page, browser_login):
    page = german_page
    install()
    north = CarParkFactory(name="Parkhaus Nord")
    agent = person("agent1", roles.AGENT, carparks=[north])
    agent.set_password("secret-pass-1")
    agent.save()
    task = start_review(north, customer_name="Nora Nord")

    browser_login(page, live_server, "agent1", "secret-pass-1")  # by the fields' names: the labels are German
    page.goto(f"{live_server.url}/basket/")
    expect(page.locator("h1")).to_contain_text("Aufgabenkorb")
    tabs = page.locator(".nav-tabs")
    expect(tabs).to_contain_text("Offene Aufgaben")
    expect(tabs).to_contain_text("Meine Aufgaben")
    expect(tabs).to_contain_text("Erledigt")
    expect(page.get_by_label("Parkhaus")).to_be_visible()
    row = page.locator(f"#basket-results tr[data-task='{task.pk}']")
    expect(row).to_contain_text("Hoch")  # the priority's label
    expect(row).to_contain_text("Nicht übernommen")
    assert GERMAN_DATETIME.search(row.inner_text()), row.inner_text()  # due 05.12.2026 16:00, not ISO

    page.get_by_role("button", name=f"Review application #{task.pk} übernehmen").click()
    page.wait_for_url(f"**/basket/tasks/{task.pk}/")
    expect(page.locator("body")).to_contain_text("Sie haben „Review application“ übernommen.")
    expect(page.locator("#task-state")).to_have_text("Übernommen")
    expect(page.get_by_role("button", name="Zurückgeben")).to_be_visible()
    expect(page.get_by_role("button", name="Eingaben speichern")).to_be_visible()
    expect(page.get_by_role("heading", name="Ihre Entscheidung")).to_be_visible()
    expect(page.locator("body")).to_contain_text("Keine Entscheidung möglich? Eskalieren")

    # Step names, input labels and outcomes are the workflow's own words: they stay as written.
    page.get_by_label("Note").fill("Alle Unterlagen vollständig")
    page.get_by_label("Paid on").fill("24.12.2026")  # typed the German way
    page.get_by_label("Deposit received").check()
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{live_server.url}/basket/")
    expect(page.locator("body")).to_contain_text("„Review application“ erledigt: approve.")

    task.refresh_from_db()
    assert task.state == Task.State.COMPLETED and task.completed_by == agent
    process = Process.objects.get(pk=task.process_id)
    assert process.state == Process.State.COMPLETED and process.result == "done"  # moved on to its end
    assert process.variables["paid_on"] == "2026-12-24"
    assert process.variables["note"] == "Alle Unterlagen vollständig"

    page.get_by_role("link", name="Erledigt").click()
    done = page.locator(f"#basket-results tr[data-task='{task.pk}']")
    expect(done).to_contain_text("approve")
    assert GERMAN_DATETIME.search(done.inner_text()), done.inner_text()
    expect(page.locator("#basket-results thead")).to_contain_text("Ergebnis")
