"""The car-park processes run on the engine, started by the events the services emit: season-contract,
waitlist-offer, contract-termination, customer-case, contract-places-review."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from guardian.shortcuts import assign_perm

import workflows.services as wf
from accounts.roles import AGENT, CARE, FINANCE
from carparks import services
from carparks.models import Case, Contract
from carparks.tests.factories import CustomerFactory, ProductFactory, UserFactory, approve_directly
from workflows.errors import TaskPermissionDenied
from workflows.models import Process, Task, WorkflowVersion
from workflows.testing import fire_due_timers, run_pending_system_steps

pytestmark = pytest.mark.django_db


def processes(obj, key):
    from django.contrib.contenttypes.models import ContentType

    return Process.objects.filter(
        content_type=ContentType.objects.get_for_model(type(obj)), object_id=obj.pk, definition__key=key
    )


def open_task(process):
    return process.tasks.get(state__in=["open", "claimed"])


def agent_for(carpark, role=AGENT):
    user = UserFactory(roles=[role])
    assign_perm("carparks.responsible_carpark", user, carpark)
    return user


def test_an_application_is_reviewed_approved_and_activated():
    product = ProductFactory(vehicles_per_place=2)
    contract = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["M AB 1", "M AB 2"])
    (process,) = processes(contract, "season-contract")
    task = open_task(process)
    assert task.name == "Review application"
    assert task.role == AGENT
    assert task.scope_carpark_id == product.carpark_id
    with pytest.raises(TaskPermissionDenied):
        wf.task_complete(task=task, user=UserFactory(roles=[AGENT]), outcome="approve")  # not responsible
    wf.task_complete(task=task, user=agent_for(product.carpark), outcome="approve", inputs={"note": "Looks fine"})
    run_pending_system_steps()
    contract = Contract.objects.get(pk=contract.pk)
    assert contract.state == Contract.State.ACTIVE
    assert set(contract.credentials.values_list("identifier", flat=True)) == {"MAB1", "MAB2"}
    process.refresh_from_db()
    assert process.state == Process.State.COMPLETED
    assert process.result == "approved"


def test_a_rejected_application_frees_its_place_for_the_waitlist():
    product = ProductFactory(quota=1)
    contract = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["A1"])
    waiting = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["A2"])
    assert not processes(waiting, "season-contract").exists()  # queued, not reviewed
    task = open_task(processes(contract, "season-contract").get())
    wf.task_complete(task=task, user=agent_for(product.carpark), outcome="reject", inputs={"note": "No ID"})
    run_pending_system_steps()
    assert Contract.objects.get(pk=contract.pk).state == Contract.State.REJECTED
    assert Contract.objects.get(pk=waiting.pk).state == Contract.State.OFFERED
    offer = processes(waiting, "waitlist-offer").get()
    assert offer.waiting_for == "offer.accepted"


def test_an_unanswered_offer_expires_through_the_process_and_moves_on():
    product = ProductFactory(quota=1)
    holder = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["H1"])
    first = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["W1"])
    second = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["W2"])
    services.contract_cancel(contract=holder)
    assert Contract.objects.get(pk=first.pk).state == Contract.State.OFFERED
    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=5)):
        fire_due_timers()
        run_pending_system_steps()
    assert Contract.objects.get(pk=first.pk).state == Contract.State.CANCELLED
    assert processes(first, "waitlist-offer").get().result == "expired"
    assert Contract.objects.get(pk=second.pk).state == Contract.State.OFFERED
    assert processes(second, "waitlist-offer").get().state == Process.State.RUNNING


def test_an_accepted_offer_ends_the_offer_process_and_starts_the_review():
    product = ProductFactory(quota=1)
    holder = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["H1"])
    waiting = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["W1"])
    services.contract_cancel(contract=holder)
    services.contract_offer_accept(contract=Contract.objects.get(pk=waiting.pk))
    offer = processes(waiting, "waitlist-offer").get()
    assert offer.state == Process.State.COMPLETED
    assert offer.result == "accepted"
    assert open_task(processes(waiting, "season-contract").get()).name == "Review application"
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        fire_due_timers()
        run_pending_system_steps()
    assert Contract.objects.get(pk=waiting.pk).state == Contract.State.APPLIED


def test_notice_ends_the_contract_on_its_date_and_asks_finance_for_the_deposit():
    product = ProductFactory(notice_period_days=30)
    contract = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["T1"])
    contract = services.contract_activate(contract=approve_directly(contract))
    services.contract_request_termination(contract=contract, reason="Moving away")
    process = processes(contract, "contract-termination").get()
    with time_machine.travel(timezone.now() + timedelta(days=29)):
        fire_due_timers()
        run_pending_system_steps()
    assert Contract.objects.get(pk=contract.pk).state == Contract.State.ACTIVE
    with time_machine.travel(timezone.now() + timedelta(days=32)):
        fire_due_timers()
        run_pending_system_steps()
    contract = Contract.objects.get(pk=contract.pk)
    assert contract.state == Contract.State.TERMINATED
    assert not contract.credentials.filter(is_active=True).exists()
    task = open_task(Process.objects.get(pk=process.pk))
    assert (task.name, task.role) == ("Refund deposit", FINANCE)


def test_a_card_replacement_case_issues_a_card_and_resolves():
    product = ProductFactory()
    contract = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["C1"])
    contract = services.contract_activate(contract=approve_directly(contract))
    case = services.case_open(
        customer=contract.customer, contract=contract, kind=Case.Kind.CARD_REPLACEMENT, subject="Card lost"
    )
    task = open_task(processes(case, "customer-case").get())
    assert (task.role, task.scope_carpark_id) == (CARE, product.carpark_id)
    wf.task_complete(
        task=task, user=agent_for(product.carpark, CARE), outcome="replace_card", inputs={"resolution": "New card"}
    )
    run_pending_system_steps()
    run_pending_system_steps()  # a re-run changes nothing
    case = Case.objects.get(pk=case.pk)
    assert case.state == Case.State.RESOLVED
    cards = contract.credentials.filter(kind="rfid")
    assert cards.count() == 1
    assert cards.get().identifier in case.resolution


def test_the_definitions_install_once():
    import json

    from carparks.tests.conftest import DEFINITIONS

    keys = set()
    for path in DEFINITIONS.glob("*.json"):
        version = wf.definition_install(spec=json.loads(path.read_text()))  # the conftest installed them already
        keys.add(version.definition.key)
        assert version.number == 1
    assert keys == {
        "season-contract",
        "contract-termination",
        "waitlist-offer",
        "customer-case",
        "contract-places-review",
    }
    assert WorkflowVersion.objects.filter(definition__key__in=keys).count() == len(keys)
    assert Task.objects.count() == 0


def test_an_application_still_goes_through_when_no_workflow_is_bound():
    from workflows.models import BusinessEvent, StartBinding

    StartBinding.objects.filter(event="application.received").delete()
    contract = services.contract_apply(customer=CustomerFactory(), product=ProductFactory(), vehicles=["M1"])
    assert contract.state == Contract.State.APPLIED
    event = BusinessEvent.objects.get(name="application.received", object_id=contract.pk)
    assert (event.state, event.process_id) == (BusinessEvent.State.UNMATCHED, None)
    assert not processes(contract, "season-contract").exists()


def test_with_a_cpms_the_processes_push_and_revoke_the_credentials():
    """Against connect's real CPMS simulator: activation pushes the plates, termination revokes them."""
    from carparks.models import CarPark
    from connect import services as connect_services
    from connect.models import CpmsConnection
    from connect.simulator import start_simulator

    running = start_simulator(carparks=1, seed=7)
    try:
        connection = CpmsConnection(name="Sim", code="sim", kind=CpmsConnection.Kind.APDS, base_url=running.url)
        connection.set_secret("any-token")
        connection.save()
        connect_services.sync_static(connection=connection)
        carpark = CarPark.objects.get(cpms_reference="SIM-0001")
        product = ProductFactory(carpark=carpark, deposit=0, vehicles_per_place=2)
        contract = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["M AB 1", "M AB 2"])
        season = processes(contract, "season-contract").get()
        wf.task_complete(task=open_task(season), user=agent_for(carpark), outcome="approve")
        run_pending_system_steps()
        season.refresh_from_db()
        assert (season.state, season.result) == (Process.State.COMPLETED, "approved")
        assert season.events.filter(step_id="push_credentials").exists()
        rights = connect_services_rights(running.url)
        assert len(rights) == 2

        services.contract_request_termination(contract=contract, enforce_notice=False)
        with time_machine.travel(timezone.now() + timedelta(days=2)):
            fire_due_timers()
            run_pending_system_steps()
        ended = processes(contract, "contract-termination").get()
        assert (ended.state, ended.result) == (Process.State.COMPLETED, "terminated")
        assert connect_services_rights(running.url) == []
    finally:
        running.stop()


def connect_services_rights(url):
    import requests

    return requests.get(f"{url}/_sim/state", timeout=5).json()["rights"]


def test_cancelling_an_application_by_hand_closes_its_review(client):
    from django.urls import reverse

    from accounts.roles import SUPERVISOR
    from conftest import verify_two_factor

    contract = services.contract_apply(customer=CustomerFactory(), product=ProductFactory(), vehicles=["X1"])
    season = processes(contract, "season-contract").get()
    supervisor = UserFactory(roles=[SUPERVISOR])
    client.force_login(supervisor)
    verify_two_factor(client, supervisor)
    client.post(reverse("carparks:contract-action", args=[contract.pk, "cancel"]), {"reason": "Customer withdrew"})
    assert Contract.objects.get(pk=contract.pk).state == Contract.State.CANCELLED
    season.refresh_from_db()
    assert season.state == Process.State.CANCELLED
    assert not season.tasks.filter(state__in=["open", "claimed"]).exists()
