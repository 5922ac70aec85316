"""System tasks, beat schedules, the review definition, the demo loader and the simulator command."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from carparks.models import CarPark
from connect import demo
from connect.models import CarParkLink, CpmsConnection
from workflows.registry import SystemTaskContext, get_task

from .conftest import make_contract

ROOT = Path(__file__).resolve().parents[2]
NAMES = [
    "connect.sync_static",
    "connect.sync_occupancy",
    "connect.push_credentials",
    "connect.revoke_credentials",
    "connect.reconcile",
]


def test_the_system_tasks_are_registered():
    for name in NAMES:
        assert get_task(name).description


def test_beat_schedules_static_nightly_occupancy_every_five_minutes_and_reconciliation():
    tasks = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert tasks["connect.tasks.sync_occupancy_all"].minute == set(range(0, 60, 5))
    assert len(tasks["connect.tasks.sync_static_all"].hour) == 1
    assert len(tasks["connect.tasks.reconcile_all"].hour) == 1


def test_the_review_definition_asks_the_carpark_manager():
    spec = json.loads((ROOT / "connect" / "definitions" / "cpms-reconciliation-review.json").read_text())
    review = next(step for step in spec["steps"] if step["type"] == "user")
    assert spec["key"] == "cpms-reconciliation-review"
    assert (review["role"], review["scope"]) == ("Car-park manager", "carpark")
    assert any(step.get("task") == "connect.reconcile" for step in spec["steps"])


@pytest.mark.django_db
def test_a_pull_only_feed_makes_push_a_permanent_error(feed_server):
    from workflows.registry import PermanentError

    connection = CpmsConnection.objects.create(name="Feed", code="feed", kind="parkapi", base_url=feed_server)
    carpark = CarPark.objects.create(name="Lot", code="lot")
    CarParkLink.objects.create(connection=connection, carpark=carpark, external_id="lot")
    contract = make_contract(carpark)
    with pytest.raises(PermanentError, match="cannot receive credentials"):
        get_task("connect.push_credentials").func(SystemTaskContext(None, "push", {"contract_id": contract.pk}, "k"))


@pytest.mark.django_db
def test_the_demo_links_every_carpark_to_the_simulator_idempotently():
    CarPark.objects.create(name="Demo Mitte", code="demo-mitte")
    CarPark.objects.create(name="Demo Nord", code="demo-nord", cpms_reference="NORTH-1")

    demo.load(io.StringIO())
    demo.load(io.StringIO())

    connection = CpmsConnection.objects.get(code="simulator")
    assert connection.base_url == settings.CPMS_SIMULATOR_URL
    assert dict(connection.links.values_list("carpark__code", "external_id")) == {
        "demo-mitte": "SIM-DEMO-MITTE",
        "demo-nord": "NORTH-1",
    }
    assert CarPark.objects.get(code="demo-mitte").cpms_reference == "SIM-DEMO-MITTE"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_management_command_serves_the_simulator():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "cpms_simulator", "--port", str(port), "--carparks", "3", "--seed", "5"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        body = None
        deadline = time.monotonic() + 90  # Django starts slowly when the machine is busy
        while body is None and time.monotonic() < deadline and process.poll() is None:
            try:
                body = requests.get(f"http://127.0.0.1:{port}/places", timeout=2).json()
            except requests.ConnectionError:
                time.sleep(0.2)
        assert body is not None and body["meta"]["total"] == 3
        assert [place["id"] for place in body["data"]] == ["SIM-0001", "SIM-0002", "SIM-0003"]
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.django_db
def test_the_simulator_serves_the_demo_carparks_and_their_credentials_unchanged():
    from connect import services
    from connect.management.commands.cpms_simulator import adopt_database
    from connect.simulator import start_simulator

    carpark = CarPark.objects.create(name="Demo Mitte", code="demo-mitte", capacity=250, city="Berlin")
    demo.load(io.StringIO())
    contract = make_contract(carpark, plates=("B-DM 1",))
    simulator = start_simulator(carparks=0)
    try:
        places, rights = adopt_database(simulator.state, "simulator")
        connection = CpmsConnection.objects.get(code="simulator")
        connection.base_url = simulator.url
        connection.save()

        services.sync_static(connection=connection)  # brings the simulator's tariffs along
        static = services.sync_static(connection=connection)
        reconciled = services.reconcile(connection=connection, start_review=False)
    finally:
        simulator.stop()
    assert (places, rights) == (1, 1)
    assert sorted(simulator.state.rights) == [f"phq-credential-{contract.credentials.get().pk}"]
    assert (static.created, static.updated, static.unchanged) == (0, 0, 1)
    carpark.refresh_from_db()
    assert (carpark.name, carpark.capacity, carpark.city, carpark.latitude) == ("Demo Mitte", 250, "Berlin", None)
    assert reconciled.details["differences"] == []
