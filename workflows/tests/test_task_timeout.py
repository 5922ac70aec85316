"""An interrupting timer on a user task: when nobody finished the task in time, its open tasks are
cancelled and the process takes the timer's path (BPMN: a timer boundary event with its own flow)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts import roles
from workflows import services
from workflows.bpmn import BpmnError, bpmn_to_definition, definition_to_bpmn
from workflows.compiler import compile_spec
from workflows.errors import DefinitionInvalid, TaskNotAvailable
from workflows.models import Process, ProcessEvent, Task, Timer
from workflows.testing import fire_due_timers, install_definition
from workflows.tests.test_races import run_in_threads

CALLBACK = {
    "key": "test-callback",
    "name": "Call back",
    "steps": [
        {"id": "start", "type": "start", "next": "call"},
        {
            "id": "call",
            "type": "user",
            "name": "Call the customer back",
            "role": roles.CARE,
            "escalation": [{"after": "PT2H", "to": roles.SUPERVISOR}],
            "outcomes": {"reached": "done"},
            "timeout": {"after": "P1D", "next": "letter"},
        },
        {"id": "letter", "type": "user", "name": "Send a letter", "role": roles.CARE, "outcomes": {"sent": "done"}},
        {"id": "done", "type": "end", "result": "handled"},
    ],
}

# The same without the escalation timer, where only the timeout should fire.
PLAIN = CALLBACK | {"steps": [s | {"escalation": []} if s["id"] == "call" else s for s in CALLBACK["steps"]]}


@pytest.fixture
def care(make_user):
    return make_user("care", roles.CARE)


def test_a_task_not_done_in_time_is_cancelled_and_the_process_takes_the_timer_path(time_machine, care, supervisor):
    time_machine.move_to("2026-05-04 08:00Z", tick=False)
    install_definition(CALLBACK)
    process = services.process_start(definition_key="test-callback")
    first = process.tasks.get()
    services.task_claim(task=first, user=care)

    time_machine.move_to("2026-05-04 10:00Z", tick=False)
    assert fire_due_timers() == 1  # the escalation: a copy for the supervisor, same deadline
    escalated = Task.objects.get(process=process, state="open")
    assert escalated.role == roles.SUPERVISOR
    time_machine.move_to("2026-05-05 07:59Z", tick=False)
    assert fire_due_timers() == 0
    time_machine.move_to("2026-05-05 08:00Z", tick=False)
    assert fire_due_timers() == 1

    process.refresh_from_db()
    assert process.current_step == "letter"
    assert Task.objects.get(pk=escalated.pk).state == Task.State.CANCELLED
    letter = Task.objects.get(process=process, state="open")
    assert letter.step_id == "letter"
    cancelled = ProcessEvent.objects.filter(process=process, kind="task_cancelled")
    assert [(e.task_id, e.data) for e in cancelled] == [(escalated.pk, {"reason": "timeout"})]
    left = ProcessEvent.objects.get(process=process, kind="step_left", step_id="call")
    assert left.data == {"timeout": True}
    with pytest.raises(TaskNotAvailable, match="already cancelled\\.$"):
        services.task_complete(task=Task.objects.get(pk=escalated.pk), user=supervisor, outcome="reached")

    services.task_complete(task=letter, user=care, outcome="sent")
    process.refresh_from_db()
    assert (process.state, process.result) == (Process.State.COMPLETED, "handled")


def test_the_task_page_says_when_the_task_closes_and_where_the_process_goes(client, login, time_machine, care):
    time_machine.move_to("2026-05-04 08:00Z", tick=False)
    install_definition(CALLBACK)
    process = services.process_start(definition_key="test-callback")
    task = process.tasks.get()
    login(client, care)
    page = client.get(reverse("workflows:task-detail", args=[task.pk])).content.decode()
    closes = page.split('id="task-closes"', 1)[1].split("</div></div>", 1)[0]
    assert "2026-05-05 10:00" in closes and "“Send a letter”" in closes

    services.task_complete(task=task, user=care, outcome="reached")
    page = client.get(reverse("workflows:task-detail", args=[task.pk])).content.decode()
    assert 'id="task-closes"' not in page  # done: nothing closes any more


def test_whoever_held_a_closed_task_is_told(time_machine, care, django_capture_on_commit_callbacks):
    from django.core import mail

    from notifications.models import Notification

    time_machine.move_to("2026-05-04 08:00Z", tick=False)
    install_definition(PLAIN)
    care.email = "care@parkinghq.example"
    care.save()
    process = services.process_start(definition_key="test-callback")
    services.task_claim(task=process.tasks.get(), user=care)
    time_machine.move_to("2026-05-05 08:00Z", tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert fire_due_timers() == 1
    note = Notification.objects.get(user=care, kind=Notification.Kind.OVERDUE)
    assert note.title == "Closed: Call the customer back"
    assert "went on to “Send a letter”" in note.body
    assert [m.subject for m in mail.outbox] == ["[ParkingHQ] Closed: Call the customer back"]


def test_a_task_done_in_time_leaves_its_timer_stale(time_machine, care):
    time_machine.move_to("2026-05-04 08:00Z", tick=False)
    install_definition(CALLBACK)
    process = services.process_start(definition_key="test-callback")
    services.task_complete(task=process.tasks.get(), user=care, outcome="reached")
    time_machine.move_to("2026-05-06 08:00Z", tick=False)
    assert fire_due_timers() == 0
    process.refresh_from_db()
    assert (process.state, process.result) == (Process.State.COMPLETED, "handled")
    assert set(Timer.objects.filter(process=process).values_list("state", flat=True)) == {"cancelled"}


@pytest.mark.django_db(transaction=True)
def test_completing_while_the_timeout_fires_gives_one_path(time_machine, care):
    time_machine.move_to("2026-05-04 08:00Z", tick=False)
    install_definition(PLAIN)
    for _ in range(4):  # which side wins a round is up to the database; each round must have one winner
        time_machine.move_to("2026-05-04 08:00Z", tick=False)
        process = services.process_start(definition_key="test-callback")
        task_id = process.tasks.get().pk
        time_machine.move_to("2026-05-05 08:00Z", tick=False)

        def complete(task_id: int = task_id) -> int:
            return services.task_complete(task=Task.objects.get(pk=task_id), user=care, outcome="reached").pk

        results = run_in_threads(complete, fire_due_timers)
        process.refresh_from_db()
        completed, fired = results[0][0] == "ok", results[1] == ("ok", 1)
        assert completed != fired, results  # exactly one of them took effect
        if completed:
            assert process.state == Process.State.COMPLETED and not Task.objects.filter(
                step_id="letter", process=process
            )
        else:
            assert isinstance(results[0][1], TaskNotAvailable) and "cancelled" in str(results[0][1])
            assert process.current_step == "letter"
        assert ProcessEvent.objects.filter(process=process, kind="step_left", step_id="call").count() == 1


def test_a_migrated_process_takes_the_new_versions_timeout(time_machine, care):
    time_machine.move_to("2026-05-04 08:00Z", tick=False)
    install_definition(PLAIN)
    process = services.process_start(definition_key="test-callback")
    task = process.tasks.get()
    # v2: three days, then straight to the end (the letter step is gone)
    v2 = install_definition(
        PLAIN | {"steps": [
            s | {"timeout": {"after": "P3D", "next": "done"}} if s["id"] == "call" else s
            for s in PLAIN["steps"] if s["id"] != "letter"
        ]}
    )  # fmt: skip
    time_machine.move_to("2026-05-04 12:00Z", tick=False)
    services.process_migrate(process=process, to_version=v2)
    pending = Timer.objects.get(process=process, state="pending", kind="task_timeout")
    assert pending.data == {"next": "done"} and pending.task_id == task.pk
    assert pending.due_at.isoformat() == "2026-05-07T08:00:00+00:00"  # from when the step was entered

    time_machine.move_to("2026-05-05 08:00Z", tick=False)
    assert fire_due_timers() == 0  # the old version's one-day timeout is gone
    time_machine.move_to("2026-05-07 08:00Z", tick=False)
    assert fire_due_timers() == 1
    process.refresh_from_db()
    assert (process.state, process.result) == (Process.State.COMPLETED, "handled")

    # a version without the timeout: nothing is left pending
    other = services.process_start(definition_key="test-callback")
    v3 = install_definition(
        PLAIN | {"steps": [
            {k: v for k, v in s.items() if k != "timeout"} for s in PLAIN["steps"] if s["id"] != "letter"
        ]}
    )  # fmt: skip
    services.process_migrate(process=other, to_version=v3)
    assert not Timer.objects.filter(process=other, state="pending", kind="task_timeout").exists()


def test_a_migrated_message_wait_takes_the_new_versions_timeout_too(db, time_machine):
    wait = {
        "key": "test-deposit",
        "name": "Deposit",
        "steps": [
            {"id": "start", "type": "start", "next": "paid"},
            {"id": "paid", "type": "wait", "message": "deposit.paid", "next": "done",
             "timeout": {"after": "P14D", "next": "remind"}},
            {"id": "remind", "type": "end", "result": "reminded"},
            {"id": "done", "type": "end", "result": "paid"},
        ],
    }  # fmt: skip
    time_machine.move_to("2026-05-04 08:00Z", tick=False)
    install_definition(wait)
    process = services.process_start(definition_key="test-deposit")
    steps = [s for s in wait["steps"] if s["id"] != "remind"]
    steps[1] = steps[1] | {"timeout": {"after": "P2D", "next": "done"}}
    services.process_migrate(process=process, to_version=install_definition(wait | {"steps": steps}))
    time_machine.move_to("2026-05-06 08:00Z", tick=False)
    assert fire_due_timers() == 1  # the new two days, to the new version's path
    process.refresh_from_db()
    assert (process.state, process.result) == (Process.State.COMPLETED, "paid")


def test_a_timeout_must_lead_to_a_known_step():
    broken = CALLBACK | {
        "steps": [
            s | {"timeout": {"after": "P1D", "next": "nowhere"}} if s["id"] == "call" else s for s in CALLBACK["steps"]
        ]
    }
    with pytest.raises(DefinitionInvalid, match="“Call the customer back” \\(call\\): leads to unknown step 'nowhere'"):
        compile_spec(broken)
    no_path = CALLBACK | {
        "steps": [s | {"timeout": {"after": "P1D"}} if s["id"] == "call" else s for s in CALLBACK["steps"]]
    }
    with pytest.raises(DefinitionInvalid, match="“Call the customer back” \\(call\\): timeout needs 'after'"):
        compile_spec(no_path)


def test_the_timer_path_survives_a_bpmn_round_trip_and_wrong_timers_are_refused():
    xml = definition_to_bpmn(CALLBACK)
    assert 'id="call__timeout"' in xml and 'cancelActivity="false"' not in xml.split('id="call__timeout"')[1][:200]
    read = bpmn_to_definition(xml)
    back = read.spec
    assert compile_spec(back)["steps"] == compile_spec(CALLBACK)["steps"]
    # the timer keeps its own place on the diagram (not the due timer's), and its flow's route
    with_due = CALLBACK | {"steps": [s | {"due_in": "PT4H"} if s["id"] == "call" else s for s in CALLBACK["steps"]]}
    layout = bpmn_to_definition(definition_to_bpmn(with_due)).layout
    assert {"call__timeout", "call__due"} <= set(layout.shapes)
    assert layout.shapes["call__timeout"] != layout.shapes["call__due"]
    assert ("call__timeout", "letter") in layout.edges
    # a user task written with "next" instead of outcomes keeps its timer path too
    with_next = CALLBACK | {
        "steps": [
            {k: v for k, v in s.items() if k != "outcomes"} | {"next": "done"} if s["id"] == "call" else s
            for s in CALLBACK["steps"]
        ]
    }
    again = bpmn_to_definition(definition_to_bpmn(with_next)).spec
    assert compile_spec(again)["steps"] == compile_spec(with_next)["steps"]

    non_interrupting = xml.replace('id="call__timeout" ', 'id="call__timeout" cancelActivity="false" ')
    with pytest.raises(BpmnError) as refused:
        bpmn_to_definition(non_interrupting)
    assert "non-interrupting timer" in str(refused.value.problems[0].message)
    escalating = xml.replace('id="call__timeout" ', 'id="call__timeout" phq:escalateTo="Supervisor" ')
    with pytest.raises(BpmnError) as refused:
        bpmn_to_definition(escalating)
    assert "cannot also start a path" in str(refused.value.problems[0].message)
