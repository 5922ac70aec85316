"""Waits (duration, until a variable's date, message with timeout), call activities,
cancel/suspend/resume and the safe expression language."""

from __future__ import annotations

import pytest

from workflows import services
from workflows.errors import ExpressionError, MessageNotExpected, ProcessNotRunning
from workflows.expressions import compile_expression, evaluate
from workflows.models import Process, SystemJob, Task, Timer
from workflows.testing import fire_due_timers, install_definition, run_pending_system_steps

pytestmark = pytest.mark.django_db

WAITS = {
    "key": "test-waits",
    "name": "Waits",
    "variables": ["offer_expires_at", "amount"],
    "steps": [
        {"id": "start", "type": "start", "next": "pause"},
        {"id": "pause", "type": "wait", "duration": "P1D", "next": "until"},
        {"id": "until", "type": "wait", "until_variable": "offer_expires_at", "next": "paid"},
        {
            "id": "paid",
            "type": "wait",
            "message": "payment.succeeded",
            "payload": ["amount"],
            "timeout": {"after": "P14D", "next": "timed_out"},
            "next": "done",
        },
        {"id": "done", "type": "end", "result": "paid"},
        {"id": "timed_out", "type": "end", "result": "unpaid"},
    ],
}


def test_waits_resume_on_time_and_on_the_message_not_before(time_machine):
    time_machine.move_to("2026-04-01 12:00Z", tick=False)
    install_definition(WAITS)
    process = services.process_start(
        definition_key="test-waits", variables={"offer_expires_at": "2026-04-05T12:00:00+00:00"}
    )
    assert process.current_step == "pause"
    time_machine.move_to("2026-04-02 11:59Z", tick=False)
    assert fire_due_timers() == 0
    time_machine.move_to("2026-04-02 12:00Z", tick=False)
    assert fire_due_timers() == 1
    process.refresh_from_db()
    assert process.current_step == "until"
    with pytest.raises(MessageNotExpected, match="does not wait for a message"):
        services.process_message(process=process, name="payment.succeeded", payload={"amount": 1})
    time_machine.move_to("2026-04-05 12:00:01Z", tick=False)
    assert fire_due_timers() == 1
    process.refresh_from_db()
    assert (process.current_step, process.waiting_for) == ("paid", "payment.succeeded")

    with pytest.raises(MessageNotExpected, match="waits for 'payment.succeeded'"):
        services.process_message(process=process, name="payment.failed")
    process.refresh_from_db()
    assert process.state == "running" and process.current_step == "paid"

    process = services.process_message(
        process=process, name="payment.succeeded", payload={"amount": 42, "offer_expires_at": "overwritten"}
    )
    assert (process.state, process.result) == ("completed", "paid")
    assert process.variables["amount"] == 42
    assert process.variables["offer_expires_at"] == "2026-04-05T12:00:00+00:00"  # not in the step's payload list
    assert process.events.filter(kind="message_received").count() == 1
    time_machine.move_to("2026-04-30 12:00Z", tick=False)
    assert fire_due_timers() == 0  # the timeout timer is stale now
    assert Timer.objects.get(process=process, kind="message_timeout").state == "cancelled"


def test_a_message_wait_times_out(time_machine):
    time_machine.move_to("2026-04-01 12:00Z", tick=False)
    install_definition(WAITS)
    process = services.process_start(definition_key="test-waits", variables={"offer_expires_at": "2026-04-01"})
    time_machine.move_to("2026-04-02 12:00Z", tick=False)
    assert fire_due_timers() == 1  # pause over; the until date has passed already
    process.refresh_from_db()
    assert process.current_step == "paid"
    time_machine.move_to("2026-04-16 12:00:01Z", tick=False)
    assert fire_due_timers() == 1
    process.refresh_from_db()
    assert (process.state, process.result, process.waiting_for) == ("completed", "unpaid", "")


def test_message_send_resumes_every_process_about_the_object_that_waits(django_user_model, time_machine):
    time_machine.move_to("2026-04-01 12:00Z", tick=False)
    install_definition(WAITS)
    thing = django_user_model.objects.create_user("thing")
    other = django_user_model.objects.create_user("other")
    started = [
        services.process_start(
            definition_key="test-waits", business_object=obj, variables={"offer_expires_at": "2026-04-01"}
        )
        for obj in (thing, thing, other)
    ]
    assert services.message_send(name="payment.succeeded", business_object=thing) == 0  # nobody waits yet
    time_machine.move_to("2026-04-02 12:00Z", tick=False)
    fire_due_timers()
    assert services.message_send(name="payment.succeeded", business_object=thing, payload={"amount": 5}) == 2
    states = [Process.objects.get(pk=p.pk).state for p in started]
    assert states == ["completed", "completed", "running"]


