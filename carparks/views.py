"""Back-office pages for car parks, products, customers, contracts and cases.

Every view checks the role; objects that belong to a car park are looked up through the
``*_for_user`` querysets of :mod:`carparks.access`, so a car park the user is not responsible
for answers 404 and lists show only what the user may see.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.roles import ADMINISTRATOR, AGENT, CARE, FINANCE, MANAGER, SUPERVISOR, has_role, role_required
from carparks import selectors, services
from carparks.access import (
    CONTRACT_MANAGE_ROLES,
    CONTRACT_REVIEW_ROLES,
    OFFER_ACCEPT_ROLES,
    carparks_for_user,
    cases_for_user,
    contracts_for_user,
    customers_for_user,
    get_for_user,
    invoices_for_user,
    visible_carpark_ids,
)
from carparks.forms import (
    CarParkForm,
    CaseFilterForm,
    CaseForm,
    CaseNoteForm,
    CaseResolveForm,
    PlateChangeForm,
    QuotaForm,
    ReasonForm,
    StageChangeForm,
    TerminationForm,
    VehiclesAddForm,
)
from carparks.models import Case, Contract, Product
from parkinghq.list_search import search_term

VIEW_ROLES = (ADMINISTRATOR, SUPERVISOR, AGENT, CARE, FINANCE, MANAGER)
CASE_ROLES = (ADMINISTRATOR, SUPERVISOR, AGENT, CARE)
QUOTA_ROLES = (ADMINISTRATOR, SUPERVISOR, MANAGER)
CARPARK_ADD_ROLES = (ADMINISTRATOR, MANAGER)
CONTRACT_EDIT_ROLES = (ADMINISTRATOR, SUPERVISOR, AGENT, CARE)

# Transitions a person may trigger from the contract page (the others belong to the system).
CONTRACT_ACTIONS = {
    "approve": ("Approve", "success"),
    "activate": ("Activate", "success"),
    "accept_offer": ("Accept offer (for the customer)", "primary"),
    "suspend": ("Suspend", "warning"),
    "reactivate": ("Lift suspension", "success"),
    "reject": ("Reject", "danger"),
    "cancel": ("Cancel", "danger"),
}

# The roles that take each action (403 for the page's other roles); the transition's permission in
# carparks.models checks the same roles and the car park.
CONTRACT_ACTION_ROLES = {
    "approve": CONTRACT_REVIEW_ROLES,
    "reject": CONTRACT_REVIEW_ROLES,
    "activate": CONTRACT_REVIEW_ROLES,
    "accept_offer": OFFER_ACCEPT_ROLES,
    "suspend": CONTRACT_MANAGE_ROLES,
    "reactivate": CONTRACT_MANAGE_ROLES,
    "cancel": CONTRACT_MANAGE_ROLES,
}


def _page(request: HttpRequest, qs: Any, per_page: int = 25) -> Any:
    return Paginator(qs, per_page).get_page(request.GET.get("page"))


def _error(request: HttpRequest, exc: Exception) -> None:
    messages.error(request, str(exc) or _("That is not allowed."))


def _contract_change(
    request: HttpRequest, pk: int, change: Callable[[], Any], done: Callable[[Any], str]
) -> HttpResponse:
    """Run ``change`` on contract ``pk``: its error, or ``done(result)``, as a message; then back to
    the contract's page."""
    try:
        result = change()
    except (services.CarparkError, PermissionDenied) as exc:
        _error(request, exc)
    else:
        messages.success(request, done(result))
    return redirect("carparks:contract-detail", pk=pk)


# --- car parks and products ---------------------------------------------------------------------


@role_required(*VIEW_ROLES)
def carpark_list(request: HttpRequest) -> HttpResponse:
    qs = selectors.carparks_with_stats(request.user).order_by("name")
    q = search_term(request.GET, "carpark_search")
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(city__icontains=q) | Q(code__icontains=q))
    page = _page(request, qs)
    return render(
        request,
        "carparks/carpark_list.html",
        {
            "page": page,
            "carparks": page.object_list,
            "q": q,
            "may_add": has_role(request.user, *CARPARK_ADD_ROLES),
        },
    )


