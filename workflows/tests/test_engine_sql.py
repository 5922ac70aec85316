"""The engine's hand-written statements against the ORM's.

On PostgreSQL the engine writes its hot paths by hand (``workflows.engine.HAND_WRITTEN``): one
statement where the ORM needs several (the run's rows as CTEs of one statement, a claim with its
history row, a lock with the completion). Here the same story of processes runs three ways on the
same clock — the ORM's statements, the hand-written statements row kind by row kind, and the
one-statement flush — and every row each way wrote must be the same, column by column.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import roles
from workflows import engine, services
from workflows.models import Process, ProcessEvent, SystemJob, Task, Timer, WorkflowVersion
from workflows.testing import install_definition, run_pending_system_steps
from workflows.tests.conftest import FAILURES

pytestmark = pytest.mark.django_db

FLAKY = {
    "key": "test-flaky",
    "name": "Flaky step",
    "steps": [
        {"id": "start", "type": "start", "next": "call_cpms"},
        {
            "id": "call_cpms",
            "type": "system",
            "task": "tests.flaky",
            "retry": {"max_attempts": 2, "backoff": "PT1M"},
            "next": "check",
        },
        {"id": "check", "type": "user", "name": "Check", "role": roles.AGENT, "outcomes": {"ok": "end"}},
        {"id": "end", "type": "end", "result": "done"},
    ],
}
CHILD = {
    "key": "test-child",
    "name": "Child",
    "steps": [
        {"id": "start", "type": "start", "next": "handle"},
        {"id": "handle", "type": "user", "name": "Handle", "role": roles.AGENT, "outcomes": {"done": "end"}},
        {"id": "end", "type": "end", "result": "handled"},
    ],
}
PARENT = {
    "key": "test-parent",
    "name": "Parent",
    "steps": [
        {"id": "start", "type": "start", "next": "sub"},
        {"id": "sub", "type": "call", "definition": "test-child", "next": "close"},
        {
            "id": "close",
            "type": "user",
            "name": "Close",
            "role": roles.AGENT,
            "due_in": "P1D",
            "outcomes": {"ok": "end"},
        },
        {"id": "end", "type": "end", "result": "closed"},
    ],
}
MODELS = (Process, Task, SystemJob, Timer, ProcessEvent)


def open_task(process: Process) -> Task:
    return Task.objects.get(process=process, state__in=Task.ACTIVE_STATES)


def claim_and_complete(task: Task, user, outcome: str, inputs: dict | None = None) -> None:
    services.task_claim_by_id(task_id=task.pk, user=user)
    services.task_complete(task=services.task_load(task.pk), user=user, outcome=outcome, inputs=inputs)


def story(clock, agent, supervisor, admin_user) -> None:
    """Every path of the engine's hot statements: starts, claims, completions, decisions, system
    steps that succeed, retry and fail, escalations by hand and by timer, a call activity."""
    start = timezone.now()
    approved = services.process_start(definition_key="test-season", variables={"deposit": 50})
    claim_and_complete(open_task(approved), agent, "approve", {"deposit_ok": True, "note": "fine"})
    run_pending_system_steps()
    claim_and_complete(open_task(approved), agent, "done")

    rejected = services.process_start(definition_key="test-season", variables={"deposit": 0})
    task = open_task(rejected)  # completed while open, without a claim
    services.task_complete(task=services.task_load(task.pk), user=agent, outcome="reject", inputs={"deposit_ok": False})

    by_hand = services.process_start(definition_key="test-season", variables={"deposit": 10})
    services.task_escalate(task=open_task(by_hand), user=agent, reason="not sure")
    claim_and_complete(open_task(by_hand), supervisor, "approve", {"deposit_ok": True})
    run_pending_system_steps()
    claim_and_complete(open_task(by_hand), agent, "done")

    services.process_start(definition_key="test-season", variables={"deposit": 20})  # left to its timers
    FAILURES["flaky"] = 5
    flaky = services.process_start(definition_key="test-flaky")
    run_pending_system_steps()  # fails; a retry timer
    clock.move_to(start + timedelta(minutes=5))
    engine.fire_due_timers()
    run_pending_system_steps()  # fails again: an incident
    FAILURES["flaky"] = 0
    services.incident_retry(process=Process.objects.get(pk=flaky.pk), user=admin_user)
    run_pending_system_steps()
    claim_and_complete(open_task(flaky), agent, "ok")

    parent = services.process_start(definition_key="test-parent")
    child = Process.objects.get(parent=parent)
    claim_and_complete(open_task(child), agent, "done")
    claim_and_complete(open_task(parent), agent, "ok")

    clock.move_to(start + timedelta(days=2, hours=1))
    engine.fire_due_timers()  # the untouched review → Supervisor
    clock.move_to(start + timedelta(days=3, hours=2))
    engine.fire_due_timers()  # → Administrator


def rows() -> dict[str, list[dict]]:
    """Every row of the engine's tables, ids replaced by their rank in their table."""
    ranks = {
        model: {pk: n for n, pk in enumerate(model.objects.order_by("pk").values_list("pk", flat=True))}
        for model in MODELS
    }
    dump: dict[str, list[dict]] = {}
    for model in MODELS:
        table = []
        for obj in model.objects.order_by("pk"):
            row = {}
            for field in model._meta.concrete_fields:
                value = getattr(obj, field.attname)
                if field.primary_key:
                    value = ranks[model][value]
                elif field.is_relation and field.related_model in ranks and value is not None:
                    value = ranks[field.related_model][value]
                row[field.name] = value
            if model is SystemJob:  # "<process id>:<step>:<seq>"
                process_id, rest = row["idempotency_key"].split(":", 1)
                row["idempotency_key"] = f"{ranks[Process][int(process_id)]}:{rest}"
            if model is ProcessEvent:
                data = dict(row["data"] or {})
                if "from_task" in data:
                    data["from_task"] = ranks[Task][data["from_task"]]
                if isinstance(data.get("source"), str):
                    data["source"] = re.sub(r"\d+", lambda m: f"#{ranks[Process].get(int(m[0]), m[0])}", data["source"])
                row["data"] = data
            table.append(row)
        dump[model.__name__] = table
    return dump


