"""Applications taken by staff, in headless Chromium through the pages only: a new customer is created
on the New customer page, the application is taken on its New application page, the review is
approved in the task basket, and the contract ends up active with its credentials."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts import roles
from carparks.models import Contract, Customer
from carparks.tests.factories import CarParkFactory, ProductFactory
from workflows.models import Task
from workflows.sync import sync_definitions
from workflows.testing import run_pending_system_steps

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WAIT = 60_000  # ms: generous for a loaded 2-core machine


def _new_customer(page, live_server, *, kind: str, name: str, email: str, company_number: str = "") -> Customer:
    page.goto(f"{live_server.url}/carparks/customers/")
    page.get_by_role("link", name="New customer").click()
    page.get_by_label("Taken by").select_option("phone")
    page.get_by_label("Kind").select_option(kind)
    page.locator("#id_name").fill(name)
    page.locator("#id_email").fill(email)
    if company_number:
        page.get_by_label("Company number").fill(company_number)
    page.get_by_role("button", name="Create customer").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    return Customer.objects.get(email=email)


def _choose(page, carpark: str, product) -> None:
    with page.expect_response(lambda r: "applications/new" in r.url and r.request.method == "GET"):
        page.get_by_label("Car park").select_option(label=carpark)  # htmx reloads the products
    # a locator check, not wait_for_function: the page's CSP refuses the eval that one needs
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)
    page.get_by_label("Product").select_option(str(product.pk))


def _apply(page, *, carpark: str, product, vehicles: str, places: int | None = None) -> Contract:
    page.get_by_role("link", name="New application").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("New application")
    page.get_by_label("Channel").select_option("phone")
    _choose(page, carpark, product)
    if places is not None:
        page.get_by_label("Places").fill(str(places))
    page.get_by_label("Vehicles").fill(vehicles)
    page.get_by_role("button", name="Submit application").click()
    expect(page.get_by_role("alert")).to_contain_text("waits for review")
    return Contract.objects.get(product=product)


def _approve_in_basket(page, live_server, contract: Contract) -> None:
    review = Task.objects.get(process__object_id=contract.pk, process__definition__key="season-contract")
    page.goto(f"{live_server.url}/basket/")
    page.get_by_role("button", name=f"Claim Review application #{review.pk}").click()
    page.wait_for_url(f"**/basket/tasks/{review.pk}/")
    page.get_by_label("Note for the file").fill("Checked on the phone")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{live_server.url}/basket/")
    expect(page.locator("body")).to_contain_text("completed: approve")
    run_pending_system_steps()  # the system steps approve and activate the contract


def test_a_phone_application_for_a_new_private_customer_ends_active_with_a_credential(
    page, live_server, make_user, browser_login
):
    page.set_default_timeout(WAIT)
    sync_definitions()
    carpark, elsewhere = CarParkFactory(name="Altstadt"), CarParkFactory(name="Elsewhere")
    ProductFactory(carpark=elsewhere, name="Not here")
    product = ProductFactory(carpark=carpark, name="Season 24/7", quota=5)
    make_user("agent", roles.AGENT, password="agent-pass-1", carparks=[carpark, elsewhere])
    browser_login(page, live_server, "agent", "agent-pass-1")

    customer = _new_customer(page, live_server, kind="private", name="Paul Phone", email="paul@example.com")
    contract = _apply(page, carpark="Altstadt", product=product, vehicles="m ab1234")
    assert contract.customer == customer and contract.state == Contract.State.APPLIED
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Contract {contract.pk}")

    _approve_in_basket(page, live_server, contract)

    page.goto(f"{live_server.url}/carparks/contracts/{contract.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Active")
    expect(page.locator("body")).to_contain_text("MAB1234")
    contract = Contract.objects.get(pk=contract.pk)
    assert contract.state == Contract.State.ACTIVE
    assert list(contract.credentials.filter(is_active=True).values_list("identifier", flat=True)) == ["MAB1234"]


def test_a_corporate_customer_with_three_places_and_six_vehicles(page, live_server, make_user, browser_login):
    page.set_default_timeout(WAIT)
    sync_definitions()
    carpark = CarParkFactory(name="Messe")
    product = ProductFactory(carpark=carpark, name="Company pool", quota=10, vehicles_per_place=2)
    make_user("agent", roles.AGENT, password="agent-pass-1", carparks=[carpark])
    browser_login(page, live_server, "agent", "agent-pass-1")

    _new_customer(
        page, live_server, kind="corporate", name="Fleet GmbH", email="fleet@example.com", company_number="HRB 4711"
    )
    # seven vehicles are more than 3 places × 2: refused at the field, nothing saved
    page.get_by_role("link", name="New application").click()
    _choose(page, "Messe", product)
    page.get_by_label("Places").fill("3")
    page.get_by_label("Vehicles").fill("\n".join(f"M-FL {i}" for i in range(1, 8)))
    page.get_by_role("button", name="Submit application").click()
    expect(page.locator(".invalid-feedback")).to_contain_text("7 vehicles are more than the 6 allowed")
    assert not Contract.objects.exists()

    page.get_by_role("link", name="Fleet GmbH").click()
    contract = _apply(
        page,
        carpark="Messe",
        product=product,
        places=3,
        vehicles="\n".join(f"M-FL {i}" for i in range(1, 7)),
    )
    assert (contract.places, contract.vehicles.count()) == (3, 6)
    expect(page.locator("#contract-places")).to_contain_text("3 (up to 6 vehicles)")

    _approve_in_basket(page, live_server, contract)

    page.goto(f"{live_server.url}/carparks/contracts/{contract.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Active")
    contract = Contract.objects.get(pk=contract.pk)
    assert contract.state == Contract.State.ACTIVE
    assert sorted(contract.credentials.filter(is_active=True).values_list("identifier", flat=True)) == [
        f"MFL{i}" for i in range(1, 7)
    ]
