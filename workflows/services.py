"""The engine's public API. Other apps call only these functions (and read the models).

Every function is one transaction. User actions check the user's role and car-park
responsibility (see :func:`can_work_on`). Errors are :class:`workflows.errors.WorkflowError`
subclasses whose message can be shown as it is.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from accounts.roles import ADMINISTRATOR, SUPERVISOR, WORKFLOW_ADMIN, has_role, responsible_carpark_ids, user_roles
from workflows import engine, signals
from workflows.compiler import compile_spec, graph_for_version, publish_check
from workflows.durations import add_duration
from workflows.engine import (
    Kind,
    Run,
    close_incident,
    enter,
    escalate,
    leave_step,
    load_task,
    lock_process,
    lock_process_and_update,
    new_process,
    published_version,
    set_variables,
    signal_after_commit,
    step_timer,
    update_sql,
)
from workflows.errors import (
    InvalidInputs,
    InvalidOutcome,
    MessageNotExpected,
    MigrationNotPossible,
    NoIncident,
    ProcessNotRunning,
    TaskNotAvailable,
    TaskPermissionDenied,
    WorkflowError,
)
from workflows.models import Process, ProcessEvent, SystemJob, Task, Timer, WorkflowDefinition, WorkflowVersion
from workflows.starting import bindings_publish, bindings_retire

__all__ = [
    "can_work_on",
    "definition_install",
    "incident_retry",
    "message_send",
    "process_cancel",
    "process_message",
    "process_migrate",
    "process_resume",
    "process_start",
    "process_suspend",
    "task_claim",
    "task_claim_by_id",
    "task_complete",
    "task_delegate",
    "task_escalate",
    "task_load",
    "task_release",
    "version_publish",
]


# -- definitions -------------------------------------------------------------------------------
def spec_checksum(spec: dict[str, Any], bpmn_xml: str = "") -> str:
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((canonical + "\x00" + (bpmn_xml or "")).encode()).hexdigest()


def _audit(user: Any, action: str, target: Any, old: Any = None, new: Any = None) -> None:
    try:
        from accounts.services import audit_record  # type: ignore[attr-defined]
    except ImportError:
        return
    audit_record(actor=user, action=action, target=target, old=old, new=new)


def definition_install(
    *, spec: dict[str, Any], user: Any = None, publish: bool = True, bpmn_xml: str = "", comment: str = ""
) -> WorkflowVersion:
    """Install a definition in the compact format. A new version only if its content changed.

    With ``publish`` the version is published (retiring the previously published one); otherwise
    it stays a draft. Raises DefinitionInvalid listing every problem by step (publishing also refuses
    roles that do not exist).
    """
    graph = publish_check(spec) if publish else compile_spec(spec)
    checksum = spec_checksum(spec, bpmn_xml)
    with transaction.atomic():
        definition, created = WorkflowDefinition.objects.select_for_update().get_or_create(
            key=graph["key"],
            defaults={"name": graph["name"], "description": graph["description"], "category": graph["category"]},
        )
        latest = definition.versions.order_by("-number").first()
        if latest is not None and latest.checksum == checksum and latest.state != WorkflowVersion.State.RETIRED:
            if publish and latest.state == WorkflowVersion.State.DRAFT:
                _publish(latest, user)
            return latest
        if not created:
            changed = {
                name: graph[name]
                for name in ("name", "description", "category")
                if graph[name] and getattr(definition, name) != graph[name]
            }
            if changed:
                WorkflowDefinition.objects.filter(pk=definition.pk).update(**changed, updated_at=timezone.now())
        version = WorkflowVersion.objects.create(
            definition=definition,
            number=(latest.number + 1) if latest else 1,
            spec=spec,
            graph=graph,
            bpmn_xml=bpmn_xml,
            checksum=checksum,
            comment=comment[:300],
            created_by=user if getattr(user, "pk", None) else None,
        )
        _audit(user, "workflow.version_created", version, new={"number": version.number})
        if publish:
            _publish(version, user)
    return version


def _publish(version: WorkflowVersion, user: Any) -> None:
    for old in WorkflowVersion.objects.select_for_update().filter(
        definition_id=version.definition_id, state=WorkflowVersion.State.PUBLISHED
    ):
        if old.pk != version.pk:
            old.retire()
            old.save(update_fields=["state", "retired_at"])
            bindings_retire(old)
    version.publish()
    version.save(update_fields=["state", "published_at"])
    bindings_publish(version)
    _audit(user, "workflow.published", version, new={"number": version.number})


def version_publish(*, version: WorkflowVersion, user: Any = None) -> WorkflowVersion:
    """Validate a draft again (the registry and the roles may have changed) and publish it. Refuses
    (DefinitionInvalid, naming each step) what cannot run: what the compiler refuses and roles that do not
    exist; the version published before stays in force."""
    publish_check(version.spec)
    with transaction.atomic():
        version = WorkflowVersion.objects.select_for_update().get(pk=version.pk)
        if version.state != WorkflowVersion.State.DRAFT:
            raise WorkflowError(
                gettext("Version %(number)s is %(state)s; only a draft can be published.")
                % {"number": version.number, "state": version.get_state_display().lower()}
            )
        _publish(version, user)
    return version


# -- processes ---------------------------------------------------------------------------------
def process_start(
    *, definition_key: str, business_object: Any = None, variables: dict[str, Any] | None = None, started_by: Any = None
) -> Process:
    """Start the latest published version of ``definition_key`` about ``business_object``.

    The engine's own entry (call activities, manual starts, benchmarks). Apps do not name workflows:
    they emit business events (:func:`workflows.starting.event_emit`) and the workflows bound to them start.
    """
    version = published_version(definition_key)
    graph = graph_for_version(version.pk)
    run = Run(actor=started_by if getattr(started_by, "pk", None) else None)
    # Entering the first steps only collects rows; the flush writes them atomically (on PostgreSQL
    # as one statement that commits by itself, without BEGIN and COMMIT round trips).
    process = new_process(run, version, business_object=business_object, variables=variables, started_by=run.actor)
    enter(run, process, graph, graph.start)
    run.flush()
    return process


def _running(process: Process) -> None:
    if process.state != Process.State.RUNNING:
        raise ProcessNotRunning(
            gettext("Process #%(number)s is %(state)s.")
            % {"number": process.pk, "state": process.get_state_display().lower()}
        )


def process_message(*, process: Process, name: str, payload: dict[str, Any] | None = None) -> Process:
    """Deliver message ``name`` to a process waiting for it; its payload is merged into the variables."""
    with transaction.atomic():
        locked = lock_process(process.pk)
        _running(locked)
        if not locked.waiting_for or locked.waiting_for != name:
            waiting = f"it waits for '{locked.waiting_for}'" if locked.waiting_for else "it does not wait for a message"
            raise MessageNotExpected(f"Process #{locked.pk} cannot take message '{name}': {waiting}.")
        run = Run()
        graph = graph_for_version(locked.version_id)
        step = graph.step(locked.current_step)
        run.event(locked, Kind.MESSAGE_RECEIVED, locked.current_step, data={"name": name})
        locked.waiting_for = ""
        run.touch(locked, "waiting_for")
        if payload:
            # A wait step that lists its payload names takes only those (a webhook cannot overwrite
            # other variables); without a list the whole payload is merged.
            allowed = step.get("payload")
            values = {k: v for k, v in dict(payload).items() if allowed is None or k in allowed}
            set_variables(run, locked, values, source=f"message {name}")
        leave_step(run, locked, data={"message": name})
        enter(run, locked, graph, step["next"])
        run.flush()
    return locked


def message_send(*, name: str, business_object: Any, payload: dict[str, Any] | None = None) -> int:
    """Deliver ``name`` to every running process about ``business_object`` that waits for it."""
    content_type = ContentType.objects.get_for_model(business_object)
    ids = list(
        Process.objects.filter(
            content_type=content_type, object_id=business_object.pk, state=Process.State.RUNNING, waiting_for=name
        ).values_list("pk", flat=True)
    )
    resumed = 0
    for pk in ids:
        try:
            process_message(process=Process(pk=pk), name=name, payload=payload)
        except (MessageNotExpected, ProcessNotRunning):
            continue
        resumed += 1
    return resumed


def process_cancel(*, process: Process, user: Any = None, reason: str = "") -> Process:
    with transaction.atomic():
        locked = lock_process(process.pk)
        if locked.is_finished:
            raise ProcessNotRunning(
                gettext("Process #%(number)s is already %(state)s.")
                % {"number": locked.pk, "state": locked.get_state_display().lower()}
            )
        run = Run(actor=user)
        _cancel(run, locked, reason)
        run.flush()
    return locked


def _cancel(run: Run, process: Process, reason: str) -> None:
    process.cancel()
    close_incident(run, process)
    run.touch(process, "state", "ended_at", "waiting_for")
    Task.objects.filter(process=process, state__in=Task.ACTIVE_STATES).update(state=Task.State.CANCELLED)
    Timer.objects.filter(
        pk__in=Timer.objects.select_for_update(skip_locked=True)
        .filter(process=process, state=Timer.State.PENDING)
        .values("pk")
    ).update(state=Timer.State.CANCELLED)
    SystemJob.objects.filter(process=process, state__in=[SystemJob.State.QUEUED, SystemJob.State.FAILED]).update(
        state=SystemJob.State.CANCELLED
    )
    run.event(process, Kind.PROCESS_CANCELLED, process.current_step, data={"reason": reason})
    run.signal(signals.process_finished, Process, process=process)
    for child in Process.objects.select_for_update().filter(
        parent=process, state__in=[Process.State.RUNNING, Process.State.SUSPENDED]
    ):
        _cancel(run, child, f"parent process #{process.pk} cancelled")


def process_suspend(*, process: Process, user: Any = None, reason: str = "") -> Process:
    with transaction.atomic():
        locked = lock_process(process.pk)
        _running(locked)
        run = Run(actor=user)
        locked.suspend()
        run.touch(locked, "state")
        run.event(locked, Kind.PROCESS_SUSPENDED, locked.current_step, data={"reason": reason})
        run.flush()
    return locked


def process_resume(*, process: Process, user: Any = None, reason: str = "") -> Process:
    with transaction.atomic():
        locked = lock_process(process.pk)
        if locked.state != Process.State.SUSPENDED:
            raise ProcessNotRunning(gettext("Process #%(number)s is not suspended.") % {"number": locked.pk})
        run = Run(actor=user)
        locked.resume()
        run.touch(locked, "state")
        run.event(locked, Kind.PROCESS_RESUMED, locked.current_step, data={"reason": reason})
        run.dispatch.extend(SystemJob.objects.filter(process=locked, state=SystemJob.State.QUEUED))
        run.flush()
    return locked


def incident_retry(*, process: Process, user: Any = None) -> Process:
    """Retry the step that holds the process's incident (a failed system job runs again)."""
    with transaction.atomic():
        locked = lock_process(process.pk)
        if not locked.incident_open:
            raise NoIncident(gettext("Process #%(number)s holds no incident.") % {"number": locked.pk})
        _running(locked)
        run = Run(actor=user)
        run.event(locked, Kind.INCIDENT_RETRIED, locked.current_step, data={"error": locked.incident_error[:2000]})
        close_incident(run, locked)
        job = (
            SystemJob.objects.filter(process=locked, step_seq=locked.step_seq, state=SystemJob.State.FAILED)
            .order_by("-id")
            .first()
        )
        if job is not None:
            SystemJob.objects.filter(pk=job.pk).update(
                state=SystemJob.State.QUEUED, attempts=0, run_after=run.now, finished_at=None
            )
            run.dispatch.append(job)
        else:
            graph = graph_for_version(locked.version_id)
            enter(run, locked, graph, locked.current_step)
        run.flush()
    return locked


