"""The processes list and process detail pages (with incident retry, cancel, suspend, resume).

Administrators, workflow admins and supervisors see every process; everybody else with a role
sees the processes of the car parks they are responsible for. Administrators and workflow
admins act on processes (retry an incident, cancel, suspend, resume).
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from csp.decorators import csp_update
from django.apps import apps
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.formats import get_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import ADMINISTRATOR, SUPERVISOR, WORKFLOW_ADMIN, has_role, responsible_carpark_ids, role_required
from parkinghq.list_search import search_data
from parkinghq.posted import posted_text
from workflows import services
from workflows.errors import WorkflowError
from workflows.models import BusinessEvent, Process, SystemJob, Timer, WorkflowDefinition
from workflows.process_diagram import diagram_data, history_names, process_xml, step_label
from workflows.step_names import StepNames
from workflows.variable_rows import variable_rows

SEE_ALL = (ADMINISTRATOR, WORKFLOW_ADMIN, SUPERVISOR)
ACT = (ADMINISTRATOR, WORKFLOW_ADMIN)
PAGE_SIZE = 50


def visible_processes(user: Any) -> QuerySet[Process]:
    """Processes the user may see (see the module docstring)."""
    processes = Process.objects.all()
    if has_role(user, *SEE_ALL):
        return processes
    carparks = responsible_carpark_ids(user)
    if carparks is None:
        return processes
    return processes.filter(scope_carpark_id__in=carparks)


def _carpark_names(ids: set[int]) -> dict[int, str]:
    label = getattr(settings, "WORKFLOWS_CARPARK_MODEL", "carparks.CarPark")
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        return {}
    return {pk: str(obj) for pk, obj in model.objects.in_bulk(list(ids)).items()} if ids else {}


def _day(value: str, *, end: bool = False) -> datetime | None:
    """A day typed in the language's format (24.12.2026 in German, 2026-12-24 in English)."""
    for fmt in get_format("DATE_INPUT_FORMATS"):
        try:
            day = datetime.strptime(value, fmt).date()
        except (TypeError, ValueError):
            continue
        return timezone.make_aware(datetime.combine(day, time.max if end else time.min))
    return None


def _date_hint() -> str:
    """How a date is typed in the active language."""
    return _("DD.MM.YYYY") if get_format("DATE_INPUT_FORMATS")[0].startswith("%d") else "YYYY-MM-DD"


@role_required()
@require_GET
def process_list(request: HttpRequest) -> HttpResponse:
    params = search_data(request.GET, "process_search") or request.GET  # a bookmarked ?q= still searches
    processes = visible_processes(request.user).select_related("definition", "version")
    errors: list[str] = []
    if key := params.get("workflow", "").strip():
        processes = processes.filter(definition__key=key)
    state = params.get("state", "").strip()
    if state == "incident":
        processes = processes.filter(incident_open=True)
    elif state in Process.State.values:
        processes = processes.filter(state=state)
    if step := params.get("step", "").strip():
        processes = processes.filter(current_step=step)
    if carpark := params.get("carpark", "").strip():
        if carpark.isdigit():
            processes = processes.filter(scope_carpark_id=int(carpark))
        else:
            errors.append(_("Car park must be chosen from the list."))
    for name, end in (("started_from", False), ("started_to", True)):
        raw = params.get(name, "").strip()
        if raw:
            moment = _day(raw, end=end)
            if moment is None:
                errors.append(_("“%(value)s” is not a date (use %(format)s).") % {"value": raw, "format": _date_hint()})
            else:
                processes = processes.filter(**{"started_at__lte" if end else "started_at__gte": moment})
    if query := params.get("process_search", "").strip():
        match = Q(title__icontains=query) | Q(definition__name__icontains=query)
        if query.lstrip("#").isdigit():
            number = int(query.lstrip("#"))
            match |= Q(pk=number) | Q(object_id=number)
        processes = processes.filter(match)

    page = Paginator(processes.order_by("-started_at", "-id"), PAGE_SIZE).get_page(params.get("page"))
    visible = visible_processes(request.user)
    carpark_ids = set(visible.exclude(scope_carpark_id=None).values_list("scope_carpark_id", flat=True).distinct())
    names = _carpark_names(carpark_ids)
    labels = StepNames()
    for process in page.object_list:
        process.carpark_name = names.get(process.scope_carpark_id) if process.scope_carpark_id else None
        process.current_step_name = labels.of_process(process)
    filters = params.copy()
    filters.pop("page", None)
    return render(
        request,
        "workflows/process_list.html",
        {
            "page": page,
            "errors": errors,
            "params": params,
            "filter_query": filters.urlencode(),
            "definitions": WorkflowDefinition.objects.order_by("name"),
            "date_hint": _date_hint(),
            "states": [*Process.State.choices, ("incident", _("With incident"))],
            "carparks": sorted(
                ((pk, names.get(pk, _("Car park #%(number)s") % {"number": pk})) for pk in carpark_ids),
                key=lambda c: c[1],
            ),
            "any_filter": any(
                params.get(k)
                for k in ("workflow", "state", "step", "carpark", "started_from", "started_to", "process_search")
            ),
        },
    )


