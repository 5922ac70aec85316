"""Back-office pages: role and responsibility checks, filtered lists, lifecycle actions, search."""

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from accounts.roles import AGENT, CARE, FINANCE, MANAGER, SUPERVISOR
from carparks import services
from carparks.models import Case, Contract
from carparks.tests.factories import CorporateFactory, CustomerFactory, ProductFactory, UserFactory, approve_directly

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


def running(product, plate="M AB 1", customer=None):
    contract = services.contract_apply(customer=customer or CustomerFactory(), product=product, vehicles=[plate])
    return services.contract_activate(contract=approve_directly(contract))


@pytest.fixture
def two_carparks():
    mine, other = ProductFactory(carpark__name="Mine"), ProductFactory(carpark__name="Other")
    return mine, other


class TestResponsibility:
    def test_lists_show_only_the_car_parks_i_am_responsible_for(self, client, two_carparks):
        mine, other = two_carparks
        login(client, AGENT, carparks=[mine.carpark])
        page = client.get(reverse("carparks:carpark-list")).content.decode()
        assert "Mine" in page
        assert "Other" not in page

    def test_a_supervisor_sees_all(self, client, two_carparks):
        login(client, SUPERVISOR)
        page = client.get(reverse("carparks:carpark-list")).content.decode()
        assert "Mine" in page and "Other" in page

    def test_another_car_parks_objects_are_404(self, client, two_carparks):
        mine, other = two_carparks
        contract = running(other)
        login(client, AGENT, carparks=[mine.carpark])
        assert client.get(reverse("carparks:carpark-detail", args=[other.carpark_id])).status_code == 404
        assert client.get(reverse("carparks:contract-detail", args=[contract.pk])).status_code == 404
        assert client.get(reverse("carparks:customer-detail", args=[contract.customer_id])).status_code == 404
        response = client.post(reverse("carparks:contract-action", args=[contract.pk, "suspend"]))
        assert response.status_code == 404
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.ACTIVE

    def test_customers_list_is_filtered(self, client, two_carparks):
        mine, other = two_carparks
        running(mine, customer=CustomerFactory(name="Alice Visible"))
        running(other, "X1", customer=CustomerFactory(name="Bob Hidden"))
        login(client, CARE, carparks=[mine.carpark])
        page = client.get(reverse("carparks:customer-list")).content.decode()
        assert "Alice Visible" in page
        assert "Bob Hidden" not in page

    def test_the_case_inbox_needs_a_care_role(self, client):
        login(client, FINANCE)
        assert client.get(reverse("carparks:case-list")).status_code == 403


class TestPages:
    def test_car_park_detail_shows_capacity_products_contracts_and_waitlist(self, client):
        product = ProductFactory(quota=1, carpark__capacity=321, name="Gold")
        active = running(product, customer=CustomerFactory(name="Holder"))
        services.contract_apply(customer=CustomerFactory(name="Next In Line"), product=product, vehicles=["W1"])
        login(client, MANAGER, carparks=[product.carpark])
        page = client.get(reverse("carparks:carpark-detail", args=[product.carpark_id])).content.decode()
        for text in ("321", "Gold", "Holder", "Next In Line", f"Contract {active.pk}" if False else "Holder"):
            assert text in page

    def test_customer_detail_shows_contracts_vehicles_credentials_cases_and_history(self, client):
        company = CorporateFactory(name="Fleet AG")
        product = ProductFactory()
        contract = running(product, "M FL 1", customer=company)
        services.case_open(customer=company, contract=contract, kind="question", subject="Invoice address?")
        login(client, CARE, carparks=[product.carpark])
        page = client.get(reverse("carparks:customer-detail", args=[company.pk])).content.decode()
        for text in ("Fleet AG", company.company_number, "MFL1", "Invoice address?", "Applied → Approved"[:7]):
            assert text in page

    def test_list_pages_do_not_grow_queries_with_rows(self, client, django_assert_max_num_queries):
        product = ProductFactory(quota=40)
        for i in range(30):
            running(product, f"Q{i}")
        login(client, SUPERVISOR)
        with django_assert_max_num_queries(12):
            assert client.get(reverse("carparks:customer-list")).status_code == 200
        with django_assert_max_num_queries(12):
            assert client.get(reverse("carparks:carpark-detail", args=[product.carpark_id])).status_code == 200
        with django_assert_max_num_queries(12):
            assert client.get(reverse("carparks:product-list")).status_code == 200


