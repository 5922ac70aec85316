"""Writes of the task basket, on top of the engine's services (never around them).

- :func:`task_save_draft` keeps what an employee has entered on the task (``Task.inputs``), so an
  escalation ("Can't decide") hands every entered input on; ``task_complete`` merges the draft.
- :func:`task_cant_decide` = save the draft + ``task_escalate`` in one transaction.
- :func:`task_route` hands a task to a colleague (delegate, reassign) through absences: while the
  colleague is away it goes to their substitute.
- :func:`task_take_over`: a supervisor assigns a task to themself.
- :func:`absence_create` / :func:`absence_delete`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from workflows.basket_selectors import is_supervisor, substitute_for
from workflows.errors import TaskNotAvailable, TaskPermissionDenied, WorkflowError
from workflows.models import Absence, Process, Task
from workflows.services import can_work_on, task_claim_by_id, task_delegate, task_escalate, task_load, task_release


def _check_may_edit(task: Task, user: Any) -> None:
    if not can_work_on(user, task):
        raise TaskPermissionDenied(gettext("You cannot work on '%(task)s'.") % {"task": task.name})
    if task.assignee_id not in (None, user.pk) and not is_supervisor(user):
        raise TaskNotAvailable(gettext("Task '%(task)s' is claimed by someone else.") % {"task": task.name})


def task_save_draft(
    *, task: Task, user: Any, inputs: dict[str, Any], action: str = "", comment: str | None = None
) -> Task:
    """Keep the inputs entered so far on an active task (they need not be complete or valid yet).

    With ``action`` (escalate, delegate, release) the task also records who kept them and why
    (``Task.draft``), so whoever opens it next sees "Entries saved by … when escalating"."""
    _check_may_edit(task, user)
    allowed = {spec["name"] for spec in task.input_fields}
    draft = {**(task.inputs or {}), **{k: v for k, v in inputs.items() if k in allowed}}
    changes: dict[str, Any] = {"inputs": draft}
    if action:
        changes["draft"] = {
            "by": user.pk,
            "by_name": user.get_full_name() or user.username,
            "action": action,
            "at": timezone.now().isoformat(),
            "comment": (comment or "")[:10_000],
        }
    with transaction.atomic():
        if not Task.objects.filter(pk=task.pk, state__in=Task.ACTIVE_STATES).update(**changes):
            raise TaskNotAvailable(gettext("Task '%(task)s' is no longer open.") % {"task": task.name})
    task.inputs = draft
    if action:
        task.draft = changes["draft"]
    return task


def task_cant_decide(
    *, task: Task, user: Any, reason: str, inputs: dict[str, Any] | None = None, comment: str = ""
) -> Task:
    """Escalate with a reason, keeping every input entered so far. Returns the escalated task, which
    carries the entries and who kept them."""
    reason = (reason or "").strip()
    if not reason:
        raise WorkflowError("Say why you cannot decide, so the next person knows where to look.")
    with transaction.atomic():
        if inputs is not None or comment:
            task_save_draft(task=task, user=user, inputs=inputs or {}, action="escalate", comment=comment)
        new = task_escalate(task=task, user=user, reason=reason)
        if task.draft and new.pk:
            Task.objects.filter(pk=new.pk).update(draft=task.draft)
            new.draft = task.draft
        return new


def _case_id(task: Task) -> int | None:
    """The customer-care case the task's process is about, if it is about one: case and task are
    one piece of work (claiming assigns the case, releasing unassigns it)."""
    row = (
        Process.objects.filter(pk=task.process_id)
        .values_list("content_type__app_label", "content_type__model", "object_id")
        .first()
    )
    return row[2] if row and row[:2] == ("carparks", "case") else None


def _lock_case(task: Task) -> int | None:
    """Lock the task's case first (the same order as assigning a case does), so the two never deadlock."""
    case_id = _case_id(task)
    if case_id is not None:
        from carparks.models import Case

        Case.objects.select_for_update().filter(pk=case_id).values_list("pk").first()
    return case_id


def _case_follows(case_id: int | None, assignee: Any, user: Any) -> None:
    if case_id is not None:
        from carparks.services import case_follow_task

        case_follow_task(case_id=case_id, assignee=assignee, user=user)


def task_claim_with_case(*, task_id: int, user: Any) -> Task:
    """Claim a task (:func:`task_claim_by_id`); a case the task is about is assigned to the claimer
    in the same transaction."""
    with transaction.atomic():
        loaded = task_load(task_id)
        case_id = _lock_case(loaded) if loaded is not None else None
        task = task_claim_by_id(task_id=task_id, user=user)
        _case_follows(case_id, user, user)
    return task


def task_route(
    *, task: Task, user: Any, to_user: Any, inputs: dict[str, Any] | None = None, comment: str = ""
) -> tuple[Task, Any]:
    """Delegate (the assignee) or reassign (a supervisor) ``task`` to ``to_user``, or to their
    substitute while ``to_user`` is away. Returns the task and who got it. ``inputs`` (what was typed
    on the task page) are kept on the task in the same transaction."""
    target = substitute_for(to_user)
    if target.pk != to_user.pk and not can_work_on(target, task):
        target = to_user  # the substitute cannot take this kind of task: it stays with the colleague
    with transaction.atomic():
        case_id = _lock_case(task)
        if inputs is not None:
            task_save_draft(task=task, user=user, inputs=inputs, action="delegate", comment=comment)
        task_delegate(task=task, user=user, to_user=target)
        _case_follows(case_id, target, user)
    return task, target


def task_release_keeping(*, task: Task, user: Any, inputs: dict[str, Any] | None = None, comment: str = "") -> Task:
    """Release a claimed task back to the queue, keeping what was typed on the task page."""
    with transaction.atomic():
        case_id = _lock_case(task)
        if inputs is not None:
            task_save_draft(task=task, user=user, inputs=inputs, action="release", comment=comment)
        task_release(task=task, user=user)
        _case_follows(case_id, None, user)
    return task


def task_take_over(*, task: Task, user: Any) -> Task:
    if not is_supervisor(user):
        raise TaskPermissionDenied(gettext("Only a supervisor can take over a task."))
    return task_delegate(task=task, user=user, to_user=user)


def absence_create(*, user: Any, substitute: Any, starts_on: date, ends_on: date, note: str = "") -> Absence:
    if substitute.pk == user.pk:
        raise WorkflowError("Choose someone else as your substitute.")
    if ends_on < starts_on:
        raise WorkflowError("The absence must end on or after its first day.")
    if not substitute.is_active:
        raise WorkflowError(gettext("%(person)s cannot stand in: the account is inactive.") % {"person": substitute})
    return Absence.objects.create(user=user, substitute=substitute, starts_on=starts_on, ends_on=ends_on, note=note)


def absence_delete(*, absence: Absence, user: Any) -> None:
    if absence.user_id != user.pk and not is_supervisor(user):
        raise TaskPermissionDenied(gettext("You can only cancel your own absences."))
    absence.delete()