def process_migrate(
    *, process: Process, to_version: WorkflowVersion, user: Any = None, step_map: dict[str, str] | None = None
) -> Process:
    """Move a running (or suspended) process to another version of its workflow.

    Its current step must exist there with the same type, or ``step_map`` ({old step id: new step
    id}) names the step of the target version it moves to (same type). A user step's open tasks
    move with it: kept, with the new step's id, name and instructions (and role, while nobody holds
    them). The mapping is recorded in the history event.
    """
    with transaction.atomic():
        locked = lock_process(process.pk)
        if locked.is_finished:
            raise ProcessNotRunning(
                gettext("Process #%(number)s is %(state)s.")
                % {"number": locked.pk, "state": locked.get_state_display().lower()}
            )
        if to_version.definition_id != locked.definition_id:
            raise MigrationNotPossible("The target version belongs to another workflow.")
        if to_version.state == WorkflowVersion.State.DRAFT:
            raise MigrationNotPossible("A process can only move to a published (or retired) version.")
        from_step = locked.current_step
        to_step = (step_map or {}).get(from_step) or from_step
        current = graph_for_version(locked.version_id).steps.get(from_step)
        target = graph_for_version(to_version.pk).steps.get(to_step)
        if target is None:
            if to_step != from_step:
                raise MigrationNotPossible(
                    f"Version {to_version.number} has no step '{to_step}' to move step '{from_step}' to."
                )
            raise MigrationNotPossible(
                f"Version {to_version.number} has no step '{from_step}', where process #{locked.pk} is."
            )
        problem = step_mismatch(current, target, to_version.number)
        if problem:
            raise MigrationNotPossible(problem)
        run = Run(actor=user)
        old_number = locked.version.number
        if to_step != from_step:
            _step_move(run, locked, target)
        _timeouts_migrate(run, locked, target)
        locked.version = to_version
        run.touch(locked, "version")
        data = {"from": old_number, "to": to_version.number, "from_step": from_step, "to_step": to_step}
        if step_map:
            data["step_map"] = dict(step_map)
        run.event(locked, Kind.PROCESS_MIGRATED, to_step, data=data)
        run.flush()
    return locked


