"""Starting a workflow by hand in headless Chromium: a workflow admin follows the Start process link,
picks a workflow, submits the empty start form and sees what is missing, fills it in, and lands on the
new process with the values."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts import roles
from conftest import verify_two_factor
from workflows.models import Process
from workflows.testing import install_definition

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REFUND_BY_HAND = {
    "key": "manual-refund",
    "name": "Manual refund",
    "description": "Refund a customer who paid twice.",
    "steps": [
        {
            "id": "start",
            "type": "start",
            "next": "check",
            "inputs": [
                {"name": "customer_ref", "label": "Customer reference", "type": "text", "required": True},
                {"name": "amount", "label": "Amount (EUR)", "type": "number", "required": True},
            ],
        },
        {"id": "check", "type": "user", "name": "Check refund", "role": roles.FINANCE, "outcomes": {"ok": "end"}},
        {"id": "end", "type": "end"},
    ],
}


def session_cookie(user, live_server) -> dict:
    client = Client()
    client.force_login(user)
    verify_two_factor(client, user)
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}


def test_a_workflow_admin_starts_a_process_from_the_start_form(live_server, page, make_user):
    for name in roles.ALL_ROLES:
        Group.objects.get_or_create(name=name)
    install_definition(REFUND_BY_HAND)
    admin = make_user("wfadmin", roles.WORKFLOW_ADMIN)
    page.context.add_cookies([session_cookie(admin, live_server)])
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto(f"{live_server.url}/")
    page.locator("#mainnav").get_by_role("link", name="Start process").click()
    page.get_by_role("link", name="Manual refund").click()
    page.get_by_role("heading", name="Start Manual refund").wait_for()

    page.get_by_role("button", name="Start process").click()
    page.get_by_text("The process was not started").wait_for()
    assert page.locator("#start-customer_ref-error").inner_text() == "Customer reference is required."
    assert page.locator("#start-amount-error").inner_text() == "Amount (EUR) is required."
    assert not Process.objects.exists()

    page.get_by_label("Customer reference").fill("C-1042")
    page.get_by_label("Amount (EUR)").fill("17.5")
    with page.expect_navigation():
        page.get_by_role("button", name="Start process").click()
    process = Process.objects.get()
    assert page.url.endswith(f"/workflows/processes/{process.pk}/")
    assert f"Process #{process.pk} of Manual refund started." in page.locator("main").inner_text()
    variables = page.get_by_label("Process variables").inner_text()
    # labelled by the start form's inputs, the amount as money (no JSON)
    assert "Customer reference\tC-1042" in variables and "Amount (EUR)\t€17.50" in variables
    assert process.variables == {"customer_ref": "C-1042", "amount": 17.5}
    assert problems == []