@role_required(*CARPARK_ADD_ROLES)
def carpark_create(request: HttpRequest) -> HttpResponse:
    form = CarParkForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            carpark = services.carpark_create(**form.cleaned_data, user=request.user, source="portal")
        except services.CarparkError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            text = _("Car park %(name)s was added (code %(code)s).") % {"name": carpark.name, "code": carpark.code}
            if has_role(request.user, MANAGER) and not has_role(request.user, ADMINISTRATOR):
                text += " " + _("You are responsible for it.")
            messages.success(request, text)
            return redirect("carparks:carpark-detail", pk=carpark.pk)
    return render(request, "carparks/carpark_form.html", {"form": form})


@role_required(*VIEW_ROLES)
def carpark_detail(request: HttpRequest, pk: int) -> HttpResponse:
    carpark = get_for_user(carparks_for_user(request.user), pk)
    products = list(selectors.products_with_availability(carpark.products.all()).order_by("name"))
    waitlists = [(product, list(selectors.product_waitlist(product)[:20])) for product in products]
    active = (
        Contract.objects.filter(product__carpark=carpark, state=Contract.State.ACTIVE)
        .select_related("customer", "product")
        .order_by("customer__name")
    )
    page = _page(request, active)
    return render(
        request,
        "carparks/carpark_detail.html",
        {
            "carpark": carpark,
            "products": products,
            "waitlists": [(p, w) for p, w in waitlists if w],
            "page": page,
            "contracts": page.object_list,
            "sold": sum(p.places_taken for p in products),
            "may_set_quota": has_role(request.user, *QUOTA_ROLES),
            "may_edit": _may_edit_carpark(request.user, carpark.pk),
        },
    )


def _may_edit_carpark(user: Any, carpark_id: int) -> bool:
    from carparks.product_views import may_edit

    return may_edit(user, carpark_id)


@role_required(*VIEW_ROLES)
def product_list(request: HttpRequest) -> HttpResponse:
    qs = selectors.products_with_availability(
        Product.objects.filter(carpark__in=carparks_for_user(request.user)).select_related("carpark")
    ).order_by("carpark__name", "name")
    page = _page(request, qs, 50)
    return render(
        request,
        "carparks/product_list.html",
        {"page": page, "products": page.object_list, "may_set_quota": has_role(request.user, *QUOTA_ROLES)},
    )


@role_required(*QUOTA_ROLES)
@require_POST
def product_quota(request: HttpRequest, pk: int) -> HttpResponse:
    product = get_for_user(Product.objects.filter(carpark__in=carparks_for_user(request.user)), pk)
    form = QuotaForm(request.POST)
    if form.is_valid():
        before = product.quota
        try:
            product = services.product_set_quota(product=product, quota=form.cleaned_data["quota"], user=request.user)
        except services.CarparkError as exc:
            _error(request, exc)
        else:
            messages.success(
                request,
                _("Quota of %(name)s changed from %(before)s to %(after)s.")
                % {"name": product.name, "before": before, "after": product.quota},
            )
    else:
        messages.error(request, _("Enter a quota of 0 or more."))
    return redirect("carparks:carpark-detail", pk=product.carpark_id)


# --- customers ----------------------------------------------------------------------------------


# The customer list and page live in carparks.customer_views.


# --- contracts ----------------------------------------------------------------------------------


def _contract_for(request: HttpRequest, pk: int) -> Contract:
    qs = contracts_for_user(request.user).select_related("customer", "product__carpark", "next_product")
    return get_for_user(qs, pk)


@role_required(*VIEW_ROLES)
def contract_detail(request: HttpRequest, pk: int) -> HttpResponse:
    contract = _contract_for(request, pk)
    processes = selectors.processes_about(contract)
    reviewing = selectors.under_review(processes)
    actions = []
    # The transitions' conditions and permissions decide (approve and reject wait while the review task is
    # open); contract_action refuses the same on a direct POST.
    for transition in contract.get_available_user_state_transitions(request.user):
        if transition.name in CONTRACT_ACTIONS:
            label, style = CONTRACT_ACTIONS[transition.name]
            actions.append({"name": transition.name, "label": label, "style": style})
    running = contract.state in (Contract.State.APPROVED, Contract.State.ACTIVE, Contract.State.SUSPENDED)
    may_edit = has_role(request.user, *CONTRACT_EDIT_ROLES) and not contract.is_final
    return render(
        request,
        "carparks/contract_detail.html",
        {
            "contract": contract,
            "vehicles": contract.vehicles.all(),
            "credentials": contract.credentials.order_by("-is_active", "kind", "identifier"),
            "events": contract.events.select_related("actor"),
            "cases": contract.cases.order_by("-created_at"),
            "processes": processes,
            "reviewing": reviewing,
            "actions": actions,
            "may_terminate": running and has_transition_perm_safe(contract, request.user),
            "termination_form": TerminationForm(initial={"end_date": services.earliest_end_date(contract)}),
            "plate_form": PlateChangeForm(contract=contract) if may_edit else None,
            "vehicles_form": VehiclesAddForm() if may_edit else None,
            "stage_form": StageChangeForm(contract=contract) if may_edit and running else None,
            "may_issue_card": may_edit and contract.state in (Contract.State.APPROVED, Contract.State.ACTIVE),
            "earliest_end": services.earliest_end_date(contract),
            "waitlist_rank": _waitlist_rank(contract),
        },
    )


