"""Notifications for the engine's task signals (sent after commit): assignment, escalation, overdue,
and a task closed because its step timed out."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts.roles import role_label
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

    def body() -> str:
        if by is None:
            return _("The workflow handed you the task “%(task)s”.") % {"task": task.name}
        who = by.get_full_name() or by.username
        return _("%(who)s handed you the task “%(task)s”.") % {"who": who, "task": task.name}

    notification_send(
        users=[user],
        kind=Notification.Kind.ASSIGNMENT,
        title=lambda: _("Assigned to you: %(task)s") % {"task": task.name},
        body=body,
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

    def body() -> str:
        why = _("it is overdue") if overdue else f"“{reason}”"
        return _("“%(task)s” was escalated to %(role)s (level %(level)s): %(why)s.") % {
            "task": task.name,
            "role": role_label(task.role),
            "level": task.escalation_level,
            "why": why,
        }

    notification_send(
        users=recipients.values(),
        kind=Notification.Kind.ESCALATION,
        title=lambda: _("Escalated to %(role)s: %(task)s") % {"role": role_label(task.role), "task": task.name},
        body=body,
        url=_task_url(task),
        email_context=_context(task, previous=previous, reason=reason, overdue=overdue),
    )
    if overdue and previous is not None and previous.assignee_id:
        _tell_overdue(
            previous.assignee, task, lambda: _("Overdue: %(task)s") % {"task": task.name},
            lambda: _("“%(task)s” passed its due time and went to %(role)s.")
            % {"task": task.name, "role": role_label(task.role)},
            previous=previous,
        )  # fmt: skip


@receiver(task_timed_out, dispatch_uid="notifications.task_timed_out")
def on_task_timed_out(sender: Any, task: Any, next_step: str = "", **kwargs: Any) -> None:
    """Whoever held a task that its step's timeout closed is told, so no one works on it in vain."""
    if task.assignee_id:
        _tell_overdue(
            task.assignee, task, lambda: _("Closed: %(task)s") % {"task": task.name},
            lambda: _("“%(task)s” was not done in time and was closed; the process went on to “%(step)s”.")
            % {"task": task.name, "step": next_step},
        )  # fmt: skip


def _tell_overdue(user: Any, task: Any, title: Any, body: Any, **context: Any) -> None:
    notification_send(
        users=[user],
        kind=Notification.Kind.OVERDUE,
        title=title,
        body=body,
        url=_task_url(task),
        email_context=_context(task, **context),
    )
