"""Customer pages: list, detail, New customer (with its duplicate check), Edit, Merge and the
possible-duplicate review.

Who may: every back-office role sees customers of the car parks it is responsible for (see
``carparks.access``); Back-office agents, Customer care, Supervisors and Administrators create and
edit; Supervisors and Administrators merge.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.roles import ADMINISTRATOR, AGENT, CARE, FINANCE, MANAGER, SUPERVISOR, has_role, role_required
from carparks import customer_services, selectors, services
from carparks.access import cases_for_user, contracts_for_user, customers_for_user, get_for_user, visible_carpark_ids
from carparks.customer_forms import CustomerCreateForm, CustomerForm, CustomerMergeForm
from carparks.forms import CustomerFilterForm
from carparks.models import Contract, Credential, Customer
from parkinghq.list_search import search_data

VIEW_ROLES = (ADMINISTRATOR, SUPERVISOR, AGENT, CARE, FINANCE, MANAGER)
CUSTOMER_EDIT_ROLES = (ADMINISTRATOR, SUPERVISOR, AGENT, CARE)
CASE_ROLES = (ADMINISTRATOR, SUPERVISOR, AGENT, CARE)
MERGE_ROLES = (ADMINISTRATOR, SUPERVISOR)


def _form_error(form: Any, exc: services.CarparkError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, str(exc))


@role_required(*VIEW_ROLES)
def customer_list(request: HttpRequest) -> HttpResponse:
    form = CustomerFilterForm(search_data(request.GET, "customer_search"))
    qs = customers_for_user(request.user)
    if form.is_valid():
        if form.cleaned_data["customer_search"]:
            q = form.cleaned_data["customer_search"]
            qs = qs.filter(Q(name__icontains=q) | Q(email__icontains=q) | Q(company_number__iexact=q))
        if form.cleaned_data["kind"]:
            qs = qs.filter(kind=form.cleaned_data["kind"])
    # Counts of what the user sees (the contracts join is the one customers_for_user filtered on).
    vehicles = None
    if visible_carpark_ids(request.user) is not None:
        vehicles = Q(vehicles__in=selectors.vehicles_for_user(request.user).values("pk"))
    qs = qs.annotate(
        contract_count=Count("contracts", distinct=True),
        active_count=Count("contracts", filter=Q(contracts__state=Contract.State.ACTIVE), distinct=True),
        vehicle_count=Count("vehicles", filter=vehicles, distinct=True),
    ).order_by("name", "pk")
    page = Paginator(qs, 25).get_page(request.GET.get("page"))
    return render(
        request,
        "carparks/customer_list.html",
        {
            "form": form,
            "page": page,
            "customers": page.object_list,
            "may_add": has_role(request.user, *CUSTOMER_EDIT_ROLES),
        },
    )


def _invoices_template() -> str | None:
    """Billing may provide ``billing/_customer_invoices.html`` (context: ``customer``, ``invoices``)."""
    try:
        get_template("billing/_customer_invoices.html")
    except TemplateDoesNotExist:
        return None
    return "billing/_customer_invoices.html"


@role_required(*VIEW_ROLES)
def customer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    merged = Customer.objects.filter(pk=pk, merged_into__isnull=False).values_list("merged_into", flat=True).first()
    if merged:
        messages.info(request, _("Customer %(number)s was merged into this customer.") % {"number": pk})
        return redirect("carparks:customer-detail", pk=merged)
    customer = get_for_user(customers_for_user(user).select_related("possible_duplicate_of"), pk)
    contracts = contracts_for_user(user, customer.contracts.all()).select_related("product__carpark")
    credentials = Credential.objects.filter(contract__in=contracts.values("pk")).select_related("carpark", "contract")
    may_edit = has_role(user, *CUSTOMER_EDIT_ROLES)
    return render(
        request,
        "carparks/customer_detail.html",
        {
            "customer": customer,
            "contracts": contracts,
            "vehicles": selectors.customer_vehicles_for_user(user, customer).prefetch_related("contracts"),
            "credentials": credentials.order_by("-is_active", "identifier"),
            "cases": cases_for_user(user, customer.cases.all())
            .select_related("contract", "assignee")
            .order_by("-created_at"),
            "history": selectors.customer_history(customer, user=user)[:100],
            "invoices_template": _invoices_template(),
            "invoices": selectors.customer_invoices_for_user(user, customer),
            "may_open_case": has_role(user, *CASE_ROLES),
            "may_edit": may_edit,
            "may_merge": has_role(user, *MERGE_ROLES),
            "duplicate_of": customer.possible_duplicate_of,
            "flagged_as_duplicates": list(
                customers_for_user(user, Customer.objects.filter(possible_duplicate_of=customer)).order_by("pk")[:10]
            ),
        },
    )


def _duplicates_of(form: CustomerForm, *, exclude_id: int | None = None) -> list[customer_services.Duplicate]:
    data = form.cleaned_data
    return customer_services.customer_duplicates_find(
        name=data.get("name", ""),
        email=data.get("email", ""),
        company_number=data.get("company_number", ""),
        postcode=data.get("postcode", ""),
        exclude_id=exclude_id,
    )


@role_required(*CUSTOMER_EDIT_ROLES)
def customer_create(request: HttpRequest) -> HttpResponse:
    """New customer. Before saving, possible duplicates are shown; "Create anyway" confirms exactly the
    duplicates shown (a hidden field), so a changed entry with new matches is checked again."""
    form = CustomerCreateForm(request.POST or None)
    duplicates: list[customer_services.Duplicate] = []
    if request.method == "POST" and form.is_valid():
        duplicates = _duplicates_of(form)
        shown = {d.customer.pk for d in duplicates}
        if shown and not shown <= form.confirmed_ids():
            data = request.POST.copy()
            data["confirm"] = ",".join(str(pk) for pk in sorted(shown))
            form = CustomerCreateForm(data)
            form.is_valid()
        else:
            fields = form.customer_fields()
            try:
                customer = services.customer_create(**fields, user=request.user, channel=form.cleaned_data["channel"])
            except services.CarparkError as exc:
                _form_error(form, exc)
            else:
                messages.success(
                    request,
                    _("Customer %(name)s was created (customer %(number)s).")
                    % {"name": customer.name, "number": customer.pk},
                )
                return redirect("carparks:customer-detail", pk=customer.pk)
    return render(
        request,
        "carparks/customer_form.html",
        {"form": form, "customer": None, "duplicates": duplicates, "visible_ids": _visible_ids(request, duplicates)},
    )


def _visible_ids(request: HttpRequest, duplicates: list[customer_services.Duplicate]) -> set[int]:
    """Which of the duplicates the user may open (the others are named without a link)."""
    if not duplicates:
        return set()
    ids = [d.customer.pk for d in duplicates]
    return set(customers_for_user(request.user, Customer.objects.filter(pk__in=ids)).values_list("pk", flat=True))


@role_required(*CUSTOMER_EDIT_ROLES)
def customer_edit(request: HttpRequest, pk: int) -> HttpResponse:
    customer = get_for_user(customers_for_user(request.user), pk)
    form = CustomerForm(request.POST or None, instance=customer)
    if request.method == "POST" and form.is_valid():
        try:
            customer_services.customer_update(customer=customer, user=request.user, **form.customer_fields())
        except services.CarparkError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, _("Customer %(number)s was saved.") % {"number": customer.pk})
            return redirect("carparks:customer-detail", pk=customer.pk)
    return render(request, "carparks/customer_form.html", {"form": form, "customer": customer, "duplicates": []})


@role_required(*CUSTOMER_EDIT_ROLES)
@require_POST
def customer_duplicate_dismiss(request: HttpRequest, pk: int) -> HttpResponse:
    customer = get_for_user(customers_for_user(request.user), pk)
    try:
        customer_services.customer_duplicate_dismiss(customer=customer, user=request.user)
    except services.CarparkError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("%(name)s is marked as a different customer.") % {"name": customer.name})
    return redirect("carparks:customer-detail", pk=pk)


@role_required(*MERGE_ROLES)
def customer_merge(request: HttpRequest, pk: int) -> HttpResponse:
    """Step 1: choose the other customer and which one to keep; step 2 (``preview``): what will move,
    confirmed with ``confirm``."""
    this = get_for_user(customers_for_user(request.user), pk)
    data = request.POST if request.method == "POST" else (request.GET if "other" in request.GET else None)
    form = CustomerMergeForm(data, initial={"other": request.GET.get("other") or None})
    suggestions = customer_services.customer_duplicates_find(
        name=this.name, email=this.email, company_number=this.company_number, postcode=this.postcode, exclude_id=pk
    )
    if this.possible_duplicate_of_id and this.possible_duplicate_of_id not in {d.customer.pk for d in suggestions}:
        suggestions.insert(0, customer_services.Duplicate(this.possible_duplicate_of, ["marked for review"]))
    context: dict[str, Any] = {"customer": this, "form": form, "suggestions": suggestions}
    if data is not None and form.is_valid():
        other = customers_for_user(request.user).filter(pk=form.cleaned_data["other"]).first()
        if other is None or other.pk == this.pk:
            form.add_error("other", _("Enter the number of another customer you may see."))
        else:
            keep, gone = (this, other) if form.cleaned_data["keep"] == "this" else (other, this)
            preview = customer_services.customers_merge_preview(keep=keep, other=gone)
            if request.method == "POST" and request.POST.get("confirm") == "1" and not preview["refused"]:
                try:
                    counts = customer_services.customers_merge(keep=keep, other=gone, user=request.user)
                except services.CarparkError as exc:
                    preview["refused"] = str(exc)
                else:
                    moved = ", ".join(f"{n} {label}" for label, n in counts.items() if n) or _("nothing")
                    messages.success(
                        request,
                        _("%(gone)s (customer %(number)s) was merged into %(keep)s: %(moved)s.")
                        % {"gone": gone.name, "number": gone.pk, "keep": keep.name, "moved": moved},
                    )
                    return redirect("carparks:customer-detail", pk=keep.pk)
            context.update(preview)
            return render(request, "carparks/customer_merge_confirm.html", context)
    return render(request, "carparks/customer_merge.html", context)
