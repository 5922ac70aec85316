"""Connect inside real processes: the engine runs our system steps, carparks' changes push credentials."""

from __future__ import annotations

from datetime import date

import pytest
from django.contrib.contenttypes.models import ContentType

from carparks import services as carpark_services
from carparks.models import CarPark, Contract, Customer, Product, Vehicle
from connect import services
from connect.models import SyncRun
from parkinghq.celery import app as celery_app
from workflows.models import Process, Task
from workflows.services import process_start
from workflows.sync import sync_definitions
from workflows.testing import install_definition, run_pending_system_steps

from .conftest import make_contract

pytestmark = pytest.mark.django_db


@pytest.fixture
def carpark(sim, connection) -> CarPark:
    services.sync_static(connection=connection)
    return CarPark.objects.get(cpms_reference="SIM-0001")


@pytest.fixture
def eager_celery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def approved_contract(carpark: CarPark, plate: str) -> Contract:
    customer = Customer.objects.create(name="Max Mustermann", email="max@example.com")
    product = Product.objects.create(carpark=carpark, name="Season", monthly_price="95.00", quota=10)
    contract = Contract.objects.create(
        customer=customer, product=product, state="approved", start_date=date(2026, 1, 1), monthly_price="95.00"
    )
    contract.vehicles.add(Vehicle.objects.create(customer=customer, plate=plate))
    return contract


def test_a_credential_pushed_on_activation_is_in_the_whitelist_and_gone_after_termination(
    sim, carpark, eager_celery, django_capture_on_commit_callbacks
):
    contract = approved_contract(carpark, "M-PQ 7788")

    with django_capture_on_commit_callbacks(execute=True):
        contract = carpark_services.contract_activate(contract=contract)

    credential = contract.credentials.get()
    assert sim.rights() == [f"phq-credential-{credential.pk}"]
    assert (
        sim.right(f"phq-credential-{credential.pk}")["rightHolder"]["credentials"][0]["identifier"]["id"] == "MPQ7788"
    )

    with django_capture_on_commit_callbacks(execute=True):
        carpark_services.contract_terminate(contract=Contract.objects.get(pk=contract.pk), reason="Moving away")

    assert sim.rights() == []


def test_the_push_step_of_a_process_reads_the_contract_from_its_business_object(sim, carpark):
    install_definition(
        {
            "key": "test-cpms-push",
            "name": "Push then revoke",
            "steps": [
                {"id": "start", "type": "start", "next": "push"},
                {"id": "push", "type": "system", "task": "connect.push_credentials", "next": "revoke"},
                {"id": "revoke", "type": "system", "task": "connect.revoke_credentials", "next": "done"},
                {"id": "done", "type": "end"},
            ],
        }
    )
    contract = make_contract(carpark, plates=("K-LN 12",))
    pushed_id = f"phq-credential-{contract.credentials.get().pk}"
    process = process_start(definition_key="test-cpms-push", business_object=contract)

    run_pending_system_steps(max_rounds=1)
    assert sim.rights() == [pushed_id]

    run_pending_system_steps()
    process.refresh_from_db()
    assert process.state == "completed"
    assert process.variables["credentials_pushed"] == 1 and process.variables["credentials_revoked"] == 1
    assert sim.rights() == []


def test_reconciliation_opens_a_review_task_for_the_carparks_manager(sim, connection, carpark):
    sync_definitions()
    make_contract(carpark, plates=("HH-NO 1",))

    run = services.reconcile(connection=connection)
    again = services.reconcile(connection=connection)

    process = Process.objects.get(
        definition__key="cpms-reconciliation-review",
        content_type=ContentType.objects.get_for_model(CarPark),
        object_id=carpark.pk,
    )
    assert run.details["review_processes"] == [process.pk]
    assert process.variables["missing"][0]["identifier"] == "HHNO1"
    task = Task.objects.get(process=process)
    assert (task.role, task.scope_carpark_id, task.state) == ("Car-park manager", carpark.pk, "open")
    assert again.details["review_processes"] == []
    assert "already open" in again.errors[-1]


def test_a_sync_step_the_engine_gives_up_on_becomes_an_incident_run(
    sim, connection, carpark, django_capture_on_commit_callbacks
):
    install_definition(
        {
            "key": "test-cpms-occupancy",
            "name": "Occupancy once",
            "steps": [
                {"id": "start", "type": "start", "next": "occupancy"},
                {
                    "id": "occupancy",
                    "type": "system",
                    "task": "connect.sync_occupancy",
                    "retry": {"max_attempts": 1, "backoff": "PT1S"},
                    "next": "done",
                },
                {"id": "done", "type": "end"},
            ],
        }
    )
    sim.faults("error")
    before = carpark.occupancy
    process = process_start(definition_key="test-cpms-occupancy", variables={"connection_id": connection.pk})

    with django_capture_on_commit_callbacks(execute=True):
        run_pending_system_steps()

    run = SyncRun.objects.get(kind="occupancy", key__startswith=f"{process.pk}:occupancy:")
    assert (run.status, run.incident) == ("failed", True)
    assert "HTTP 500" in run.errors[0]
    carpark.refresh_from_db()
    assert carpark.occupancy == before
