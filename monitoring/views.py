"""Monitoring pages: dashboard, drill-down list, analytics with the BPMN heatmap, alerts, statements.

Views are thin: each checks the role, builds a :class:`~monitoring.selectors.Scope` limited to the
car parks the user may see, and renders what the selectors return.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from csp.decorators import csp_update
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import models
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Sum
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts import roles
from accounts.roles import role_required
from carparks.models import CarPark
from monitoring import alerts, selectors
from monitoring.aggregation import day_bounds
from monitoring.forms import AlertRuleForm, FilterForm, SubscriptionForm
from monitoring.models import AlertEvent, AlertRule, DailyWorkflowStat, Statement, StatementBuild, StatementSubscription
from monitoring.selectors import Scope
from monitoring.statements import SUBSCRIBER_ROLES
from parkinghq.http import safe_next
from workflows import xes
from workflows.compiler import step_label, step_names
from workflows.models import ProcessEvent, ProcessEventArchive, Task, WorkflowDefinition, WorkflowVersion
from workflows.step_names import StepNames

VIEW_ROLES = (roles.ADMINISTRATOR, roles.SUPERVISOR, roles.WORKFLOW_ADMIN, roles.FINANCE, roles.MANAGER)
ALERT_ROLES = (roles.ADMINISTRATOR, roles.SUPERVISOR, roles.WORKFLOW_ADMIN, roles.FINANCE)
RULE_ROLES = (roles.ADMINISTRATOR, roles.WORKFLOW_ADMIN)
Kind = ProcessEvent.Kind
# bpmn-js draws its SVG with inline style attributes; scripts stay 'self' (as on the editor's page).
DIAGRAM_CSP = {"style-src": ["'unsafe-inline'"]}


def _carpark_choices(visible: set[int] | None) -> list[tuple[int, str]]:
    carparks = CarPark.objects.order_by("name")
    if visible is not None:
        carparks = carparks.filter(pk__in=visible)
    return list(carparks.values_list("pk", "name"))


def _scope(request: HttpRequest) -> tuple[Scope, FilterForm]:
    """The filter bar's scope, never wider than the car parks the user may see."""
    visible = selectors.visible_carpark_ids(request.user)
    form = FilterForm(request.GET or None, carparks=_carpark_choices(visible))
    start, end = FilterForm.defaults()
    definition = None
    carpark_ids = visible
    if form.is_bound and form.is_valid():
        start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        definition = form.cleaned_data.get("workflow")
        chosen = form.cleaned_data.get("carpark")
        if chosen is not None:
            if visible is not None and chosen not in visible:
                raise Http404("No such car park among yours.")
            carpark_ids = {chosen}
    return Scope(day_from=start, day_to=end, definition=definition, carpark_ids=carpark_ids), form


def _filter_query(request: HttpRequest) -> str:
    keep = {k: v for k, v in request.GET.items() if k in ("period", "day_from", "day_to", "workflow", "carpark") and v}
    return urlencode(keep)