class TestContractActions:
    def test_the_page_offers_only_the_actions_the_user_may_take(self, client):
        product = ProductFactory()
        contract = running(product)
        login(client, AGENT, carparks=[product.carpark])
        page = client.get(reverse("carparks:contract-detail", args=[contract.pk])).content.decode()
        assert "Suspend" in page
        assert ">Approve<" not in page
        assert "Give notice" in page

    def test_suspend_and_lift_by_post(self, client):
        product = ProductFactory()
        contract = running(product)
        user = login(client, AGENT, carparks=[product.carpark])
        url = reverse("carparks:contract-action", args=[contract.pk, "suspend"])
        assert client.get(url).status_code == 405
        client.post(url, {"reason": "Unpaid"})
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.SUSPENDED
        assert contract.events.last().actor == user
        assert contract.events.last().note == "Unpaid"
        response = client.post(reverse("carparks:contract-action", args=[contract.pk, "reactivate"]), follow=True)
        assert "now active" in response.content.decode()

    def test_a_forbidden_transition_shows_an_error(self, client):
        product = ProductFactory()
        contract = running(product)
        login(client, AGENT, carparks=[product.carpark])
        response = client.post(reverse("carparks:contract-action", args=[contract.pk, "reject"]), follow=True)
        assert "cannot be rejected" in response.content.decode()
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.ACTIVE

    def test_posts_need_csrf(self, client):
        from django.test import Client

        product = ProductFactory()
        contract = running(product)
        strict = Client(enforce_csrf_checks=True)
        login(strict, AGENT, carparks=[product.carpark])
        response = strict.post(reverse("carparks:contract-action", args=[contract.pk, "suspend"]))
        assert response.status_code == 403
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.ACTIVE

    def test_give_notice_from_the_page(self, client):
        product = ProductFactory(notice_period_days=30)
        contract = running(product)
        login(client, AGENT, carparks=[product.carpark])
        too_early = client.post(
            reverse("carparks:contract-terminate", args=[contract.pk]), {"end_date": "2000-01-01"}, follow=True
        )
        assert "notice period is 30 days" in too_early.content.decode()
        client.post(reverse("carparks:contract-terminate", args=[contract.pk]), {})
        assert Contract.objects.get(pk=contract.pk).end_date == services.earliest_end_date(contract)

    def test_only_supervisors_waive_the_notice(self, client):
        product = ProductFactory()
        contract = running(product)
        login(client, AGENT, carparks=[product.carpark])
        client.post(reverse("carparks:contract-terminate", args=[contract.pk]), {"waive_notice": "on"})
        assert Contract.objects.get(pk=contract.pk).end_date is None

    def test_change_plate_from_the_page(self, client):
        product = ProductFactory()
        contract = running(product, "M AB 1")
        login(client, CARE, carparks=[product.carpark])
        client.post(
            reverse("carparks:contract-plate", args=[contract.pk]),
            {"old_plate": "MAB1", "new_plate": "m-xy-9", "country": "D"},
        )
        assert list(contract.credentials.filter(is_active=True).values_list("identifier", flat=True)) == ["MXY9"]


