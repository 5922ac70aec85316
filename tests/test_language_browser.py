"""The portal in German in headless Chromium: the user's own choice (account page and top-bar menu), the
browser's Accept-Language when there is none, and the choice winning over the browser."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from accounts import roles
from accounts.models import AuditEntry, Preference
from billing.models import Invoice
from carparks.tests.factories import CustomerFactory
from conftest import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_user_chooses_german_on_the_account_page(live_server, page, make_user):
    user = make_user("erika", roles.FINANCE, first_name="Erika", last_name="Muster")
    device = TOTPDevice.objects.create(user=user, name="Telefon", confirmed=True)
    TOTPDevice.objects.filter(pk=device.pk).update(created_at=datetime(2026, 12, 24, 9, 0, tzinfo=UTC))
    Invoice.objects.create(
        customer=CustomerFactory(name="Parkhaus Kunde"),
        period_start=date(2026, 12, 1),
        period_end=date(2026, 12, 31),
        gross_total=Decimal("1234.50"),
    )
    browser_login(page, live_server, "erika", "pw")

    page.goto(f"{live_server.url}{reverse('accounts:profile')}")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_text("added 2026-12-24")).to_be_visible()
    page.get_by_role("combobox", name="Language").select_option(label="Deutsch")
    page.get_by_role("button", name="Save language").click()

    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page).to_have_title(re.compile(r"^Mein Konto · ParkingHQ"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Mein Konto")
    expect(page.get_by_role("alert")).to_contain_text("Sprache gespeichert.")
    expect(page.get_by_text("hinzugefügt am 24.12.2026")).to_be_visible()
    expect(page.get_by_role("combobox", name="Sprache")).to_have_value("de")
    page.get_by_role("button", name="Erika Muster: mein Konto").click()
    menu = page.locator(".dropdown-menu")
    expect(menu.get_by_role("link", name="Mein Konto")).to_be_visible()
    expect(menu.get_by_role("button", name="Abmelden")).to_be_visible()
    assert Preference.objects.get(user=user).language == "de"
    assert AuditEntry.objects.filter(action="user.language", new="de").count() == 1

    page.goto(f"{live_server.url}{reverse('billing:invoice-list')}")
    expect(page.get_by_role("row", name=re.compile("Parkhaus Kunde"))).to_contain_text("1.234,50\u00a0€")


def test_the_browsers_german_is_used_when_the_user_chose_none(live_server, browser, make_user):
    make_user("erika", roles.AGENT, first_name="Erika", last_name="Muster")
    context = browser.new_context(locale="de-DE")
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}{reverse('accounts:login')}")
        expect(page.locator("html")).to_have_attribute("lang", "de")
        page.get_by_label("Benutzername").fill("erika")
        page.get_by_label("Passwort").fill("pw")
        page.get_by_role("button", name="Anmelden").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Willkommen, Erika Muster")
        expect(page).to_have_title(re.compile(r"^Start · ParkingHQ"))
        expect(page.get_by_text("Ihre Arbeit heute").first).to_be_visible()
    finally:
        context.close()


def test_the_users_choice_beats_the_browser_and_the_top_bar_switches(live_server, browser, make_user):
    user = make_user("erika", roles.AGENT, first_name="Erika", last_name="Muster")
    Preference.objects.create(user=user, language="en")
    context = browser.new_context(locale="de-DE")
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}{reverse('accounts:login')}")
        page.get_by_label("Benutzername").fill("erika")
        page.get_by_label("Passwort").fill("pw")
        page.get_by_role("button", name="Anmelden").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Erika Muster")
        expect(page.locator("html")).to_have_attribute("lang", "en")

        page.get_by_role("button", name="Erika Muster: my account").click()
        page.locator('[data-testid="topbar-language"]').get_by_role("button", name="Deutsch").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Willkommen, Erika Muster")
        expect(page.get_by_role("alert")).to_contain_text("Sprache gespeichert.")
        assert Preference.objects.get(user=user).language == "de"
    finally:
        context.close()