@role_required(*VIEW_ROLES)
def dashboard(request: HttpRequest) -> HttpResponse:
    scope, form = _scope(request)
    now = timezone.now()
    live = selectors.live_counts(scope, now)
    flow = selectors.throughput(scope)
    workflows = selectors.per_workflow(scope)
    by_role, by_person = selectors.basket_load(scope, now)
    unrestricted = scope.carpark_ids is None or selectors.visible_carpark_ids(request.user) is None
    billing = selectors.billing_figures(scope.day_from, scope.day_to) if selectors.sees_billing(request.user) else None
    cpms = selectors.cpms_figures(scope.day_from, scope.day_to) if unrestricted else None
    chart = {
        "days": [date_format(d["day"], "MONTH_DAY_FORMAT") for d in flow],
        "started": [d["started"] for d in flow],
        "completed": [d["completed"] for d in flow],
        "roles": [r["role"] for r in by_role],
        "role_open": [r["open"] for r in by_role],
        "role_claimed": [r["claimed"] for r in by_role],
        "sla_labels": [w["definition"] for w in workflows if w["sla_due"]],
        "sla_percent": [w["sla_percent"] for w in workflows if w["sla_due"]],
        "text": {
            "started": _("Started"),
            "completed": _("Completed"),
            "open": _("Open"),
            "claimed": _("Claimed"),
            "on_time": _("On time (%)"),
        },
        "locale": translation.get_language() or "en",
    }
    open_alerts = (
        AlertEvent.objects.filter(cleared_at=None).select_related("rule")[:5]
        if roles.has_role(request.user, *ALERT_ROLES)
        else []
    )
    # The per-day table is built here (not with template tags): a year is 365 rows with two links each.
    base = (
        reverse("monitoring:processes")
        + "?"
        + urlencode(
            {
                k: v
                for k, v in {
                    "workflow": scope.definition.key if scope.definition else "",
                    "carpark": request.GET.get("carpark", ""),
                }.items()
                if v
            }
        )
    )
    flow_rows = []
    for d in reversed(flow):
        one_day = f"&period=custom&day_from={d['day'].isoformat()}&day_to={d['day'].isoformat()}"
        flow_rows.append(
            {
                **d,
                "label": f"{date_format(d['day'], 'D')} {date_format(d['day'], 'SHORT_DATE_FORMAT')}",
                "started_url": f"{base}&status=started{one_day}",
                "completed_url": f"{base}&status=completed{one_day}",
            }
        )
    context = {
        "form": form,
        "scope": scope,
        "filter_query": _filter_query(request),
        "live": live,
        "flow_rows": flow_rows,
        "live_totals": {s: sum(r[s] for r in live) for s in selectors.LIVE_STATUSES},
        "flow": flow,
        "flow_totals": {k: sum(d[k] for d in flow) for k in ("started", "completed", "cancelled")},
        "workflows": workflows,
        "totals": selectors.totals(workflows),
        "by_role": by_role,
        "by_person": by_person,
        "billing": billing,
        "cpms": cpms,
        "chart": chart,
        "open_alerts": open_alerts,
        "restricted": scope.carpark_ids is not None,
    }
    return render(request, "monitoring/dashboard.html", context)


# -- drill-down ---------------------------------------------------------------------------------------
DRILL_STATUSES = {
    "running": "Running now",
    "waiting": "Waiting now (message, timer or an unclaimed task)",
    "overdue": "With an overdue task now",
    "escalated": "With an escalated task now",
    "incident": "With an open incident",
    "started": "Started in the period",
    "completed": "Completed in the period",
    "cancelled": "Cancelled in the period",
    "entered": "Entered the step in the period",
    "rework": "Entered the step again in the period (rework)",
    "escalations": "Had a task escalated in the period",
    "incidents_opened": "Had an incident opened in the period",
    "tasks_completed": "Had a task completed in the period",
    "sla_met": "Had a task completed on time in the period",
    "sla_missed": "Had a task completed late in the period",
    "basket": "With an active task (basket)",
}


