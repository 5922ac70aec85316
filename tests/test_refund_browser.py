"""A partial refund from a customer-care case, through the pages only (headless Chromium): care passes the
case to Finance, Finance approves a partial amount in the basket, the invoice page shows the partial credit
note and the refund, and localstripe holds the refund."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.test import Client
from playwright.sync_api import expect

from accounts import roles
from billing import services as billing_services
from billing.models import CreditNote, Invoice, Payment
from billing.stripe_api import stripe_client
from billing.tests.test_stripe import issued_invoice, save_card
from carparks import services as carpark_services
from carparks.models import Case
from carparks.tests.factories import CustomerFactory
from workflows.models import Task
from workflows.services import definition_install
from workflows.testing import run_pending_system_steps

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CUSTOMER_CASE = Path(__file__).resolve().parents[1] / "carparks" / "definitions" / "customer-case.json"
WAIT = 15_000


def test_a_case_ends_with_a_partial_credit_note_and_a_refund_in_stripe(
    browser, live_server, make_user, browser_login, stripe_settings, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    definition_install(spec=json.loads(CUSTOMER_CASE.read_text()))
    # A customer with a card whose invoice was charged through localstripe.
    customer = CustomerFactory(name="Erika Mustermann")
    save_card(Client(), customer)
    invoice = issued_invoice(customer)
    charge = billing_services.invoice_charge(invoice=invoice).payment
    assert charge.status == Payment.Status.SUCCEEDED
    contract = invoice.lines.get().contract
    carpark = contract.product.carpark
    make_user("carla", roles.CARE, carparks=[carpark], password="care-pass-1")
    make_user("fiona", roles.FINANCE, carparks=[carpark], password="finance-pass-1")
    case = carpark_services.case_open(
        customer=customer,
        contract=contract,
        invoice_id=invoice.pk,
        kind=Case.Kind.REFUND,
        subject="Charged for days the car park was closed",
    )
    triage = Task.objects.get(process__object_id=case.pk, step_id="triage")

    # Customer care passes the case to Finance for a refund decision.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT)
    try:
        page = context.new_page()
        browser_login(page, live_server, "carla", "care-pass-1")
        page.goto(f"{live_server.url}/basket/")
        page.get_by_role("button", name=f"Claim Handle case #{triage.pk}").click()
        page.wait_for_url(f"**/basket/tasks/{triage.pk}/")
        page.get_by_label("Resolution (sent to the customer)").fill("Passed to Finance for a refund.")
        page.get_by_role("button", name="Refund", exact=True).click()
        page.wait_for_url(f"{live_server.url}/basket/")
        expect(page.locator("body")).to_contain_text("completed: refund")
    finally:
        context.close()

    decision = Task.objects.get(process__object_id=case.pk, step_id="finance_review")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT)
    try:
        page = context.new_page()
        browser_login(page, live_server, "fiona", "finance-pass-1")
        # Finance decides in the basket: a partial refund of 30.00.
        page.goto(f"{live_server.url}/basket/")
        page.get_by_role("button", name=f"Claim Decide refund #{decision.pk}").click()
        page.wait_for_url(f"**/basket/tasks/{decision.pk}/")
        page.get_by_label("Decision (sent to the customer)").fill("We refund 30 € for the closed days.")
        page.get_by_label("Refund amount in €").fill("30")
        page.get_by_role("button", name="Approve").click()
        page.wait_for_url(f"{live_server.url}/basket/")
        expect(page.locator("body")).to_contain_text("completed: approve")

        run_pending_system_steps()  # what the Celery worker does: the refund step, then the case is resolved

        # The invoice page shows the partial credit note, the refund and what is left to refund.
        page.locator("#mainnav").get_by_role("link", name="Billing").click()
        page.get_by_role("link", name=invoice.display_number).click()
        expect(page.get_by_role("heading", name=f"Invoice {invoice.display_number}")).to_be_visible()
        note = CreditNote.objects.get(invoice=invoice)
        refunds = page.get_by_role("table", name="Refunds")
        row = refunds.locator("tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("30.00")
        expect(row).to_contain_text("Succeeded")
        expect(row).to_contain_text(note.display_number)
        expect(row).to_contain_text("partial")
        expect(page.locator("#refundable-amount")).to_have_text("€89.00")
        expect(page.get_by_text("Paid", exact=True).first).to_be_visible()
        page.screenshot(path=str(tmp_path / "refunded-invoice.png"), full_page=True)
        # The credit note's PDF opens from the list.
        with page.expect_response(lambda r: f"/billing/credit-notes/{note.pk}/pdf/" in r.url) as pdf:
            page.evaluate("url => fetch(url)", f"/billing/credit-notes/{note.pk}/pdf/")
        assert pdf.value.status == 200 and pdf.value.headers["content-type"] == "application/pdf"
    finally:
        context.close()

    assert note.is_partial and note.gross_total == Decimal("30.00")
    assert Invoice.objects.get(pk=invoice.pk).state == Invoice.State.PAID
    assert Case.objects.get(pk=case.pk).state == Case.State.RESOLVED
    remote = stripe_client().v1.refunds.list(params={"charge": charge.stripe_charge_id, "limit": 10})
    assert [(r.amount, r.status) for r in remote] == [(3000, "succeeded")]
    assert note.refund.stripe_refund_id == remote.data[0].id
