"""Lists show only rows of the car parks the user is responsible for: two car parks, two agents, each
must not see the other's customers, vehicles, contracts, cases or invoices; Supervisors, Administrators
and Finance (by role) see all."""

from __future__ import annotations

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from accounts.roles import AGENT, CARE, FINANCE, SUPERVISOR
from carparks import services
from carparks.models import Vehicle
from carparks.tests.factories import CustomerFactory, ProductFactory, UserFactory, approve_directly, january_invoice

pytestmark = pytest.mark.django_db


def login(client, *roles, carparks=()):
    from accounts.two_factor import needs_two_factor
    from conftest import verify_two_factor

    user = UserFactory(roles=list(roles))
    for carpark in carparks:
        assign_perm("carparks.responsible_carpark", user, carpark)
    client.force_login(user)
    if needs_two_factor(user):
        verify_two_factor(client, user)
    return user


def running(product, plate, customer):
    contract = services.contract_apply(customer=customer, product=product, vehicles=[plate])
    return services.contract_activate(contract=approve_directly(contract))


@pytest.fixture
def world():
    """North and South car parks; one customer with contracts in both, one only in each."""
    north, south = ProductFactory(carpark__name="North"), ProductFactory(carpark__name="South")
    both = CustomerFactory(name="Bea Both")
    only_north, only_south = CustomerFactory(name="Nina North"), CustomerFactory(name="Sven South")
    contracts = {
        "both_north": running(north, "N BB 1", both),
        "both_south": running(south, "S BB 2", both),
        "north": running(north, "N NN 1", only_north),
        "south": running(south, "S SS 1", only_south),
    }
    cases = {
        "both_north": services.case_open(
            customer=both, contract=contracts["both_north"], kind="question", subject="Northern question"
        ),
        "both_south": services.case_open(
            customer=both, contract=contracts["both_south"], kind="question", subject="Southern question"
        ),
    }
    return {"north": north, "south": south, "both": both, "contracts": contracts, "cases": cases}


def test_it_shows_each_agent_only_the_customers_of_their_car_park(client, world):
    login(client, AGENT, carparks=[world["north"].carpark])
    page = client.get(reverse("carparks:customer-list")).content.decode()
    assert "Nina North" in page and "Bea Both" in page
    assert "Sven South" not in page
    login(client, AGENT, carparks=[world["south"].carpark])
    page = client.get(reverse("carparks:customer-list")).content.decode()
    assert "Sven South" in page and "Nina North" not in page


def test_a_customer_only_of_another_car_park_is_404(client, world):
    south_customer = world["contracts"]["south"].customer
    login(client, AGENT, carparks=[world["north"].carpark])
    assert client.get(reverse("carparks:customer-detail", args=[south_customer.pk])).status_code == 404
    assert client.get(reverse("carparks:customer-edit", args=[south_customer.pk])).status_code == 404
    contract = world["contracts"]["south"]
    assert client.get(reverse("carparks:contract-detail", args=[contract.pk])).status_code == 404
    assert client.get(reverse("carparks:case-detail", args=[world["cases"]["both_south"].pk])).status_code == 404


def test_the_customer_page_shows_only_the_sections_rows_of_my_car_park(client, world):
    both = world["both"]
    login(client, AGENT, carparks=[world["north"].carpark])
    response = client.get(reverse("carparks:customer-detail", args=[both.pk]))
    page = response.content.decode()
    assert reverse("carparks:contract-detail", args=[world["contracts"]["both_north"].pk]) in page
    assert reverse("carparks:contract-detail", args=[world["contracts"]["both_south"].pk]) not in page
    assert "NBB1" in page and "SBB2" not in page  # vehicles and credentials
    assert "Northern question" in page and "Southern question" not in page  # cases (and their history)
    assert [v.plate for v in response.context["vehicles"]] == ["NBB1"]
    history = {row["what"] for row in response.context["history"]}
    assert f"Contract {world['contracts']['both_north'].pk}" in history
    assert f"Contract {world['contracts']['both_south'].pk}" not in history
    assert f"Case {world['cases']['both_south'].pk}" not in history


def test_the_customer_page_shows_only_invoices_of_my_car_park(client, world):
    north_invoice = january_invoice(world["both"], world["contracts"]["both_north"])
    south_invoice = january_invoice(world["both"], world["contracts"]["both_south"])
    login(client, CARE, carparks=[world["north"].carpark])
    response = client.get(reverse("carparks:customer-detail", args=[world["both"].pk]))
    assert [i.pk for i in response.context["invoices"]] == [north_invoice.pk]
    login(client, FINANCE)
    response = client.get(reverse("carparks:customer-detail", args=[world["both"].pk]))
    assert {i.pk for i in response.context["invoices"]} == {north_invoice.pk, south_invoice.pk}


def test_plate_search_finds_only_vehicles_of_my_car_park(client, world):
    login(client, AGENT, carparks=[world["north"].carpark])
    response = client.get(reverse("carparks:search"), {"q": "S BB 2"})
    assert response.context["results"]["vehicles"] == []
    assert response.context["results"]["credentials"] == []
    response = client.get(reverse("carparks:search"), {"q": "N BB 1"})
    assert [v.plate for v in response.context["results"]["vehicles"]] == ["NBB1"]


def test_a_vehicle_on_no_contract_of_a_visible_customer_is_found(client, world):
    Vehicle.objects.create(customer=world["contracts"]["north"].customer, plate="N FREE 1")
    login(client, AGENT, carparks=[world["north"].carpark])
    response = client.get(reverse("carparks:search"), {"q": "NFREE"})
    assert [v.plate for v in response.context["results"]["vehicles"]] == ["NFREE1"]


def test_a_vehicle_on_no_contract_of_a_customer_also_elsewhere_is_not(client, world):
    """It may have been on the other car park's contract (a plate changed there)."""
    Vehicle.objects.create(customer=world["both"], plate="N FREE 2")
    login(client, AGENT, carparks=[world["north"].carpark])
    assert client.get(reverse("carparks:search"), {"q": "NFREE"}).context["results"]["vehicles"] == []


def test_the_case_list_shows_only_cases_of_my_car_park(client, world):
    login(client, CARE, carparks=[world["north"].carpark])
    page = client.get(reverse("carparks:case-list")).content.decode()
    assert "Northern question" in page and "Southern question" not in page


@pytest.mark.parametrize("role", [SUPERVISOR, FINANCE])
def test_roles_that_see_all_see_every_car_parks_rows(client, world, role):
    login(client, role)
    page = client.get(reverse("carparks:customer-list")).content.decode()
    assert "Nina North" in page and "Sven South" in page
    south_customer = world["contracts"]["south"].customer
    assert client.get(reverse("carparks:customer-detail", args=[south_customer.pk])).status_code == 200
    response = client.get(reverse("carparks:search"), {"q": "S BB 2"})
    assert [v.plate for v in response.context["results"]["vehicles"]] == ["SBB2"]


def test_a_new_customer_without_contracts_is_visible_to_the_agent_who_takes_its_application(client, world):
    fresh = CustomerFactory(name="Fresh Face")
    login(client, AGENT, carparks=[world["north"].carpark])
    assert client.get(reverse("carparks:customer-detail", args=[fresh.pk])).status_code == 200
