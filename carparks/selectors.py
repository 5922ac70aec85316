"""Reads of the car-park domain that are more than a filter (other apps use these too)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from carparks.access import (
    carparks_for_user,
    cases_for_user,
    contracts_for_user,
    customers_for_user,
    invoices_for_user,
    visible_carpark_ids,
)
from carparks.models import (
    CarPark,
    Case,
    Contract,
    Credential,
    Customer,
    Product,
    Vehicle,
    normalise_plate,
    places_held,
)

# States a contract can be billed in: running, suspended (blocked but still owed), or ended.
BILLABLE_STATES = (Contract.State.ACTIVE, Contract.State.SUSPENDED, Contract.State.TERMINATED)


def contracts_active_in_period(start: date, end: date) -> QuerySet[Contract]:
    """Contracts that ran on at least one day of ``[start, end]`` (both inclusive).

    Active and suspended contracts, and terminated ones whose end date falls on or after
    ``start``; each with its product, car park and customer loaded.
    """
    return (
        Contract.objects.filter(state__in=BILLABLE_STATES, start_date__lte=end)
        .filter(Q(end_date__isnull=True) | Q(end_date__gte=start))
        .select_related("product__carpark", "customer")
        .order_by("pk")
    )


def product_places_taken(product: Product) -> int:
    return places_held(Contract.objects.filter(product=product, state__in=Contract.QUOTA_STATES))


def products_with_availability(qs: QuerySet[Product] | None = None) -> QuerySet[Product]:
    """Products annotated with ``places_taken``, ``waitlisted`` (and ``places_free`` via the property)."""
    qs = Product.objects.all() if qs is None else qs
    return qs.annotate(
        # A contract holds ``places`` places of the quota (corporate contracts may hold several).
        places_taken=Coalesce(Sum("contracts__places", filter=Q(contracts__state__in=Contract.QUOTA_STATES)), 0),
        waitlisted=Count("contracts", filter=Q(contracts__state=Contract.State.WAITLISTED)),
    )


def product_waitlist(product: Product) -> QuerySet[Contract]:
    """The product's queue, first in line first (offers out are listed too, ahead of the queue)."""
    return (
        Contract.objects.filter(product=product, state__in=[Contract.State.OFFERED, Contract.State.WAITLISTED])
        .select_related("customer")
        .order_by("state", "waitlist_position", "created_at")  # "offered" sorts before "waitlisted"
    )


def carparks_with_stats(user: Any) -> QuerySet[CarPark]:
    return carparks_for_user(user).annotate(
        product_count=Count("products", distinct=True),
        active_contracts=Count(
            "products__contracts", filter=Q(products__contracts__state=Contract.State.ACTIVE), distinct=True
        ),
        waitlisted=Count(
            "products__contracts", filter=Q(products__contracts__state=Contract.State.WAITLISTED), distinct=True
        ),
    )


def cases_open(user: Any) -> QuerySet[Case]:
    return cases_for_user(user).filter(state__in=Case.OPEN_STATES).select_related("customer", "contract", "assignee")


def search(user: Any, query: str, *, limit: int = 20) -> dict[str, list[Any]]:
    """Customers, contracts, plates and card numbers matching ``query``, limited to what ``user`` sees."""
    query = (query or "").strip()
    result: dict[str, list[Any]] = {"customers": [], "contracts": [], "vehicles": [], "credentials": []}
    if len(query) < 2 and not query.isdigit():  # a contract number may be a single digit
        return result
    plate = normalise_plate(query)
    customers = customers_for_user(user).filter(
        Q(name__icontains=query) | Q(email__icontains=query) | Q(company_number__iexact=query)
    )
    result["customers"] = list(customers.order_by("name")[:limit])
    contracts = contracts_for_user(user).select_related("customer", "product__carpark")
    if query.isdigit():
        contracts = contracts.filter(Q(pk=int(query)) | Q(customer__name__icontains=query))
    else:
        contracts = contracts.filter(customer__name__icontains=query)
    result["contracts"] = list(contracts.order_by("-created_at")[:limit])
    if plate:
        result["vehicles"] = list(
            vehicles_for_user(user, Vehicle.objects.filter(plate__startswith=plate))
            .select_related("customer")
            .order_by("plate")[:limit]
        )
        visible_contracts = contracts_for_user(user).values("pk")
        result["credentials"] = list(
            Credential.objects.filter(identifier__startswith=plate, contract__in=visible_contracts)
            .select_related("contract__customer", "carpark")
            .order_by("-is_active", "identifier")[:limit]
        )
    return result


