"""The customer page, the case form and the plate search show a Car-park manager or agent responsible for car
park A only what belongs to A, for a customer with contracts in A and B: B's contracts, plates (also a plate
taken off B's contract), credentials, cases (also a case about B's invoice), invoices and history never reach
the HTML, and the plate search finds none of B's plates."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.roles import AGENT, CARE, MANAGER, SUPERVISOR
from carparks import services
from carparks.models import Vehicle
from carparks.tests.factories import CustomerFactory, ProductFactory, approve_directly, january_invoice
from carparks.tests.test_views import login

pytestmark = pytest.mark.django_db


def running(product, plate, customer):
    contract = services.contract_apply(customer=customer, product=product, vehicles=[plate])
    return services.contract_activate(contract=approve_directly(contract))


@pytest.fixture
def world():
    a, b = ProductFactory(carpark__name="Alpha Garage"), ProductFactory(carpark__name="Beta Garage")
    customer = CustomerFactory(name="Dora Double")
    mine = running(a, "M AA 1", customer)
    theirs = running(b, "B BB 2", customer)
    # B's earlier plate: taken off B's contract, the vehicle stays the customer's (on no contract).
    services.contract_change_plate(contract=theirs, old_plate="B BB 2", new_plate="B BB 3")
    return {
        "a": a,
        "b": b,
        "customer": customer,
        "mine": mine,
        "theirs": theirs,
        "my_case": services.case_open(customer=customer, contract=mine, kind="question", subject="Alpha question"),
        "their_case": services.case_open(customer=customer, contract=theirs, kind="complaint", subject="Beta gate"),
        "my_invoice": january_invoice(customer, mine, series="RE", number=111111),
        "their_invoice": january_invoice(customer, theirs, series="RE", number=222222),
    }


def their_invoice_case(world):
    return services.case_open(
        customer=world["customer"],
        kind="refund",
        subject="Refund on the Beta invoice",
        invoice_id=world["their_invoice"].pk,
    )


@pytest.mark.parametrize("role", [MANAGER, AGENT, CARE])
def test_the_customer_page_shows_only_what_belongs_to_my_car_park(client, world, role):
    refund = their_invoice_case(world)
    general = services.case_open(customer=world["customer"], kind="question", subject="General question")
    login(client, role, carparks=[world["a"].carpark])
    response = client.get(reverse("carparks:customer-detail", args=[world["customer"].pk]))
    assert response.status_code == 200
    page = response.content.decode()
    mine, theirs = world["mine"], world["theirs"]
    # A's rows are there …
    assert reverse("carparks:contract-detail", args=[mine.pk]) in page
    assert "MAA1" in page and "Alpha question" in page and "RE-111111" in page
    assert f"Case {general.pk}" in page  # a case about no contract and no invoice is anyone's to handle
    # … B's are not: contract, plates (the current and the earlier one), case, invoice, history.
    assert reverse("carparks:contract-detail", args=[theirs.pk]) not in page
    assert f"Contract {theirs.pk}" not in page
    assert "BBB2" not in page and "BBB3" not in page
    assert "Beta Garage" not in page and "Beta gate" not in page
    assert reverse("carparks:case-detail", args=[world["their_case"].pk]) not in page
    assert "RE-222222" not in page
    assert "Refund on the Beta invoice" not in page and f"Case {refund.pk}" not in page


def test_the_plate_search_finds_none_of_the_other_car_parks_plates(client, world):
    login(client, MANAGER, carparks=[world["a"].carpark])
    for plate in ("B BB 2", "B BB 3", "BBB"):
        response = client.get(reverse("carparks:search"), {"q": plate})
        assert response.context["total"] == 0, plate
        page = response.content.decode()
        assert "BBB2" not in page and "BBB3" not in page
    response = client.get(reverse("carparks:search"), {"q": "M AA 1"})
    assert [v.plate for v in response.context["results"]["vehicles"]] == ["MAA1"]


def test_a_free_vehicle_of_a_customer_only_in_my_car_parks_is_still_found(client, world):
    solo = CustomerFactory(name="Sam Solo")
    running(world["a"], "M SO 1", solo)
    Vehicle.objects.create(customer=solo, plate="M SO 2")  # on no contract yet
    login(client, AGENT, carparks=[world["a"].carpark])
    response = client.get(reverse("carparks:search"), {"q": "M SO"})
    assert [v.plate for v in response.context["results"]["vehicles"]] == ["MSO1", "MSO2"]
    fresh = CustomerFactory(name="Fresh Face")
    Vehicle.objects.create(customer=fresh, plate="M FF 1")
    response = client.get(reverse("carparks:search"), {"q": "M FF 1"})
    assert [v.plate for v in response.context["results"]["vehicles"]] == ["MFF1"]


def test_the_case_about_the_other_car_parks_invoice_is_404(client, world):
    refund = their_invoice_case(world)
    login(client, CARE, carparks=[world["a"].carpark])
    assert client.get(reverse("carparks:case-detail", args=[refund.pk])).status_code == 404
    assert client.get(reverse("carparks:case-detail", args=[world["their_case"].pk])).status_code == 404
    page = client.get(reverse("carparks:case-list")).content.decode()
    assert "Refund on the Beta invoice" not in page and "Beta gate" not in page


def test_the_new_case_form_offers_only_my_contracts_and_refuses_the_others(client, world):
    login(client, CARE, carparks=[world["a"].carpark])
    url = reverse("carparks:case-create", args=[world["customer"].pk])
    page = client.get(url).content.decode()
    assert f'value="{world["mine"].pk}"' in page
    assert f'value="{world["theirs"].pk}"' not in page
    response = client.post(url, {"kind": "question", "subject": "Sneaky", "contract": world["theirs"].pk})
    assert response.status_code == 200 and "contract" in response.context["form"].errors
    assert not world["theirs"].cases.filter(subject="Sneaky").exists()
    response = client.post(url, {"kind": "refund", "subject": "Sneaky", "invoice_id": world["their_invoice"].pk})
    assert response.status_code == 200 and "invoice_id" in response.context["form"].errors
    response = client.post(url, {"kind": "refund", "subject": "Fair", "invoice_id": world["my_invoice"].pk})
    assert response.status_code == 302
    assert world["customer"].cases.filter(subject="Fair", invoice_id=world["my_invoice"].pk).exists()
    assert not world["customer"].cases.filter(subject="Sneaky").exists()


def test_a_supervisor_sees_both_car_parks(client, world):
    refund = their_invoice_case(world)
    login(client, SUPERVISOR)
    page = client.get(reverse("carparks:customer-detail", args=[world["customer"].pk])).content.decode()
    assert reverse("carparks:contract-detail", args=[world["theirs"].pk]) in page
    assert "BBB2" in page and "BBB3" in page and "RE-222222" in page and f"Case {refund.pk}" in page


def test_the_customer_list_counts_only_my_car_parks_contracts_and_vehicles(client, world):
    login(client, MANAGER, carparks=[world["a"].carpark])
    response = client.get(reverse("carparks:customer-list"))
    (row,) = [c for c in response.context["customers"] if c.pk == world["customer"].pk]
    assert (row.contract_count, row.active_count, row.vehicle_count) == (1, 1, 1)