def has_transition_perm_safe(contract: Contract, user: Any) -> bool:
    from django_fsm import has_transition_perm

    return has_transition_perm(contract.terminate, user)


def _waitlist_rank(contract: Contract) -> int | None:
    if contract.state != Contract.State.WAITLISTED:
        return None
    return (
        Contract.objects.filter(
            product_id=contract.product_id,
            state=Contract.State.WAITLISTED,
            waitlist_position__lt=contract.waitlist_position,
        ).count()
        + 1
    )


@role_required(*VIEW_ROLES)
def contract_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action in CONTRACT_ACTION_ROLES and not has_role(request.user, *CONTRACT_ACTION_ROLES[action]):
        raise PermissionDenied  # a role that never takes this step: 403, before anything is looked up
    return _contract_action(request, pk, action)


@require_POST
def _contract_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    contract = _contract_for(request, pk)
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    user = request.user
    calls = {
        "approve": lambda: services.contract_approve(contract=contract, user=user, note=reason),
        "activate": lambda: services.contract_activate(contract=contract, user=user, note=reason),
        "accept_offer": lambda: services.contract_offer_accept(contract=contract, user=user),
        "suspend": lambda: services.contract_suspend(contract=contract, user=user, reason=reason),
        "reactivate": lambda: services.contract_reactivate(contract=contract, user=user, reason=reason),
        "reject": lambda: services.contract_reject(contract=contract, user=user, reason=reason),
        "cancel": lambda: services.contract_cancel(contract=contract, user=user, reason=reason),
    }
    if action not in calls:
        messages.error(request, _("'%(action)s' is not an action on contracts.") % {"action": action})
        return redirect("carparks:contract-detail", pk=pk)
    try:
        updated = calls[action]()
    except (services.CarparkError, PermissionDenied) as exc:
        _error(request, exc)
    else:
        if updated.is_final:
            services.contract_processes_close(contract=updated, user=user, reason=reason)
        messages.success(
            request,
            _("Contract %(number)s is now %(state)s.") % {"number": pk, "state": updated.get_state_display().lower()},
        )
    return redirect("carparks:contract-detail", pk=pk)


@role_required(*VIEW_ROLES)
@require_POST
def contract_terminate(request: HttpRequest, pk: int) -> HttpResponse:
    if not has_role(request.user, *CONTRACT_MANAGE_ROLES):
        raise PermissionDenied  # the roles that give notice, as the transition's permission
    contract = _contract_for(request, pk)
    form = TerminationForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Enter a valid end date."))
        return redirect("carparks:contract-detail", pk=pk)
    waive = form.cleaned_data["waive_notice"]
    if waive and not has_role(request.user, SUPERVISOR, ADMINISTRATOR):
        messages.error(request, _("Only supervisors may waive the notice period."))
        return redirect("carparks:contract-detail", pk=pk)
    return _contract_change(
        request,
        pk,
        lambda: services.contract_request_termination(
            contract=contract,
            user=request.user,
            end_date=form.cleaned_data["end_date"],
            reason=form.cleaned_data["reason"],
            enforce_notice=not waive,
        ),
        lambda ended: (
            _("Contract %(number)s ends on %(date)s.")
            % {"number": pk, "date": date_format(ended.end_date, "SHORT_DATE_FORMAT")}
        ),
    )


