"""Process migration in headless Chromium: from the workflow page a workflow admin opens "Migrate running
processes", maps the renamed step, previews (nothing changes), confirms and migrates."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from playwright.sync_api import expect

from accounts import roles
from conftest import verify_two_factor
from workflows import services
from workflows.models import Process, Task
from workflows.testing import install_definition
from workflows.tests.test_migration import KEY, spec

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def session_cookie(user, live_server) -> dict:
    client = Client()
    client.force_login(user)
    verify_two_factor(client, user)
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}


def test_a_workflow_admin_previews_then_migrates_with_a_step_mapping(live_server, page, make_user):
    for name in roles.ALL_ROLES:
        Group.objects.get_or_create(name=name)
    admin = make_user("wfadmin", roles.WORKFLOW_ADMIN)
    agent = make_user("agent1", roles.AGENT)
    install_definition(spec(1))
    processes = [services.process_start(definition_key=KEY) for _ in range(5)]
    first = Task.objects.select_related("process").get(process=processes[0], state=Task.State.OPEN)
    services.task_complete(task=first, user=agent, outcome="done")  # 1 at check, 4 at review
    v2 = install_definition(spec(2))
    page.context.add_cookies([session_cookie(admin, live_server)])

    page.goto(f"{live_server.url}{reverse('workflows:definition-detail', kwargs={'key': KEY})}")
    page.get_by_role("link", name="Migrate running processes").click()
    page.wait_for_url(f"**{reverse('workflows:migrate', kwargs={'key': KEY})}")
    expect(page.get_by_label("From version (N)")).to_have_value("1")
    expect(page.get_by_label("To version (M)")).to_have_value("2")
    expect(page.locator('tr[data-step="check"]')).to_contain_text("Maps automatically to Check documents")

    page.get_by_label("Where the processes at Review application go").select_option("review_application")
    page.get_by_role("button", name="Preview").click()
    summary = page.locator("#migrate-summary")
    expect(summary).to_contain_text("Nothing has changed yet.")
    expect(summary).to_contain_text("5 processes will move to version 2 (1 automatically, 4 by your mapping)")
    assert Process.objects.filter(version=v2).count() == 0

    page.get_by_label("Move 5 processes from version 1 to version 2.").check()
    page.get_by_role("button", name="Migrate 5 processes").click()
    page.wait_for_url("**/migrate/result/")
    expect(page.locator("#migrate-counts")).to_contain_text("Moved to version 2")
    expect(page.locator(".alert")).to_contain_text("5 processes moved to version 2.")

    assert Process.objects.filter(version=v2, current_step="review_application").count() == 4
    assert Task.objects.filter(state=Task.State.OPEN, step_id="review_application").count() == 4
