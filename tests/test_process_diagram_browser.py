"""One process on its diagram in headless Chromium: the current step is highlighted, the history and the
diagram point at each other; an incident is marked with its error and its Retry on the diagram runs the
step again (strict script CSP, live server)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from playwright.sync_api import expect

from accounts import roles
from conftest import verify_two_factor
from workflows import services
from workflows.models import Process
from workflows.registry import SystemTaskContext, system_task
from workflows.testing import install_definition, run_pending_system_steps

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CPMS = {"down": False}


@system_task("tests.diagram_sync", writes=["synced"])
def diagram_sync(ctx: SystemTaskContext) -> dict:
    """Test stand-in for a CPMS call: fails while the CPMS is down."""
    if CPMS["down"]:
        raise ConnectionError("the CPMS at cpms.example did not answer")
    return {"synced": True}


REVIEW = {
    "key": "diagram-review",
    "name": "Diagram review",
    "steps": [
        {"id": "start", "type": "start", "next": "review"},
        {
            "id": "review",
            "type": "user",
            "name": "Review claim",
            "role": roles.AGENT,
            "outcomes": {"ok": "approved", "reject": "rejected"},
        },
        {"id": "approved", "type": "end", "result": "approved"},
        {"id": "rejected", "type": "end", "result": "rejected"},
    ],
}
SYNC = {
    "key": "diagram-sync",
    "name": "Diagram sync",
    "steps": [
        {"id": "start", "type": "start", "next": "sync"},
        {
            "id": "sync",
            "type": "system",
            "name": "Sync with the CPMS",
            "task": "tests.diagram_sync",
            "retry": {"max_attempts": 1},
            "next": "done",
        },
        {"id": "done", "type": "end", "name": "Synced", "result": "synced"},
    ],
}


def session_cookie(user, live_server) -> dict:
    client = Client()
    client.force_login(user)
    verify_two_factor(client, user)
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}


@pytest.fixture
def admin(make_user):
    for name in roles.ALL_ROLES:
        Group.objects.get_or_create(name=name)
    return make_user("wfadmin", roles.WORKFLOW_ADMIN)


def open_process(page, live_server, process) -> list[str]:
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(  # a CSP violation, a missing asset (Chromium's own favicon request aside)
        "console",
        lambda msg: problems.append(msg.text) if msg.type == "error" and "favicon" not in msg.location["url"] else None,
    )
    page.goto(f"{live_server.url}{reverse('workflows:process-detail', args=[process.pk])}")
    page.wait_for_selector("#process-diagram[data-ready=true]")
    return problems


def test_the_current_step_is_highlighted_and_history_and_diagram_point_at_each_other(
    live_server, page, admin, make_user
):
    agent = make_user("agent1", roles.AGENT)
    install_definition(REVIEW)
    process = services.process_start(definition_key="diagram-review")
    page.context.add_cookies([session_cookie(admin, live_server)])
    problems = open_process(page, live_server, process)

    assert page.locator('.djs-element.phq-current[data-element-id="review"]').count() == 1
    assert page.locator('.djs-element.phq-visited[data-element-id="start"]').count() == 1
    assert page.locator('.djs-element.phq-current[data-element-id="start"]').count() == 0
    expect(page.locator(".phq-who")).to_have_text(f"Open for {roles.AGENT}")
    # the flow start → review is marked as taken
    taken = page.evaluate(
        """() => window.phqProcessViewer.get('elementRegistry')
              .filter(e => e.waypoints && e.source.id === 'start' && e.target.id === 'review')
              .map(e => document.querySelector(`[data-element-id="${e.id}"]`).classList.contains('phq-taken'))"""
    )
    assert taken == [True]

    # a step in the history: its name (the id only as a title) finds it on the diagram
    step = page.locator("#process-history .history-step", has_text="Review claim").first
    expect(step).to_have_attribute("title", "review — show on the diagram")
    step.click()
    assert page.locator('.djs-element.phq-focus[data-element-id="review"]').count() == 1
    # an element clicked on the diagram filters the history to its step
    page.locator('.djs-element[data-element-id="start"]').click()
    expect(page.locator("#history-filter")).to_be_visible()
    expect(page.locator("#history-filter-name")).to_have_text("Start")
    visible = page.locator("#process-history > li:visible")
    assert visible.count() == 2  # entered and left
    assert all(li == "start" for li in visible.evaluate_all("els => els.map(e => e.dataset.step)"))
    page.locator("#history-filter-clear").click()
    expect(page.locator("#history-filter")).to_be_hidden()
    assert problems == []

    # rejected: the flow into "rejected" is taken (through the outcome's gateway, where the export
    # draws one), the one into "approved" is not, and the end reached is shown
    task = process.tasks.get()
    services.task_claim(task=task, user=agent)
    services.task_complete(task=task, user=agent, outcome="reject")
    open_process(page, live_server, process)
    into = page.evaluate(
        """() => Object.fromEntries(window.phqProcessViewer.get('elementRegistry')
              .filter(e => e.waypoints && ['approved', 'rejected'].includes(e.target.id))
              .map(e => [e.target.id, document.querySelector(`[data-element-id="${e.id}"]`)
                                          .classList.contains('phq-taken')]))"""
    )
    assert into == {"approved": False, "rejected": True}
    assert page.locator('.djs-element.phq-end-reached[data-element-id="rejected"]').count() == 1
    assert page.locator(".djs-element.phq-current").count() == 0
    expect(page.locator(".phq-ended")).to_have_text("Ended: rejected")


def test_an_incident_is_marked_on_the_diagram_and_its_retry_runs_the_step_again(live_server, page, admin):
    install_definition(SYNC)
    CPMS["down"] = True
    try:
        process = services.process_start(definition_key="diagram-sync")
        run_pending_system_steps()
    finally:
        CPMS["down"] = False
    assert Process.objects.get(pk=process.pk).incident_open
    page.context.add_cookies([session_cookie(admin, live_server)])
    problems = open_process(page, live_server, process)

    assert page.locator('.djs-element.phq-incident[data-element-id="sync"]').count() == 1
    overlay = page.locator(".phq-incident-box")
    expect(overlay).to_contain_text("the CPMS at cpms.example did not answer")
    expect(page.locator("h2", has_text="Incident at step")).to_contain_text("Sync with the CPMS")
    assert problems == []

    # the CPMS is back (CPMS["down"] is False): Retry on the diagram posts the real form
    with page.expect_navigation():
        overlay.get_by_role("button", name="Retry").click()
    expect(page.locator(".alert-success")).to_contain_text("The failed step runs again.")
    assert Process.objects.get(pk=process.pk).incident_open is False
    run_pending_system_steps()
    open_process(page, live_server, process)
    assert page.locator('.djs-element.phq-end-reached[data-element-id="done"]').count() == 1
    assert page.locator('.djs-element.phq-incident[data-element-id="sync"]').count() == 0
    expect(page.locator(".phq-ended")).to_have_text("Ended: synced")
    assert Process.objects.get(pk=process.pk).state == Process.State.COMPLETED
