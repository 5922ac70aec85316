"""Live progress of a statement build in headless Chromium: Finance clicks "Build", the request returns
at once with the build queued, and while the job adds up the month's days (slowed down by the test) the
build page shows the steps done and the step under way changing before it ends; when done it links the
statement and stops polling."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from accounts import roles
from monitoring import builds, statements
from monitoring.models import Statement, StatementBuild
from tests.browser import progress_watch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_finance_watches_a_statement_build(page, live_server, make_user, browser_login, monkeypatch):
    make_user("finn", roles.FINANCE, password="s3cret-pass")
    aggregate = statements.aggregate_day

    def slow_aggregate(day):  # the test's slowness, so the job can be watched; the product has none
        time.sleep(0.25)
        return aggregate(day)

    monkeypatch.setattr(statements, "aggregate_day", slow_aggregate)
    failed: list[str] = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    page.on("pageerror", lambda error: failed.append(str(error)))

    browser_login(page, live_server, "finn", "s3cret-pass")
    page.goto(f"{live_server.url}/monitoring/statements/")
    page.get_by_label("Frequency").select_option("monthly")
    page.get_by_role("button", name="Build", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("The statement is being built")
    expect(page.locator("[data-build=queued]")).to_be_visible()
    build = StatementBuild.objects.get()
    assert not Statement.objects.exists()
    total = statements.statement_build_steps(build.period_start, build.period_end)
    assert total >= 28 + len(statements.FIXED_STEPS)  # every day of last month is added up

    seen = progress_watch(
        page,
        lambda: builds.statement_build_run(build=build),  # what the Celery worker does with the queued build
        bar=f"#build-bar-{build.pk}",
        label="[data-build=step]",
        timeout=90,
    )
    bar = page.locator(f"#build-bar-{build.pk}")

    partway = [(done, label) for done, label in seen if 0 < done < total]
    assert len(partway) >= 2, seen
    assert partway[0][0] < partway[-1][0]
    assert any(label == "Adding up the period's days…" for _, label in partway), partway

    expect(page.get_by_role("link", name="Open the statement")).to_be_visible(timeout=10_000)
    expect(bar).to_have_attribute("value", str(total))
    expect(page.locator("#build-progress")).not_to_have_attribute("hx-trigger", "every 2s")
    page.get_by_role("link", name="Open the statement").click()
    expect(page.get_by_role("heading", name="Monthly statement")).to_be_visible()
    assert Statement.objects.get().built_by.username == "finn"
    assert failed == []
