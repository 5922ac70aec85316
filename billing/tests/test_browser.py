"""Finance in headless Chromium: the invoice list, an invoice, reversing it (strict CSP, live server)."""

from datetime import date
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts import roles
from billing import services
from billing.models import Invoice
from billing.tests.factories import ContractFactory
from carparks.tests.factories import CorporateFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_finance_reviews_and_reverses_an_invoice(page, live_server, make_user, browser_login, settings, tmp_path):
    make_user("finn", roles.FINANCE, password="s3cret-pass")
    company = CorporateFactory(name="Bäcker & Söhne GmbH")
    ContractFactory(customer=company, cost_centre="CC-7", monthly_price=Decimal("119.00"))
    services.invoicing_run_execute(run=services.invoicing_run_create(period_start=date(2026, 3, 1)), deliver=False)
    invoice = Invoice.objects.get()
    errors = []
    page.on(
        "console", lambda message: errors.append(message.text) if "Content Security Policy" in message.text else None
    )
    failed = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)

    browser_login(page, live_server, "finn", "s3cret-pass")
    page.locator("#mainnav").get_by_role("link", name="Billing").click()
    expect(page.get_by_role("link", name=invoice.display_number)).to_be_visible()
    page.get_by_role("link", name=invoice.display_number).click()
    expect(page.get_by_role("heading", name=f"Invoice {invoice.display_number}")).to_be_visible()
    expect(page.get_by_text("CC-7")).to_be_visible()
    page.screenshot(path=str(tmp_path / "invoice.png"), full_page=True)

    page.get_by_label("Reason (printed on the credit note)").fill("Billed twice")
    page.get_by_role("button", name="Reverse with a credit note").click()
    expect(page.get_by_role("alert")).to_contain_text(f"reverses invoice {invoice.display_number}")
    expect(page.get_by_text("Void (credited)").first).to_be_visible()
    assert Invoice.objects.get(pk=invoice.pk).state == Invoice.State.VOID
    assert errors == []  # no CSP violations
    assert not [url for url in failed if "/billing/" in url], failed
