"""Applications taken by staff ("New application" on a customer's page) and corporate contracts with
several places: the same validation and event as the API, plates in national formats, places against
the quota and vehicles beyond the places as a reviewed change request."""

from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from accounts.roles import ADMINISTRATOR, AGENT, CARE, FINANCE, SUPERVISOR
from carparks import selectors, services
from carparks.api.authentication import api_client_create
from carparks.models import ApiClient, Contract, ContractChangeRequest, Customer, Product
from carparks.tests.factories import CarParkFactory, CorporateFactory, CustomerFactory, ProductFactory, approve_directly
from carparks.tests.test_events import publish_library
from carparks.tests.test_views import login
from workflows.models import BusinessEvent, Process, Task
from workflows.testing import run_pending_system_steps

pytestmark = pytest.mark.django_db


def url(customer):
    return reverse("carparks:application-create", args=[customer.pk])


def form(product, vehicles="M-AB 1234", **extra):
    return {
        "channel": "phone",
        "carpark": product.carpark_id,
        "product": product.pk,
        "start_date": timezone.localdate().isoformat(),
        "vehicles": vehicles,
        **extra,
    }


def field_errors(response, field):
    assert response.status_code == 200, response.status_code
    return [str(e) for e in response.context["form"].errors.get(field, [])]


def event_of(contract, name="application.received"):
    return BusinessEvent.objects.get(
        name=name, content_type=ContentType.objects.get_for_model(Contract), object_id=contract.pk
    )


def running_contract(product, customer, plates, places=1):
    contract = services.contract_apply(customer=customer, product=product, vehicles=plates, places=places)
    return services.contract_activate(contract=approve_directly(contract))