def _process_for(request: HttpRequest, pk: int) -> Process:
    """The process if the user may see it; one of a car park the user is not responsible for is 404, as
    every object of another car park (the role was checked before)."""
    processes = visible_processes(request.user).select_related("definition", "version", "started_by")
    return get_object_or_404(processes, pk=pk)


@role_required()
@require_GET
@csp_update({"style-src": ["'unsafe-inline'"]})  # bpmn-js styles its SVG inline; scripts stay 'self'
def process_detail(request: HttpRequest, pk: int) -> HttpResponse:
    process = _process_for(request, pk)
    graph = process.graph
    step = graph.steps.get(process.current_step) if process.current_step else None
    business_object = None
    if process.content_type_id:
        try:
            business_object = process.business_object
        except Exception:  # the object's model may be gone; show its type and id
            business_object = None
    object_url = getattr(business_object, "get_absolute_url", None)
    events = services.process_history(process)  # archived events included
    names = history_names(process, graph.steps, events)
    for event in events:
        event.step_name = step_label(names, event.step_id) if event.step_id else ""
        if event.kind == event.Kind.PROCESS_MIGRATED and isinstance(event.data, dict):
            event.moved = [step_label(names, str(event.data.get(k) or "")) for k in ("from_step", "to_step")]
    tasks = list(process.tasks.select_related("assignee").order_by("created_at", "id"))
    timers = list(process.timers.filter(state=Timer.State.PENDING, step_seq=process.step_seq))
    jobs = list(process.jobs.order_by("-created_at", "-id")[:10])
    for item in [*timers, *jobs]:
        item.step_name = step_label(names, item.step_id)
    xml, problem = process_xml(process.version)
    diagram = diagram_data(
        process, names=names, steps=graph.steps, events=events, tasks=tasks, timers=timers, xml=xml, problem=problem
    )
    return render(
        request,
        "workflows/process_detail.html",
        {
            "process": process,
            "step": step,
            "steps": graph.steps,
            "variable_rows": variable_rows(process.variables, graph.steps),
            "business_object": business_object,
            "object_url": object_url() if callable(object_url) else None,
            "events": events,
            "tasks": tasks,
            "timers": timers,
            "step_name": step_label(names, process.current_step) if process.current_step else "",
            "incident_step_name": step_label(names, process.incident_step) if process.incident_step else "",
            "diagram": diagram,
            "jobs": jobs,
            "children": process.children.select_related("definition"),
            "can_act": has_role(request.user, *ACT),
            "carpark_name": _carpark_names({process.scope_carpark_id}).get(process.scope_carpark_id)
            if process.scope_carpark_id
            else None,
            "failed_job": process.jobs.filter(state=SystemJob.State.FAILED).order_by("-id").first(),
            "start_event": BusinessEvent.objects.filter(process=process).only("pk", "name", "emitted_at").first(),
        },
    )


@role_required(*ACT)
@require_POST
def process_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    process = _process_for(request, pk)
    try:
        reason = posted_text(request, "reason", label=_("Reason"), max_length=500)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
        return redirect("workflows:process-detail", pk=process.pk)
    actions = {
        "retry": (
            lambda: services.incident_retry(process=process, user=request.user),
            _("The failed step runs again."),
        ),
        "cancel": (
            lambda: services.process_cancel(process=process, user=request.user, reason=reason),
            _("The process was cancelled."),
        ),
        "suspend": (
            lambda: services.process_suspend(process=process, user=request.user, reason=reason),
            _("The process is suspended."),
        ),
        "resume": (
            lambda: services.process_resume(process=process, user=request.user, reason=reason),
            _("The process runs again."),
        ),
    }
    if action not in actions:
        raise PermissionDenied
    run, done = actions[action]
    try:
        run()
    except WorkflowError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)
    return redirect("workflows:process-detail", pk=process.pk)
