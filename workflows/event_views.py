"""The business events page (catalogue, start rule, recorded events with replay and dismiss) and the
manual start pages (the workflows a user may start by hand, and each one's start form).

Administrators, workflow admins and supervisors see the business events; administrators and workflow
admins replay and dismiss them. Anyone with a role sees the Start process page, listing only the
published workflows started by hand whose starters include one of their roles (administrators and
workflow admins may start all of them).
"""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, prefetch_related_objects
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext, gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import ADMINISTRATOR, SUPERVISOR, WORKFLOW_ADMIN, has_any_role, has_role, role_required
from parkinghq.http import is_safe_redirect
from parkinghq.posted import posted_text
from parkinghq.templatetags.portal import audit_value
from workflows import starting
from workflows.errors import InvalidInputs, WorkflowError
from workflows.events import CATALOGUE
from workflows.models import BusinessEvent, StartBinding, WorkflowDefinition, WorkflowVersion
from workflows.process_views import visible_processes

SEE = (ADMINISTRATOR, WORKFLOW_ADMIN, SUPERVISOR)
ACT = (ADMINISTRATOR, WORKFLOW_ADMIN)
PAGE_SIZE = 25
ATTENTION = "attention"
STATE_FILTERS = [
    (ATTENTION, gettext_lazy("Needs attention (no match or incident)")),
    (BusinessEvent.State.UNMATCHED, gettext_lazy("No workflow matched")),
    (BusinessEvent.State.INCIDENT, gettext_lazy("Incident")),
    (BusinessEvent.State.STARTED, gettext_lazy("Process started")),
    (BusinessEvent.State.DISMISSED, gettext_lazy("Dismissed")),
    ("all", gettext_lazy("All events")),
]
INPUT_TYPES = {"text": "text", "number": "number", "date": "date", "file": "text"}


# -- business events ---------------------------------------------------------------------------------


def _verdicts(bindings: list[StartBinding]) -> list[dict[str, Any]]:
    """The bound workflows of one event, strongest first, each with when it wins by START_RULE."""
    ranked = sorted(bindings, key=lambda b: (-(1 if b.condition else 0), -b.priority, b.definition.name))
    conditional = [b for b in ranked if b.condition]
    fallback = next((b for b in ranked if not b.condition), None)
    rows = []
    for binding in ranked:
        name = binding.definition.name
        if binding.condition:
            stronger = [b.definition.name for b in conditional if b.priority > binding.priority]
            equal = [b.definition.name for b in conditional if b.priority == binding.priority and b is not binding]
            wins = gettext("Wins when its condition holds")
            if stronger:
                wins += " " + gettext("and the condition of %(names)s (higher priority) does not") % {
                    "names": _names(stronger)
                }
            wins += "."
            if equal:
                wins += " " + gettext("If the condition of %(names)s holds too, the event is held as an incident.") % {
                    "names": _names(equal)
                }
        elif binding is fallback:
            wins = (
                gettext("Wins when no workflow with a condition matches.")
                if conditional
                else gettext("Wins every time.")
            )
        else:
            wins = gettext("Never wins while '%(name)s' (no condition, higher priority) is published.") % {
                "name": fallback.definition.name
            }
        rows.append({"binding": binding, "name": name, "wins": wins})
    return rows


def _names(names: list[str]) -> str:
    return gettext(" and ").join(f"'{n}'" for n in names)


def _catalogue() -> list[dict[str, Any]]:
    bound: dict[str, list[StartBinding]] = defaultdict(list)
    for binding in StartBinding.objects.select_related("definition", "version"):
        bound[binding.event].append(binding)
    return [
        {"type": kind, "fields": kind.fields(), "bindings": _verdicts(bound.get(name, []))}
        for name, kind in sorted(CATALOGUE.items())
    ]


def _object_link(event: BusinessEvent) -> dict[str, Any] | None:
    if event.content_type_id is None or event.object_id is None:
        return None
    try:
        obj = event.business_object
    except Exception:  # the object's model may be gone; show its type and id
        obj = None
    kind = event.content_type.name if event.content_type else "object"
    url = getattr(obj, "get_absolute_url", None)
    return {
        "label": str(obj) if obj is not None else f"{kind.capitalize()} #{event.object_id} (no longer exists)",
        "kind": kind,
        "url": url() if callable(url) else None,
    }