def step_mismatch(current: dict[str, Any] | None, target: dict[str, Any], to_number: int) -> str:
    """Why a process at step ``current`` cannot move to ``target`` (a step of version ``to_number``),
    or '' when it can: the types must agree, and a wait must wait the same way (timer or message)."""
    if current is None:
        return ""
    if current["type"] != target["type"]:
        kinds = [("an " if t[0] in "aeio" else "a ") + t for t in (current["type"], target["type"])]
        return (
            f"Step '{current['id']}' is {kinds[0]} step here but '{target['id']}' is {kinds[1]} step "
            f"in version {to_number}."
        )
    if current["type"] == "wait" and bool(current.get("message")) != bool(target.get("message")):
        waits = {True: "a message", False: "a timer"}
        return (
            f"Step '{current['id']}' waits for {waits[bool(current.get('message'))]} here but '{target['id']}' "
            f"waits for {waits[bool(target.get('message'))]} in version {to_number}."
        )
    return ""


def _step_move(run: Run, process: Process, step: dict[str, Any]) -> None:
    """The process stays where it is but its step gets the target version's id: its open tasks,
    pending timers and queued job move along (same step entry, so nothing is recreated)."""
    new_id, old_id = step["id"], process.current_step
    process.current_step = new_id
    run.touch(process, "current_step")
    if process.incident_open and process.incident_step == old_id:
        process.incident_step = new_id
        run.touch(process, "incident_step")
    if step["type"] == "wait" and step.get("message") and process.waiting_for:
        process.waiting_for = step["message"]
        run.touch(process, "waiting_for")
    at_step = {"process_id": process.pk, "step_seq": process.step_seq}
    tasks = Task.objects.filter(**at_step, state__in=Task.ACTIVE_STATES)
    if step["type"] == "user":
        follows = {"step_id": new_id, "name": step.get("name") or new_id, "instructions": step.get("instructions", "")}
        tasks.filter(state=Task.State.OPEN, escalation_level=0).update(**follows, role=step["role"])
        tasks.exclude(state=Task.State.OPEN, escalation_level=0).update(**follows)
    Timer.objects.filter(**at_step, state=Timer.State.PENDING).update(step_id=new_id)
    jobs = SystemJob.objects.filter(**at_step, state=SystemJob.State.QUEUED)
    jobs.update(step_id=new_id, **({"task_name": step["task"]} if step.get("task") else {}))


