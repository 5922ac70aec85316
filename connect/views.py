"""Pages of connect: CPMS connections, their sync history, and the car-park CPMS panel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from accounts.roles import ADMINISTRATOR, AGENT, CARE, FINANCE, MANAGER, SUPERVISOR, has_role, role_required
from carparks.models import CarPark, Product

from . import selectors, services, tasks
from .adapters import CpmsError
from .forms import ConnectionForm, RightMappingForm
from .models import CpmsConnection, SyncRun

VIEW_ROLES = (ADMINISTRATOR, SUPERVISOR, MANAGER)
# Who may start a sync also watches its progress (the poll URLs check the same rule).
SYNC_ROLES = (ADMINISTRATOR, SUPERVISOR)
# A queued sync the workers have not started after this long is no longer waited for on the page.
PROGRESS_WAIT = timedelta(minutes=10)
# The CPMS panel is part of the car-park page, so it answers the roles that see car parks (carparks.views).
PANEL_ROLES = (ADMINISTRATOR, SUPERVISOR, AGENT, CARE, FINANCE, MANAGER)
REFUSED_PER_PAGE = 50
SYNC_TASKS = {
    "static": tasks.sync_static_task,
    "occupancy": tasks.sync_occupancy_task,
    "reconcile": tasks.reconcile_task,
}


def _get_connection_for_user(request: HttpRequest, pk: int) -> CpmsConnection:
    """The connection if the user may see it (a manager: one of their car parks is linked), else 404."""
    return get_object_or_404(selectors.connections_for(request.user), pk=pk)


def _get_carpark_for_user(request: HttpRequest, pk: int) -> CarPark:
    scope = selectors.carpark_scope(request.user)
    carpark = get_object_or_404(CarPark.objects.select_related("cpms_link__connection"), pk=pk)
    if scope is not None and carpark.pk not in scope:
        raise Http404
    return carpark


@role_required(*VIEW_ROLES)
def connection_list(request: HttpRequest) -> HttpResponse:
    connections = list(selectors.connections_for(request.user))
    return render(
        request,
        "connect/connection_list.html",
        {"connections": connections, "can_edit": has_role(request.user, ADMINISTRATOR)},
    )


@role_required(*VIEW_ROLES)
def connection_detail(request: HttpRequest, pk: int) -> HttpResponse:
    connection = _get_connection_for_user(request, pk)
    runs = Paginator(selectors.runs_for(request.user, connection), 25).get_page(request.GET.get("page"))
    links = Paginator(selectors.links_for(request.user, connection), 50).get_page(request.GET.get("carparks"))
    return render(
        request,
        "connect/connection_detail.html",
        {
            "connection": connection,
            "runs": runs,
            "links": links,
            "can_edit": has_role(request.user, ADMINISTRATOR),
            "can_sync": has_role(request.user, *SYNC_ROLES),
            "last_test": connection.last_run(SyncRun.Kind.TEST),
            **(_progress_context(request, connection) if has_role(request.user, *SYNC_ROLES) else {}),
        },
    )


def _progress_context(request: HttpRequest, connection: CpmsConnection) -> dict[str, object]:
    """The connection's syncs under way (and those finished since ``?since=``, the moment one was queued).

    The panel polls while one runs, or while a sync queued less than ``PROGRESS_WAIT`` ago has not started.
    """
    since = None
    try:
        since = datetime.fromtimestamp(float(request.GET.get("since", "")), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        since = None
    now = timezone.now()
    if since is not None and not (now - PROGRESS_WAIT <= since <= now + timedelta(minutes=1)):
        since = None
    unfinished = Q(status__in=[SyncRun.Status.RUNNING, SyncRun.Status.RETRYING])
    shown = unfinished | Q(started_at__gte=since) if since else unfinished
    runs = list(
        connection.runs.filter(shown)
        .exclude(kind=SyncRun.Kind.TEST)
        .select_related("carpark")
        .order_by("-started_at", "-pk")[:10]
    )
    waiting = since is not None and not any(run.started_at >= since for run in runs)
    polling = waiting or any(not run.is_finished for run in runs)
    poll_url = reverse("connect:connection-progress", args=[connection.pk])
    if since is not None:
        poll_url += f"?since={since.timestamp():.3f}"
    return {"progress_runs": runs, "progress_waiting": waiting, "progress_polling": polling, "poll_url": poll_url}


@role_required(*SYNC_ROLES)
def connection_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress panel of the connection page, polled by htmx every 2 s while a sync runs."""
    connection = _get_connection_for_user(request, pk)
    context = {"connection": connection, **_progress_context(request, connection)}
    return render(request, "connect/_connection_progress.html", context)


@role_required(ADMINISTRATOR)
def connection_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    connection = get_object_or_404(CpmsConnection, pk=pk) if pk else CpmsConnection()
    form = ConnectionForm(request.POST or None, instance=connection)
    if request.method == "POST" and form.is_valid():
        connection = services.connection_save(
            connection=form.save(commit=False),
            secret=form.cleaned_data["secret"],
            clear_secret=form.cleaned_data["clear_secret"],
            user=request.user,
        )
        messages.success(request, _("Connection “%(name)s” saved.") % {"name": connection.name})
        return redirect("connect:connection-detail", pk=connection.pk)
    return render(request, "connect/connection_form.html", {"form": form, "connection": connection})


