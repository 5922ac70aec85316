"""The best-practice library: every workflow exports and re-imports to the same compiled graph, installs as a
draft, publishes, and runs to its end with the real system tasks of carparks, billing (localstripe) and connect
(the CPMS simulator)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from accounts import roles
from billing.tests.test_stripe import GOOD_CARD, issued_invoice, save_card
from carparks.models import CarPark, Case, Contract, Credential, Customer, Product, Vehicle
from carparks.tests.factories import CarParkFactory, CorporateFactory, CustomerFactory
from connect import services as connect_services
from workflows import authoring
from workflows.bpmn import bpmn_to_definition, definition_to_bpmn
from workflows.compiler import compile_spec
from workflows.models import Process, Task, WorkflowVersion
from workflows.registry import is_registered
from workflows.services import process_message, process_start, task_complete
from workflows.testing import fire_due_timers, run_pending_system_steps

ITEMS = {item.slug: item for item in authoring.library_items()}

REQUIRED = {
    "private-season-contract",
    "corporate-season-contract",
    "waitlist-place-offer",
    "contract-change",
    "contract-termination-final-invoice",
    "dunning-failed-payment",
    "returned-direct-debit",
    "bank-credit-matching",
    "carpark-onboarding",
    "complaint-refund",
    "access-card-replacement",
    "monthly-invoicing-review",
    "customer-callback",
}


def test_the_library_has_the_parking_workflows_each_described():
    assert set(ITEMS) == REQUIRED
    for item in ITEMS.values():
        assert len(item.description) > 80, item.slug
        assert item.name and item.category


@pytest.mark.parametrize("slug", sorted(REQUIRED))
def test_a_library_workflow_exports_and_reimports_to_the_same_compiled_graph(slug):
    first = ITEMS[slug].read()
    graph = compile_spec(first.spec, check_registry=False)
    exported = definition_to_bpmn(first.spec, layout=first.layout)
    again = bpmn_to_definition(exported)
    assert compile_spec(again.spec, check_registry=False) == graph
    assert again.layout.shapes == first.layout.shapes  # the diagram keeps its layout
    assert set(first.layout.shapes) >= {step["id"] for step in first.spec["steps"]}
    # every system task is a real one of billing, connect or carparks
    tasks = {s["task"] for s in first.spec["steps"] if s["type"] == "system"}
    assert tasks and all(t.split(".")[0] in {"billing", "connect", "carparks"} for t in tasks)
    assert all(is_registered(t) for t in tasks)


@pytest.mark.django_db
@pytest.mark.parametrize("slug", sorted(REQUIRED))
def test_an_installed_library_workflow_exports_with_workflow_export_and_reimports_to_its_graph(slug, tmp_path):
    version = publish(slug)
    out = tmp_path / f"{slug}.bpmn"
    call_command("workflow_export", version.definition.key, "--output", str(out), stderr=StringIO())
    assert compile_spec(bpmn_to_definition(out.read_bytes()).spec) == version.graph


# -- running them ------------------------------------------------------------------------------------
def publish(slug: str, user=None) -> WorkflowVersion:
    """Install from the library: a valid workflow whose start is free comes out published."""
    saved = authoring.library_install(slug=slug, user=user)
    assert saved.valid, saved.problems
    assert saved.version.state == WorkflowVersion.State.PUBLISHED
    return saved.version


def open_task(process: Process) -> Task:
    return Task.objects.get(process=process, state__in=[Task.State.OPEN, Task.State.CLAIMED])


def complete(process: Process, user, outcome: str, inputs: dict | None = None) -> Process:
    task = open_task(process)
    task_complete(task=task, user=user, outcome=outcome, inputs=inputs or {})
    run_pending_system_steps()
    return Process.objects.get(pk=process.pk)


def finished(process: Process, result: str) -> None:
    process = Process.objects.get(pk=process.pk)
    assert (process.state, process.result, process.incident_open) == (Process.State.COMPLETED, result, False), (
        process.current_step,
        process.incident_error,
    )


def contract_at(carpark: CarPark, *, state: str, plates=("M-LB 100",), customer: Customer | None = None) -> Contract:
    customer = customer or CustomerFactory()
    product, _ = Product.objects.get_or_create(
        carpark=carpark, name="Season 24/7", defaults={"monthly_price": Decimal("95.00"), "quota": 50}
    )
    contract = Contract.objects.create(
        customer=customer, product=product, state=state, start_date=date(2026, 1, 1), monthly_price="95.00"
    )
    for plate in plates:
        contract.vehicles.add(Vehicle.objects.create(customer=customer, plate=plate))
    return contract


@pytest.fixture
def patient_connection(connection):  # noqa: F811
    """The simulator connection with a timeout that survives a busy machine (the fixture's is 0.5 s)."""
    connection.timeout_seconds = 5
    connection.save(update_fields=["timeout_seconds"])
    return connection


@pytest.fixture
def synced_carpark(sim, patient_connection) -> CarPark:  # noqa: F811
    connect_services.sync_static(connection=patient_connection)
    return CarPark.objects.get(cpms_reference="SIM-0001")


@pytest.fixture
def staff(make_user):
    def make(role: str, carpark: CarPark | None = None):
        return make_user(
            f"{role.split()[0].lower()}{Task.objects.count()}{timezone.now().microsecond}",
            role,
            carparks=[carpark] if carpark else [],
        )

    return make


@pytest.mark.django_db
def test_private_season_contract_runs_to_active_with_credentials_in_the_cpms(sim, synced_carpark, staff):  # noqa: F811
    publish("private-season-contract")
    contract = contract_at(synced_carpark, state=Contract.State.APPLIED, plates=("M-PR 1",))
    process = process_start(definition_key="private-season-contract", business_object=contract)
    task = open_task(process)
    assert (task.role, task.scope_carpark_id) == (roles.AGENT, synced_carpark.pk)
    complete(process, staff(roles.AGENT, synced_carpark), "approve", {"note": "ok"})
    finished(process, "active")
    contract = Contract.objects.get(pk=contract.pk)
    assert contract.state == Contract.State.ACTIVE
    credential = contract.credentials.get()
    assert f"phq-credential-{credential.pk}" in sim.rights()
    assert any(contract.customer.email in m.to for m in mail.outbox)  # the card set-up link


@pytest.mark.django_db
def test_corporate_contract_with_many_vehicles_needs_a_supervisor(sim, synced_carpark, staff):  # noqa: F811
    publish("corporate-season-contract")
    plates = tuple(f"M-CO {n}" for n in range(1, 8))
    contract = contract_at(synced_carpark, state=Contract.State.APPLIED, plates=plates, customer=CorporateFactory())
    process = process_start(
        definition_key="corporate-season-contract", business_object=contract, variables={"vehicle_count": len(plates)}
    )
    process = complete(process, staff(roles.AGENT, synced_carpark), "approve", {"company_checked": True})
    assert open_task(process).role == roles.SUPERVISOR
    complete(process, staff(roles.SUPERVISOR), "approve")
    finished(process, "active")
    contract = Contract.objects.get(pk=contract.pk)
    assert contract.credentials.count() == 7
    assert len([r for r in sim.rights() if r.startswith("phq-credential-")]) == 7


@pytest.mark.django_db
def test_waitlist_offer_accepted_and_expired():
    publish("waitlist-place-offer")
    carpark = CarParkFactory()
    accepted = contract_at(carpark, state=Contract.State.OFFERED)
    process = process_start(definition_key="waitlist-place-offer", business_object=accepted)
    process_message(process=process, name="offer.accepted")
    run_pending_system_steps()
    finished(process, "accepted")

    lapsing = contract_at(carpark, state=Contract.State.OFFERED, plates=("M-WL 2",))
    process = process_start(definition_key="waitlist-place-offer", business_object=lapsing)
    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=1), tick=False):
        fire_due_timers()
        run_pending_system_steps()
    finished(process, "expired")
    assert Contract.objects.get(pk=lapsing.pk).state == Contract.State.CANCELLED