def drill_processes(request: HttpRequest, scope: Scope) -> tuple[QuerySet, list[str]]:
    """The processes behind a number: the same definitions as the figures they come from."""
    status = request.GET.get("status", "")
    step = request.GET.get("step")
    version = request.GET.get("version")
    described = []
    if status and status not in DRILL_STATUSES:
        raise Http404("Unknown status filter.")
    if status in selectors.LIVE_STATUSES:
        qs = selectors.live_processes(scope, status)
        if step is not None:
            qs = qs.filter(**{"incident_step" if status == "incident" else "current_step": step})
    else:
        qs = scope.processes()
        start, _unused = day_bounds(scope.day_from)
        _unused, end = day_bounds(scope.day_to)

        def in_period(model: type[models.Model], *, any_step: bool = False) -> QuerySet:
            events = model.objects.filter(process_id=OuterRef("pk"), at__gte=start, at__lt=end)
            return events if step is None or any_step else events.filter(step_id=step)

        def in_history(events: Callable[[type[models.Model]], QuerySet]) -> Q:
            """Processes with such an event in the live history or its archive (``history_archive``)."""
            return Exists(events(ProcessEvent)) | Exists(events(ProcessEventArchive))

        def reentered(model: type[models.Model]) -> QuerySet:
            earlier = model.objects.filter(
                process_id=OuterRef("process_id"),
                kind=Kind.STEP_ENTERED,
                step_id=OuterRef("step_id"),
                id__lt=OuterRef("id"),
            )
            return in_period(model).filter(kind=Kind.STEP_ENTERED).filter(Exists(earlier))

        def task_done(model: type[models.Model]) -> QuerySet:
            done = in_period(model).filter(kind=Kind.TASK_COMPLETED, task__due_at__isnull=False)
            if status == "sla_met":
                return done.filter(at__lte=F("task__due_at"))
            return done.filter(at__gt=F("task__due_at"))

        kinds = {
            "started": Kind.PROCESS_STARTED,
            "completed": Kind.PROCESS_COMPLETED,
            "cancelled": Kind.PROCESS_CANCELLED,
            "entered": Kind.STEP_ENTERED,
            "escalations": Kind.TASK_ESCALATED,
            "incidents_opened": Kind.INCIDENT_OPENED,
            "tasks_completed": Kind.TASK_COMPLETED,
        }
        if status in ("started", "completed", "cancelled"):
            qs = qs.filter(in_history(lambda model: in_period(model, any_step=True).filter(kind=kinds[status])))
        elif status in kinds:
            qs = qs.filter(in_history(lambda model: in_period(model).filter(kind=kinds[status])))
        elif status == "rework":
            qs = qs.filter(in_history(reentered))
        elif status in ("sla_met", "sla_missed"):
            qs = qs.filter(in_history(task_done))
        elif status == "basket":
            active = Task.objects.filter(process_id=OuterRef("pk"), state__in=Task.ACTIVE_STATES)
            if request.GET.get("role"):
                active = active.filter(role=request.GET["role"])
                described.append(f"role {request.GET['role']}")
            if request.GET.get("assignee", "").isdigit():
                active = active.filter(assignee_id=int(request.GET["assignee"]))
                described.append("claimed by the chosen person")
            if request.GET.get("task_state") in ("open", "claimed"):
                active = active.filter(state=request.GET["task_state"])
                described.append(f"task {request.GET['task_state']}")
            if request.GET.get("overdue"):
                active = active.filter(due_at__lt=timezone.now())
                described.append("overdue")
            qs = qs.filter(Exists(active))
    if version and version.isdigit():
        qs = qs.filter(version_id=int(version))
        described.append(f"version #{version}")
    if status:
        described.insert(0, DRILL_STATUSES[status])
    if step is not None:
        described.append(f"step “{_step_name(scope, version, step)}”")
    return qs, described


def _step_name(scope: Scope, version: str | None, step: str) -> str:
    """The name of a drilled-down step: in the chosen version, else in the workflow's published version."""
    versions = WorkflowVersion.objects.all()
    if version and version.isdigit():
        versions = versions.filter(pk=int(version))
    elif scope.definition is not None:
        versions = versions.filter(definition=scope.definition, state=WorkflowVersion.State.PUBLISHED)
    else:
        return step_label(step) if step else "no step"
    graph = versions.values_list("graph", flat=True).first()
    return (step_names(graph or {}).get(step) or step_label(step)) if step else "no step"


@role_required(*VIEW_ROLES)
def processes(request: HttpRequest) -> HttpResponse:
    scope, form = _scope(request)
    qs, described = drill_processes(request, scope)
    qs = qs.select_related("definition", "version").order_by("-started_at", "-id")
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    labels = StepNames()
    for process in page.object_list:
        process.current_step_name = labels.of_process(process)
    return render(
        request,
        "monitoring/processes.html",
        {
            "form": form,
            "scope": scope,
            "page": page,
            "described": described,
            "filter_query": _filter_query(request),
            "engine_url": _engine_list_url(request, scope),
        },
    )