def _timeouts_migrate(run: Run, process: Process, step: dict[str, Any]) -> None:
    """The current step's timeout follows the new version: the pending one (set by the old version,
    pointing at its path) is cancelled, and the new version's, counted from when the step was
    entered, takes its place."""
    pending = Timer.objects.filter(
        process_id=process.pk,
        step_seq=process.step_seq,
        state=Timer.State.PENDING,
        kind__in=[Timer.Kind.TASK_TIMEOUT, Timer.Kind.MESSAGE_TIMEOUT],
    )
    pending.update(state=Timer.State.CANCELLED)
    timeout = step.get("timeout")
    if not timeout or (step["type"] == "wait" and not step.get("message")):
        return
    if step["type"] == "user":
        kind, data = Timer.Kind.TASK_TIMEOUT, {"next": timeout["next"]}
        task = Task.objects.filter(process_id=process.pk, step_seq=process.step_seq).order_by("pk").first()
    else:
        kind, data, task = Timer.Kind.MESSAGE_TIMEOUT, {"next": timeout["next"], "message": step["message"]}, None
    entered = process.step_entered_at or run.now
    step_timer(run, process, kind, process.current_step, add_duration(entered, timeout["after"]), data=data, task=task)


# -- tasks -------------------------------------------------------------------------------------
def can_work_on(user: Any, task: Task) -> bool:
    """The user holds the task's role (administrators hold all; supervisors may take over any task
    of their team) and, for a scoped task, is responsible for its car park (workflow admins and
    supervisors see every car park)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if not has_role(user, task.role, SUPERVISOR):
        return False
    if task.scope_carpark_id is None or has_role(user, WORKFLOW_ADMIN, SUPERVISOR):
        return True
    ids = responsible_carpark_ids(user)
    return ids is None or task.scope_carpark_id in ids


def work_condition(user: Any) -> tuple[str, list[Any]]:
    """:func:`can_work_on` as an SQL condition on the task table's columns (same rule, tested to
    agree), so a claim can check it in the statement that claims."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return "FALSE", []
    held = user_roles(user)
    conditions, params = [], []
    if not (ADMINISTRATOR in held or SUPERVISOR in held):
        conditions.append('"role" = ANY(%s)')
        params.append(sorted(held))
    if not has_role(user, WORKFLOW_ADMIN, SUPERVISOR):
        ids = responsible_carpark_ids(user)
        if ids is not None:
            conditions.append('("scope_carpark_id" IS NULL OR "scope_carpark_id" = ANY(%s))')
            params.append(sorted(ids))
    return " AND ".join(conditions) or "TRUE", params