@role_required(*CONTRACT_EDIT_ROLES)
@require_POST
def contract_plate(request: HttpRequest, pk: int) -> HttpResponse:
    contract = _contract_for(request, pk)
    form = PlateChangeForm(request.POST, contract=contract)
    if not form.is_valid():
        messages.error(request, _("Choose the current plate and enter the new one."))
        return redirect("carparks:contract-detail", pk=pk)
    return _contract_change(
        request,
        pk,
        lambda: services.contract_change_plate(contract=contract, user=request.user, **form.cleaned_data),
        lambda changed: _("Plate changed to %(plate)s.") % {"plate": form.cleaned_data["new_plate"]},
    )


@role_required(*CONTRACT_EDIT_ROLES)
@require_POST
def contract_vehicles_add(request: HttpRequest, pk: int) -> HttpResponse:
    contract = _contract_for(request, pk)
    form = VehiclesAddForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Enter at least one plate, one per line."))
        return redirect("carparks:contract-detail", pk=pk)
    return _contract_change(
        request,
        pk,
        lambda: services.contract_add_vehicles(
            contract=contract, vehicles=form.cleaned_data["plates"], user=request.user
        ),
        lambda changed: (
            f"{len(form.cleaned_data['plates'])} vehicle(s) added."
            if getattr(changed, "change_request", None) is None
            else f"More vehicles than the contract's places allow: change request {changed.change_request.pk} "
            f"for {changed.change_request.places_requested} places waits for review."
        ),
    )


@role_required(*CONTRACT_EDIT_ROLES)
@require_POST
def contract_stage(request: HttpRequest, pk: int) -> HttpResponse:
    contract = _contract_for(request, pk)
    form = StageChangeForm(request.POST, contract=contract)
    if not form.is_valid():
        messages.error(request, _("Choose a product of this car park and a valid date."))
        return redirect("carparks:contract-detail", pk=pk)
    return _contract_change(
        request,
        pk,
        lambda: services.contract_stage_change(contract=contract, user=request.user, **form.cleaned_data),
        lambda staged: (
            _("Change staged for %(date)s.") % {"date": date_format(staged.next_change_on, "SHORT_DATE_FORMAT")}
        ),
    )


@role_required(*CONTRACT_EDIT_ROLES)
@require_POST
def contract_card(request: HttpRequest, pk: int) -> HttpResponse:
    contract = _contract_for(request, pk)
    try:
        card = services.credential_issue_card(contract=contract, user=request.user)
    except services.CarparkError as exc:
        _error(request, exc)
    else:
        messages.success(
            request, _("RFID card %(card)s issued; earlier cards stop working.") % {"card": card.identifier}
        )
    return redirect("carparks:contract-detail", pk=pk)


# --- cases --------------------------------------------------------------------------------------


@role_required(*CASE_ROLES)
def case_list(request: HttpRequest) -> HttpResponse:
    form = CaseFilterForm(request.GET or {"state": "open"})
    qs = cases_for_user(request.user).select_related("customer", "contract", "assignee")
    if form.is_valid():
        data = form.cleaned_data
        if data["state"] == "open":
            qs = qs.filter(state__in=Case.OPEN_STATES)
        elif data["state"]:
            qs = qs.filter(state=data["state"])
        if data["kind"]:
            qs = qs.filter(kind=data["kind"])
        if data["priority"]:
            qs = qs.filter(priority=data["priority"])
        if data["mine"]:
            qs = qs.filter(assignee=request.user)
    page = _page(request, qs.order_by("sla_due_at", "pk"))
    return render(
        request,
        "carparks/case_list.html",
        {"form": form, "page": page, "cases": page.object_list, "now": timezone.now()},
    )