def run_story(monkeypatch, *, hand_written: bool, one_statement: bool, users) -> tuple[dict, list[str]]:
    monkeypatch.setattr(engine, "HAND_WRITTEN", hand_written)
    monkeypatch.setattr(engine, "ONE_STATEMENT", one_statement)
    for model in (ProcessEvent, Timer, SystemJob, Task, Process):
        model.objects.all().delete()
    with (
        time_machine.travel("2026-11-02 08:00:00+00:00", tick=False) as clock,
        CaptureQueriesContext(connection) as queries,
    ):
        story(clock, *users)
    return rows(), [q["sql"] for q in queries.captured_queries]


@pytest.fixture
def installed():
    for spec in (FLAKY, CHILD, PARENT):
        install_definition(spec)


def test_the_hand_written_statements_write_the_rows_the_orm_writes(
    monkeypatch, season_spec, installed, agent, supervisor, admin_user
):
    install_definition(season_spec)
    users = (agent, supervisor, admin_user)
    orm, orm_sql = run_story(monkeypatch, hand_written=False, one_statement=False, users=users)
    by_kind, by_kind_sql = run_story(monkeypatch, hand_written=True, one_statement=False, users=users)
    one, one_sql = run_story(monkeypatch, hand_written=True, one_statement=True, users=users)

    assert [p["state"] for p in orm["Process"]].count(Process.State.COMPLETED) == 6  # the story ran to its ends
    assert len(orm["ProcessEvent"]) > 80 and len(orm["Timer"]) >= 6
    for name in orm:
        assert by_kind[name] == orm[name], name
        assert one[name] == orm[name], name
    # and each way ran its own statements: the ORM's, then fewer, then fewer still
    assert not any("WITH np0 AS" in sql or "WITH claimed AS" in sql for sql in orm_sql)
    assert any("WITH claimed AS" in sql for sql in by_kind_sql) and not any("WITH np0 AS" in sql for sql in by_kind_sql)
    assert any("WITH np0 AS" in sql for sql in one_sql)
    assert len(one_sql) < len(by_kind_sql) < len(orm_sql)


def test_the_hand_written_reads_load_what_the_orm_loads(season_spec, agent):
    version = install_definition(season_spec)
    process = services.process_start(definition_key="test-season", variables={"deposit": 5})
    task = open_task(process)
    services.task_claim_by_id(task_id=task.pk, user=agent)

    def fields(obj) -> dict:
        return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}

    published = engine.published_version("test-season")
    orm_version = WorkflowVersion.objects.get(pk=version.pk)
    assert (published.pk, published.definition_id, published.number, published.state) == (
        orm_version.pk, orm_version.definition_id, orm_version.number, orm_version.state,
    )  # fmt: skip
    from django.db import transaction

    with transaction.atomic():
        assert fields(engine.lock_process(process.pk)) == fields(Process.objects.get(pk=process.pk))
    loaded = engine.load_task(task.pk)
    orm_task = Task.objects.select_related("process").get(pk=task.pk)
    assert fields(loaded) == fields(orm_task)
    assert (loaded.process.version_id, loaded.process.state) == (orm_task.process.version_id, orm_task.process.state)


