"""Car-park import and occupancy sync against the simulator over real HTTP."""

from __future__ import annotations

import pytest

from carparks.models import CarPark
from connect import services
from connect.models import CarParkLink, SyncRun
from connect.tasks import sync_occupancy_task, sync_static_task

pytestmark = pytest.mark.django_db


def snapshot() -> list[tuple]:
    return list(CarPark.objects.order_by("code").values_list("code", "name", "capacity", "street", "occupancy"))


def test_it_imports_carparks_then_updates_them_idempotently(sim, connection):
    first = services.sync_static(connection=connection)

    assert (first.status, first.created, first.updated, first.unchanged) == ("succeeded", 5, 0, 0)
    assert CarPark.objects.count() == 5
    place = sim.running.state.places["SIM-0002"]
    carpark = CarPark.objects.get(cpms_link__external_id="SIM-0002")
    assert (carpark.name, carpark.capacity, carpark.cpms_reference) == (place["name"], place["capacity"], "SIM-0002")
    assert carpark.city == place["city"] and carpark.street == place["street"]
    assert carpark.code == "sim-sim-0002"
    assert carpark.cpms_link.tariffs[0]["currency"] == "EUR"

    again = services.sync_static(connection=connection)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)
    assert CarPark.objects.count() == 5

    sim.set_place("SIM-0002", name="Parkhaus Hauptbahnhof", capacity=640)
    third = services.sync_static(connection=connection)
    assert (third.created, third.updated, third.unchanged) == (0, 1, 4)
    carpark.refresh_from_db()
    assert (carpark.name, carpark.capacity) == ("Parkhaus Hauptbahnhof", 640)
    assert CarPark.objects.count() == 5 and CarParkLink.objects.count() == 5


def test_it_adopts_a_carpark_that_already_carries_the_cpms_id(sim, connection):
    existing = CarPark.objects.create(name="Old name", code="city-centre", cpms_reference="SIM-0003", capacity=1)

    services.sync_static(connection=connection)

    existing.refresh_from_db()
    assert existing.cpms_link.external_id == "SIM-0003"
    assert existing.name == sim.running.state.places["SIM-0003"]["name"]
    assert CarPark.objects.count() == 5


def test_it_updates_occupancy(sim, connection):
    services.sync_static(connection=connection)
    # The simulator's counts move every minute: fixed counts keep a minute boundary out of the comparison.
    for reference in CarPark.objects.exclude(cpms_reference="").values_list("cpms_reference", flat=True):
        sim.set_place(reference, occupied=10)
    sim.set_place("SIM-0001", occupied=42)

    run = services.sync_occupancy(connection=connection)

    carpark = CarPark.objects.get(cpms_reference="SIM-0001")
    assert run.status == "succeeded" and run.updated == 5
    assert carpark.occupancy == 42 and carpark.occupancy_updated_at is not None
    assert carpark.cpms_link.cpms_status == "counted"

    sim.set_place("SIM-0001", occupied=43)
    run = services.sync_occupancy(connection=connection)
    carpark.refresh_from_db()
    assert carpark.occupancy == 43
    assert (run.updated, run.unchanged) == (1, 4)


def test_occupancy_of_an_unknown_place_is_reported_not_created(sim, connection):
    services.sync_static(connection=connection)
    sim.set_place("SIM-9999", name="Brand new", capacity=10, occupied=3)

    run = services.sync_occupancy(connection=connection)

    # Refused, not failed: the five linked car parks are updated, the unknown place is listed on the run.
    assert (run.status, run.updated, run.failed) == ("partly", 5, 1)
    assert run.refused == [
        {"id": "SIM-9999", "reason": "Not linked to a car park here; run the car-park import first."}
    ]
    assert CarPark.objects.count() == 5


def test_the_simulator_occupancy_drifts_with_time(sim):
    place = sim.running.state.places["SIM-0001"]
    readings = {sim.running.state.occupied(place, now=minute * 60.0) for minute in range(0, 180, 15)}
    assert len(readings) > 3


@pytest.mark.parametrize("mode", ["slow", "error", "malformed"])
def test_broken_answers_retry_then_raise_an_incident_and_change_nothing(sim, connection, mode):
    services.sync_static(connection=connection)
    services.sync_occupancy(connection=connection)
    before = snapshot()
    sim.set_place("SIM-0001", name="Renamed while broken", occupied=1)
    connection.timeout_seconds = 0.5
    connection.save(update_fields=["timeout_seconds"])
    sim.faults(mode, delay=1.5)

    static = sync_static_task.apply(args=[connection.pk])
    occupancy = sync_occupancy_task.apply(args=[connection.pk])

    assert static.failed() and occupancy.failed()
    assert snapshot() == before
    for kind in ("static", "occupancy"):
        run = SyncRun.objects.filter(connection=connection, kind=kind).latest("started_at")
        assert (run.status, run.incident, run.attempts) == ("failed", True, 4)
        assert len(run.errors) == 4
        expected = {"slow": "timed out", "error": "HTTP 500", "malformed": "JSON that ends early"}[mode]
        assert expected in run.errors[0]
    connection.refresh_from_db()
    assert connection.status == "failing"


def test_a_transient_failure_is_retried_and_then_succeeds(sim, connection):
    sim.faults("error", count=2)

    result = sync_static_task.apply(args=[connection.pk])

    assert result.successful()
    run = SyncRun.objects.get(pk=result.result)
    assert (run.status, run.incident, run.attempts, run.created) == ("succeeded", False, 3, 5)
    assert len(run.errors) == 2
    connection.refresh_from_db()
    assert connection.status == "ok"


def test_a_refused_token_fails_at_once_without_retrying(connection):
    from connect.simulator import start_simulator

    guarded = start_simulator(carparks=2, token="right-token")
    try:
        connection.base_url = guarded.url
        connection.save()
        result = sync_static_task.apply(args=[connection.pk])
    finally:
        guarded.stop()
    run = SyncRun.objects.get(connection=connection, kind="static")
    assert result.failed()
    assert (run.status, run.incident, run.attempts) == ("failed", True, 1)
    assert "refused our credentials" in run.errors[0]


@pytest.mark.django_db(transaction=True)
def test_two_imports_at_once_create_each_carpark_once(sim, connection):
    import threading

    from django.db import connection as db_connection

    barrier = threading.Barrier(2)
    runs, errors = [], []

    def import_once() -> None:
        try:
            barrier.wait(timeout=10)
            runs.append(services.sync_static(connection=connection))
        except Exception as exc:  # pragma: no cover - shown by the assertion below
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=import_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(run.created for run in runs) == [0, 5]
    assert CarPark.objects.count() == 5 and CarParkLink.objects.count() == 5


def test_old_routine_runs_are_pruned_and_failures_kept(sim, connection):
    import time_machine

    with time_machine.travel("2026-09-01 12:00 +00:00"):
        old_ok = services.sync_static(connection=connection)
        old_occupancy = services.sync_occupancy(connection=connection)
        sim.faults("error", count=1)
        with pytest.raises(Exception, match="HTTP 500"):
            services.sync_occupancy(connection=connection)
    recent = services.sync_occupancy(connection=connection)

    assert services.sync_runs_prune() == 1
    remaining = set(SyncRun.objects.values_list("pk", flat=True))
    assert old_occupancy.pk not in remaining
    assert {old_ok.pk, recent.pk} <= remaining
    assert SyncRun.objects.filter(status="failed").count() == 1