class TestCases:
    def test_open_work_and_resolve_a_case(self, client):
        product = ProductFactory()
        contract = running(product)
        user = login(client, CARE, carparks=[product.carpark])
        response = client.post(
            reverse("carparks:case-create", args=[contract.customer_id]),
            {"kind": "complaint", "subject": "Barrier closed on me", "contract": contract.pk, "priority": "urgent"},
        )
        case = Case.objects.get()
        assert response.url == reverse("carparks:case-detail", args=[case.pk])
        inbox = client.get(reverse("carparks:case-list")).content.decode()
        assert "Barrier closed on me" in inbox
        client.post(reverse("carparks:case-action", args=[case.pk, "take"]))
        client.post(reverse("carparks:case-action", args=[case.pk, "resolve"]), {"resolution": "Refunded the ticket."})
        case.refresh_from_db(fields=["assignee", "resolution"])
        assert case.assignee == user
        assert Case.objects.get(pk=case.pk).state == Case.State.RESOLVED
        assert "Barrier closed on me" not in client.get(reverse("carparks:case-list")).content.decode()

    def test_a_case_form_error_names_the_field(self, client):
        customer = CustomerFactory()
        login(client, CARE)
        response = client.post(
            reverse("carparks:case-create", args=[customer.pk]), {"kind": "card_replacement", "subject": "Lost"}
        )
        assert response.status_code == 200
        assert "needs the contract" in response.content.decode()
        assert not Case.objects.exists()


class TestSearch:
    def test_it_finds_customers_contracts_plates_and_cards(self, client):
        product = ProductFactory()
        contract = running(product, "B-MW 1234", customer=CustomerFactory(name="Zoe Searchable"))
        card = services.credential_issue_card(contract=contract, identifier="0042424242")
        login(client, AGENT, carparks=[product.carpark])
        url = reverse("carparks:search")
        assert "Zoe Searchable" in client.get(url, {"q": "searchable"}).content.decode()
        assert "BMW1234" in client.get(url, {"q": "b mw 12"}).content.decode()
        assert card.identifier in client.get(url, {"q": "00424242"}).content.decode()
        assert f"Contract {contract.pk}" in client.get(url, {"q": str(contract.pk)}).content.decode()

    def test_it_hides_other_car_parks(self, client, two_carparks):
        mine, other = two_carparks
        running(other, "HIDDEN1")
        login(client, AGENT, carparks=[mine.carpark])
        assert "HIDDEN1" not in client.get(reverse("carparks:search"), {"q": "hidden1"}).content.decode()

    def test_the_top_bar_has_the_search_form(self, client):
        login(client, AGENT)
        page = client.get(reverse("carparks:carpark-list")).content.decode()
        assert f'action="{reverse("carparks:search")}"' in page


def test_stage_a_change_from_the_contract_page(client):
    product = ProductFactory()
    other = ProductFactory(carpark=product.carpark, name="Nights")
    contract = running(product)
    login(client, AGENT, carparks=[product.carpark])
    page = client.get(reverse("carparks:contract-detail", args=[contract.pk])).content.decode()
    assert "Stage a change" in page and "Nights" in page
    client.post(reverse("carparks:contract-stage", args=[contract.pk]), {"next_product": other.pk, "country": "D"})
    contract = Contract.objects.get(pk=contract.pk)
    assert contract.next_product == other
    assert contract.next_change_on == services.first_of_next_month()


def test_contract_changes_from_the_page_say_what_happened(client):
    product = ProductFactory(notice_period_days=0, vehicles_per_place=3)
    other = ProductFactory(carpark=product.carpark, name="Nights")
    contract = running(product, "M AB 1")
    login(client, AGENT, carparks=[product.carpark])

    def said(name, data):
        response = client.post(reverse(f"carparks:{name}", args=[contract.pk]), data, follow=True)
        return [str(m) for m in response.context["messages"]]

    assert said("contract-plate", {"old_plate": "MAB1", "new_plate": "m-xy-9", "country": "D"}) == [
        "Plate changed to m-xy-9."
    ]
    assert said("contract-vehicles-add", {"plates": "B XY 1\nB XY 2"}) == ["2 vehicle(s) added."]
    staged = said("contract-stage", {"next_product": other.pk, "country": "D"})
    assert staged == [f"Change staged for {services.first_of_next_month():%Y-%m-%d}."]
    refused = said("contract-terminate", {"end_date": "2000-01-01"})  # the service's error is shown
    assert len(refused) == 1 and "ends on" not in refused[0]
    assert Contract.objects.get(pk=contract.pk).end_date is None
    ended = said("contract-terminate", {})
    assert ended == [f"Contract {contract.pk} ends on {Contract.objects.get(pk=contract.pk).end_date:%Y-%m-%d}."]