class TestStaffApplication:
    def test_it_takes_a_phone_application_that_emits_the_same_event_and_starts_the_same_process_as_the_api(
        self, client
    ):
        product = ProductFactory(quota=5)
        customer = CustomerFactory(name="Petra Phone", email="petra@example.com")
        login(client, AGENT, carparks=[product.carpark])

        response = client.post(url(customer), form(product, "m ab1234"))

        contract = Contract.objects.get(customer=customer)
        assert response.status_code == 302 and response.url == reverse("carparks:contract-detail", args=[contract.pk])
        page = client.get(response.url).content.decode()
        assert f"Application {contract.pk} taken: it waits for review." in page
        staff = event_of(contract)
        assert staff.payload["channel"] == "phone"
        assert staff.payload["plates"] == ["MAB1234"]

        _, token = api_client_create(name="shop", scopes=list(ApiClient.Scope.values))
        client.logout()
        response = client.post(
            "/api/v1/applications/",
            {
                "product": product.pk,
                "customer": {"name": "Anna Api", "email": "anna@example.com"},
                "vehicles": [{"plate": "M-AB 1235"}],
            },
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert response.status_code == 201, response.content
        api = event_of(Contract.objects.get(pk=response.json()["contract_id"]))

        differ = {"contract_id", "customer_id", "customer_name", "channel", "plates"}
        assert set(staff.payload) == set(api.payload)
        assert {k: v for k, v in staff.payload.items() if k not in differ} == {
            k: v for k, v in api.payload.items() if k not in differ
        }
        assert staff.process.definition.key == api.process.definition.key == "season-contract"
        assert Task.objects.get(process=staff.process).name == Task.objects.get(process=api.process).name

    def test_a_start_date_in_the_past_is_refused_at_the_field(self, client):
        product = ProductFactory()
        customer = CustomerFactory()
        login(client, AGENT, carparks=[product.carpark])
        yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()

        response = client.post(url(customer), form(product, start_date=yesterday))

        assert field_errors(response, "start_date") == ["The start date cannot be in the past."]
        assert not Contract.objects.exists()

    @pytest.mark.parametrize(
        "line, plate, country",
        [
            ("M-AB 1234", "MAB1234", "D"),
            ("m ab1234", "MAB1234", "D"),
            ("M–AB 1234", "MAB1234", "D"),  # an en dash copied from an email
            ("M-AB 1234, D", "MAB1234", "D"),
            ("W-12345 X, A", "W12345X", "A"),
            ("ZH 123456, CH", "ZH123456", "CH"),
            ("AB-123-CD, F", "AB123CD", "F"),
            ("ab-123-cd; f", "AB123CD", "F"),
            ("GR 7 ÄÖ 1", "GR7ÄÖ1", "D"),
        ],
    )
    def test_it_normalises_plates_in_national_formats(self, client, line, plate, country):
        product = ProductFactory()
        customer = CustomerFactory()
        login(client, AGENT, carparks=[product.carpark])

        response = client.post(url(customer), form(product, line))

        assert response.status_code == 302, response.context["form"].errors
        vehicle = Contract.objects.get(customer=customer).vehicles.get()
        assert (vehicle.plate, vehicle.country) == (plate, country)

    @pytest.mark.parametrize(
        "text, reason",
        [
            ("M/AB!123", "Line 1: 'M/AB!123' is not a licence plate: '!' '/' cannot be on a plate"),
            ("M-AB 1234\nABCDEFGHIJKLMN", "Line 2: 'ABCDEFGHIJKLMN' is not a licence plate: it has 14"),
            ("ZH 1234567, CH", "Line 1: 'ZH 1234567' is not a plate of CH: a Swiss plate is 2 letters"),
            ("A1-23-BC, F", "Line 1: 'A1-23-BC' is not a plate of F: a French plate is"),
            ("M-AB 0123, D", "Line 1: 'M-AB 0123' is not a plate of D: a German plate is"),
            ("W-ABCDEF, A", "Line 1: 'W-ABCDEF' is not a plate of A"),
            ("M-AB 1, Germany", "Line 1: 'GERMANY' is not a country code"),
            ("M-AB 1\nm ab-1", "Line 2: MAB1 is listed twice (also on line 1)."),
            ("  \n ", "Enter at least one plate, one per line."),
            ("M-АВ 1", "cannot be on a plate"),  # Cyrillic letters that look Latin
        ],
    )
    def test_it_refuses_what_cannot_be_a_plate_with_the_reason_at_the_field(self, client, text, reason):
        product = ProductFactory()
        customer = CustomerFactory()
        login(client, AGENT, carparks=[product.carpark])

        (error,) = field_errors(client.post(url(customer), form(product, text)), "vehicles")

        assert error.startswith(reason) or reason in error, error
        assert not Contract.objects.exists()

    def test_nul_bytes_and_ten_thousand_characters_are_answered_at_the_field(self, client):
        product = ProductFactory()
        customer = CorporateFactory()
        login(client, AGENT, carparks=[product.carpark])

        assert field_errors(client.post(url(customer), form(product, "M-AB\x00 1")), "vehicles")
        assert field_errors(client.post(url(customer), form(product, "M-AB 1\n" * 1500)), "vehicles")
        assert field_errors(client.post(url(customer), form(product, cost_centre="x" * 10_000)), "cost_centre")
        assert field_errors(client.post(url(customer), form(product, places="many")), "places")
        assert not Contract.objects.exists()

    def test_a_plate_on_a_running_contract_of_another_customer_is_refused_at_the_field_naming_it(self, client):
        product = ProductFactory(vehicles_per_place=2)
        running_contract(product, CustomerFactory(), ["M-DU 77"])
        customer = CustomerFactory()
        login(client, AGENT, carparks=[product.carpark])

        (error,) = field_errors(client.post(url(customer), form(product, "M-OK 1\nm du 77")), "vehicles")

        assert error == "Plate MDU77 (D) is already on a running contract of another customer."
        assert not Contract.objects.filter(customer=customer).exists()

    def test_the_api_refuses_that_plate_too_with_the_same_message(self, client):
        product = ProductFactory()
        running_contract(product, CustomerFactory(), ["M-DU 77"])
        _, token = api_client_create(name="shop", scopes=list(ApiClient.Scope.values))

        response = client.post(
            "/api/v1/applications/",
            {
                "product": product.pk,
                "customer": {"name": "X", "email": "x@example.com"},
                "vehicles": [{"plate": "MDU77"}],
            },
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )

        assert response.status_code == 400
        assert response.json() == {
            "vehicles": ["Plate MDU77 (D) is already on a running contract of another customer."]
        }

    def test_beyond_the_quota_it_joins_the_waitlist_and_says_its_position(self, client):
        product = ProductFactory(quota=1)
        running_contract(product, CustomerFactory(), ["M-HO 1"])
        customer = CustomerFactory()
        login(client, CARE, carparks=[product.carpark])

        response = client.post(url(customer), form(product), follow=True)

        contract = Contract.objects.get(customer=customer)
        assert contract.state == Contract.State.WAITLISTED
        assert f"No place free: application {contract.pk} is number 1 on the waitlist" in response.content.decode()

    def test_products_are_those_of_my_car_parks_offered_to_the_customers_kind(self, client):
        mine = CarParkFactory(name="Mine")
        for_all = ProductFactory(carpark=mine, name="Any season")
        companies = ProductFactory(carpark=mine, name="Company pool", audience=Product.Audience.CORPORATE)
        ProductFactory(carpark=mine, name="E-charging", is_addon=True)
        elsewhere = ProductFactory(name="Not mine")
        customer = CustomerFactory()
        login(client, AGENT, carparks=[mine])

        page = client.get(url(customer))
        assert list(page.context["form"].fields["product"].queryset) == [for_all]
        assert "Not mine" not in page.content.decode() and "places" not in page.context["form"].fields

        assert field_errors(client.post(url(customer), form(companies)), "product")
        assert field_errors(client.post(url(customer), form(elsewhere)), "carpark")
        other_here = ProductFactory(carpark=CarParkFactory(name="Also mine"))
        login(client, AGENT, carparks=[mine, other_here.carpark])
        (error,) = field_errors(client.post(url(customer), form(for_all, carpark=other_here.carpark_id)), "product")
        assert "Select a valid choice" in error or "not at Also mine" in error
        assert not Contract.objects.exists()

    def test_the_car_park_choice_reloads_the_products(self, client):
        first, second = ProductFactory(name="First season"), ProductFactory(name="Second season")
        login(client, SUPERVISOR)

        page = client.get(url(CustomerFactory()), {"carpark": second.carpark_id}, HTTP_HX_REQUEST="true")

        assert list(page.context["form"].fields["product"].queryset) == [second]
        assert 'hx-select="#product-field"' in page.content.decode()
        assert first.name not in page.content.decode()

    def test_who_may_take_applications(self, client):
        product = ProductFactory()
        customer = CustomerFactory()
        for role in (AGENT, CARE, SUPERVISOR, ADMINISTRATOR):
            login(client, role, carparks=[product.carpark])
            assert client.get(url(customer)).status_code == 200, role
        detail = client.get(reverse("carparks:customer-detail", args=[customer.pk])).content.decode()
        assert url(customer) in detail
        login(client, FINANCE)
        assert client.get(url(customer)).status_code == 403
        assert url(customer) not in client.get(reverse("carparks:customer-detail", args=[customer.pk])).content.decode()
        # a customer of another car park is not there for an agent of this one
        other = running_contract(ProductFactory(), CustomerFactory(), ["M-OT 1"]).customer
        login(client, AGENT, carparks=[product.carpark])
        assert client.get(url(other)).status_code == 404
        assert client.post(url(other), form(product)).status_code == 404


class TestPlaces:
    def test_three_places_at_two_vehicles_each_take_six_vehicles_and_a_seventh_is_refused_at_the_field(self, client):
        product = ProductFactory(vehicles_per_place=2, quota=10)
        company = CorporateFactory()
        login(client, AGENT, carparks=[product.carpark])
        seven = "\n".join(f"M-CO {i}" for i in range(1, 8))

        (error,) = field_errors(client.post(url(company), form(product, seven, places=3)), "vehicles")
        assert error == f"7 vehicles are more than the 6 allowed: 3 places × 2 vehicles per place of {product.name}."
        assert not Contract.objects.exists()

        six = "\n".join(f"M-CO {i}" for i in range(1, 7))
        assert client.post(url(company), form(product, six, places=3)).status_code == 302
        contract = Contract.objects.get(customer=company)
        assert (contract.places, contract.vehicles.count()) == (3, 6)
        assert event_of(contract).payload["places"] == 3

    def test_a_private_customer_holds_one_place(self):
        product = ProductFactory(vehicles_per_place=2)
        with pytest.raises(services.CarparkError) as refused:
            services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["M-A 1"], places=2)
        assert refused.value.field == "places"
        with pytest.raises(services.CarparkError) as refused:
            services.contract_apply(customer=CorporateFactory(), product=product, vehicles=["M-A 1"], places=0)
        assert refused.value.field == "places"
        assert not Contract.objects.exists()

    def test_places_count_against_the_quota(self):
        product = ProductFactory(quota=4, vehicles_per_place=2)
        big = services.contract_apply(customer=CorporateFactory(), product=product, vehicles=["M-B 1"], places=3)
        assert big.state == Contract.State.APPLIED
        assert selectors.products_with_availability(Product.objects.filter(pk=product.pk)).get().places_free == 1
        assert Product.objects.get(pk=product.pk).places_free == 1
        # two places do not fit into the one left: waitlisted; one place does not jump that queue
        pair = services.contract_apply(customer=CorporateFactory(), product=product, vehicles=["M-P 1"], places=2)
        assert pair.state == Contract.State.WAITLISTED
        single = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["M-S 1"])
        assert single.state == Contract.State.WAITLISTED
        # the three places freed: the pair is offered (2 places), then the single one (1 place)
        services.contract_cancel(contract=big)
        assert Contract.objects.get(pk=pair.pk).state == Contract.State.OFFERED
        assert Contract.objects.get(pk=single.pk).state == Contract.State.OFFERED
        with pytest.raises(services.CarparkError) as refused:
            services.product_set_quota(product=product, quota=2)
        assert "3 places are held" in str(refused.value)