@role_required(ADMINISTRATOR)
def right_mappings(request: HttpRequest, pk: int) -> HttpResponse:
    """Map each product sold at the connection's car parks to a RightSpecification the CPMS publishes.

    The published specifications are read live from the CPMS (GET rights/specs); credential pushes
    refer to the mapped one. Same permission as editing the connection.
    """
    connection = get_object_or_404(CpmsConnection, pk=pk)
    specs, problem = services.right_specifications_published(connection=connection)
    mappings = {mapping.product_id: mapping for mapping in connection.right_mappings.all()}
    products = Product.objects.filter(carpark__cpms_link__connection=connection).select_related("carpark__cpms_link")
    rows = []
    for product in products.order_by("carpark__name", "name", "pk"):
        place_id = product.carpark.cpms_link.external_id
        offered = [spec for spec in specs if not spec.place_ids or place_id in spec.place_ids]
        rows.append((product, place_id, offered, mappings.get(product.pk)))
    form = RightMappingForm(request.POST if request.method == "POST" else None, rows=rows)
    if request.method == "POST":
        if problem:
            messages.error(request, _("Nothing saved: %(problem)s") % {"problem": problem})
        elif form.is_valid():
            chosen = {}
            for product, _place_id, offered, _mapping in rows:
                value = form.cleaned_data.get(form.field_name(product)) or ""
                by_id = {spec.id: spec for spec in offered}
                if value in by_id:
                    chosen[product] = by_id[value]
                elif not value:
                    chosen[product] = None
                # else: the mapped specification is no longer published and was left as it is.
            changed = services.right_mappings_save(connection=connection, chosen=chosen, user=request.user)
            messages.success(
                request,
                ngettext(
                    "RightSpecification mapping saved (%(count)s product changed).",
                    "RightSpecification mapping saved (%(count)s products changed).",
                    changed,
                )
                % {"count": changed},
            )
            return redirect("connect:connection-right-mappings", pk=connection.pk)
    refused = getattr(specs, "refused", [])
    return render(
        request,
        "connect/right_mappings.html",
        {"connection": connection, "form": form, "problem": problem, "specs": specs, "refused": refused},
    )


@role_required(*VIEW_ROLES)
@require_POST
def connection_test(request: HttpRequest, pk: int) -> HttpResponse:
    connection = _get_connection_for_user(request, pk)
    run, result = services.connection_test(connection=connection, user=request.user)
    if request.htmx:
        return render(request, "connect/_test_result.html", {"run": run, "result": result})
    (messages.success if result.ok else messages.error)(
        request, _("Connection test: %(message)s") % {"message": result.message}
    )
    return redirect("connect:connection-detail", pk=connection.pk)


@role_required(ADMINISTRATOR, SUPERVISOR)
@require_POST
def connection_sync(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    connection = _get_connection_for_user(request, pk)
    task = SYNC_TASKS.get(kind)
    if task is None:
        raise Http404
    transaction.on_commit(lambda: task.delay(connection.pk))
    label = dict(SyncRun.Kind.choices)[kind]
    messages.info(
        request,
        _("%(what)s of “%(name)s” queued; its progress shows here when it starts.")
        % {"what": label, "name": connection.name},
    )
    url = reverse("connect:connection-detail", args=[connection.pk])
    return redirect(f"{url}?since={timezone.now().timestamp():.3f}")


@role_required(*VIEW_ROLES)
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run, connection = _get_run_for_user(request, pk)
    # The records the feed had that were not stored, 50 a page (a run lists up to 1,000 of them).
    refused = Paginator(run.refused if isinstance(run.refused, list) else [], REFUSED_PER_PAGE)
    return render(
        request,
        "connect/run_detail.html",
        {
            "run": run,
            "connection": connection,
            "differences": selectors.differences_for(request.user, run),
            "refused": refused.get_page(request.GET.get("refused")),
            "refused_total": (run.details or {}).get("refused_total", len(run.refused or [])),
            "can_sync": has_role(request.user, *SYNC_ROLES),
        },
    )


def _get_run_for_user(request: HttpRequest, pk: int) -> tuple[SyncRun, CpmsConnection]:
    """The run and its connection if the user may see both (a manager: a run of one of their car parks)."""
    run = get_object_or_404(SyncRun.objects.select_related("connection", "carpark", "triggered_by"), pk=pk)
    connection = _get_connection_for_user(request, run.connection_id)
    scope = selectors.carpark_scope(request.user)
    if run.carpark_id and scope is not None and run.carpark_id not in scope:
        raise Http404
    return run, connection


@role_required(*SYNC_ROLES)
def run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """A run's progress (records done of total, failed so far, time left), polled every 2 s while it runs."""
    run, _connection = _get_run_for_user(request, pk)
    return render(request, "connect/_run_progress.html", {"run": run})


@role_required(*PANEL_ROLES)
def carpark_cpms(request: HttpRequest, pk: int) -> HttpResponse:
    """The CPMS panel of a car park, re-fetched by htmx every minute."""
    return render(request, "connect/_carpark_cpms.html", {"carpark": _get_carpark_for_user(request, pk)})


@role_required(*VIEW_ROLES)
@require_POST
def carpark_cpms_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask the CPMS for current occupancy now (all car parks of that connection come along)."""
    carpark = _get_carpark_for_user(request, pk)
    link = getattr(carpark, "cpms_link", None)
    error = ""
    if link is None:
        error = "This car park is not connected to a CPMS."
    else:
        try:
            services.sync_occupancy(connection=link.connection, user=request.user)
        except CpmsError as exc:
            error = f"The CPMS did not answer usefully: {exc}"
        carpark = _get_carpark_for_user(request, pk)
    return render(request, "connect/_carpark_cpms.html", {"carpark": carpark, "cpms_error": error})
