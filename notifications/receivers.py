"""Notifications for the engine's task signals (sent after commit): assignment, escalation, overdue,
and a task closed because its step timed out."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver
from django.urls import reverse

from notifications.models import Notification
from notifications.services import notification_send
from workflows.signals import task_assigned, task_escalated, task_timed_out


def _task_url(task: Any) -> str:
    return reverse("workflows:task-detail", args=[task.pk])


def _context(task: Any, **extra: Any) -> dict[str, Any]:
    return {"task": task, "task_url": _task_url(task), **extra}


@receiver(task_assigned, dispatch_uid="notifications.task_assigned")
def on_task_assigned(sender: Any, task: Any, user: Any, by: Any = None, **kwargs: Any) -> None:
    if by is not None and getattr(by, "pk", None) == user.pk:
        return  # claimed it themself
    who = (by.get_full_name() or by.username) if by is not None else "The workflow"
    notification_send(
        users=[user],
        kind=Notification.Kind.ASSIGNMENT,
        title=f"Assigned to you: {task.name}",
        body=f"{who} handed you the task '{task.name}'.",
        url=_task_url(task),
        email_context=_context(task, by=by),
    )


@receiver(task_escalated, dispatch_uid="notifications.task_escalated")
def on_task_escalated(sender: Any, task: Any, previous: Any, reason: str = "", **kwargs: Any) -> None:
    """Everyone who may now work on the escalated task is told; when it escalated because it was
    overdue, whoever held it is told too."""
    from workflows.basket_selectors import colleagues_for, substitute_for

    overdue = reason == "overdue"
    targets = {user.pk: user for user in colleagues_for(task, role_holders_only=True)}
    # Someone away is represented by their substitute.
    recipients = {sub.pk: sub for sub in (substitute_for(user) for user in targets.values())}
    why = "it is overdue" if overdue else f"“{reason}”"
    notification_send(
        users=recipients.values(),
        kind=Notification.Kind.ESCALATION,
        title=f"Escalated to {task.role}: {task.name}",
        body=f"'{task.name}' was escalated to {task.role} (level {task.escalation_level}): {why}.",
        url=_task_url(task),
        email_context=_context(task, previous=previous, reason=reason, overdue=overdue),
    )
    if overdue and previous is not None and previous.assignee_id:
        _tell_overdue(
            previous.assignee, task, f"Overdue: {task.name}",
            f"'{task.name}' passed its due time and went to {task.role}.", previous=previous,
        )  # fmt: skip


@receiver(task_timed_out, dispatch_uid="notifications.task_timed_out")
def on_task_timed_out(sender: Any, task: Any, next_step: str = "", **kwargs: Any) -> None:
    """Whoever held a task that its step's timeout closed is told, so no one works on it in vain."""
    if task.assignee_id:
        _tell_overdue(
            task.assignee, task, f"Closed: {task.name}",
            f"'{task.name}' was not done in time and was closed; the process went on to '{next_step}'.",
        )  # fmt: skip


def _tell_overdue(user: Any, task: Any, title: str, body: str, **context: Any) -> None:
    notification_send(
        users=[user],
        kind=Notification.Kind.OVERDUE,
        title=title,
        body=body,
        url=_task_url(task),
        email_context=_context(task, **context),
    )
