"""Live progress in headless Chromium: Finance watches an invoicing run's page while the run bills; the
count of contracts billed and the time left change before the run ends, and the polling stops once done."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts import roles
from billing import services
from billing.models import InvoicingRun
from billing.proration import month_period
from billing.tests.factories import ContractFactory
from carparks.tests.factories import CustomerFactory, ProductFactory
from tests.browser import progress_watch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CONTRACTS = 240  # one customer per chunk, as a large run has
CHUNK_SECONDS = 0.03  # each chunk also takes this long, so the run lasts several of the page's 2 s polls
# (without it a fast machine billed the 240 contracts between two polls)


def test_an_invoicing_run_shows_its_progress_while_it_runs(page, live_server, make_user, browser_login, monkeypatch):
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

    invoice_chunk = services._invoice_chunk

    def slow_chunk(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(CHUNK_SECONDS)
        return invoice_chunk(*args, **kwargs)

    monkeypatch.setattr(services, "_invoice_chunk", slow_chunk)
    seen = progress_watch(
        page,
        lambda: services.invoicing_run_execute(run=run, chunk_size=1, deliver=False),
        bar=f"#run-bar-{run.pk}",
        label="[data-progress=eta]",
        every_ms=250,
    )

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