class TestPlacesReview:
    def _running_fleet(self):
        product = ProductFactory(vehicles_per_place=2, quota=10)
        company = CorporateFactory()
        six = [f"M-FL {i}" for i in range(1, 7)]
        return running_contract(product, company, six, places=3)

    def test_a_seventh_vehicle_is_a_change_request_reviewed_before_it_is_added(self, make_user):
        from workflows.services import task_complete

        contract = self._running_fleet()
        changed = services.contract_add_vehicles(contract=contract, vehicles=["M-FL 7"])

        request = changed.change_request
        assert (request.state, request.places_requested, request.plates) == (
            ContractChangeRequest.State.PENDING,
            4,
            [{"plate": "MFL7", "country": "D"}],
        )
        assert contract.vehicles.count() == 6 and not contract.credentials.filter(identifier="MFL7").exists()
        event = BusinessEvent.objects.filter(name="contract.change_requested").get()
        assert event.payload | {} == {
            **event.payload,
            "kind": "vehicle",
            "needs_review": True,
            "places_requested": 4,
            "change_request_id": request.pk,
            "plates": ["MFL7"],
        }
        process = event.process
        assert process.definition.key == "contract-places-review"
        task = Task.objects.get(process=process)
        assert (task.name, task.role) == ("Review places request", "Back-office agent")

        agent = make_user("reviewer", AGENT, carparks=[contract.product.carpark])
        task_complete(task=task, user=agent, outcome="approve", inputs={"note": "Framework agreement"})
        run_pending_system_steps()

        contract = Contract.objects.get(pk=contract.pk)
        assert contract.places == 4 and contract.vehicles.count() == 7
        assert contract.credentials.filter(identifier="MFL7", is_active=True).exists()
        assert ContractChangeRequest.objects.get(pk=request.pk).state == ContractChangeRequest.State.APPROVED
        assert Process.objects.get(pk=process.pk).state == "completed"
        assert selectors.product_places_taken(contract.product) == 4

    def test_a_rejected_request_adds_nothing(self, make_user):
        from workflows.services import task_complete

        contract = self._running_fleet()
        request = services.contract_add_vehicles(contract=contract, vehicles=["M-FL 7", "M-FL 8"]).change_request
        task = Task.objects.get(process__definition__key="contract-places-review")
        agent = make_user("reviewer", AGENT, carparks=[contract.product.carpark])
        task_complete(task=task, user=agent, outcome="reject", inputs={"note": "No agreement"})
        run_pending_system_steps()

        contract = Contract.objects.get(pk=contract.pk)
        assert (contract.places, contract.vehicles.count()) == (3, 6)
        request.refresh_from_db()
        assert (request.state, request.note) == (ContractChangeRequest.State.REJECTED, "No agreement")

    def test_within_the_places_vehicles_are_added_at_once_without_a_review(self):
        product = ProductFactory(vehicles_per_place=2)
        contract = running_contract(product, CorporateFactory(), ["M-FL 1"], places=2)
        changed = services.contract_add_vehicles(contract=contract, vehicles=["M-FL 2", "M-FL 3"])
        assert changed.change_request is None
        assert contract.vehicles.count() == 3
        event = BusinessEvent.objects.get(name="contract.change_requested")
        assert event.payload["needs_review"] is False
        assert event.state == BusinessEvent.State.UNMATCHED  # the places review does not take it

    def test_the_review_wins_over_the_library_change_workflow_only_for_requests_that_need_review(self):
        publish_library("contract-change")  # bound to contract.change_requested, priority 1, no condition
        contract = self._running_fleet()
        services.contract_change_plate(contract=contract, old_plate="M-FL 1", new_plate="M-FL 9")
        services.contract_add_vehicles(contract=contract, vehicles=["M-FL 10"])
        keys = [
            e.process.definition.key
            for e in BusinessEvent.objects.filter(name="contract.change_requested").order_by("pk")
        ]
        assert keys == ["contract-change", "contract-places-review"]

    def test_the_approval_is_refused_when_the_quota_has_no_room_for_the_places(self):
        product = ProductFactory(vehicles_per_place=1, quota=2)
        contract = running_contract(product, CorporateFactory(), ["M-FL 1", "M-FL 2"], places=2)
        request = services.contract_add_vehicles(contract=contract, vehicles=["M-FL 3"]).change_request
        with pytest.raises(services.CarparkError) as refused:
            services.contract_change_request_approve(request=request)
        assert refused.value.field == "places" and "would need 3" in str(refused.value)
        assert Contract.objects.get(pk=contract.pk).places == 2

    def test_the_contract_page_shows_the_places_and_the_pending_request(self, client):
        contract = self._running_fleet()
        login(client, AGENT, carparks=[contract.product.carpark])
        response = client.post(
            reverse("carparks:contract-vehicles-add", args=[contract.pk]), {"plates": "M-FL 7"}, follow=True
        )
        page = response.content.decode()
        request = ContractChangeRequest.objects.get()
        assert f"change request {request.pk} for 4 places waits for review" in page
        assert "3 (up to 6 vehicles)" in page
        assert f"Change request {request.pk}" in page and "MFL7" in page
        assert Customer.objects.count() == 1