def _engine_list_url(request: HttpRequest, scope: Scope) -> str:
    """The same processes in the engine's process list, where its filters can say the same thing."""
    status = request.GET.get("status", "")
    params: dict[str, str] = {}
    if status in ("running", "incident"):
        params["state"] = status
        if request.GET.get("step") is not None and status == "running":
            params["step"] = request.GET["step"]
    elif status == "started" and request.GET.get("step") is None:
        params["started_from"], params["started_to"] = scope.day_from.isoformat(), scope.day_to.isoformat()
    else:
        return ""
    if request.GET.get("version") or (status == "incident" and request.GET.get("step") is not None):
        return ""
    if scope.definition:
        params["workflow"] = scope.definition.key
    if request.GET.get("carpark"):
        params["carpark"] = request.GET["carpark"]
    try:
        return reverse("workflows:process-list") + "?" + urlencode(params)
    except NoReverseMatch:
        return ""


# -- analytics and heatmap ---------------------------------------------------------------------------
def _version_for(request: HttpRequest, definition: WorkflowDefinition, param: str = "version") -> WorkflowVersion:
    versions = definition.versions.exclude(state=WorkflowVersion.State.DRAFT)
    raw = request.GET.get(param, "")
    if raw.isdigit():
        version = versions.filter(pk=int(raw)).first()
        if version is None:
            raise Http404("No such version of this workflow.")
        return version
    version = versions.order_by("-number").first() or definition.versions.order_by("-number").first()
    if version is None:
        raise Http404("This workflow has no version yet.")
    return version


@role_required(*VIEW_ROLES)
def analytics(request: HttpRequest) -> HttpResponse:
    scope, form = _scope(request)
    definition = scope.definition or _busiest_definition(scope)
    context: dict[str, Any] = {"form": form, "scope": scope, "filter_query": _filter_query(request)}
    if definition is not None:
        version = _version_for(request, definition)
        rows = selectors.step_analytics([version], scope.day_from, scope.day_to, scope.carpark_ids)
        context.update(
            definition=definition,
            version=version,
            versions=definition.versions.exclude(state=WorkflowVersion.State.DRAFT).order_by("-number"),
            rows=rows,
            summary=selectors.process_summary([version], scope.day_from, scope.day_to, scope.carpark_ids),
        )
    return render(request, "monitoring/analytics.html", context)


def _busiest_definition(scope: Scope) -> WorkflowDefinition | None:
    """Without a chosen workflow, analytics opens on the one most started in the period (from the
    daily roll-up, a few rows per day), else the first by name."""
    stats = DailyWorkflowStat.objects.filter(day__gte=scope.day_from, day__lte=scope.day_to)
    if scope.carpark_ids is not None:
        stats = stats.filter(carpark_id__in=scope.carpark_ids)
    busiest = stats.values("definition_id").annotate(started=Sum("started")).order_by("-started", "definition_id")
    definitions = WorkflowDefinition.objects.filter(versions__isnull=False).distinct()
    first = busiest.first()
    if first and first["started"]:
        return definitions.filter(pk=first["definition_id"]).first() or definitions.order_by("name").first()
    return definitions.order_by("name").first()


