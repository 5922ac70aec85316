"""One process on its version's diagram: what the process page's bpmn-js viewer draws.

Built from rows the page has already loaded (events, open timers, tasks), so drawing the diagram
costs no query per event. Element ids are the step ids of the definition; the export adds helper
elements named ``<step>__<suffix>`` (a task's boundary timers ``__due`` / ``__timeout``, an
outcome gateway ``__outcome``, an event-based wait's ``__message`` / ``__timeout``), which the
page's script walks through when it marks the flows taken.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.translation import gettext

from accounts.roles import role_label
from workflows.bpmn.writer import humanize
from workflows.models import Process, ProcessEvent, Task, Timer

log = logging.getLogger(__name__)

Kind = ProcessEvent.Kind


def step_names(steps: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Step id → the name a person reads (a step without a name gets its id in words, as on the diagram)."""
    names = {}
    for sid, step in steps.items():
        name = step.get("name") or ""
        names[sid] = name if name and name != sid else humanize(sid)
    return names


def history_names(process: Process, steps: dict[str, dict[str, Any]], events: Iterable[ProcessEvent]) -> dict[str, str]:
    """Names of the steps of the process's version and of the versions it was migrated from (their
    steps appear in the history before the move); the current version's name wins."""
    from workflows.compiler import graph_for_version
    from workflows.models import WorkflowVersion

    names = step_names(steps)
    numbers = {e.data.get("from") for e in events if e.kind == Kind.PROCESS_MIGRATED and isinstance(e.data, dict)} - {
        None
    }
    if numbers:  # one query, only for a process that was migrated
        versions = WorkflowVersion.objects.filter(definition_id=process.definition_id, number__in=numbers)
        for version_id in versions.order_by("-number").values_list("pk", flat=True):
            for sid, name in step_names(graph_for_version(version_id).steps).items():
                names.setdefault(sid, name)
    return names


def step_label(names: dict[str, str], step_id: str) -> str:
    """The name of a step, also of one no longer in the version (a process migrated since)."""
    return names.get(step_id) or humanize(step_id)


def _when(moment: Any) -> str:
    return date_format(timezone.localtime(moment), "d.m. H:i")


def _person(user: Any) -> str:
    return (user.get_full_name() or user.username) if user is not None else ""


def _timer(timer: Timer) -> dict[str, Any]:
    sid, kind, when = timer.step_id, timer.kind, _when(timer.due_at)
    if kind == Timer.Kind.ESCALATION:
        target = timer.data.get("to")
        elements = [f"{sid}__due", sid]
        label = (
            gettext("escalates to %(role)s %(when)s") % {"role": role_label(target), "when": when}
            if target
            else gettext("escalates to the next role %(when)s") % {"when": when}
        )
    elif kind in (Timer.Kind.TASK_TIMEOUT, Timer.Kind.MESSAGE_TIMEOUT):
        elements, label = [f"{sid}__timeout", sid], gettext("times out %(when)s") % {"when": when}
    elif kind == Timer.Kind.RETRY:
        elements, label = [sid], gettext("next attempt %(when)s") % {"when": when}
    else:
        elements, label = [sid], gettext("due %(when)s") % {"when": when}
    return {
        "step": sid,
        "kind": kind,
        "elements": elements,
        "label": label,
        "due_at": timezone.localtime(timer.due_at).isoformat(),
    }


def diagram_data(
    process: Process,
    *,
    names: dict[str, str],
    steps: dict[str, dict[str, Any]],
    events: Iterable[ProcessEvent],
    tasks: Iterable[Task],
    timers: Iterable[Timer],
    xml: str | None,
    problem: str = "",
) -> dict[str, Any]:
    """The JSON the page's diagram script reads (see docs/workflow-engine.md, "One process on its diagram")."""
    visits: dict[str, int] = {}
    path: list[dict[str, Any]] = []
    previous: str | None = None
    left: dict[str, Any] = {}
    last_entered: str | None = None
    for event in events:
        if event.kind == Kind.PROCESS_MIGRATED:
            previous, left = None, {}  # the steps before belong to another version's diagram
            visits.clear()
            path.clear()
        elif event.kind == Kind.STEP_LEFT:
            left = event.data or {}
        elif event.kind == Kind.STEP_ENTERED and event.step_id:
            visits[event.step_id] = visits.get(event.step_id, 0) + 1
            if previous is not None:
                path.append(
                    {
                        "from": previous,
                        "to": event.step_id,
                        "outcome": str(left.get("outcome") or ""),
                        "timeout": bool(left.get("timeout")),
                    }
                )
            previous, left, last_entered = event.step_id, {}, event.step_id

    current = None
    if not process.is_finished and process.current_step:
        open_tasks = [
            {
                "name": task.name,
                "role": role_label(task.role),
                "assignee": _person(task.assignee),
                "state": task.get_state_display(),
            }
            for task in tasks
            if task.state in Task.ACTIVE_STATES and task.step_seq == process.step_seq
        ]
        sid = process.current_step
        current = {
            "id": sid,
            "name": step_label(names, sid),
            "type": (steps.get(sid) or {}).get("type", ""),
            "tasks": open_tasks,
            "waiting_for": process.waiting_for,
        }
    ended = None
    if process.is_finished:
        sid = last_entered or process.current_step
        if sid:
            ended = {
                "id": sid,
                "name": step_label(names, sid),
                "state": process.state,
                "label": (
                    (gettext("Ended: %(result)s") % {"result": process.result})
                    if process.result
                    else gettext("Ended here")
                )
                if process.state == Process.State.COMPLETED
                else gettext("Cancelled here"),
            }
    incident = None
    if process.incident_open:
        incident = {
            "id": process.incident_step,
            "name": step_label(names, process.incident_step),
            "error": process.incident_error,
            "at": _when(process.incident_at) if process.incident_at else "",
        }
    return {
        "xml": xml,
        "problem": problem,
        "state": process.state,
        "names": {sid: step_label(names, sid) for sid in {*names, *visits}},
        "visits": visits,
        "path": path,
        "current": current,
        "ended": ended,
        "incident": incident,
        "timers": [_timer(t) for t in timers],
    }


def process_xml(version: Any) -> tuple[str | None, str]:
    """The version's diagram, or None and why it cannot be shown (the page then shows the rest)."""
    from workflows.authoring import version_bpmn

    try:
        xml = version_bpmn(version)
    except Exception as exc:  # any failure to produce the diagram must not take the page down
        log.warning("no diagram for workflow version %s: %s", version.pk, exc, exc_info=True)
        return None, "The diagram of this version cannot be drawn; the history below has every step."
    if isinstance(xml, bytes):
        xml = xml.decode()
    return xml, ""
