"""Nothing typed is lost, in headless Chromium: an agent types a note on a task and clicks "Can't
decide"; the supervisor opens the escalated task and finds the note in its field."""

from __future__ import annotations

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from accounts import roles
from workflows.models import Task
from workflows.tests.basket_support import CarParkFactory, install, person, start_review

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_supervisor_finds_what_the_agent_typed_before_escalating(live_server, page, browser_login):
    install()
    north = CarParkFactory(name="North garage")
    agent = person("agent1", roles.AGENT, carparks=[north])
    supervisor = person("chief", roles.SUPERVISOR)
    for user in (agent, supervisor):
        user.set_password("secret-pass-1")
        user.save()
    device = TOTPDevice.objects.create(user=supervisor, name="Phone", confirmed=True)
    task = start_review(north, customer_name="Nora North")

    browser_login(page, live_server, "agent1", "secret-pass-1")
    page.goto(f"{live_server.url}/basket/tasks/{task.pk}/")
    page.get_by_role("button", name="Claim").click()
    page.wait_for_url(f"**/basket/tasks/{task.pk}/")
    page.get_by_label("Note").fill("Customer says the deposit was paid twice")
    page.locator("summary", has_text="Can't decide").click()
    page.get_by_label("Why can't you decide?").fill("Two payments in the bank statement?")
    page.get_by_role("button", name="Can't decide").click()
    page.wait_for_url(f"{live_server.url}/basket/")

    escalated = Task.objects.get(escalated_from=task)
    assert escalated.inputs["note"] == "Customer says the deposit was paid twice"

    page.context.clear_cookies()
    browser_login(page, live_server, "chief", "secret-pass-1")
    page.get_by_label("Six-digit code from your authenticator app").fill(f"{totp(device.bin_key):06d}")
    page.get_by_role("button", name="Verify").click()
    page.goto(f"{live_server.url}/basket/tasks/{escalated.pk}/")
    expect(page.get_by_label("Note")).to_have_value("Customer says the deposit was paid twice")
    expect(page.locator("#draft-note")).to_contain_text("Entries saved by Agent1 when escalating")
