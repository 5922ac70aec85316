"""Finance in headless Chromium: an invoicing run is previewed, refused without the confirmation box,
confirmed, run by the worker; the dunning overview shows its empty state."""

from datetime import date
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts import roles
from billing import tasks
from billing.models import Invoice, InvoicingRun, PaymentMethod
from billing.tests.factories import ContractFactory
from carparks.tests.factories import CustomerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_finance_previews_confirms_and_watches_an_invoicing_run(page, live_server, make_user, browser_login):
    make_user("finn", roles.FINANCE, password="s3cret-pass")
    carded = CustomerFactory(name="Karla Karte")
    PaymentMethod.objects.create(customer=carded, stripe_customer_id="cus_k", stripe_payment_method_id="pm_k")
    ContractFactory(customer=carded, monthly_price=Decimal("119.00"), start_date=date(2000, 1, 1))
    ContractFactory(monthly_price=Decimal("80.00"), start_date=date(2000, 1, 1))
    failed = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 500 else None)

    browser_login(page, live_server, "finn", "s3cret-pass")
    page.locator("#mainnav").get_by_role("link", name="Billing").click()
    page.get_by_role("button", name="Preview run").click()
    expect(page.get_by_role("heading", name="Preview: what this run will do")).to_be_visible()
    expect(page.locator("[data-figure=invoices]")).to_have_text("2")
    expect(page.locator("[data-figure=gross]")).to_have_text("€199.00")
    expect(page.locator("[data-figure=card]")).to_contain_text("1")
    run = InvoicingRun.objects.get()
    assert run.state == InvoicingRun.State.PREVIEW and not Invoice.objects.exists()

    page.get_by_role("button", name="Confirm and run").click()
    expect(page.get_by_text("Tick the box to confirm the run")).to_be_visible()
    page.get_by_label("I have checked the preview").check()
    page.get_by_role("button", name="Confirm and run").click()
    expect(page.get_by_role("alert")).to_contain_text("is confirmed and queued")
    expect(page.get_by_text("Confirmed", exact=False).first).to_be_visible()

    tasks.invoicing_run_task(run.pk, deliver=False)  # what the worker does with the queued run
    page.reload()
    expect(page.get_by_text("2 invoices", exact=False)).to_be_visible()
    assert Invoice.objects.filter(run=run, state=Invoice.State.ISSUED).count() == 2

    page.get_by_label("breadcrumb").get_by_role("link", name="Invoices").click()
    page.get_by_role("link", name="Dunning").click()
    expect(page.get_by_text("No open dunnings.")).to_be_visible()
    assert failed == []


def test_a_month_too_far_ahead_is_refused_at_the_field(page, live_server, make_user, browser_login):
    make_user("finn", roles.FINANCE, password="s3cret-pass")
    browser_login(page, live_server, "finn", "s3cret-pass")
    page.goto(f"{live_server.url}/billing/runs/")
    ahead = timezone.localdate().replace(day=1).replace(year=timezone.localdate().year + 1)
    page.get_by_label("Month to bill").fill(f"{ahead:%Y-%m}")
    page.get_by_role("button", name="Preview the run").click()
    expect(page.locator(".invalid-feedback")).to_contain_text("too far ahead")
    assert not InvoicingRun.objects.exists()