def vehicles_for_user(user: Any, qs: QuerySet[Vehicle] | None = None) -> QuerySet[Vehicle]:
    """Vehicles on a contract of the car parks ``user`` sees, and vehicles on no contract of a customer
    ``user`` sees; a vehicle only on contracts of other car parks is left out."""
    qs = Vehicle.objects.all() if qs is None else qs
    ids = visible_carpark_ids(user)
    if ids is None:
        return qs.filter(customer__merged_into__isnull=True)
    visible_contracts = contracts_for_user(user).values("pk")
    # A vehicle on no contract may have been on one of another car park (a plate changed there): it is shown
    # only when all the customer's contracts are in the user's car parks (or it has none).
    elsewhere = Contract.objects.exclude(product__carpark_id__in=ids).values("customer_id")
    return qs.filter(
        Q(contracts__in=visible_contracts)
        | (
            Q(contracts__isnull=True, customer__in=customers_for_user(user).values("pk"))
            & ~Q(customer_id__in=elsewhere)
        )
    ).distinct()


def customer_vehicles_for_user(user: Any, customer: Customer) -> QuerySet[Vehicle]:
    return vehicles_for_user(user, customer.vehicles.all()).order_by("plate")


def customer_invoices_for_user(user: Any, customer: Customer, *, limit: int = 24) -> list[Any] | None:
    """The customer's latest invoices with a line of a contract in the car parks ``user`` sees (all for the
    roles that see every car park); ``None`` when billing is not installed."""
    related = getattr(customer, "invoices", None)
    if related is None:
        return None
    return list(invoices_for_user(user, related.all()).order_by("-period_start", "-pk")[:limit])


def customer_history(customer: Customer, *, user: Any = None) -> list[dict[str, Any]]:
    """Contract and case events of a customer, newest first (only of what ``user`` sees, when given)."""
    from carparks.models import CaseEvent, ContractEvent

    contract_events = ContractEvent.objects.filter(contract__customer=customer)
    case_events = CaseEvent.objects.filter(case__customer=customer)
    if user is not None and visible_carpark_ids(user) is not None:
        contract_events = contract_events.filter(contract__in=contracts_for_user(user).values("pk"))
        case_events = case_events.filter(case__in=cases_for_user(user).values("pk"))
    rows: list[dict[str, Any]] = []
    for event in contract_events.select_related("actor"):
        rows.append({"at": event.created_at, "what": f"Contract {event.contract_id}", "event": event})
    for event in case_events.select_related("actor"):
        rows.append({"at": event.created_at, "what": f"Case {event.case_id}", "event": event})
    rows.sort(key=lambda row: row["at"], reverse=True)
    return rows


def processes_about(obj: Any) -> list[Any]:
    """The engine's processes about ``obj`` (newest first) with their open tasks; empty without the engine."""
    try:
        from workflows.models import Process, Task
    except ImportError:
        return []
    from django.contrib.contenttypes.models import ContentType
    from django.db.models import Prefetch

    return list(
        Process.objects.filter(content_type=ContentType.objects.get_for_model(type(obj)), object_id=obj.pk)
        .select_related("definition", "start_event")
        .prefetch_related(
            Prefetch(
                "tasks",
                queryset=Task.objects.filter(state__in=["open", "claimed", "escalated"]).select_related("assignee"),
                to_attr="open_tasks",
            )
        )
        .order_by("-pk")
    )


REVIEW_EVENT = "application.received"


def _start_event_name(process: Any) -> str:
    try:
        event = process.start_event
    except ObjectDoesNotExist:
        return ""
    return event.name if event is not None else ""


def under_review(processes: list[Any]) -> bool:
    """True while the process the contract's application started runs and waits on a person's task.

    Whichever workflow the ``application.received`` event started (the built-in review or a library
    one), its open task is where the application is approved or rejected.
    """
    return any(
        p.state == "running"
        and any(task.state in ("open", "claimed") for task in getattr(p, "open_tasks", None) or [])
        and _start_event_name(p) == REVIEW_EVENT
        for p in processes
    )
