"""The task basket's pages: the tabs with filters, the task page and its actions, absences.

Views are thin: check login, role and the right on the task, call a service, redirect. Every
action is a POST with CSRF; a user without the right gets 403.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import role_label, role_required
from parkinghq.http import is_safe_redirect
from workflows import basket_selectors as sel
from workflows.basket_forms import AbsenceForm, BasketFilterForm, DelegateForm, EscalateForm, TaskInputsForm
from workflows.basket_services import (
    absence_create,
    absence_delete,
    task_cant_decide,
    task_claim_with_case,
    task_release_keeping,
    task_route,
    task_save_draft,
    task_take_over,
)
from workflows.compiler import graph_for_version
from workflows.errors import InvalidInputs, TaskPermissionDenied, WorkflowError
from workflows.models import Absence, Task
from workflows.services import (
    can_work_on,
    process_history,
    task_complete,
    task_load,
)
from workflows.step_names import StepNames

PAGE_SIZE = 25


def _name(user: Any) -> str:
    return user.get_full_name() or user.username


# The task page's form is sent along by "Can't decide", "Delegate" and "Release" (their buttons
# belong to it), marked by this field: only then are the typed entries kept on the task.
WITH_INPUTS = "with_inputs"


def _typed(request: HttpRequest, task: Task) -> tuple[TaskInputsForm, dict[str, Any] | None, str]:
    """The task page's entries sent with an action: the form, the draft to keep (None when the
    action was sent without them) and the comment."""
    form = TaskInputsForm(request.POST, request.FILES, task=task)
    names = {WITH_INPUTS, "comment", *(spec["name"] for spec in task.input_fields)}
    if not names & (set(request.POST) | set(request.FILES)):
        return form, None, ""
    return form, form.draft(), request.POST.get("comment", "")


def _draft_note(task: Task) -> str:
    """ "Entries saved by <name> when escalating", for whoever opens the task next."""
    draft = task.draft or {}
    if not draft.get("by_name") or not task.is_active:
        return ""
    texts = {
        "escalate": _("Entries saved by %(name)s when escalating"),
        "delegate": _("Entries saved by %(name)s when delegating"),
        "release": _("Entries saved by %(name)s when releasing"),
    }
    return texts.get(draft.get("action"), _("Entries saved by %(name)s")) % {"name": draft["by_name"]}


# -- the basket ----------------------------------------------------------------------------------
@role_required()
@require_GET
def basket(request: HttpRequest) -> HttpResponse:
    user = request.user
    tab = request.GET.get("tab") or "queue"
    supervisor = sel.is_supervisor(user)
    if tab not in sel.TABS or (tab == "team" and not supervisor):
        tab = "queue"
    choices = sel.filter_choices(user)
    form = BasketFilterForm(request.GET, choices=choices)
    filters = form.filters()
    counts = sel.basket_counts(user)
    rows = sel.basket_tasks(user, tab=tab, filters=filters)
    paginator = Paginator(rows, PAGE_SIZE)
    if tab in counts and filters.is_empty:
        paginator.count = counts[tab]  # known already: spares a COUNT over the tab (cached_property)
    page = paginator.get_page(request.GET.get("page"))
    tasks = list(page.object_list)
    names = dict(choices["carparks"])
    missing = {t.scope_carpark_id for t in tasks} - names.keys()
    if missing - {None}:
        names.update(sel.carpark_names(missing))
    for task in tasks:
        task.carpark_name = names.get(task.scope_carpark_id, "")
    context = {
        "tab": tab,
        "form": form,
        "page": page,
        "tasks": tasks,
        "supervisor": supervisor,
        "counts": counts,
        "query": _query_without(request, "page"),
        "tab_query": _query_without(request, "page", "tab"),
    }
    target = request.htmx.target if request.htmx else None
    if target == "basket-results":
        return render(request, "workflows/basket/_results.html", context)
    if target == "basket-body":
        return render(request, "workflows/basket/_body.html", context)
    return render(request, "workflows/basket/basket.html", context)


def _query_without(request: HttpRequest, *names: str) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


@role_required()
@require_GET
def basket_count(request: HttpRequest) -> HttpResponse:
    """The navigation badge (polled by htmx): open tasks in my queue plus my claimed ones."""
    counts = sel.basket_counts(request.user)
    context = {"counts": counts, "total": counts["queue"] + counts["mine"]}
    # The navigation takes only #basket-count from the answer (hx-select): should the session have
    # expired, the login page it is redirected to puts nothing into the badge.
    return HttpResponse(render_to_string("workflows/basket/_count.html", context, request).strip())


# -- the task page -------------------------------------------------------------------------------
def _task_for(request: HttpRequest, pk: int) -> Task:
    task = get_object_or_404(
        Task.objects.select_related("process__definition", "process__version", "assignee", "completed_by"), pk=pk
    )
    if not sel.can_see_task(request.user, task):
        raise PermissionDenied
    return task


def _task_for_action(request: HttpRequest, pk: int) -> Task:
    """The task for an action that redirects (claim, release, complete): one lean query; its
    process holds only id, version and state, so a page rendered on error loads it fully."""
    task = task_load(pk)
    if task is None:
        raise Http404("No task with this number.")
    if not sel.can_see_task(request.user, task):
        raise PermissionDenied
    return task


def _back(request: HttpRequest, task: Task) -> HttpResponseRedirect:
    return redirect("workflows:task-detail", pk=task.pk)


@role_required()
@require_GET
def task_detail(request: HttpRequest, pk: int) -> HttpResponse:
    task = _task_for(request, pk)
    return _render_task(request, task)


def _render_task(
    request: HttpRequest,
    task: Task,
    *,
    inputs_form: TaskInputsForm | None = None,
    escalate_form: EscalateForm | None = None,
    status: int = 200,
) -> HttpResponse:
    user = request.user
    may_work = can_work_on(user, task)
    supervisor = sel.is_supervisor(user)
    mine = task.assignee_id == user.pk
    active = task.is_active
    process = task.process
    business = process.business_object if process.content_type_id else None
    colleagues = sel.colleagues_for(task, exclude=user) if active and (may_work or supervisor) else None
    history = process_history(process)
    labels = StepNames()
    for event in history:
        event.step_name = labels.of_process(process, event.step_id)
    context = {
        "task": task,
        "process": process,
        "summary": sel.business_summary(business),
        "carpark_name": sel.carpark_names({task.scope_carpark_id}).get(task.scope_carpark_id, ""),
        "history": history,
        "outcomes": task.outcome_names if active else [],
        "inputs_form": inputs_form
        or TaskInputsForm(task=task, initial={"comment": (task.draft or {}).get("comment", "")}),
        "escalate_form": escalate_form or EscalateForm(),
        "delegate_form": DelegateForm(colleagues=colleagues) if colleagues is not None else None,
        "draft_note": _draft_note(task),
        "draft_at": parse_datetime((task.draft or {}).get("at") or ""),
        "may_work": may_work and active and (task.assignee_id is None or mine),
        "may_claim": may_work and task.state == Task.State.OPEN,
        "may_release": task.state == Task.State.CLAIMED and (mine or supervisor),
        "may_delegate": active and may_work and (mine or task.assignee_id is None),
        "may_reassign": active and supervisor,
        "may_take_over": active and supervisor and not mine,
        "supervisor": supervisor,
        "absence": sel.active_absence(task.assignee) if task.assignee_id and not mine else None,
    }
    if context["may_work"]:  # the actions' fields belong to the task form, so its entries go with them
        # (not "required" in the browser: that would stop the outcome buttons; the server checks them)
        context["escalate_form"].use_required_attribute = False
        context["escalate_form"].fields["reason"].widget.attrs["form"] = "task-form"
        if context["delegate_form"] is not None and context["may_delegate"]:
            context["delegate_form"].use_required_attribute = False
            context["delegate_form"].fields["to_user"].widget.attrs["form"] = "task-form"
    steps = graph_for_version(process.version_id).steps
    if active and (steps.get(task.step_id) or {}).get("timeout"):  # only such steps have a timer to look up
        context["closes"] = sel.task_closes_at(task)
        following = context["closes"].data.get("next", "") if context["closes"] else ""
        context["closes_step_name"] = (steps.get(following) or {}).get("name") or following
    return render(request, "workflows/basket/task.html", context, status=status)


@role_required()
@require_POST
def task_claim_view(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        task = task_claim_with_case(task_id=pk, user=request.user)  # checks the right in the same statement
    except Task.DoesNotExist as exc:
        raise Http404(_("No task with this number.")) from exc
    except TaskPermissionDenied as exc:
        raise PermissionDenied(str(exc)) from exc
    except WorkflowError as exc:
        messages.error(request, str(exc))
        return redirect(_next(request) or reverse("workflows:basket"))
    messages.success(request, _("You claimed “%(task)s”.") % {"task": task.name})
    return _back(request, task)


def _next(request: HttpRequest) -> str | None:
    url = request.POST.get("next") or ""
    return url if is_safe_redirect(request, url) else None


@role_required()
@require_POST
def task_release_view(request: HttpRequest, pk: int) -> HttpResponse:
    task = _task_for_action(request, pk)
    if not (task.assignee_id == request.user.pk or sel.is_supervisor(request.user)):
        raise PermissionDenied
    inputs_form, inputs, comment = _typed(request, task)
    if inputs is not None and inputs_form.draft_refused():
        return _render_task(request, _task_for(request, pk), inputs_form=inputs_form, status=400)
    try:
        task_release_keeping(task=task, user=request.user, inputs=inputs, comment=comment)
    except TaskPermissionDenied as exc:
        raise PermissionDenied(str(exc)) from exc
    except WorkflowError as exc:
        messages.error(request, str(exc))
        if inputs is not None:
            return _render_task(request, _task_for(request, pk), inputs_form=inputs_form, status=409)
        return _back(request, task)
    messages.success(request, _("“%(task)s” is back in the queue.") % {"task": task.name})
    return redirect("workflows:basket")


@role_required()
@require_POST
def task_complete_view(request: HttpRequest, pk: int) -> HttpResponse:
    task = _task_for_action(request, pk)
    user = request.user
    if not can_work_on(user, task) or task.assignee_id not in (None, user.pk):
        raise PermissionDenied
    form = TaskInputsForm(request.POST, request.FILES, task=task)
    if request.POST.get("action") == "save":
        if form.draft_refused():
            return _render_task(request, _task_for(request, pk), inputs_form=form, status=400)
        try:
            task_save_draft(task=task, user=user, inputs=form.draft())
        except TaskPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        except WorkflowError as exc:
            messages.error(request, str(exc))
            return _back(request, task)
        messages.success(request, _("Your entries are saved on the task."))
        return _back(request, task)
    outcome = request.POST.get("outcome", "")
    if outcome not in task.outcome_names:
        messages.error(request, _("Choose one of the task's outcomes."))
        return _render_task(request, _task_for(request, pk), inputs_form=form, status=400)
    if not form.is_valid():
        return _render_task(request, _task_for(request, pk), inputs_form=form, status=400)
    try:
        task_complete(task=task, user=user, outcome=outcome, inputs=form.inputs(), comment=form.cleaned_data["comment"])
    except InvalidInputs as exc:
        for name, error in exc.field_errors.items():
            form.add_error(name if name in form.fields else None, error)
        return _render_task(request, _task_for(request, pk), inputs_form=form, status=400)
    except TaskPermissionDenied as exc:
        raise PermissionDenied(str(exc)) from exc
    except WorkflowError as exc:
        messages.error(request, str(exc))
        return _render_task(request, _task_for(request, pk), inputs_form=form, status=409)
    messages.success(request, _("“%(task)s” completed: %(outcome)s.") % {"task": task.name, "outcome": outcome})
    return redirect("workflows:basket")


@role_required()
@require_POST
def task_escalate_view(request: HttpRequest, pk: int) -> HttpResponse:
    """ "Can't decide": keep what was entered, escalate with a reason."""
    task = _task_for(request, pk)
    user = request.user
    if not can_work_on(user, task) or task.assignee_id not in (None, user.pk):
        raise PermissionDenied
    form = EscalateForm(request.POST)
    inputs_form, inputs, comment = _typed(request, task)
    if not form.is_valid() or (inputs is not None and inputs_form.draft_refused()):
        form.is_valid()
        return _render_task(request, task, inputs_form=inputs_form, escalate_form=form, status=400)
    try:
        new = task_cant_decide(task=task, user=user, reason=form.cleaned_data["reason"], inputs=inputs, comment=comment)
    except TaskPermissionDenied as exc:
        raise PermissionDenied(str(exc)) from exc
    except WorkflowError as exc:
        messages.error(request, str(exc))
        return _render_task(request, _task_for(request, pk), inputs_form=inputs_form, escalate_form=form, status=409)
    messages.success(
        request,
        _("“%(task)s” was escalated to %(role)s with everything you entered.")
        % {"task": task.name, "role": role_label(new.role)},
    )
    return redirect("workflows:basket")


def _route(request: HttpRequest, pk: int, *, reassign: bool) -> HttpResponse:
    task = _task_for(request, pk)
    user = request.user
    if reassign:
        if not sel.is_supervisor(user):
            raise PermissionDenied
    elif not can_work_on(user, task) or task.assignee_id not in (None, user.pk):
        raise PermissionDenied
    form = DelegateForm(request.POST, colleagues=sel.colleagues_for(task, exclude=user))
    inputs_form, inputs, comment = _typed(request, task)
    if reassign:
        inputs = None  # a supervisor reassigning someone else's task types nothing on it
    if not form.is_valid() or (inputs is not None and inputs_form.draft_refused()):
        if not form.is_valid():
            messages.error(request, _("Choose a colleague who can work on this task."))
        if inputs is not None:
            return _render_task(request, task, inputs_form=inputs_form, status=400)
        return _back(request, task)
    colleague = form.cleaned_data["to_user"]
    try:
        __, target = task_route(task=task, user=user, to_user=colleague, inputs=inputs, comment=comment)
    except WorkflowError as exc:
        messages.error(request, str(exc))
        if inputs is not None:
            return _render_task(request, _task_for(request, pk), inputs_form=inputs_form, status=409)
        return _back(request, task)
    if target.pk != colleague.pk:
        messages.success(
            request,
            _("%(colleague)s is away; “%(task)s” went to their substitute %(substitute)s.")
            % {"colleague": _name(colleague), "task": task.name, "substitute": _name(target)},
        )
    else:
        messages.success(request, _("“%(task)s” is now with %(name)s.") % {"task": task.name, "name": _name(target)})
    return redirect("workflows:basket") if not reassign else _back(request, task)


@role_required()
@require_POST
def task_delegate_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _route(request, pk, reassign=False)


@role_required()
@require_POST
def task_reassign_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _route(request, pk, reassign=True)


@role_required()
@require_POST
def task_take_over_view(request: HttpRequest, pk: int) -> HttpResponse:
    task = _task_for(request, pk)
    if not sel.is_supervisor(request.user):
        raise PermissionDenied
    try:
        task_take_over(task=task, user=request.user)
    except WorkflowError as exc:
        messages.error(request, str(exc))
        return _back(request, task)
    messages.success(request, _("You took over “%(task)s”.") % {"task": task.name})
    return _back(request, task)


# -- absences ------------------------------------------------------------------------------------
def _substitutes(user: Any) -> Any:
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__isnull=False)
        .exclude(pk=user.pk)
        .distinct()
        .order_by("first_name", "last_name", "username")
    )


@role_required()
def absence_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    form = AbsenceForm(request.POST or None, substitutes=_substitutes(user))
    if request.method == "POST" and form.is_valid():
        try:
            absence = absence_create(user=user, **form.cleaned_data)
        except WorkflowError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                _("While you are away (%(first)s–%(last)s) tasks routed to you go to %(substitute)s.")
                % {
                    "first": formats.date_format(absence.starts_on, "SHORT_DATE_FORMAT"),
                    "last": formats.date_format(absence.ends_on, "SHORT_DATE_FORMAT"),
                    "substitute": _name(absence.substitute),
                },
            )
            return redirect("workflows:absence-list")
    absences = Absence.objects.select_related("substitute").filter(user=user).order_by("-starts_on")
    standing_in = Absence.objects.select_related("user").filter(substitute=user).order_by("-starts_on")[:20]
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "workflows/basket/absences.html",
        {"form": form, "absences": absences, "standing_in": standing_in},
        status=status,
    )


@role_required()
@require_POST
def absence_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    absence = get_object_or_404(Absence, pk=pk)
    try:
        absence_delete(absence=absence, user=request.user)
    except TaskPermissionDenied as exc:
        raise PermissionDenied(str(exc)) from exc
    messages.success(request, _("The absence is cancelled."))
    return redirect("workflows:absence-list")