@pytest.mark.django_db
def test_contract_change_of_product_goes_past_finance_and_pushes(sim, synced_carpark, staff):  # noqa: F811
    publish("contract-change")
    contract = contract_at(synced_carpark, state=Contract.State.ACTIVE, plates=())
    Credential.objects.create(
        contract=contract,
        carpark=synced_carpark,
        kind=Credential.Kind.PLATE,
        identifier="M-CH 42",
        valid_from=date(2026, 1, 1),
    )
    process = process_start(definition_key="contract-change", business_object=contract)
    process = complete(process, staff(roles.AGENT, synced_carpark), "done", {"change_kind": "product"})
    assert open_task(process).role == roles.FINANCE
    complete(process, staff(roles.FINANCE), "ok")
    finished(process, "changed")
    assert f"phq-credential-{contract.credentials.get().pk}" in sim.rights()


@pytest.mark.django_db
def test_termination_revokes_credentials_and_sends_the_final_invoice(sim, synced_carpark, staff):  # noqa: F811
    from connect.services import credentials_push

    publish("contract-termination-final-invoice")
    contract = contract_at(synced_carpark, state=Contract.State.ACTIVE, plates=())
    credential = Credential.objects.create(
        contract=contract,
        carpark=synced_carpark,
        kind=Credential.Kind.PLATE,
        identifier="M-TE 9",
        valid_from=date(2026, 1, 1),
    )
    credentials_push(contract=contract, key="before")
    assert f"phq-credential-{credential.pk}" in sim.rights()
    end = timezone.now() + timedelta(days=10)
    process = process_start(
        definition_key="contract-termination-final-invoice",
        business_object=contract,
        variables={"terminate_at": end.isoformat(), "end_date": end.date().isoformat(), "reason": "moving"},
    )
    process = complete(process, staff(roles.AGENT, synced_carpark), "confirm")
    assert process.current_step == "wait_end"
    with time_machine.travel(end + timedelta(minutes=1), tick=False):
        fire_due_timers()
        run_pending_system_steps()
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.TERMINATED
        assert f"phq-credential-{credential.pk}" not in sim.rights()
        invoice = issued_invoice(contract.customer)
        mail.outbox.clear()
        complete(process, staff(roles.FINANCE), "issued", {"invoice_id": invoice.pk})
    finished(process, "terminated")
    assert any(m.attachments for m in mail.outbox)  # the invoice PDF went out


