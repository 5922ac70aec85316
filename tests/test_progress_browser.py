"""Live progress in headless Chromium: Finance watches an invoicing run's page while the run bills; the
count of contracts billed and the time left change before the run ends, and the polling stops once done."""

from __future__ import annotations

import threading
import time
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect

from accounts import roles
from billing import services
from billing.models import InvoicingRun
from billing.proration import month_period
from billing.tests.factories import ContractFactory
from carparks.tests.factories import CustomerFactory, ProductFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CONTRACTS = 240  # the run's size is what makes it take seconds: one customer per chunk, as a large run has


def _run_in_background(run: InvoicingRun, errors: list[BaseException]) -> threading.Thread:
    def work() -> None:
        try:
            services.invoicing_run_execute(run=run, chunk_size=1, deliver=False)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_an_invoicing_run_shows_its_progress_while_it_runs(page, live_server, make_user, browser_login):
    make_user("finn", roles.FINANCE, password="s3cret-pass")
    product = ProductFactory()
    for customer in CustomerFactory.create_batch(CONTRACTS):
        ContractFactory(customer=customer, product=product, monthly_price=Decimal("80.00"), start_date=date(2000, 1, 1))
    period_start, period_end = month_period(timezone.localdate())
    run = InvoicingRun.objects.create(period_start=period_start, period_end=period_end, state=InvoicingRun.State.QUEUED)

    browser_login(page, live_server, "finn", "s3cret-pass")
    page.goto(f"{live_server.url}/billing/runs/{run.pk}/")
    bar = page.locator(f"#run-bar-{run.pk}")
    expect(bar).to_have_attribute("value", "0")

    errors: list[BaseException] = []
    thread = _run_in_background(run, errors)
    seen: list[tuple[int, str]] = []
    deadline = time.monotonic() + 60
    while thread.is_alive() and time.monotonic() < deadline:
        done = int(bar.get_attribute("value") or 0)
        eta = page.locator("[data-progress=eta]")
        text = eta.inner_text() if eta.count() else ""
        if thread.is_alive() and (not seen or seen[-1][0] != done):
            seen.append((done, text))
        page.wait_for_timeout(250)
    thread.join(timeout=60)
    assert not errors, errors

    # Before the run ended the page showed contracts billed part-way, more than once, with the time left.
    partway = [(done, text) for done, text in seen if 0 < done < CONTRACTS]
    assert len(partway) >= 2, seen
    assert partway[0][0] < partway[-1][0]
    assert any("minute" in text and "left" in text for _, text in partway), partway
    assert page.get_by_text(f"of {CONTRACTS} contracts", exact=False).is_visible()

    # Done: the last poll shows the result and the page stops polling.
    expect(page.get_by_role("link", name="See the invoices")).to_be_visible(timeout=10_000)
    expect(bar).to_have_attribute("value", str(CONTRACTS))
    expect(page.locator("#run-progress")).not_to_have_attribute("hx-trigger", "every 2s")
    expect(page.locator("[data-progress=eta]")).to_have_count(0)