@pytest.mark.django_db(transaction=True)
def test_outside_a_test_transaction_completions_go_unlocked_and_steps_commit_with_their_statement_writing_the_same_rows(
    monkeypatch, season_spec, installed, agent, supervisor, admin_user
):
    """In production nothing wraps an action in a transaction: a completion or a system step's
    success is then one statement that checks the process row is as read, and the locked way's flush
    sends its statement and COMMIT in one round trip (the test transaction above prevents both)."""
    install_definition(season_spec)
    users = (agent, supervisor, admin_user)
    pipelined = []
    execute = type(connection.connection).execute

    def counting_execute(self, query, *args, **kwargs):  # the COMMIT the flush queues in the pipeline
        pipelined.append(query == "COMMIT" and self._pipeline is not None)
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(type(connection.connection), "execute", counting_execute)
    orm, orm_sql = run_story(monkeypatch, hand_written=False, one_statement=False, users=users)
    assert not any(pipelined)
    one, one_sql = run_story(monkeypatch, hand_written=True, one_statement=True, users=users)
    assert sum(pipelined) == 3  # the failed attempts of the flaky step and the incident's retry: locked
    unlocked = [sql for sql in one_sql if sql.startswith("WITH lp AS (SELECT 1")]
    # every completion but the child's, whose end resumes its parent (read and locked: the locked way),
    # and every successful system step
    assert len([sql for sql in unlocked if '"workflows_task" SET' in sql]) == 7
    assert len([sql for sql in unlocked if '"workflows_systemjob" SET' in sql]) == 3
    for name in orm:
        assert one[name] == orm[name], name


@pytest.mark.django_db(transaction=True)
def test_a_commit_that_fails_in_the_pipeline_raises_and_leaves_the_task_and_process_as_they_were(
    season_spec, agent, django_user_model
):
    """The foreign keys are checked at COMMIT: completing as a user deleted meanwhile fails there."""
    install_definition(season_spec)
    process = services.process_start(definition_key="test-season", variables={"deposit": 5})
    task = open_task(process)
    ghost = django_user_model.objects.create_user("ghost")
    ghost.groups.set(agent.groups.all())
    assert services.can_work_on(ghost, task)  # its roles are read now, as a request would have
    django_user_model.objects.filter(pk=ghost.pk).delete()  # the object in memory stays logged in
    events = ProcessEvent.objects.filter(process=process).count()

    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        services.task_complete(
            task=services.task_load(task.pk), user=ghost, outcome="reject", inputs={"deposit_ok": False}
        )
    task.refresh_from_db()
    process.refresh_from_db()
    assert (task.state, process.state, process.current_step) == (Task.State.OPEN, Process.State.RUNNING, "review")
    assert ProcessEvent.objects.filter(process=process).count() == events
    services.task_complete(task=services.task_load(task.pk), user=agent, outcome="reject", inputs={"deposit_ok": False})
    process.refresh_from_db()
    assert process.state == Process.State.COMPLETED  # the connection works on


@pytest.mark.django_db(transaction=True)
def test_a_completion_whose_process_changed_after_the_load_writes_nothing_unlocked_and_completes_locked(
    season_spec, agent
):
    install_definition(season_spec)
    process = services.process_start(definition_key="test-season", variables={"deposit": 5})
    task = services.task_load(open_task(process).pk)
    Process.objects.filter(pk=process.pk).update(variables={"deposit": 0, "note_from": "elsewhere"})
    with CaptureQueriesContext(connection) as queries:
        services.task_complete(task=task, user=agent, outcome="approve", inputs={"deposit_ok": True})
    sql = [q["sql"] for q in queries.captured_queries if "workflows_" in q["sql"]]
    assert sql[0].startswith("WITH lp AS (SELECT 1") and "FOR UPDATE" in sql[1]  # tried unlocked, then locked
    process.refresh_from_db()
    assert process.variables["note_from"] == "elsewhere"  # the change made meanwhile is kept
    assert process.current_step == "activate" and process.variables["deposit_ok"] is True
    assert ProcessEvent.objects.filter(process=process, kind=ProcessEvent.Kind.TASK_COMPLETED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_task_claimed_by_someone_else_after_the_load_is_refused_and_nothing_is_written(season_spec, agent, make_user):
    install_definition(season_spec)
    other = make_user("other", roles.AGENT)
    process = services.process_start(definition_key="test-season", variables={"deposit": 5})
    task = services.task_load(open_task(process).pk)
    services.task_claim_by_id(task_id=task.pk, user=other)
    events = ProcessEvent.objects.filter(process=process).count()

    from workflows.errors import TaskNotAvailable

    with pytest.raises(TaskNotAvailable, match="Other"):
        services.task_complete(task=task, user=agent, outcome="approve", inputs={"deposit_ok": True})
    assert (task.state, task.outcome, task.assignee) == (Task.State.OPEN, "", None)  # the object is as loaded
    process.refresh_from_db()
    assert process.current_step == "review"
    assert ProcessEvent.objects.filter(process=process).count() == events
