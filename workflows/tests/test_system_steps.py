"""System steps: retries, incidents, incident_retry, idempotency of re-delivered jobs."""

from __future__ import annotations

import copy

import pytest

from workflows import services
from workflows.engine import execute_job
from workflows.errors import NoIncident
from workflows.models import Process, SystemJob
from workflows.testing import install_definition, run_pending_system_steps

from .conftest import CALLS, FAILURES

pytestmark = pytest.mark.django_db


def flaky_spec(season_spec, attempts=3):
    spec = copy.deepcopy(season_spec)
    spec["key"] = "test-flaky"
    activate = next(s for s in spec["steps"] if s["id"] == "activate")
    activate["task"] = "tests.flaky"
    activate["retry"] = {"max_attempts": attempts, "backoff": "PT0S"}
    return spec


def approve(process, user):
    task = process.tasks.get(state="open")
    services.task_complete(task=task, user=user, outcome="approve", inputs={"deposit_ok": True})


def test_a_failing_system_task_retries_then_holds_an_incident_and_retry_completes_it(season_spec, agent):
    install_definition(flaky_spec(season_spec))
    process = services.process_start(definition_key="test-flaky", variables={"deposit": 0})
    approve(process, agent)
    FAILURES["flaky"] = 10
    run_pending_system_steps()
    job = SystemJob.objects.get(process=process)
    assert (job.state, job.attempts) == ("failed", 3)
    assert "ConnectionError" in job.last_error
    process.refresh_from_db()
    assert process.incident_open and process.incident_step == "activate"
    assert "failed after 3 attempts" in process.incident_error
    attempts = process.events.filter(kind="system_attempt")
    assert [e.data["ok"] for e in attempts] == [False, False, False]
    assert process.state == "running" and process.current_step == "activate"

    FAILURES["flaky"] = 0  # the cause is fixed
    services.incident_retry(process=process)
    run_pending_system_steps()
    process.refresh_from_db()
    assert not process.incident_open
    assert process.current_step == "confirm"
    assert process.variables["flaky_done"] is True
    # every attempt used the one idempotency key of this step execution
    assert set(CALLS["flaky"]) == {job.idempotency_key}
    services.task_complete(task=process.tasks.get(step_id="confirm"), user=agent, outcome="done")
    process.refresh_from_db()
    assert (process.state, process.result) == ("completed", "approved")
    assert list(process.events.filter(kind__startswith="incident").values_list("kind", flat=True)) == [
        "incident_opened",
        "incident_retried",
    ]
    with pytest.raises(NoIncident):
        services.incident_retry(process=process)


def test_backoff_delays_the_next_attempt(season_spec, agent, time_machine):
    time_machine.move_to("2026-03-01 10:00Z", tick=False)
    spec = flaky_spec(season_spec)
    next(s for s in spec["steps"] if s["id"] == "activate")["retry"]["backoff"] = "PT30S"
    install_definition(spec)
    process = services.process_start(definition_key="test-flaky", variables={"deposit": 0})
    approve(process, agent)
    FAILURES["flaky"] = 1
    assert run_pending_system_steps() == 1
    job = SystemJob.objects.get(process=process)
    assert job.state == "queued" and job.attempts == 1
    assert run_pending_system_steps() == 0  # not due before the backoff
    time_machine.move_to("2026-03-01 10:00:31Z", tick=False)
    assert run_pending_system_steps() == 1
    process.refresh_from_db()
    assert process.current_step == "confirm"


def test_a_permanent_error_opens_an_incident_at_once(season_spec, agent):
    spec = flaky_spec(season_spec)
    next(s for s in spec["steps"] if s["id"] == "activate")["task"] = "tests.refuse"
    install_definition(spec)
    process = services.process_start(definition_key="test-flaky", variables={"deposit": 0})
    approve(process, agent)
    run_pending_system_steps()
    process.refresh_from_db()
    assert process.incident_open
    assert "the card was declined" in process.incident_error
    assert SystemJob.objects.get(process=process).attempts == 1


def test_a_redelivered_job_does_nothing_twice(season_spec, agent):
    install_definition(season_spec)
    process = services.process_start(definition_key="test-season", variables={"deposit": 0})
    approve(process, agent)
    job = SystemJob.objects.get(process=process)
    assert execute_job(job.pk) == "succeeded"
    assert execute_job(job.pk) == "skipped"  # the broker delivered the message again
    assert CALLS["activate_credential"] == [job.idempotency_key]
    assert Process.objects.get(pk=process.pk).tasks.filter(step_id="confirm").count() == 1
