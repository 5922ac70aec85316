"""A worker killed in the middle of a system step, and a CPMS that goes away, with real processes."""

from __future__ import annotations

import time

import pytest
import requests

from connect.simulator import start_simulator

from .conftest import apply_and_approve, states
from .harness import wait_for

pytestmark = pytest.mark.slow

CONNECT = """
from carparks.models import CarPark
from connect.models import CarParkLink, CpmsConnection
carpark = CarPark.objects.get(code="fault-cp")
connection, _ = CpmsConnection.objects.get_or_create(code="fault-sim", defaults={{"name": "Fault simulator"}})
connection.base_url = "{url}"
connection.kind = CpmsConnection.Kind.APDS
connection.timeout_seconds = 20.0
connection.set_secret("fault-token")
connection.save()
CarParkLink.objects.update_or_create(carpark=carpark, defaults={{"connection": connection, "external_id": "fault-cp"}})
# As an admin does on the mapping page: the car park's products get the CPMS's standard season right.
from connect.models import ProductRightMapping
[spec] = [s for s in connection.adapter().list_right_specifications("fault-cp") if "Standard" in s.names.get("de", "")]
for product in carpark.products.all():
    ProductRightMapping.objects.update_or_create(
        connection=connection,
        product=product,
        defaults={{"right_specification_id": spec.id, "right_specification_version": spec.version}},
    )
print("ok")
"""

JOB = """
from workflows.models import SystemJob
job = SystemJob.objects.filter(process_id={process_id}, step_id="push_credentials").order_by("-id").first()
print(job.state if job else "none", job.attempts if job else 0)
"""

# Time passes: queued retries come due (the worker checks their due time against its own clock),
# then the beat tick fires timers and re-sends or re-queues jobs as it would hours later.
SHIFTED_TICK = """
from datetime import timedelta
from django.utils import timezone
from workflows.engine import fire_due_timers, recover_jobs
from workflows.models import SystemJob
later = timezone.now() + timedelta(hours={hours})
SystemJob.objects.filter(state="queued").update(run_after=timezone.now() - timedelta(hours={hours}))
print(fire_due_timers(later), recover_jobs(later))
"""

INCIDENT = """
from workflows.models import Process
process = Process.objects.get(pk={process_id})
print(int(process.incident_open), process.incident_step or "-")
"""

RETRY = """
from workflows.models import Process
from workflows.services import incident_retry
incident_retry(process=Process.objects.get(pk={process_id}))
print("ok")
"""


@pytest.fixture
def simulator():
    running = start_simulator(carparks=1, seed=3)
    try:
        yield running
    finally:
        running.stop()


def _connect(stack, url: str) -> None:
    requests.put(f"{url}/_sim/places/fault-cp", json={"name": "Fault Car Park", "capacity": 50}, timeout=5)
    # The car park exists once the first application has been made.
    stack.shell(CONNECT.format(url=url))


def _job(stack, process_id: int) -> tuple[str, int]:
    state, attempts = stack.shell(JOB.format(process_id=process_id)).splitlines()[-1].split()
    return state, int(attempts)


def _rights(url: str) -> list[dict]:
    ids = requests.get(f"{url}/_sim/state", timeout=5).json()["rights"]
    return [requests.get(f"{url}/rights/assigned/{right_id}", timeout=5).json() for right_id in ids]


def test_a_worker_killed_mid_step_runs_it_again_without_a_second_side_effect(stack, simulator):
    url = simulator.url
    stack.shell("from django.core.management import call_command; call_command('workflow_sync', verbosity=0)")
    stack.worker.start()
    try:
        # A first application creates the car park; connect it to the simulator before the real one.
        apply_and_approve(stack)
        _connect(stack, url)
        before = len(_rights(url))
        # The CPMS answers after 15 s: time enough, even on a loaded machine, to see the job running and
        # kill its worker while it waits inside the call.
        requests.post(f"{url}/_sim/faults", json={"mode": "slow", "delay": 15, "count": None}, timeout=5)
        contract_id, process_id = apply_and_approve(stack)
        wait_for(lambda: _job(stack, process_id)[0] == "running", timeout=60, what="the push to start")
        time.sleep(1)  # the worker now waits inside the CPMS call
        stack.worker.kill()
        assert _job(stack, process_id) == ("running", 1)
        time.sleep(15)  # the CPMS finishes the request the dead worker sent: the side effect happened
        requests.post(f"{url}/_sim/faults", json={"mode": "none"}, timeout=5)

        stack.worker.start()
        stack.shell(SHIFTED_TICK.format(hours=1))  # the tick re-queues the job of the dead worker
        wait_for(lambda: states(stack, contract_id, process_id) == ("active", "completed"), timeout=60, what="done")
        assert _job(stack, process_id) == ("succeeded", 2)
        rights = _rights(url)
        assert len(rights) == before + 1, "the credential must be in the whitelist exactly once"
    finally:
        stack.worker.stop()


def test_a_cpms_that_is_down_gives_an_incident_and_recovery_after_it_is_back(stack, simulator):
    url = simulator.url
    port = int(url.rsplit(":", 1)[1])
    stack.shell("from django.core.management import call_command; call_command('workflow_sync', verbosity=0)")
    stack.worker.start()
    try:
        apply_and_approve(stack)
        _connect(stack, url)
        simulator.stop()
        contract_id, process_id = apply_and_approve(stack)

        def incident_open() -> bool:
            stack.shell(SHIFTED_TICK.format(hours=2))  # retry timers come due at once
            return stack.shell(INCIDENT.format(process_id=process_id)).splitlines()[-1].split() == [
                "1",
                "push_credentials",
            ]

        wait_for(incident_open, timeout=240, what="the incident after the last retry")
        assert states(stack, contract_id, process_id) == ("active", "running")

        back = start_simulator(carparks=1, seed=3, port=port)
        try:
            requests.put(f"{url}/_sim/places/fault-cp", json={"name": "Fault Car Park", "capacity": 50}, timeout=5)
            stack.shell(RETRY.format(process_id=process_id))
            wait_for(
                lambda: states(stack, contract_id, process_id) == ("active", "completed"), timeout=60, what="recovery"
            )
            rights = [right["id"] for right in _rights(url)]
            # The recovered contract's credential is there, and no right was pushed twice. (The first
            # contract's may be there too: a push of it still retrying when the CPMS went down.)
            assert rights and len(rights) == len(set(rights)), rights
        finally:
            back.stop()
    finally:
        stack.worker.stop()