def _check_can_work(user: Any, task: Task) -> None:
    if not can_work_on(user, task):
        raise TaskPermissionDenied(
            f"You cannot work on '{task.name}': it needs the role '{task.role}'"
            + (" and responsibility for its car park." if task.scope_carpark_id else ".")
        )


def _not_available(task: Task, action: str) -> TaskNotAvailable:
    current = Task.objects.select_related("assignee").filter(pk=task.pk).first()
    if current is None:
        return TaskNotAvailable(f"Task #{task.pk} does not exist any more.")
    held = current.assignee and current.state in (Task.State.CLAIMED, Task.State.COMPLETED)
    who = f" by {current.assignee.get_full_name() or current.assignee.username}" if held else ""
    state = current.get_state_display().lower()
    return TaskNotAvailable(f"Task '{current.name}' cannot be {action}: it is already {state}{who}.")


def _claim_orm(task: Task, user: Any, now: Any) -> bool:
    """open → claimed and its history row through the ORM (databases other than PostgreSQL, where
    :func:`task_claim_by_id` does both in one statement)."""
    with transaction.atomic():
        if not Task.objects.filter(pk=task.pk, state=Task.State.OPEN).update(
            state=Task.State.CLAIMED, assignee=user, claimed_at=now
        ):
            return False
        ProcessEvent.objects.create(
            process_id=task.process_id, kind=Kind.TASK_CLAIMED, step_id=task.step_id, task=task, actor=user, at=now
        )
    return True


