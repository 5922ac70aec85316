"""Names, not ids, where a person reads: lists, the task timeline, the dashboard, the heatmap and incidents
show a step by its name. The workflow's ids are a modeler's (``Activity_009j129``), so showing the id
instead of the name fails here. An id may stay in a ``title`` tooltip, never in the text.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts import roles
from workflows.registry import PermanentError, SystemTaskContext, system_task
from workflows.services import process_start, task_claim, task_complete
from workflows.testing import install_definition, run_pending_system_steps

KEY = "names-refund"
CHECK = "Activity_009j129"
PAY = "Activity_1pay"
SPEC = {
    "key": KEY,
    "name": "Refund request",
    "steps": [
        {"id": "StartEvent_1", "type": "start", "name": "Request received", "next": CHECK},
        {
            "id": CHECK,
            "type": "user",
            "name": "Check the request",
            "role": roles.AGENT,
            "outcomes": {"approve": PAY, "reject": "Event_0rejected"},
        },
        {"id": PAY, "type": "system", "name": "Pay the refund", "task": "names.pay_refund", "next": "Event_0done"},
        {"id": "Event_0done", "type": "end", "name": "Refunded"},
        {"id": "Event_0rejected", "type": "end", "name": "Rejected"},
    ],
}


@system_task("names.pay_refund")
def pay_refund(ctx: SystemTaskContext) -> dict:
    raise PermanentError("the bank refused the transfer")


def text_of(html: str, start: str, end: str = "</table>") -> str:
    """The words a person reads between two markers (tags and their attributes, such as titles, removed)."""
    part = html[html.index(start) :]
    part = part[: part.index(end)]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", part))


@pytest.fixture
def version(db):
    return install_definition(SPEC)


@pytest.fixture
def admin(client, login, make_user):
    return login(client, make_user("admin", roles.ADMINISTRATOR))


@pytest.mark.django_db
def test_the_process_lists_show_the_current_step_by_its_name(client, admin, version):
    process = process_start(definition_key=KEY)
    assert process.current_step == CHECK

    html = client.get(reverse("workflows:process-list")).content.decode()
    row = text_of(html, "<table")
    assert "Check the request" in row and CHECK not in row
    assert f'title="Step id: {CHECK}"' in html  # the id stays for whoever needs it, as a tooltip

    html = client.get(reverse("monitoring:processes"), {"status": "running", "workflow": KEY, "step": CHECK})
    html = html.content.decode()
    table = text_of(html, 'id="process-table"')
    assert "Check the request" in table and CHECK not in table
    described = text_of(html, "<h1", "</p>")  # the drill-down says which step it is about
    assert "step “Check the request”" in described and CHECK not in described


@pytest.mark.django_db
def test_the_task_timeline_names_the_steps(client, admin, version):
    process = process_start(definition_key=KEY)
    task = process.tasks.get()

    html = client.get(reverse("workflows:task-detail", args=[task.pk])).content.decode()

    timeline = text_of(html, "Timeline", "</ol>")
    assert "Request received" in timeline and "Check the request" in timeline
    assert CHECK not in timeline and "StartEvent_1" not in timeline


@pytest.mark.django_db
def test_the_dashboard_and_the_heatmap_name_the_steps(client, admin, version):
    process_start(definition_key=KEY)

    html = client.get(reverse("monitoring:dashboard"), {"workflow": KEY}).content.decode()
    live = text_of(html, 'id="live-table"')
    assert "Check the request" in live and CHECK not in live

    html = client.get(reverse("monitoring:heatmap", args=[version.pk])).content.decode()
    table = text_of(html, 'id="heatmap-table"')
    assert "Check the request" in table and "Request received" in table
    assert CHECK not in table and "StartEvent_1" not in table
    data = client.get(reverse("monitoring:heatmap-data", args=[version.pk])).json()
    assert data["elements"][CHECK]["name"] == "Check the request"  # the diagram's badges say it too


@pytest.mark.django_db
def test_an_incident_names_the_system_step(client, admin, version):
    process = process_start(definition_key=KEY)
    task = process.tasks.get()
    task_claim(task=task, user=admin)
    task_complete(task=task, user=admin, outcome="approve")
    run_pending_system_steps()
    process.refresh_from_db()

    assert process.incident_open
    assert process.incident_error.startswith(f"System step “Pay the refund” ({PAY}, names.pay_refund) failed")
    assert "the bank refused the transfer" in process.incident_error


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_heatmap_badges_name_their_step(page, live_server, make_user, browser_login):
    version = install_definition(SPEC)
    process_start(definition_key=KEY)
    make_user("fiona", roles.FINANCE, password="s3cret-pass")
    browser_login(page, live_server, "fiona", "s3cret-pass")

    page.goto(f"{live_server.url}{reverse('monitoring:heatmap', args=[version.pk])}")
    page.wait_for_selector("#heatmap[data-overlays]")

    badge = page.locator(f'.heat-badge[data-element="{CHECK}"]')
    assert badge.count() == 1
    assert badge.get_attribute("title").startswith("Check the request: ")
    assert page.locator("#heatmap-table tbody th").first.inner_text() == "Request received"
