"""Connect emits business events against the bundled CPMS simulator: car parks the static sync adds,
whitelist differences per car park, connections that fail for good. The workflows bound to them start."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType

from accounts import roles
from carparks.models import CarPark
from connect import services
from connect.adapters import CpmsError
from connect.models import SyncRun
from workflows import authoring
from workflows.models import BusinessEvent, Process, StartBinding, Task
from workflows.services import task_complete
from workflows.sync import sync_definitions
from workflows.testing import run_pending_system_steps

from .conftest import make_contract

pytestmark = pytest.mark.django_db


def onboardings() -> list[Process]:
    return list(Process.objects.filter(definition__key="carpark-onboarding").order_by("object_id"))


def test_the_static_sync_starts_one_onboarding_per_new_carpark_once_the_library_workflow_is_installed(
    sim, connection, make_user
):
    installed = authoring.library_install(slug="carpark-onboarding")
    assert installed.valid and installed.version.state == "published"
    assert StartBinding.objects.get(version=installed.version).event == "carpark.added"

    run = services.sync_static(connection=connection)

    assert run.created == 5
    carparks = list(CarPark.objects.order_by("pk"))
    started = onboardings()
    assert len(started) == 5
    assert [p.business_object for p in started] == carparks
    for carpark, process in zip(carparks, started, strict=True):
        event = BusinessEvent.objects.get(process=process)
        assert (event.name, event.event_id) == ("carpark.added", f"carpark.added:{carpark.pk}")
        assert event.payload["source"] == "cpms_sync" and event.payload["connection_id"] == connection.pk
        assert event.payload["carpark"] == carpark.name and event.payload["capacity"] == carpark.capacity
        assert process.variables["connection_id"] == connection.pk
        assert Task.objects.get(process=process).step_id == "connect_cpms"

    # The onboarding runs on what the event brought: the manager confirms the connection, the sync step runs.
    manager = make_user("manager", roles.MANAGER)
    first = started[0]
    task_complete(
        task=Task.objects.get(process=first),
        user=manager,
        outcome="connected",
        inputs={"connection_id": first.variables["connection_id"]},
    )
    run_pending_system_steps()
    first.refresh_from_db()
    assert (first.incident_open, Task.objects.get(process=first, state="open").step_id) == (False, "define_products")

    sim.set_place("SIM-0002", name="Renamed in the CPMS")
    again = services.sync_static(connection=connection, key="second")
    assert (again.created, again.updated) == (0, 1)
    assert len(onboardings()) == 5
    assert BusinessEvent.objects.filter(name="carpark.added").count() == 5

    sim.set_place("SIM-0099", name="Opened this month", capacity=80)
    third = services.sync_static(connection=connection, key="third")
    assert third.created == 1
    newest = CarPark.objects.get(cpms_reference="SIM-0099")
    assert [p.business_object for p in onboardings()][-1] == newest and len(onboardings()) == 6


def test_car_parks_added_while_no_workflow_listens_are_recorded_for_a_replay(sim, connection):
    run = services.sync_static(connection=connection)

    assert run.status == SyncRun.Status.SUCCEEDED and run.created == 5
    added = BusinessEvent.objects.filter(name="carpark.added")
    assert added.count() == 5 and set(added.values_list("state", flat=True)) == {BusinessEvent.State.UNMATCHED}
    assert not Process.objects.exists()


@pytest.fixture
def carpark(sim, connection) -> CarPark:
    services.sync_static(connection=connection)
    return CarPark.objects.get(cpms_reference="SIM-0001")


def test_a_whitelist_difference_emits_one_event_per_carpark_and_run(sim, connection, carpark):
    sync_definitions()
    make_contract(carpark, plates=("HH-NO 1",))

    run = services.reconcile(connection=connection)

    event = BusinessEvent.objects.get(name="cpms.reconciliation_differs")
    assert event.event_id == f"cpms.reconciliation_differs:{run.pk}:{carpark.pk}"
    assert event.payload["missing_count"] == 1 and event.payload["extra_count"] == 0
    assert event.payload["missing"][0]["identifier"] == "HHNO1"
    assert (event.payload["connection_id"], event.payload["sync_run_id"]) == (connection.pk, run.pk)
    assert event.business_object == carpark
    assert run.details["review_processes"] == [event.process_id]
    assert event.process.definition.key == "cpms-reconciliation-review"

    # While that review is open another difference opens none.
    services.reconcile(connection=connection)
    assert BusinessEvent.objects.filter(name="cpms.reconciliation_differs").count() == 1
    assert (
        Process.objects.filter(content_type=ContentType.objects.get_for_model(CarPark), object_id=carpark.pk).count()
        == 1
    )


def test_a_difference_no_workflow_takes_is_said_on_the_run(sim, connection, carpark):
    make_contract(carpark, plates=("HH-NO 2",))

    run = services.reconcile(connection=connection)

    assert run.details["review_processes"] == []
    assert "no published workflow starts on cpms.reconciliation_differs" in run.errors[-1]
    assert BusinessEvent.objects.get(name="cpms.reconciliation_differs").state == BusinessEvent.State.UNMATCHED


def test_a_connection_that_fails_for_good_emits_connection_failing_once_per_run(sim, connection):
    sim.faults("error")

    with pytest.raises(CpmsError):
        services.sync_occupancy(connection=connection, key="try", final=False)  # retryable: not yet
    assert not BusinessEvent.objects.filter(name="cpms.connection_failing").exists()

    with pytest.raises(CpmsError):
        services.sync_occupancy(connection=connection, key="try", final=True)  # the last attempt
    run = SyncRun.objects.get(key="try")
    event = BusinessEvent.objects.get(name="cpms.connection_failing")
    assert (event.event_id, event.business_object) == (f"cpms.connection_failing:{run.pk}", connection)
    assert event.payload["connection_id"] == connection.pk and event.payload["failures"] == 1
    assert "HTTP 500" in event.payload["error"] and event.payload["operation"] == run.get_kind_display()
    assert event.state == BusinessEvent.State.UNMATCHED  # nothing bound: recorded for the admins

    with pytest.raises(CpmsError):
        services.sync_static(connection=connection, final=True)  # another run fails for good
    failing = BusinessEvent.objects.filter(name="cpms.connection_failing").order_by("pk")
    assert [e.payload["failures"] for e in failing] == [1, 2]
