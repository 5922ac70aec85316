"""The car-park services emit business events (never naming a workflow); the shipped definitions start on them.

The conftest installs the shipped definitions, so their start bindings are in force; a test that wants
"no workflow bound" deletes the binding.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from accounts.roles import ADMINISTRATOR, AGENT, MANAGER, RESPONSIBLE_PERMISSION, SUPERVISOR
from carparks import selectors, services
from carparks.models import ApiClient, CarPark, Contract, Customer
from carparks.tests.factories import CarParkFactory, CustomerFactory, ProductFactory, approve_directly
from carparks.tests.test_views import login
from workflows import authoring
from workflows.models import BusinessEvent, Process, StartBinding, Task, WorkflowVersion
from workflows.testing import fire_due_timers, run_pending_system_steps

pytestmark = pytest.mark.django_db


def events(name, obj=None):
    qs = BusinessEvent.objects.filter(name=name).order_by("pk")
    if obj is not None:
        qs = qs.filter(content_type=ContentType.objects.get_for_model(type(obj)), object_id=obj.pk)
    return list(qs)


def started_process(event):
    assert event.state == BusinessEvent.State.STARTED, event.error
    return Process.objects.select_related("definition").get(pk=event.process_id)


def running(product, plate="M AB 1"):
    contract = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=[plate])
    return services.contract_activate(contract=approve_directly(contract))


def publish_library(slug):
    saved = authoring.library_install(slug=slug)
    assert saved.valid, saved.problems
    if saved.version.state == WorkflowVersion.State.DRAFT:
        saved = authoring.draft_publish(version=saved.version)
        assert saved.valid, saved.problems
    return saved.version


class TestApplications:
    def test_an_application_with_a_free_place_emits_application_received_with_the_contract(self):
        product = ProductFactory(quota=1, vehicles_per_place=2)
        contract = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["M AB 1", "M AB 2"])
        (event,) = events("application.received", contract)
        assert event.event_id == f"application.received:{contract.pk}"
        assert event.payload | {} == {
            **event.payload,
            "contract_id": contract.pk,
            "customer_id": contract.customer_id,
            "customer_kind": "private",
            "product_id": product.pk,
            "carpark_id": product.carpark_id,
            "channel": "portal",
            "plates": ["MAB1", "MAB2"],
            "vehicle_count": 2,
        }
        process = started_process(event)
        assert process.variables["contract_id"] == contract.pk
        assert Task.objects.get(process=process).name == "Review application"

        # the next one is waitlisted: nothing is emitted yet
        waiting = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["M AB 3"])
        assert waiting.state == Contract.State.WAITLISTED
        assert events("application.received", waiting) == []

    def test_an_accepted_offer_is_a_second_application_event_from_the_waitlist(self):
        product = ProductFactory(quota=1)
        first = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["M AB 1"])
        second = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["M AB 2"])
        services.contract_cancel(contract=first)
        (offer,) = events("waitlist.place_freed", second)
        assert offer.event_id == f"waitlist.place_freed:{second.pk}:1"
        assert offer.payload["product_id"] == product.pk
        waiting = started_process(offer)
        assert waiting.current_step == "wait_accept"

        services.contract_offer_accept(contract=Contract.objects.get(pk=second.pk))
        (application,) = events("application.received", second)
        assert application.event_id == f"application.received:{second.pk}:offer"
        assert application.payload["channel"] == "waitlist"
        assert started_process(application).current_step == "review"
        assert Process.objects.get(pk=waiting.pk).state == Process.State.COMPLETED  # the offer process heard it

    def test_the_api_application_says_it_came_from_the_api(self):
        from carparks.tests.test_api import application, client_with

        shop = client_with(*ApiClient.Scope.values)
        product = ProductFactory()
        response = shop.post(
            "/api/v1/applications/",
            application(product, customer={"kind": "private", "name": "Jo Web", "email": "jo@example.com"}),
            format="json",
        )
        assert response.status_code == 201, response.content
        (application,) = events("application.received")
        assert application.payload["channel"] == "api"
        (created,) = events("customer.created")
        assert created.payload == {
            "customer_id": Customer.objects.get(email="jo@example.com").pk,
            "customer_name": "Jo Web",
            "customer_kind": "private",
            "channel": "api",
        }

    def test_the_contract_page_waits_for_the_task_of_whatever_workflow_the_application_started(self, client):
        publish_library("private-season-contract")  # more specific than the shipped review: it wins
        product = ProductFactory()
        contract = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["M AB 1"])
        process = started_process(events("application.received", contract)[0])
        assert process.definition.key != "season-contract"
        assert selectors.under_review(selectors.processes_about(contract))
        login(client, SUPERVISOR)
        page = client.get(reverse("carparks:contract-detail", args=[contract.pk])).content.decode()
        assert "waits for its review task" in page

        # ended by hand: the process the application started is cancelled with it
        services.contract_cancel(contract=contract)
        assert services.contract_processes_close(contract=contract) == 1
        assert Process.objects.get(pk=process.pk).state == Process.State.CANCELLED
        assert not selectors.under_review(selectors.processes_about(contract))


class TestCustomers:
    def test_creating_a_customer_emits_customer_created_once(self):
        customer = services.customer_find_or_create(kind="private", name="Ada", email="ada@example.com")
        again = services.customer_find_or_create(kind="private", name="Ada", email="ada@example.com")
        assert again.pk == customer.pk
        (event,) = events("customer.created")
        assert (event.event_id, event.object_id, event.state) == (
            f"customer.created:{customer.pk}",
            customer.pk,
            BusinessEvent.State.UNMATCHED,
        )


class TestTermination:
    def test_notice_emits_termination_requested_and_the_process_ends_the_contract_on_the_day(self):
        contract = running(ProductFactory())
        end = timezone.localdate() + timedelta(days=1)
        services.contract_request_termination(contract=contract, end_date=end, enforce_notice=False, reason="Moving")
        (event,) = events("termination.requested", contract)
        assert event.payload["end_date"] == end.isoformat()
        assert event.payload["carpark_id"] == contract.product.carpark_id
        process = started_process(event)
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.ACTIVE  # waits for the date

        # asked again for the same day: no second process
        services.contract_request_termination(contract=contract, end_date=end, enforce_notice=False)
        assert len(events("termination.requested", contract)) == 1

        with time_machine.travel(timezone.now() + timedelta(days=3)):
            fire_due_timers()
            run_pending_system_steps()
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.TERMINATED
        assert Task.objects.get(process=process, state=Task.State.OPEN).name == "Refund deposit"

    def test_when_the_event_starts_no_process_a_notice_for_today_ends_the_contract_at_once(self):
        StartBinding.objects.filter(event="termination.requested").delete()
        contract = running(ProductFactory())
        services.contract_request_termination(contract=contract, end_date=timezone.localdate(), enforce_notice=False)
        (event,) = events("termination.requested", contract)
        assert event.state == BusinessEvent.State.UNMATCHED
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.TERMINATED

        later = running(ProductFactory(), plate="M AB 2")
        services.contract_request_termination(
            contract=later, end_date=timezone.localdate() + timedelta(days=5), enforce_notice=False
        )
        assert Contract.objects.get(pk=later.pk).state == Contract.State.ACTIVE  # the beat's safety net ends it


class TestChanges:
    def test_plate_vehicle_and_staged_changes_emit_change_requested_with_their_kind(self):
        product = ProductFactory(vehicles_per_place=2)
        other_here = ProductFactory(carpark=product.carpark)
        elsewhere = ProductFactory()
        contract = running(product)
        services.contract_change_plate(contract=contract, old_plate="M AB 1", new_plate="M XY 9")
        services.contract_add_vehicles(contract=contract, vehicles=["M FL 1"])
        services.contract_stage_change(contract=contract, next_product=other_here)
        services.contract_stage_change(contract=contract, next_product=elsewhere)
        services.contract_stage_change(contract=contract, next_plate="M NE 1")
        changes = events("contract.change_requested", contract)
        assert [e.payload["kind"] for e in changes] == ["plate", "vehicle", "product", "carpark", "vehicle"]
        assert len({e.event_id for e in changes}) == 5
        assert changes[0].payload["details"] == "Plate changed from MAB1 to MXY9."
        assert changes[2].payload["effective_date"] == services.first_of_next_month().isoformat()
        # the plate change is instant, as before: the credential already follows
        assert set(contract.credentials.filter(is_active=True).values_list("identifier", flat=True)) == {
            "MXY9",
            "MFL1",
        }

    def test_with_the_change_workflow_published_a_plate_change_starts_its_review(self):
        publish_library("contract-change")
        contract = running(ProductFactory())
        services.contract_change_plate(contract=contract, old_plate="M AB 1", new_plate="M XY 9")
        (event,) = events("contract.change_requested", contract)
        process = started_process(event)
        assert Task.objects.get(process=process).step_id == "review_change"


class TestCarparkCreate:
    def test_the_service_adds_a_car_park_for_the_sync_and_emits_carpark_added(self):
        carpark = services.carpark_create(
            name="Sim garage", city="Berlin", capacity=40, source="cpms_sync", connection_id=7, cpms_reference="X-1"
        )
        assert (carpark.code, carpark.cpms_reference) == ("sim-garage", "X-1")
        (event,) = events("carpark.added", carpark)
        assert event.payload == {
            "carpark_id": carpark.pk,
            "carpark": "Sim garage",
            "city": "Berlin",
            "capacity": 40,
            "source": "cpms_sync",
            "connection_id": 7,
        }
        assert services.carpark_create(name="Sim garage").code == "sim-garage-2"

    @pytest.mark.parametrize(
        "fields, field",
        [
            ({"name": " "}, "name"),
            ({"name": "X", "time_zone": "Mars/Olympus"}, "time_zone"),
            ({"name": "X", "capacity": -1}, "capacity"),
            ({"name": "X", "latitude": Decimal("91")}, "latitude"),
            ({"name": "X", "code": "taken"}, "code"),
        ],
    )
    def test_the_service_refuses_bad_input_naming_the_field(self, fields, field):
        CarParkFactory(code="taken")
        with pytest.raises(services.CarparkError) as refused:
            services.carpark_create(**fields)
        assert refused.value.field == field
        assert CarPark.objects.count() == 1
        assert not BusinessEvent.objects.exists()

    def test_only_managers_and_administrators_may_add_a_car_park(self, client):
        login(client, AGENT)
        assert client.get(reverse("carparks:carpark-create")).status_code == 403
        assert reverse("carparks:carpark-create") not in client.get(reverse("carparks:carpark-list")).content.decode()
        login(client, ADMINISTRATOR)
        assert client.get(reverse("carparks:carpark-create")).status_code == 200

    def test_the_form_shows_what_is_wrong_and_adds_nothing(self, client):
        login(client, MANAGER)
        response = client.post(reverse("carparks:carpark-create"), {"name": "", "capacity": "-3", "time_zone": "X"})
        assert response.status_code == 200
        form = response.context["form"]
        assert set(form.errors) == {"name", "capacity", "time_zone"}
        assert not CarPark.objects.exists()

    def test_a_manager_sees_the_car_park_they_added(self, client):
        user = login(client, MANAGER)
        response = client.post(
            reverse("carparks:carpark-create"),
            {"name": "Nordpark", "city": "Kiel", "capacity": "50", "time_zone": "Europe/Berlin"},
            follow=True,
        )
        carpark = CarPark.objects.get(name="Nordpark")
        assert user.has_perm(RESPONSIBLE_PERMISSION, carpark)
        assert "You are responsible for it." in response.content.decode()
        assert "Nordpark" in client.get(reverse("carparks:carpark-list")).content.decode()
