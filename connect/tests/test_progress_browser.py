"""Live progress of a CPMS sync in headless Chromium: a supervisor starts a whitelist reconciliation on
the connection page, the request returns at once (the job is queued), and while the worker asks the
(slowed-down) simulator car park by car park, the page shows the records done of the total and the time
left changing before the run ends; once finished it shows the result and stops polling."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from accounts import roles
from connect import services, tasks
from connect.models import CpmsConnection, SyncRun
from connect.simulator import start_simulator
from tests.browser import progress_watch, session_cookie

from .conftest import Sim

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CARPARKS = 20  # one request per car park, each answered 0.4 s late: the run takes seconds


@pytest.fixture
def slow_cpms():
    running = start_simulator(carparks=CARPARKS, seed=11)
    try:
        yield Sim(running)
    finally:
        running.stop()


def test_a_supervisor_watches_a_reconciliation_progress(page, live_server, make_user, slow_cpms):
    cpms = CpmsConnection(name="Slow CPMS", code="slow", kind=CpmsConnection.Kind.APDS, base_url=slow_cpms.url)
    cpms.timeout_seconds = 5.0
    cpms.set_secret("any-token")
    cpms.save()
    services.sync_static(connection=cpms)
    page.context.add_cookies([session_cookie(make_user("sue", roles.SUPERVISOR), live_server)])
    failed: list[str] = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    page.on("pageerror", lambda error: failed.append(str(error)))

    page.goto(f"{live_server.url}/connect/{cpms.pk}/")
    started = time.monotonic()
    page.get_by_role("button", name="Reconcile whitelist now").click()
    expect(page.get_by_role("alert")).to_contain_text("its progress shows here when it starts")
    expect(page.locator("[data-progress=queued]")).to_be_visible()
    assert time.monotonic() - started < 5 and not SyncRun.objects.filter(kind="reconcile").exists()

    slow_cpms.faults("slow", delay=0.4)
    seen = progress_watch(
        page,
        lambda: tasks.reconcile_task.apply(args=[cpms.pk], throw=True),  # what a Celery worker does with the job
        bar="progress[id^=sync-bar-]",
        label="[data-progress=eta]",
    )

    # Before the run ended the page showed records done part-way, more than once, with the time left.
    partway = [(done, text) for done, text in seen if 0 < done < CARPARKS]
    assert len(partway) >= 2, seen
    assert partway[0][0] < partway[-1][0]
    assert any("left" in text for _, text in partway), partway

    run = SyncRun.objects.get(kind="reconcile")
    assert run.status == SyncRun.Status.SUCCEEDED and (run.progress_done, run.progress_total) == (CARPARKS, CARPARKS)
    panel = page.locator("#sync-progress")
    expect(panel).to_contain_text(f"{CARPARKS} of {CARPARKS} records handled", timeout=10_000)
    expect(panel).to_contain_text("Succeeded")
    expect(panel).not_to_have_attribute("hx-trigger", "every 2s")
    expect(page.locator("[data-progress=eta]")).to_have_count(0)

    # The run's own page shows the finished progress, without polling, and its results.
    panel.get_by_role("link", name="Reconciliation").click()
    expect(page.locator("#run-progress")).to_contain_text(f"{CARPARKS} of {CARPARKS} records handled")
    expect(page.locator("#run-progress")).not_to_have_attribute("hx-trigger", "every 2s")
    assert failed == []
