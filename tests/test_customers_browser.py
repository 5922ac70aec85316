"""In Chromium: an agent creates a private customer, is warned of a possible duplicate when creating a
second one with the same email and creates it anyway; a supervisor merges the two."""

from __future__ import annotations

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from accounts import roles
from accounts.models import AuditEntry
from carparks.models import Customer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def fill_customer(page, name, email):
    page.get_by_label("Taken by").select_option("phone")
    page.get_by_role("textbox", name="Name", exact=True).fill(name)
    page.get_by_role("textbox", name="Email", exact=True).fill(email)
    page.get_by_role("textbox", name="Street and number", exact=True).fill("Hauptstr. 1")
    page.get_by_role("textbox", name="Postcode", exact=True).fill("80331")
    page.get_by_role("textbox", name="City", exact=True).fill("Munich")


def test_an_agent_creates_customers_past_a_duplicate_warning_and_a_supervisor_merges_them(
    page, live_server, make_user, browser_login
):
    make_user("agent", roles.AGENT, password="s3cret-pass")
    supervisor = make_user("super", roles.SUPERVISOR, password="s3cret-pass")
    device = TOTPDevice.objects.create(user=supervisor, name="Phone", confirmed=True)

    browser_login(page, live_server, "agent", "s3cret-pass")
    page.goto(f"{live_server.url}/carparks/customers/")
    page.get_by_role("link", name="New customer").click()
    page.get_by_role("button", name="Create customer").click()
    expect(page.get_by_text("This field is required.").first).to_be_visible()  # nothing saved without a name
    fill_customer(page, "Ada Lovelace", "ada@example.com")
    page.get_by_role("button", name="Create customer").click()
    expect(page.get_by_role("alert")).to_contain_text("Customer Ada Lovelace was created")
    first = Customer.objects.get(name="Ada Lovelace")

    page.goto(f"{live_server.url}/carparks/customers/new/")
    fill_customer(page, "Ada King", "ADA@example.com")
    page.get_by_role("button", name="Create customer").click()
    warning = page.locator("#possible-duplicates")
    expect(warning).to_contain_text("Possible duplicates")
    expect(warning.get_by_role("link", name="Ada Lovelace")).to_be_visible()
    expect(warning).to_contain_text("same email")
    assert Customer.objects.count() == 1
    page.get_by_role("button", name="Create anyway").click()
    expect(page.get_by_role("alert")).to_contain_text("Customer Ada King was created")
    second = Customer.objects.get(name="Ada King")
    page.context.clear_cookies()

    browser_login(page, live_server, "super", "s3cret-pass")
    page.get_by_label("Six-digit code from your authenticator app").fill(f"{totp(device.bin_key):06d}")
    page.get_by_role("button", name="Verify").click()
    page.goto(f"{live_server.url}/carparks/customers/{first.pk}/")
    page.get_by_role("link", name="Merge").click()
    page.get_by_role("link", name="Merge with this one").click()
    expect(page.get_by_role("heading", name="Merge Ada King into Ada Lovelace")).to_be_visible()
    page.get_by_role("button", name="Merge customers").click()
    expect(page.get_by_role("alert")).to_contain_text("Ada King (customer")
    expect(page.get_by_role("heading", name="Ada Lovelace")).to_be_visible()

    second.refresh_from_db()
    assert second.merged_into_id == first.pk
    assert AuditEntry.objects.filter(action="customer.merged", actor=supervisor).exists()
    page.goto(f"{live_server.url}/carparks/customers/")
    expect(page.get_by_role("link", name="Ada Lovelace")).to_be_visible()
    expect(page.get_by_role("link", name="Ada King")).to_have_count(0)