@role_required(*SEE)
@require_GET
def event_list(request: HttpRequest) -> HttpResponse:
    params = request.GET
    state = params.get("state") or ATTENTION
    if state not in dict(STATE_FILTERS):
        state = ATTENTION
    name = params.get("name", "").strip()
    errors = []
    events = BusinessEvent.objects.select_related("process__definition", "emitted_by", "content_type")
    if state == ATTENTION:
        events = events.filter(state__in=[BusinessEvent.State.UNMATCHED, BusinessEvent.State.INCIDENT])
    elif state != "all":
        events = events.filter(state=state)
    if name:
        if name in CATALOGUE:
            events = events.filter(name=name)
        else:
            errors.append(gettext("“%(name)s” is not a business event; showing every event name.") % {"name": name})
            name = ""
    page = Paginator(events.order_by("-emitted_at", "-pk"), PAGE_SIZE).get_page(params.get("page"))
    # One query per kind of business object; an object whose model is gone is looked up alone below.
    with contextlib.suppress(AttributeError, LookupError):
        prefetch_related_objects(page.object_list, "business_object")
    rows = [
        {
            "event": event,
            "payload": [(key, audit_value(value)) for key, value in sorted(event.payload.items())],
            "object": _object_link(event),
            "title": CATALOGUE[event.name].title if event.name in CATALOGUE else event.name,
        }
        for event in page.object_list
    ]
    counts = dict(BusinessEvent.objects.values_list("state").annotate(n=Count("pk")).order_by())
    waiting: dict[str, dict[str, int]] = {}
    for event_name, event_state, n in (
        BusinessEvent.objects.filter(state__in=[BusinessEvent.State.UNMATCHED, BusinessEvent.State.INCIDENT])
        .values_list("name", "state")
        .annotate(n=Count("pk"))
        .order_by("name")
    ):
        waiting.setdefault(event_name, {"unmatched": 0, "incident": 0})[event_state] = n
    attention = counts.get(BusinessEvent.State.UNMATCHED, 0) + counts.get(BusinessEvent.State.INCIDENT, 0)
    filters = request.GET.copy()
    filters.pop("page", None)
    return render(
        request,
        "workflows/events/event_list.html",
        {
            "rule": str(starting.START_RULE),
            "page": page,
            "rows": rows,
            "state": state,
            "name": name,
            "errors": errors,
            "state_filters": STATE_FILTERS,
            "attention_count": attention,
            "waiting": [{"name": n, "bound": bool(starting.bindings_for(n)), **c} for n, c in sorted(waiting.items())],
            "event_names": sorted(CATALOGUE),
            "filter_query": filters.urlencode(),
            "here": request.get_full_path(),
            "catalogue": _catalogue(),
            "can_act": has_role(request.user, *ACT),
        },
    )


def _back(request: HttpRequest) -> str:
    target = request.POST.get("next", "")
    home = reverse("workflows:event-list")
    if target.startswith(home) and is_safe_redirect(request, target):
        return target
    return home


