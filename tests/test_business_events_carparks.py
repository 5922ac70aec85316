"""The car-park app starts workflows only through business events: which workflow runs is decided by
what is published and bound to the event, never by the app.

Against PostgreSQL, with the shipped definitions and library workflows installed the way an admin
does (library install, then publish), and with the real system steps run where the processes reach
them.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from accounts import roles
from carparks import services
from carparks.models import CarPark, Case, Contract, Credential, Product, Vehicle
from carparks.tests.factories import CarParkFactory, CustomerFactory, ProductFactory
from workflows import authoring
from workflows.events import EventPayloadInvalid
from workflows.models import BusinessEvent, Process, StartBinding, Task, WorkflowVersion
from workflows.services import task_complete
from workflows.starting import event_emit
from workflows.sync import sync_definitions
from workflows.testing import run_pending_system_steps

pytestmark = pytest.mark.django_db


def install_from_library(slug: str) -> WorkflowVersion:
    """Install a library workflow and publish its draft (if installing did not publish it already)."""
    saved = authoring.library_install(slug=slug)
    assert saved.valid, saved.problems
    version = saved.version
    if version.state == WorkflowVersion.State.DRAFT:
        published = authoring.draft_publish(version=version)
        assert published.valid, published.problems
        version = published.version
    version.refresh_from_db()
    assert version.state == WorkflowVersion.State.PUBLISHED
    return version


def processes_about(obj) -> list[Process]:
    return list(
        Process.objects.filter(
            content_type=ContentType.objects.get_for_model(type(obj)), object_id=obj.pk
        ).select_related("definition")
    )


def running_contract(carpark: CarPark) -> Contract:
    customer = CustomerFactory()
    product = Product.objects.create(carpark=carpark, name="Season 24/7", monthly_price=Decimal("95.00"), quota=10)
    contract = Contract.objects.create(
        customer=customer,
        product=product,
        state=Contract.State.ACTIVE,
        start_date=date(2026, 1, 1),
        monthly_price=Decimal("95.00"),
    )
    contract.vehicles.add(Vehicle.objects.create(customer=customer, plate="MLB100"))
    return contract


# --- (a) the most specific workflow bound to case.opened starts ----------------------------------


def test_it_starts_the_lost_card_workflow_for_a_card_replacement_case_and_customer_case_for_a_complaint(make_user):
    sync_definitions()
    card_workflow = install_from_library("access-card-replacement")
    carpark = CarParkFactory()
    contract = running_contract(carpark)

    case = services.case_open(
        customer=contract.customer, contract=contract, kind=Case.Kind.CARD_REPLACEMENT, subject="Card lost"
    )
    (process,) = processes_about(case)
    assert process.definition_id == card_workflow.definition_id
    assert process.version_id == card_workflow.pk
    task = Task.objects.get(process=process, state=Task.State.OPEN)
    assert (task.step_id, task.role) == ("verify", roles.CARE)
    assert process.variables["kind"] == "card_replacement"
    assert process.variables["contract_id"] == contract.pk
    assert process.variables["carpark_id"] == carpark.pk
    event = BusinessEvent.objects.get(name="case.opened", object_id=case.pk)
    assert (event.state, event.process_id, event.event_id) == ("started", process.pk, f"case.opened:{case.pk}")

    # the process runs on: the real system step issues the new card and the case is resolved
    care = make_user("care", roles.CARE, carparks=[carpark])
    task_complete(task=task, user=care, outcome="replace", inputs={"resolution": "A new card is on its way."})
    run_pending_system_steps()
    assert contract.credentials.filter(kind=Credential.Kind.RFID, is_active=True).count() == 1

    # a complaint is not the lost-card workflow's: the shipped customer case takes it
    complaint = services.case_open(customer=contract.customer, kind=Case.Kind.COMPLAINT, subject="Barrier broken")
    (process,) = processes_about(complaint)
    assert process.definition.key == "customer-case"
    assert Task.objects.get(process=process, state=Task.State.OPEN).step_id == "triage"


# --- (b) adding a car park in the portal starts its onboarding -----------------------------------


def test_it_starts_one_onboarding_for_a_car_park_a_manager_adds_in_the_portal(client, login, make_user):
    onboarding = install_from_library("carpark-onboarding")
    manager = login(client, make_user("manager", roles.MANAGER))

    listing = client.get(reverse("carparks:carpark-list"))
    assert reverse("carparks:carpark-create") in listing.content.decode()
    response = client.post(
        reverse("carparks:carpark-create"),
        {
            "name": "Ostbahnhof Nord",
            "street": "Friedenstraße 10",
            "postcode": "81671",
            "city": "Munich",
            "capacity": "320",
            "time_zone": "Europe/Berlin",
            "latitude": "48.127",
            "longitude": "11.604",
        },
        follow=True,
    )
    carpark = CarPark.objects.get(name="Ostbahnhof Nord")
    assert response.redirect_chain[-1][0] == reverse("carparks:carpark-detail", args=[carpark.pk])
    assert "Car park Ostbahnhof Nord was added" in response.content.decode()
    assert (carpark.city, carpark.capacity, carpark.latitude) == ("Munich", 320, Decimal("48.127000"))
    assert manager.has_perm(roles.RESPONSIBLE_PERMISSION, carpark)  # the manager sees what they added

    (process,) = processes_about(carpark)
    assert process.definition_id == onboarding.definition_id
    assert Task.objects.get(process=process, state=Task.State.OPEN).step_id == "connect_cpms"
    event = BusinessEvent.objects.get(name="carpark.added")
    assert (event.state, event.process_id, event.object_id) == (BusinessEvent.State.STARTED, process.pk, carpark.pk)
    assert event.payload["source"] == "portal"
    assert event.emitted_by == manager


def test_it_records_the_event_unmatched_and_still_adds_the_car_park_when_no_workflow_is_bound(client, login, make_user):
    assert not StartBinding.objects.filter(event="carpark.added").exists()
    login(client, make_user("admin", roles.ADMINISTRATOR))
    response = client.post(
        reverse("carparks:carpark-create"),
        {"name": "Westend", "city": "Frankfurt", "capacity": "80", "time_zone": "Europe/Berlin"},
    )
    carpark = CarPark.objects.get(name="Westend")
    assert response.status_code == 302
    assert processes_about(carpark) == []
    event = BusinessEvent.objects.get(name="carpark.added")
    assert (event.state, event.process_id, event.object_id) == (BusinessEvent.State.UNMATCHED, None, carpark.pk)


# --- (c) a payload that does not match its schema is refused with nothing half-done ---------------


def test_it_refuses_an_application_whose_event_payload_is_invalid_and_leaves_no_contract():
    sync_definitions()
    product = ProductFactory()
    with pytest.raises(EventPayloadInvalid) as refused:
        services.contract_apply(
            customer=CustomerFactory(), product=product, vehicles=["M AB 1"], channel="carrier pigeon"
        )
    assert "channel" in str(refused.value)
    assert not Contract.objects.exists()
    assert not Vehicle.objects.exists()
    assert not BusinessEvent.objects.exists()
    assert not Process.objects.exists()


def test_it_refuses_a_case_whose_event_payload_is_invalid_and_leaves_no_case():
    sync_definitions()
    with pytest.raises(EventPayloadInvalid) as refused:
        services.case_open(customer=CustomerFactory(), kind=Case.Kind.QUESTION, subject="Hello", channel="fax")
    assert refused.value.name == "case.opened"
    assert not Case.objects.exists()
    assert not BusinessEvent.objects.exists()
    assert not Process.objects.exists()


# --- (d) the same event twice starts once ----------------------------------------------------------


def test_it_starts_one_process_when_the_same_case_opened_event_is_emitted_twice():
    sync_definitions()
    case = services.case_open(customer=CustomerFactory(), kind=Case.Kind.QUESTION, subject="Opening hours?")
    first = BusinessEvent.objects.get(name="case.opened")
    again = event_emit(
        name="case.opened",
        payload=services._case_payload(case),
        business_object=case,
        event_id=f"case.opened:{case.pk}",
    )
    assert again.pk == first.pk
    assert BusinessEvent.objects.filter(name="case.opened").count() == 1
    assert len(processes_about(case)) == 1