@pytest.mark.django_db
def test_dunning_retries_the_card_and_ends_paid(client, stripe_settings):  # noqa: F811
    publish("dunning-failed-payment")
    customer = CustomerFactory(language="en")  # the reminder below is read in English
    invoice = issued_invoice(customer)
    process = process_start(definition_key="dunning-failed-payment", business_object=invoice)
    run_pending_system_steps()
    assert Process.objects.get(pk=process.pk).current_step == "wait_1"
    assert any("payment" in m.subject.lower() for m in mail.outbox)  # first reminder
    save_card(client, customer, GOOD_CARD)  # the customer saves a working card
    with time_machine.travel(timezone.now() + timedelta(days=3, minutes=1), tick=False):
        fire_due_timers()
        run_pending_system_steps()
    finished(process, "paid")
    invoice.refresh_from_db()
    assert invoice.state == invoice.State.PAID


@pytest.mark.django_db
def test_carpark_onboarding_connects_syncs_and_goes_live(sim, patient_connection, staff):  # noqa: F811
    publish("carpark-onboarding")
    carpark = CarParkFactory(name="New garage")
    process = process_start(definition_key="carpark-onboarding", business_object=carpark)
    process = complete(process, staff(roles.MANAGER), "connected", {"connection_id": patient_connection.pk})
    assert CarPark.objects.filter(cpms_reference="SIM-0001").exists()  # static data imported
    process = complete(process, staff(roles.MANAGER), "done")
    process = complete(process, staff(roles.FINANCE), "approve")
    assert open_task(process).role == roles.SUPERVISOR  # occupancy synced on the way
    assert process.variables["cpms_occupancy_updated"] >= 1
    complete(process, staff(roles.SUPERVISOR), "go_live", {"barrier_tested": True})
    finished(process, "live")