def task_load(task_id: int) -> Task | None:
    """The task an action works on (claim, complete), with its process's id, version and state only;
    None if there is no such task. One statement."""
    return load_task(task_id)


def task_claim_by_id(*, task_id: int, user: Any) -> Task:
    """Claim task ``task_id`` (what the claim view does): on PostgreSQL one statement checks the
    user's right (:func:`work_condition`), claims, writes the history row and returns the task.
    Raises Task.DoesNotExist, TaskPermissionDenied or TaskNotAvailable."""
    connection = connections[DEFAULT_DB_ALIAS]
    if not engine.hand_written(connection):
        task = load_task(task_id)
        if task is None:
            raise Task.DoesNotExist(f"task #{task_id} does not exist")
        return task_claim(task=task, user=user)
    condition, params = work_condition(user)
    task = engine.claim_task(task_id, user.pk, condition, params, timezone.now())
    if task is None:  # say why: no such task, no right to it, or not open any more
        task = load_task(task_id)
        if task is None:
            raise Task.DoesNotExist(f"task #{task_id} does not exist")
        _check_can_work(user, task)
        raise _not_available(task, "claimed")
    signal_after_commit(signals.task_assigned, Task, task=task, user=user, by=user)
    return task


def task_claim(*, task: Task, user: Any) -> Task:
    """Claim a loaded task: on PostgreSQL the one statement of :func:`task_claim_by_id` (it needs no
    transaction of its own; inside a caller's it joins that one, and the signal waits for its commit)."""
    _check_can_work(user, task)
    if engine.hand_written(connections[DEFAULT_DB_ALIAS]):
        try:
            now = task_claim_by_id(task_id=task.pk, user=user).claimed_at
        except Task.DoesNotExist as exc:
            raise TaskNotAvailable(gettext("Task #%(number)s does not exist any more.") % {"number": task.pk}) from exc
    else:
        now = timezone.now()
        if not _claim_orm(task, user, now):
            raise _not_available(task, "claimed")
        signal_after_commit(signals.task_assigned, Task, task=task, user=user, by=user)
    task.__dict__["state"] = Task.State.CLAIMED
    task.assignee, task.claimed_at = user, now
    return task


def task_release(*, task: Task, user: Any) -> Task:
    now = timezone.now()
    with transaction.atomic():
        rows = Task.objects.filter(pk=task.pk, state=Task.State.CLAIMED)
        if not has_role(user, SUPERVISOR, WORKFLOW_ADMIN):
            rows = rows.filter(assignee=user)
        if not rows.update(state=Task.State.OPEN, assignee=None, claimed_at=None):
            raise _not_available(task, "released")
        run = Run(actor=user, now=now)
        run.event(task.process_id, Kind.TASK_RELEASED, task.step_id, task=task)
        run.flush()
    task.__dict__["state"] = Task.State.OPEN
    task.assignee = None
    return task


def task_delegate(*, task: Task, user: Any, to_user: Any) -> Task:
    """Hand a task to ``to_user`` (who must be able to work on it). The assignee or a supervisor may."""
    if not can_work_on(to_user, task):
        raise TaskPermissionDenied(
            f"{to_user.get_full_name() or to_user.username} cannot work on '{task.name}' "
            f"(needs the role '{task.role}'"
            + (" and responsibility for its car park)." if task.scope_carpark_id else ").")
        )
    now = timezone.now()
    with transaction.atomic():
        rows = Task.objects.filter(pk=task.pk, state__in=Task.ACTIVE_STATES)
        if not has_role(user, SUPERVISOR, WORKFLOW_ADMIN):
            _check_can_work(user, task)
            rows = rows.filter(Q(assignee=user) | Q(assignee__isnull=True))
        if not rows.update(state=Task.State.CLAIMED, assignee=to_user, claimed_at=now):
            raise _not_available(task, "delegated")
        run = Run(actor=user, now=now)
        run.event(task.process_id, Kind.TASK_DELEGATED, task.step_id, task=task, data={"to_user": to_user.pk})
        run.signal(signals.task_assigned, Task, task=task, user=to_user, by=user)
        run.flush()
    task.__dict__["state"] = Task.State.CLAIMED
    task.assignee, task.claimed_at = to_user, now
    return task