@role_required(*VIEW_ROLES)
def analytics_xes(request: HttpRequest) -> HttpResponse:
    """The analytics selection (workflow, period, car parks) as an XES event log, streamed: the processes
    of the workflow started in the period, every version. ``?gzip=1`` sends it gzipped (.xes.gz)."""
    scope, form = _scope(request)
    back = reverse("monitoring:analytics") + "?" + urlencode(list(request.GET.items()))
    if form.is_bound and not form.is_valid():
        return redirect(back)  # the analytics page shows what is wrong with the filters
    definition = scope.definition or _busiest_definition(scope)
    if definition is None:
        messages.info(request, _("No workflow is installed yet, so there is no event log to download."))
        return redirect(back)
    start, _unused = day_bounds(scope.day_from)
    _unused, end = day_bounds(scope.day_to)
    chunks = xes.xes_stream(definition.key, start, end, user=request.user, carpark_ids=scope.carpark_ids)
    filename = f"{definition.key}_{scope.day_from:%Y-%m-%d}_{scope.day_to:%Y-%m-%d}.xes"
    if request.GET.get("gzip") == "1":
        response = StreamingHttpResponse(xes.gzipped(chunks), content_type="application/gzip")
        filename += ".gz"
    else:
        response = StreamingHttpResponse(chunks, content_type="application/xml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@role_required(*VIEW_ROLES)
@csp_update(DIAGRAM_CSP)
def heatmap(request: HttpRequest, version_id: int) -> HttpResponse:
    scope, form = _scope(request)
    version = get_object_or_404(WorkflowVersion.objects.select_related("definition"), pk=version_id)
    data = selectors.heatmap(version, scope.day_from, scope.day_to, scope.carpark_ids)
    names = {s: n for s, n, _ in selectors.step_order(version)}
    return render(
        request,
        "monitoring/heatmap.html",
        {
            "form": form,
            "scope": scope,
            "version": version,
            "data": data,
            "rows": [{"step": s, "name": names.get(s, s), **e} for s, e in data["elements"].items()],
            "filter_query": _filter_query(request),
            "xml_url": reverse("monitoring:heatmap-xml", args=[version.pk]),
            "data_url": reverse("monitoring:heatmap-data", args=[version.pk]) + "?" + _filter_query(request),
        },
    )


@role_required(*VIEW_ROLES)
def heatmap_data(request: HttpRequest, version_id: int) -> JsonResponse:
    scope, _form = _scope(request)
    version = get_object_or_404(WorkflowVersion.objects.select_related("definition"), pk=version_id)
    return JsonResponse(selectors.heatmap(version, scope.day_from, scope.day_to, scope.carpark_ids))


def version_bpmn(version: WorkflowVersion) -> str | None:
    """The version's BPMN 2.0 XML: the file the editor saved, else the engine's export of its spec."""
    if version.bpmn_xml:
        return version.bpmn_xml
    try:
        from workflows.bpmn import definition_to_bpmn
    except ImportError:  # the BPMN interchange is not installed: the page shows the figures as a table
        return None
    xml = definition_to_bpmn(version.spec)
    return xml.decode() if isinstance(xml, bytes) else xml


@role_required(*VIEW_ROLES)
def heatmap_xml(request: HttpRequest, version_id: int) -> HttpResponse:
    version = get_object_or_404(WorkflowVersion, pk=version_id)
    xml = version_bpmn(version)
    if xml is None:
        raise Http404("No BPMN diagram is available for this version.")
    return HttpResponse(xml, content_type="application/xml; charset=utf-8")


@role_required(*VIEW_ROLES)
def compare(request: HttpRequest) -> HttpResponse:
    scope, form = _scope(request)
    definition = scope.definition
    if definition is None:
        messages.info(request, _("Choose a workflow to compare two of its versions."))
        return redirect(reverse("monitoring:analytics") + "?" + _filter_query(request))
    versions = list(definition.versions.exclude(state=WorkflowVersion.State.DRAFT).order_by("-number"))
    if len(versions) < 2:
        messages.info(
            request, _("“%(name)s” has only one version so far: nothing to compare.") % {"name": definition.name}
        )
        return redirect(reverse("monitoring:analytics") + "?" + _filter_query(request))
    a = _version_for(request, definition, "a") if request.GET.get("a") else versions[1]
    b = _version_for(request, definition, "b") if request.GET.get("b") else versions[0]
    rows_a = {r["step"]: r for r in selectors.step_analytics([a], scope.day_from, scope.day_to, scope.carpark_ids)}
    rows_b = {r["step"]: r for r in selectors.step_analytics([b], scope.day_from, scope.day_to, scope.carpark_ids)}
    steps = list(dict.fromkeys([*rows_b, *rows_a]))
    return render(
        request,
        "monitoring/compare.html",
        {
            "form": form,
            "scope": scope,
            "definition": definition,
            "versions": versions,
            "a": a,
            "b": b,
            "summary_a": selectors.process_summary([a], scope.day_from, scope.day_to, scope.carpark_ids),
            "summary_b": selectors.process_summary([b], scope.day_from, scope.day_to, scope.carpark_ids),
            "rows": [(s, rows_a.get(s), rows_b.get(s)) for s in steps],
            "filter_query": _filter_query(request),
        },
    )


# -- alerts ----------------------------------------------------------------------------------------
@role_required(*ALERT_ROLES)
def alert_list(request: HttpRequest) -> HttpResponse:
    show = request.GET.get("show", "open")
    events = AlertEvent.objects.select_related("rule", "acknowledged_by")
    if show == "open":
        events = events.filter(cleared_at=None)
    page = Paginator(events.order_by("-opened_at", "-id"), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "monitoring/alerts.html",
        {
            "page": page,
            "show": show,
            "rules": AlertRule.objects.all(),
            "can_edit": roles.has_role(request.user, *RULE_ROLES),
        },
    )


@role_required(*ALERT_ROLES)
@require_POST
def alert_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(AlertEvent, pk=pk)
    alerts.alert_acknowledge(event=event, user=request.user)
    messages.success(request, _("Acknowledged: %(name)s.") % {"name": event.rule.name})
    return redirect(safe_next(request, "monitoring:alerts"))


@role_required(*RULE_ROLES)
def rule_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    rule = get_object_or_404(AlertRule, pk=pk) if pk else None
    form = AlertRuleForm(request.POST or None, instance=rule)
    if request.method == "POST" and form.is_valid():
        saved = form.save(commit=False)
        if rule is None:
            saved.created_by = request.user
        saved.save()
        messages.success(
            request, _("Alert rule “%(name)s” saved; it is checked within five minutes.") % {"name": saved.name}
        )
        return redirect("monitoring:alerts")
    return render(request, "monitoring/rule_form.html", {"form": form, "rule": rule, "help": AlertRule.HELP})


@role_required(*RULE_ROLES)
@require_POST
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(AlertRule, pk=pk)
    rule.delete()
    messages.success(request, _("Alert rule “%(name)s” deleted.") % {"name": rule.name})
    return redirect("monitoring:alerts")


@role_required(*RULE_ROLES)
@require_POST
def rules_evaluate(request: HttpRequest) -> HttpResponse:
    result = alerts.alerts_evaluate()
    messages.success(
        request,
        _("Rules checked: %(opened)s new, %(held)s still holding, %(cleared)s cleared.")
        % {"opened": result["opened"], "held": result["held"], "cleared": result["cleared"]},
    )
    return redirect("monitoring:alerts")


# -- statements ----------------------------------------------------------------------------------------
@role_required(*SUBSCRIBER_ROLES)
def statement_list(request: HttpRequest) -> HttpResponse:
    mine = set(StatementSubscription.objects.filter(user=request.user).values_list("frequency", flat=True))
    form = SubscriptionForm(request.POST or None, initial={"frequencies": sorted(mine)})
    if request.method == "POST" and form.is_valid():
        wanted = set(form.cleaned_data["frequencies"])
        StatementSubscription.objects.filter(user=request.user).exclude(frequency__in=wanted).delete()
        for frequency in wanted - mine:
            StatementSubscription.objects.get_or_create(user=request.user, frequency=frequency)
        if wanted and not request.user.email:
            messages.warning(request, _("Subscriptions saved, but your account has no email address to send them to."))
        else:
            messages.success(request, _("Your statement subscriptions are saved."))
        return redirect("monitoring:statements")
    statements = Statement.objects.defer("pdf").select_related("built_by").order_by("-period_start", "frequency")
    page = Paginator(statements, 30).get_page(request.GET.get("page"))
    return render(
        request,
        "monitoring/statements.html",
        {"form": form, "page": page, "can_build": roles.has_role(request.user, *SUBSCRIBER_ROLES)},
    )


@role_required(*SUBSCRIBER_ROLES)
def statement_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    statement = get_object_or_404(Statement, pk=pk)
    from monitoring.statements import statement_pdf as pdf_in

    response = HttpResponse(pdf_in(statement, translation.get_language()), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{statement.filename}"'
    return response


@role_required(*SUBSCRIBER_ROLES)
def statement_detail(request: HttpRequest, pk: int) -> HttpResponse:
    statement = get_object_or_404(Statement.objects.defer("pdf"), pk=pk)
    from monitoring.statements import statement_context

    return render(request, "monitoring/statement_detail.html", statement_context(statement))


def _current_period(frequency: str, today: Any) -> tuple[Any, Any]:
    """The period running today: today, this week from Monday, this month from the 1st."""
    if frequency == StatementSubscription.Frequency.WEEKLY:
        return today - timedelta(days=today.weekday()), today
    if frequency == StatementSubscription.Frequency.MONTHLY:
        return today.replace(day=1), today
    return today, today


@role_required(*SUBSCRIBER_ROLES)
@require_GET
def statement_preview(request: HttpRequest) -> HttpResponse:
    """The figures of the running day, week or month so far, as the statement will show them (nothing stored)."""
    frequency = request.GET.get("frequency", "")
    if frequency not in StatementSubscription.Frequency.values:
        messages.error(request, _("Choose daily, weekly or monthly."))
        return redirect("monitoring:statements")
    from monitoring.statements import statement_context, statement_figures

    day_from, day_to = _current_period(frequency, timezone.localdate())
    statement = Statement(frequency=frequency, period_start=day_from, period_end=day_to, created_at=timezone.now())
    statement.figures = statement_figures(day_from, day_to)
    return render(request, "monitoring/statement_preview.html", statement_context(statement))


# The menu shows statements to the subscriber roles (``statement_list``); they may build one too, and
# see and poll the builds (statements are not limited to car parks, so neither are their builds).
@role_required(*SUBSCRIBER_ROLES)
@require_POST
def statement_build_now(request: HttpRequest) -> HttpResponse:
    """Queue the build (or rebuild) of the last closed period's statement, without sending it; audited when
    built. The page of the build shows its progress; a build of the period already under way is reused."""
    from monitoring.builds import StatementBuildError, statement_build_request

    try:
        build, created = statement_build_request(frequency=request.POST.get("frequency", ""), user=request.user)
    except StatementBuildError as exc:
        messages.error(request, str(exc))
        return redirect("monitoring:statements")
    if created:
        messages.success(request, _("The statement is being built; you can go on working meanwhile."))
    else:
        messages.info(request, _("This statement is already being built; here is that build's progress."))
    return redirect("monitoring:statement-build-detail", pk=build.pk)


def _build_context(pk: int) -> dict[str, Any]:
    build = get_object_or_404(
        StatementBuild.objects.select_related("requested_by", "statement").defer("statement__pdf"), pk=pk
    )
    statement = Statement(frequency=build.frequency, period_start=build.period_start, period_end=build.period_end)
    return {
        "build": build,
        "title": statement.title,
        "period_label": statement.period_label,
        # Step labels and the build's own refusals are stored in English and read in the reader's language.
        "step": _(build.step_label) if build.step_label else "",
        "error": _(build.error) if build.error else "",
    }


@role_required(*SUBSCRIBER_ROLES)
def statement_build_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "monitoring/statement_build.html", _build_context(pk))


@role_required(*SUBSCRIBER_ROLES)
def statement_build_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The build's progress, polled by htmx every 2 s while it is queued or running."""
    return render(request, "monitoring/_build_progress.html", _build_context(pk))
