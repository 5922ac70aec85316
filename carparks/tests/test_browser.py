"""A back-office journey in headless Chromium: top-bar search for a plate, open the contract, suspend it."""

import pytest
from playwright.sync_api import expect

from accounts import roles
from carparks import services
from carparks.models import Contract
from carparks.tests.factories import CustomerFactory, ProductFactory, approve_directly

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_agent_finds_a_plate_from_the_top_bar_and_suspends_its_contract(page, live_server, make_user, browser_login):
    product = ProductFactory(carpark__name="Hauptbahnhof")
    contract = services.contract_apply(
        customer=CustomerFactory(name="Paula Plate"), product=product, vehicles=["M-PP 777"]
    )
    contract = services.contract_activate(contract=approve_directly(contract))
    make_user("agent", roles.AGENT, password="s3cret-pass", carparks=[product.carpark])
    browser_login(page, live_server, "agent", "s3cret-pass")

    page.get_by_label("Search customers, contracts, plates and cards").fill("m pp 777")
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    page.get_by_role("link", name=f"contract {contract.pk}").click()
    expect(page.get_by_role("heading", name=f"Contract {contract.pk}")).to_contain_text("Active")

    page.get_by_label("Reason or note (kept in the history)").fill("Card payment failed")
    page.get_by_role("button", name="Suspend").click()
    expect(page.get_by_role("alert")).to_contain_text(f"Contract {contract.pk} is now suspended")
    assert Contract.objects.get(pk=contract.pk).state == Contract.State.SUSPENDED
    expect(page.get_by_text("Card payment failed")).to_be_visible()


def test_a_manager_adds_a_car_park_from_the_list_and_sees_it(page, live_server, make_user, browser_login):
    from carparks.models import CarPark
    from workflows.models import BusinessEvent

    make_user("manager", roles.MANAGER, password="s3cret-pass")
    browser_login(page, live_server, "manager", "s3cret-pass")
    page.goto(f"{live_server.url}/carparks/")
    expect(page.get_by_text("You are not responsible for any car park yet.")).to_be_visible()
    page.get_by_role("link", name="Add car park").click()
    page.get_by_role("button", name="Add car park").click()
    expect(page.get_by_text("This field is required.").first).to_be_visible()  # nothing added without a name

    page.get_by_role("textbox", name="Name", exact=True).fill("Ostpark")
    page.get_by_role("textbox", name="City", exact=True).fill("Leipzig")
    page.get_by_label("Capacity").fill("120")
    page.get_by_label("Time zone").select_option("Europe/Berlin")
    page.get_by_role("button", name="Add car park").click()
    expect(page.get_by_role("alert")).to_contain_text("Car park Ostpark was added")
    expect(page.get_by_role("alert")).to_contain_text("You are responsible for it.")
    carpark = CarPark.objects.get(name="Ostpark")
    assert BusinessEvent.objects.get(name="carpark.added").object_id == carpark.pk

    page.goto(f"{live_server.url}/carparks/")
    expect(page.get_by_role("link", name="Ostpark")).to_be_visible()
