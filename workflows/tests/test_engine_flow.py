"""The season-contract shape end to end, the reject branch, history, escalation and waits."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts import roles
from workflows import services
from workflows.errors import DefinitionNotFound, InvalidInputs, InvalidOutcome, TaskNotAvailable, TaskPermissionDenied
from workflows.models import Process, ProcessEvent, SystemJob, Task
from workflows.testing import fire_due_timers, install_definition, run_pending_system_steps

from .conftest import CALLS

pytestmark = pytest.mark.django_db


def kinds(process):
    return [(e.kind, e.step_id) for e in process.events.order_by("at", "id")]


def test_the_season_contract_shape_runs_to_its_end_with_its_history(season_spec, agent):
    install_definition(season_spec)
    process = services.process_start(definition_key="test-season", variables={"deposit": 50}, started_by=agent)
    assert process.current_step == "review"
    review = Task.objects.get(process=process)
    assert (review.state, review.role, review.step_id) == ("open", roles.AGENT, "review")
    assert review.due_at is not None

    services.task_claim(task=review, user=agent)
    services.task_complete(task=review, user=agent, outcome="approve", inputs={"deposit_ok": True, "note": "ok"})
    process.refresh_from_db()
    assert process.current_step == "activate"
    job = SystemJob.objects.get(process=process)
    assert job.state == "queued"

    assert run_pending_system_steps() == 1
    process.refresh_from_db()
    assert process.current_step == "confirm"
    assert process.variables["credential_active"] is True
    assert process.variables["deposit_ok"] is True
    assert CALLS["activate_credential"] == [job.idempotency_key]

    confirm = Task.objects.get(process=process, step_id="confirm")
    services.task_claim(task=confirm, user=agent)
    services.task_complete(task=confirm, user=agent, outcome="done")
    process.refresh_from_db()
    assert process.state == Process.State.COMPLETED
    assert process.result == "approved"
    assert process.ended_at is not None

    history = kinds(process)
    expected = [
        ("process_started", ""),
        ("step_entered", "start"),
        ("step_left", "start"),
        ("step_entered", "review"),
        ("task_created", "review"),
        ("task_claimed", "review"),
        ("task_completed", "review"),
        ("variables_changed", "review"),
        ("step_left", "review"),
        ("step_entered", "check"),
        ("decision", "check"),
        ("step_left", "check"),
        ("step_entered", "activate"),
        ("system_attempt", "activate"),
        ("variables_changed", "activate"),
        ("step_left", "activate"),
        ("step_entered", "confirm"),
        ("task_created", "confirm"),
        ("task_claimed", "confirm"),
        ("task_completed", "confirm"),
        ("variables_changed", "confirm"),
        ("step_left", "confirm"),
        ("step_entered", "approved"),
        ("step_left", "approved"),
        ("process_completed", "approved"),
    ]
    assert history == expected
    completed = process.events.get(kind="task_completed", step_id="review")
    assert completed.actor == agent and completed.data["outcome"] == "approve"
    assert all(e.duration_ms is not None for e in process.events.filter(kind="step_left"))


def test_the_reject_branch_ends_rejected_without_system_steps(season_spec, agent):
    install_definition(season_spec)
    process = services.process_start(definition_key="test-season", variables={"deposit": 0})
    review = process.tasks.get()
    services.task_complete(task=review, user=agent, outcome="reject", inputs={"deposit_ok": False})
    process.refresh_from_db()
    assert (process.state, process.result, process.current_step) == ("completed", "rejected", "rejected")
    assert not SystemJob.objects.exists()


def test_unknown_outcome_missing_inputs_and_role_are_refused(season_spec, agent, make_user):
    install_definition(season_spec)
    process = services.process_start(definition_key="test-season")
    review = process.tasks.get()
    with pytest.raises(InvalidOutcome, match="'maybe' is not an outcome"):
        services.task_complete(task=review, user=agent, outcome="maybe")
    with pytest.raises(InvalidInputs) as err:
        services.task_complete(task=review, user=agent, outcome="approve", inputs={"deposit_ok": None})
    assert "deposit_ok" in err.value.field_errors
    finance = make_user("fin", roles.FINANCE)
    with pytest.raises(TaskPermissionDenied, match="Back-office agent"):
        services.task_claim(task=review, user=finance)
    with pytest.raises(DefinitionNotFound):
        services.process_start(definition_key="nope")
    review.refresh_from_db()
    assert review.state == "open"


def test_a_claimed_task_cannot_be_claimed_or_completed_by_someone_else(season_spec, agent, make_user):
    install_definition(season_spec)
    other = make_user("other", roles.AGENT)
    process = services.process_start(definition_key="test-season")
    review = process.tasks.get()
    services.task_claim(task=review, user=agent)
    with pytest.raises(TaskNotAvailable, match="already claimed by Agent"):
        services.task_claim(task=Task.objects.get(pk=review.pk), user=other)
    with pytest.raises(TaskNotAvailable):
        services.task_complete(
            task=Task.objects.get(pk=review.pk), user=other, outcome="reject", inputs={"deposit_ok": False}
        )
    services.task_release(task=review, user=agent)
    services.task_claim(task=Task.objects.get(pk=review.pk), user=other)
    assert Task.objects.get(pk=review.pk).assignee == other


def test_escalation_by_timer_moves_the_task_up_the_chain_and_keeps_inputs(
    season_spec, agent, time_machine, django_capture_on_commit_callbacks
):
    from workflows.signals import task_escalated

    received = []
    task_escalated.connect(lambda sender, task, **kw: received.append(task), weak=False, dispatch_uid="t-esc")
    try:
        time_machine.move_to("2026-01-05 09:00Z", tick=False)
        install_definition(season_spec)
        process = services.process_start(definition_key="test-season")
        review = process.tasks.get()
        Task.objects.filter(pk=review.pk).update(inputs={"note": "half done"})
        assert fire_due_timers() == 0
        time_machine.move_to("2026-01-07 09:00:01Z", tick=False)  # due (P2D) + PT0S
        with django_capture_on_commit_callbacks(execute=True):
            assert fire_due_timers() == 1
        review.refresh_from_db()
        assert review.state == "escalated"
        escalated = Task.objects.get(process=process, state="open")
        assert (escalated.role, escalated.escalation_level, escalated.inputs) == (
            roles.SUPERVISOR,
            1,
            {"note": "half done"},
        )
        assert fire_due_timers() == 0
        time_machine.move_to("2026-01-08 09:00:01Z", tick=False)  # due + P1D
        assert fire_due_timers() == 1
        top = Task.objects.get(process=process, state="open")
        assert (top.role, top.escalation_level) == (roles.ADMINISTRATOR, 2)
        assert process.events.filter(kind=ProcessEvent.Kind.TASK_ESCALATED).count() == 2
    finally:
        task_escalated.disconnect(dispatch_uid="t-esc")


def test_manual_escalation_goes_to_the_next_level_and_a_lost_worker_job_is_queued_again(
    season_spec, agent, time_machine
):
    from workflows.engine import recover_jobs
    from workflows.errors import EscalationNotPossible

    time_machine.move_to("2026-06-01 08:00Z", tick=False)
    install_definition(season_spec)
    process = services.process_start(definition_key="test-season", variables={"deposit": 1})
    review = process.tasks.get()
    escalated = services.task_escalate(task=review, user=agent, reason="can't decide")
    assert (escalated.role, escalated.escalation_level) == (roles.SUPERVISOR, 1)
    top = services.task_escalate(task=escalated, user=agent.__class__.objects.create_superuser("root"), reason="?")
    assert top.role == roles.ADMINISTRATOR
    with pytest.raises(EscalationNotPossible, match="last escalation level"):
        services.task_escalate(task=top, user=agent.__class__.objects.get(username="root"), reason="?")
    event = process.events.filter(kind="task_escalated").first()
    assert event.data["reason"] == "can't decide" and event.actor == agent

    services.task_complete(
        task=top, user=agent.__class__.objects.get(username="root"), outcome="approve", inputs={"deposit_ok": True}
    )
    job = SystemJob.objects.get(process=process)
    SystemJob.objects.filter(pk=job.pk).update(state="running", attempts=1, started_at=timezone.now())
    assert recover_jobs() == 0  # still within its timeout
    time_machine.move_to("2026-06-01 08:30Z", tick=False)
    assert recover_jobs() >= 1
    job.refresh_from_db()
    assert job.state == "queued"
    assert run_pending_system_steps() == 1
    process.refresh_from_db()
    assert process.current_step == "confirm"