def task_escalate(*, task: Task, user: Any, reason: str = "") -> Task:
    """ "Can't decide": hand the task to the next role of its escalation chain. Returns the new task."""
    _check_can_work(user, task)
    with transaction.atomic():
        process = lock_process(task.process_id)
        _running(process)
        run = Run(actor=user)
        new = escalate(run, process, graph_for_version(process.version_id), task, reason=reason or "escalated by user")
        run.flush()
    return new


def clean_inputs(step: dict[str, Any], inputs: dict[str, Any] | None) -> dict[str, Any]:
    """Check and convert inputs against the step's typed input list. Raises InvalidInputs."""
    inputs = dict(inputs or {})
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in step.get("inputs", []):
        name, kind = field["name"], field["type"]
        raw = inputs.pop(name, None)
        empty = raw is None or (isinstance(raw, str) and not raw.strip())
        if kind == "bool":
            if isinstance(raw, str):
                raw = raw.strip().lower() in ("1", "true", "yes", "on")
            value = bool(raw)
            if field["required"] and not value and raw is None:
                errors[name] = gettext("This field is required.")
            cleaned[name] = value
            continue
        if empty:
            if field["required"]:
                errors[name] = gettext("This field is required.")
            else:
                cleaned[name] = None
            continue
        try:
            if kind == "number":
                number = Decimal(str(raw))
                if not number.is_finite():
                    raise InvalidOperation
                cleaned[name] = int(number) if number == number.to_integral_value() else float(number)
            elif kind == "date":
                cleaned[name] = raw.isoformat() if isinstance(raw, date) else date.fromisoformat(str(raw)).isoformat()
            elif kind == "choice":
                if str(raw) not in field.get("choices", []):
                    raise ValueError
                cleaned[name] = str(raw)
            else:  # text, file (a stored file's name or URL)
                cleaned[name] = str(raw)[:10_000]
        except (InvalidOperation, ValueError, TypeError):
            label = {
                "number": gettext("Enter a number."),
                "date": gettext("Enter a date (YYYY-MM-DD)."),
                "choice": gettext("Enter one of the choices."),
            }
            errors[name] = label.get(kind, gettext("Enter a valid value."))
    for name in inputs:
        errors[name] = gettext("This task has no such input.")
    if errors:
        raise InvalidInputs(errors)
    return cleaned


def task_complete(
    *, task: Task, user: Any, outcome: str, inputs: dict[str, Any] | None = None, comment: str = ""
) -> Task:
    """Complete an open or claimed task with one of its outcomes; the process moves on at once."""
    connection = connections[DEFAULT_DB_ALIAS]
    _check_can_work(user, task)
    graph = graph_for_version(task.process.version_id) if "process" in task._state.fields_cache else None
    if graph is not None and _complete_unlocked(task, graph, user, outcome, inputs, comment):
        return task
    with transaction.atomic():
        now = timezone.now()
        process, updated = None, False
        if graph is not None and engine.hand_written(connection):
            # The process's version is known, so outcome and inputs are checked first and one
            # statement locks the process and completes the task.
            step, cleaned = _completion(task, graph, outcome, inputs)
            process, updated = lock_process_and_update(
                task.process_id,
                _completion_update(task, user, now, outcome, cleaned, comment),
                version_id=graph.version_id,
            )
        if process is None or process.version_id != graph.version_id:
            process = process or lock_process(task.process_id)
            graph = graph_for_version(process.version_id)
            step, cleaned = _completion(task, graph, outcome, inputs)
            _running(process)
            updated = engine.execute_update(_completion_update(task, user, now, outcome, cleaned, comment)) > 0
        _running(process)
        if not updated:
            raise _not_available(task, "completed")
        _completed(task, user, now, outcome, cleaned, comment)
        _completion_run(task, process, graph, step, user, now, outcome, cleaned).flush(last=True)
    return task