@role_required(*CASE_ROLES)
def case_create(request: HttpRequest, customer_pk: int) -> HttpResponse:
    customer = get_for_user(customers_for_user(request.user), customer_pk)
    form = CaseForm(
        request.POST or None,
        customer=customer,
        contracts=contracts_for_user(request.user, customer.contracts.all()),
        initial={"contract": request.GET.get("contract")},
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        invoice_id = _invoice_lookup(request.user, customer, data["invoice_id"]) if data["invoice_id"] else None
        if data["invoice_id"] and invoice_id is None:
            form.add_error(
                "invoice_id",
                _("%(customer)s has no invoice %(number)s you may see. Enter it as printed, e.g. INV2026-000133.")
                % {"customer": customer.name, "number": data["invoice_id"]},
            )
            return render(request, "carparks/case_form.html", {"form": form, "customer": customer})
        try:
            case = services.case_open(
                customer=customer,
                kind=data["kind"],
                subject=data["subject"],
                description=data["description"],
                contract=data["contract"],
                invoice_id=invoice_id,
                priority=data["priority"] or None,
                user=request.user,
            )
        except services.CarparkError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            messages.success(
                request,
                _("Case %(number)s opened; due %(due)s.")
                % {"number": case.pk, "due": date_format(timezone.localtime(case.sla_due_at), "SHORT_DATETIME_FORMAT")},
            )
            return redirect("carparks:case-detail", pk=case.pk)
    return render(request, "carparks/case_form.html", {"form": form, "customer": customer})


INVOICE_NUMBER = re.compile(r"(?P<series>[A-Za-z0-9]+)-(?P<number>\d{1,9})")


def _invoice_lookup(user: Any, customer: Any, text: str) -> int | None:
    """The id of ``customer``'s invoice numbered ``text`` (as printed, ``INV2026-000133``; bare digits
    are the invoice's id) billing a car park ``user`` sees; None if there is none. Without billing,
    bare digits pass as they are."""
    text = text.strip()
    match = INVOICE_NUMBER.fullmatch(text)
    related = getattr(customer, "invoices", None)
    if related is None:
        return int(text) if text.isdigit() else None
    if match:
        rows = related.filter(series__iexact=match["series"], number=int(match["number"]))
    elif text.isdigit() and len(text) < 19:
        rows = related.filter(pk=int(text))
    else:
        return None
    return invoices_for_user(user, rows).values_list("pk", flat=True).first()


def _case_invoice(user: Any, case: Case) -> Any:
    """The case's invoice if the user may see it (for its printed number and a link), else None."""
    related = getattr(case.customer, "invoices", None)
    if not case.invoice_id or related is None:
        return None
    return invoices_for_user(user, related.filter(pk=case.invoice_id)).first()


def _case_for(request: HttpRequest, pk: int) -> Case:
    return get_for_user(cases_for_user(request.user).select_related("customer", "contract", "assignee"), pk)


@role_required(*CASE_ROLES)
def case_detail(request: HttpRequest, pk: int) -> HttpResponse:
    case = _case_for(request, pk)
    return render(
        request,
        "carparks/case_detail.html",
        {
            "case": case,
            "events": case.events.select_related("actor"),
            "processes": selectors.processes_about(case),
            "invoice": _case_invoice(request.user, case),
            "note_form": CaseNoteForm(),
            "resolve_form": CaseResolveForm(),
            "now": timezone.now(),
        },
    )


@role_required(*CASE_ROLES)
@require_POST
def case_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    case = _case_for(request, pk)
    try:
        if action == "take":
            services.case_assign(case=case, assignee=request.user, user=request.user)
            messages.success(request, _("Case %(number)s is assigned to you.") % {"number": pk})
        elif action == "note":
            form = CaseNoteForm(request.POST)
            if not form.is_valid():
                raise services.CarparkError("Write a note.")
            services.case_add_note(case=case, note=form.cleaned_data["note"], user=request.user)
            messages.success(request, _("Note added."))
        elif action == "resolve":
            form = CaseResolveForm(request.POST)
            if not form.is_valid():
                raise services.CarparkError("Write the resolution the customer will read.")
            services.case_resolve(case=case, resolution=form.cleaned_data["resolution"], user=request.user)
            messages.success(request, _("Case %(number)s is resolved.") % {"number": pk})
        elif action == "reopen":
            services.case_reopen(case=case, user=request.user)
            messages.success(request, _("Case %(number)s is open again.") % {"number": pk})
        elif action == "close":
            services.case_close(case=case, user=request.user)
            messages.success(request, _("Case %(number)s is closed.") % {"number": pk})
        else:
            messages.error(request, _("'%(action)s' is not an action on cases.") % {"action": action})
    except services.CarparkError as exc:
        _error(request, exc)
    return redirect("carparks:case-detail", pk=pk)


# --- search -------------------------------------------------------------------------------------


@role_required(*VIEW_ROLES)
def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    results = selectors.search(request.user, query)
    total = sum(len(rows) for rows in results.values())
    return render(
        request,
        "carparks/search.html",
        {"q": query, "results": results, "total": total, "scoped": visible_carpark_ids(request.user) is not None},
    )