@role_required(*ACT)
@require_POST
def event_replay(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(BusinessEvent, pk=pk)
    try:
        event = starting.event_replay(event=event, user=request.user)
    except WorkflowError as exc:
        messages.error(request, gettext("Not replayed: %(reason)s") % {"reason": exc})
        return redirect(_back(request))
    if event.state == BusinessEvent.State.STARTED:
        process = event.process
        messages.success(
            request,
            (
                gettext("Event #%(number)s (%(name)s) started process #%(process)s of %(workflow)s.")
                if process
                else gettext("Event #%(number)s (%(name)s) started process #%(process)s.")
            )
            % {
                "number": event.pk,
                "name": event.name,
                "process": event.process_id,
                "workflow": process.definition.name if process else "",
            },
        )
    elif event.state == BusinessEvent.State.UNMATCHED:
        messages.warning(
            request,
            gettext(
                "Event #%(number)s (%(name)s) still matches no published workflow. Publish a workflow that "
                "starts on it, then replay it, or dismiss it."
            )
            % {"number": event.pk, "name": event.name},
        )
    else:
        messages.error(
            request,
            gettext("Event #%(number)s (%(name)s) is held as an incident again: %(error)s")
            % {"number": event.pk, "name": event.name, "error": event.error},
        )
    return redirect(_back(request))


@role_required(*ACT)
@require_POST
def events_replay_all(request: HttpRequest) -> HttpResponse:
    """Replay every event of one name that started nothing (after a workflow for it was published)."""
    name = request.POST.get("name", "")
    if name not in CATALOGUE:
        messages.error(request, gettext("Choose a business event to replay."))
        return redirect(_back(request))
    outcome = starting.events_replay(name=name, user=request.user)
    started = outcome.get(BusinessEvent.State.STARTED, 0)
    if not outcome:
        messages.info(request, gettext("No %(name)s event was waiting.") % {"name": name})
    elif started == sum(outcome.values()):
        messages.success(
            request,
            ngettext(
                "Replayed %(count)s %(name)s event: each started a process.",
                "Replayed %(count)s %(name)s events: each started a process.",
                started,
            )
            % {"count": started, "name": name},
        )
    else:
        rest = ", ".join(f"{n} {BusinessEvent.State(state).label.lower()}" for state, n in sorted(outcome.items()) if n)
        messages.warning(
            request,
            gettext("Replayed %(count)s %(name)s events: %(rest)s.")
            % {"count": sum(outcome.values()), "name": name, "rest": rest},
        )
    return redirect(_back(request))


@role_required(*ACT)
@require_POST
def event_dismiss(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(BusinessEvent, pk=pk)
    try:
        reason = posted_text(request, "reason", label=gettext("Reason"), max_length=500)
    except ValidationError as exc:
        messages.error(
            request,
            gettext("Event #%(number)s was not dismissed: %(reason)s")
            % {"number": event.pk, "reason": exc.messages[0]},
        )
        return redirect(_back(request))
    if not reason:
        messages.error(
            request, gettext("Event #%(number)s was not dismissed: say why it needs no process.") % {"number": event.pk}
        )
        return redirect(_back(request))
    try:
        starting.event_dismiss(event=event, user=request.user, reason=reason)
    except WorkflowError as exc:
        messages.error(request, gettext("Not dismissed: %(reason)s") % {"reason": exc})
    else:
        messages.success(
            request,
            gettext("Event #%(number)s (%(name)s) is dismissed: %(reason)s")
            % {"number": event.pk, "name": event.name, "reason": reason},
        )
    return redirect(_back(request))


# -- manual start ------------------------------------------------------------------------------------
_STARTERS: dict[tuple[int, ...], tuple[bool, frozenset[str]]] = {}
_STARTERS_LOCK = threading.Lock()


def can_start_any(user: Any) -> bool:
    """Whether the user may start at least one published workflow by hand (for the menu).

    One small query of the published versions' ids; who may start them is read from their graphs
    once per set of published versions (published versions never change) and kept in memory.
    """
    if not has_any_role(user):
        return False
    ids = tuple(
        WorkflowVersion.objects.filter(state=WorkflowVersion.State.PUBLISHED, start_binding__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not ids:
        return False
    with _STARTERS_LOCK:
        known = _STARTERS.get(ids)
    if known is None:
        manual, roles = False, set()
        for graph in WorkflowVersion.objects.filter(pk__in=ids).values_list("graph", flat=True):
            start = starting.start_of(graph) if graph else {}
            if not graph or start.get("event"):
                continue
            manual = True
            roles.update(start.get("starters") or [])
        known = (manual, frozenset(roles))
        with _STARTERS_LOCK:
            if len(_STARTERS) > 20:
                _STARTERS.clear()
            _STARTERS[ids] = known
    manual, roles = known
    return manual and has_role(user, ADMINISTRATOR, WORKFLOW_ADMIN, *roles)


@role_required()
@require_GET
def start_list(request: HttpRequest) -> HttpResponse:
    versions = starting.startable_versions(request.user)
    rows = [{"version": v, "inputs": (starting.manual_start_step(v) or {}).get("inputs") or []} for v in versions]
    return render(request, "workflows/start/start_list.html", {"rows": rows})


def _fields(inputs: list[dict[str, Any]], values: dict[str, Any], errors: dict[str, str]) -> list[dict[str, Any]]:
    fields = []
    for item in inputs:
        name = item["name"]
        kind = item.get("type", "text")
        fields.append(
            {
                "name": name,
                "id": f"start-{name}",
                "label": item.get("label") or name,
                "kind": kind,
                "widget": "select" if kind == "choice" else "checkbox" if kind == "bool" else "input",
                "input_type": INPUT_TYPES.get(kind, "text"),
                "required": bool(item.get("required")),
                "choices": item.get("choices") or [],
                "help": item.get("help", ""),
                "value": values.get(name, ""),
                "error": errors.get(name, ""),
            }
        )
    return fields


@role_required()
@require_http_methods(["GET", "POST"])
def start_form(request: HttpRequest, key: str) -> HttpResponse:
    definition = get_object_or_404(WorkflowDefinition, key=key)
    version = (
        WorkflowVersion.objects.filter(definition=definition, state=WorkflowVersion.State.PUBLISHED)
        .order_by("-number")
        .first()
    )
    if version is None:
        return render(
            request, "workflows/start/not_by_hand.html", {"definition": definition, "event": None}, status=404
        )
    start = starting.manual_start_step(version)
    if start is None:
        event = starting.start_of(version.graph).get("event")
        return render(
            request,
            "workflows/start/not_by_hand.html",
            {"definition": definition, "event": event, "event_type": CATALOGUE.get(event)},
            status=404,
        )
    if not starting.may_start(request.user, version):
        raise PermissionDenied
    inputs = start.get("inputs") or []
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    form_error = ""
    if request.method == "POST":
        values = {
            item["name"]: (
                request.POST.get(item["name"]) or None
                if item.get("type") == "bool"
                else request.POST.get(item["name"], "")
            )
            for item in inputs
        }
        try:
            process = starting.process_start_manual(definition=definition, user=request.user, values=values)
        except InvalidInputs as exc:
            errors = exc.field_errors
        except starting.StartNotAllowed as exc:
            messages.error(request, str(exc))
            return redirect("workflows:start-list")
        except WorkflowError as exc:
            form_error = gettext("The process could not be started: %(reason)s") % {"reason": exc}
        else:
            messages.success(
                request,
                gettext("Process #%(number)s of %(name)s started.") % {"number": process.pk, "name": definition.name},
            )
            if visible_processes(request.user).filter(pk=process.pk).exists():
                return redirect("workflows:process-detail", pk=process.pk)
            return redirect("workflows:start-list")
    return render(
        request,
        "workflows/start/start_form.html",
        {
            "definition": definition,
            "version": version,
            "fields": _fields(inputs, values, errors),
            "errors": errors,
            "form_error": form_error,
        },
        status=200,
    )