def _complete_unlocked(
    task: Task, graph: Any, user: Any, outcome: str, inputs: dict[str, Any] | None, comment: str
) -> bool:
    """The usual completion, without a lock and a transaction of its own (engine.advance_unlocked):
    the process as the task's load read it moves on, written only if its row is still that version
    and the task still open or held by the user. False, with nothing written and the task as
    loaded, otherwise: the caller then takes the locked way, which also says why it is refused."""
    process = task.process
    if process.state != Process.State.RUNNING or process.version_id != graph.version_id:
        return False
    step, cleaned = _completion(task, graph, outcome, inputs)
    now = timezone.now()
    before = {name: task.__dict__.get(name) for name in _COMPLETION_FIELDS}
    _completed(task, user, now, outcome, cleaned, comment)
    if engine.advance_unlocked(
        process,
        lambda: _completion_run(task, process, graph, step, user, now, outcome, cleaned),
        lambda run: _completion_update(task, user, now, outcome, cleaned, comment),
    ):
        return True
    task.__dict__.update(before)  # as it was: the locked way starts from the database
    for name in ("assignee", "completed_by"):
        task._state.fields_cache.pop(name, None)
    return False


_COMPLETION_FIELDS = ("state", "assignee_id", "completed_by_id", "completed_at", "outcome", "inputs", "comment")


def _completed(task: Task, user: Any, now: Any, outcome: str, cleaned: dict[str, Any], comment: str) -> None:
    task.__dict__["state"] = Task.State.COMPLETED
    task.assignee = task.completed_by = user
    task.completed_at, task.outcome, task.inputs, task.comment = now, outcome, cleaned, comment


def _completion_run(
    task: Task, process: Process, graph: Any, step: dict, user: Any, now: Any, outcome: str, cleaned: dict[str, Any]
) -> Run:
    """The completed task's history and the process moved on to its next wait, collected in a Run."""
    run = Run(actor=user, now=now)
    duration = int((now - task.created_at).total_seconds() * 1000) if task.created_at else None
    run.event(process, Kind.TASK_COMPLETED, task.step_id, task=task, data={"outcome": outcome}, duration_ms=duration)
    set_variables(run, process, {**cleaned, "outcome": outcome}, source=f"task {task.step_id}")
    leave_step(run, process, data={"outcome": outcome})
    enter(run, process, graph, step["outcomes"][outcome])
    run.signal(signals.task_completed, Task, task=task)
    return run


def _completion(task: Task, graph: Any, outcome: str, inputs: dict[str, Any] | None) -> tuple[dict, dict]:
    """The task's step in ``graph`` and the cleaned inputs; InvalidOutcome / InvalidInputs."""
    step = graph.step(task.step_id)
    if outcome not in step["outcomes"]:
        raise InvalidOutcome(f"'{outcome}' is not an outcome of '{task.name}' (choose {', '.join(step['outcomes'])}).")
    return step, clean_inputs(step, {**(task.inputs or {}), **(inputs or {})})


def _completion_update(
    task: Task, user: Any, now: Any, outcome: str, cleaned: dict[str, Any], comment: str
) -> tuple[str, list[Any]]:
    """open/claimed → completed, only if nobody else holds the task (one conditional UPDATE)."""
    sql, params = update_sql(
        Task,
        task.pk,
        {
            "state": Task.State.COMPLETED,
            "assignee": user.pk,
            "completed_by": user.pk,
            "completed_at": now,
            "outcome": outcome,
            "inputs": cleaned,
            "comment": comment,
        },
    )
    return (
        sql + ' AND "state" IN (%s, %s) AND ("assignee_id" IS NULL OR "assignee_id" = %s)',
        [*params, Task.State.OPEN, Task.State.CLAIMED, user.pk],
    )


def process_history(process: Process) -> list[ProcessEvent]:
    """The process's history oldest first, archived events included (see workflows.archive)."""
    from workflows.archive import process_events

    return process_events(process)