@pytest.mark.django_db
def test_complaint_goes_to_finance_for_a_refund_and_is_resolved(staff):
    from workflows.sync import sync_definitions

    sync_definitions()  # case_open starts the app's own customer-case process
    publish("complaint-refund")
    carpark = CarParkFactory()
    contract = contract_at(carpark, state=Contract.State.ACTIVE)
    from carparks.services import case_open

    case = case_open(customer=contract.customer, contract=contract, kind=Case.Kind.COMPLAINT, subject="Barrier broken")
    process = process_start(definition_key="complaint-refund", business_object=case)
    process = complete(process, staff(roles.CARE, carpark), "refund")
    complete(process, staff(roles.FINANCE), "refunded", {"resolution": "We refunded one day."})
    finished(process, "resolved")
    assert Case.objects.get(pk=case.pk).state == Case.State.RESOLVED


@pytest.mark.django_db
def test_lost_card_is_replaced_pushed_and_the_case_resolved(sim, synced_carpark, staff):  # noqa: F811
    from carparks.services import case_open
    from workflows.sync import sync_definitions

    sync_definitions()
    publish("access-card-replacement")
    contract = contract_at(synced_carpark, state=Contract.State.ACTIVE)
    case = case_open(
        customer=contract.customer, contract=contract, kind=Case.Kind.CARD_REPLACEMENT, subject="Card lost"
    )
    process = process_start(definition_key="access-card-replacement", business_object=case)
    complete(process, staff(roles.CARE, synced_carpark), "replace", {"resolution": "New card is on its way."})
    finished(process, "resolved")
    card = contract.credentials.get(kind=Credential.Kind.RFID, is_active=True)
    assert f"phq-credential-{card.pk}" in sim.rights()
    assert Case.objects.get(pk=case.pk).state == Case.State.RESOLVED


@pytest.mark.django_db
def test_monthly_invoicing_bills_and_finance_closes_the_month(stripe_settings, staff):  # noqa: F811
    publish("monthly-invoicing-review")
    carpark = CarParkFactory()
    contract_at(carpark, state=Contract.State.ACTIVE)
    process = process_start(definition_key="monthly-invoicing-review", variables={"period_start": "2026-03-01"})
    run_pending_system_steps()
    process = Process.objects.get(pk=process.pk)
    assert process.variables["invoices_created"] == 1
    complete(process, staff(roles.FINANCE), "close", {"review_note": "All fine."})
    finished(process, "invoiced")


@pytest.mark.django_db
def test_a_call_back_not_made_in_a_day_turns_into_a_written_answer(staff):
    from carparks.services import case_open
    from workflows.sync import sync_definitions

    sync_definitions()  # case_open starts the app's own customer-case process
    publish("customer-callback")
    carpark = CarParkFactory()
    contract = contract_at(carpark, state=Contract.State.ACTIVE)
    care = staff(roles.CARE, carpark)

    # reached on the phone the same day
    case = case_open(customer=contract.customer, contract=contract, kind=Case.Kind.QUESTION, subject="Call me")
    process = process_start(definition_key="customer-callback", business_object=case)
    complete(process, care, "reached", {"resolution": "Explained the night tariff."})
    finished(process, "resolved")
    assert Case.objects.get(pk=case.pk).resolution == "Explained the night tariff."

    # nobody reached the customer: after a day the call closes and the written answer takes over
    with time_machine.travel(timezone.now(), tick=False) as clock:
        case = case_open(customer=contract.customer, contract=contract, kind=Case.Kind.QUESTION, subject="Call me")
        process = process_start(definition_key="customer-callback", business_object=case)
        call = open_task(process)
        clock.shift(timedelta(days=1, seconds=1))
        assert fire_due_timers() >= 1
        assert Task.objects.get(pk=call.pk).state == Task.State.CANCELLED
        assert open_task(process).step_id == "write"
        complete(process, care, "answered", {"resolution": "We tried to call: the night tariff is 2 EUR."})
    finished(process, "resolved")
    assert Case.objects.get(pk=case.pk).state == Case.State.RESOLVED