def test_an_until_variable_that_is_not_a_date_opens_an_incident():
    install_definition(WAITS)
    spec = {
        **WAITS,
        "key": "test-until",
        "steps": [{"id": "start", "type": "start", "next": "until"}, *WAITS["steps"][2:]],
    }
    install_definition(spec)
    process = services.process_start(definition_key="test-until", variables={"offer_expires_at": "soon"})
    assert process.incident_open
    assert "must hold a date" in process.incident_error


def test_cancel_suspend_and_resume(season_spec, agent, admin_user):
    install_definition(season_spec)
    process = services.process_start(definition_key="test-season", variables={"deposit": 1})
    task = process.tasks.get()
    services.process_suspend(process=process, user=admin_user, reason="customer on holiday")
    with pytest.raises(ProcessNotRunning, match="suspended"):
        services.task_complete(task=task, user=agent, outcome="reject", inputs={"deposit_ok": False})
    services.process_resume(process=process, user=admin_user)
    services.task_complete(
        task=Task.objects.get(pk=task.pk), user=agent, outcome="approve", inputs={"deposit_ok": True}
    )
    process = services.process_cancel(process=process, user=admin_user, reason="duplicate")
    assert process.state == "cancelled" and process.ended_at
    assert SystemJob.objects.get(process=process).state == "cancelled"
    assert run_pending_system_steps() == 0
    with pytest.raises(ProcessNotRunning):
        services.process_cancel(process=process, user=admin_user)
    kinds = list(process.events.values_list("kind", flat=True))
    assert {"process_suspended", "process_resumed", "process_cancelled"} <= set(kinds)


def test_suspended_processes_keep_their_timers_until_resumed(season_spec, time_machine, admin_user):
    time_machine.move_to("2026-05-01 08:00Z", tick=False)
    install_definition(season_spec)
    process = services.process_start(definition_key="test-season")
    services.process_suspend(process=process, user=admin_user)
    time_machine.move_to("2026-05-03 09:00Z", tick=False)
    assert fire_due_timers() == 0
    services.process_resume(process=process, user=admin_user)
    assert fire_due_timers() == 1
    assert Task.objects.filter(process=process, state="open").get().escalation_level == 1


def test_a_call_activity_runs_the_sub_process_and_resumes_the_parent(agent):
    install_definition(
        {
            "key": "test-child",
            "name": "Child",
            "steps": [
                {"id": "start", "type": "start", "next": "do"},
                {"id": "do", "type": "user", "role": "Back-office agent", "outcomes": {"ok": "end"}},
                {"id": "end", "type": "end", "result": "child-done"},
            ],
        }
    )
    install_definition(
        {
            "key": "test-parent",
            "name": "Parent",
            "steps": [
                {"id": "start", "type": "start", "next": "sub"},
                {"id": "sub", "type": "call", "definition": "test-child", "next": "check"},
                {
                    "id": "check",
                    "type": "decision",
                    "branches": [{"when": "sub_result == 'child-done'", "next": "ok"}],
                    "default": "odd",
                },
                {"id": "ok", "type": "end", "result": "ok"},
                {"id": "odd", "type": "end", "result": "odd"},
            ],
        }
    )
    parent = services.process_start(definition_key="test-parent")
    child = Process.objects.get(parent=parent)
    assert parent.current_step == "sub" and child.current_step == "do"
    services.task_complete(task=child.tasks.get(), user=agent, outcome="ok")
    parent.refresh_from_db()
    assert (parent.state, parent.result) == ("completed", "ok")


@pytest.mark.parametrize(
    "source",
    [
        '__import__("os").system("true")',
        "amount.__class__.__mro__",
        "2 ** 100000000",
        "amount ** amount",
        "[1, 2].map(x, x * 9999999)",
        "'a' * 1000000000",
        "(" * 100 + "1" + ")" * 100,
        "amount > 1 && " * 200 + "true",
        "open('/etc/passwd')",
        "amount.__globals__",
        "9223372036854775807 * 9223372036854775807 > 0",
    ],
)
def test_expressions_cannot_reach_python_internals_or_blow_up(source):
    with pytest.raises(ExpressionError) as err:
        evaluate(compile_expression(source, ["amount"]), {"amount": 3})
    assert str(err.value).startswith(("the condition", "names with double", "'map(…)'"))


def test_huge_strings_in_variables_are_refused():
    expression = compile_expression("size(note + note) > 1", ["note"])
    with pytest.raises(ExpressionError, match="too large"):
        evaluate(expression, {"note": "x" * 1_000_000})
    assert evaluate(expression, {"note": "ab"}) is True
