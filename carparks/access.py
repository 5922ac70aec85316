"""Who may see which car parks, customers, contracts and cases.

Administrators, Supervisors and Finance (by role) see every car park; everybody else sees the car
parks they are responsible for (the guardian permission ``carparks.responsible_carpark``). Customers
belong to the car parks of their contracts: one whose contracts are all in other car parks is 404; a
customer without any contract is visible to every back-office role, since someone has to take its
first application. A customer merged into another is in no list.

REST API clients have their own selectors (``*_for_client``, below): what they created, and what
belongs to the car parks they are granted. Pages, the API and exports all read through this module.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from accounts.roles import ADMINISTRATOR, AGENT, CARE, FINANCE, SUPERVISOR, has_role, responsible_carpark_ids

# Roles that see every car park: Administrators and Supervisors, and Finance by its role (it invoices,
# dunns and refunds every customer, whichever car park).
SEE_ALL_ROLES = (ADMINISTRATOR, SUPERVISOR, FINANCE)
# Who takes which contract decision (the transitions' permissions in carparks.models, and the 403 of the
# contract page's actions): applications are approved, rejected and activated by the back office; running
# contracts are suspended, reactivated, terminated or cancelled also by Customer care and Finance; a waitlist
# offer is accepted for the customer (on the phone, at the counter) by those who act for customers, never by
# Finance or a Car-park manager. Always only in the car parks the user sees.
CONTRACT_REVIEW_ROLES = (ADMINISTRATOR, SUPERVISOR, AGENT)
CONTRACT_MANAGE_ROLES = (ADMINISTRATOR, SUPERVISOR, AGENT, CARE, FINANCE)
OFFER_ACCEPT_ROLES = (ADMINISTRATOR, SUPERVISOR, AGENT, CARE)


def visible_carpark_ids(user: Any) -> set[int] | None:
    """The car parks ``user`` may see; ``None`` means all of them."""
    if user is None:
        return None
    if has_role(user, *SEE_ALL_ROLES):
        return None
    return responsible_carpark_ids(user) or set()


def may_see_carpark(user: Any, carpark_id: int | None) -> bool:
    ids = visible_carpark_ids(user)
    return ids is None or carpark_id in ids


def carparks_for_user(user: Any, qs: QuerySet | None = None) -> QuerySet:
    from carparks.models import CarPark

    qs = CarPark.objects.all() if qs is None else qs
    ids = visible_carpark_ids(user)
    return qs if ids is None else qs.filter(pk__in=ids)


def contracts_for_user(user: Any, qs: QuerySet | None = None) -> QuerySet:
    from carparks.models import Contract

    qs = Contract.objects.all() if qs is None else qs
    ids = visible_carpark_ids(user)
    return qs if ids is None else qs.filter(product__carpark_id__in=ids)


def customers_for_user(user: Any, qs: QuerySet | None = None) -> QuerySet:
    from carparks.models import Customer

    qs = (Customer.objects.all() if qs is None else qs).filter(merged_into__isnull=True)  # merged: gone from lists
    ids = visible_carpark_ids(user)
    if ids is None:
        return qs
    return qs.filter(Q(contracts__product__carpark_id__in=ids) | Q(contracts__isnull=True)).distinct()


def cases_for_user(user: Any, qs: QuerySet | None = None) -> QuerySet:
    """Cases about a contract of the user's car parks; a case about no contract is the user's when its
    customer is (a contract in the user's car parks, or none at all), unless it names an invoice that bills
    none of the user's car parks (a refund of another car park's invoice is that car park's)."""
    from carparks.models import Case

    qs = Case.objects.all() if qs is None else qs
    ids = visible_carpark_ids(user)
    if ids is None:
        return qs
    no_contract = Q(contract__isnull=True) & (
        Q(customer__contracts__product__carpark_id__in=ids) | Q(customer__contracts__isnull=True)
    )
    invoices = invoices_for_user(user)
    if invoices is not None:
        no_contract &= Q(invoice_id__isnull=True) | Q(invoice_id__in=invoices.values("pk"))
    return qs.filter(Q(contract__product__carpark_id__in=ids) | no_contract).distinct()


def invoices_for_user(user: Any, qs: QuerySet | None = None) -> QuerySet | None:
    """Billing's invoices with a line for a contract of the car parks ``user`` sees (every invoice for the
    roles that see every car park); ``None`` when billing is not installed. An invoice of a customer with
    contracts in several car parks bills all of them, so it is each of those car parks' invoice."""
    from django.apps import apps

    if not apps.is_installed("billing"):
        return None
    qs = apps.get_model("billing", "Invoice").objects.all() if qs is None else qs
    ids = visible_carpark_ids(user)
    if ids is None:
        return qs
    lines = apps.get_model("billing", "InvoiceLine").objects.filter(contract__product__carpark_id__in=ids)
    return qs.filter(pk__in=lines.values("invoice_id"))


def get_for_user(qs: QuerySet, pk: Any) -> Any:
    """The object with ``pk`` from a queryset already filtered to the user; 404 otherwise."""
    try:
        return qs.get(pk=pk)
    except (qs.model.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


# API clients (carparks.models.ApiClient). A client owns what it created through the API (``api_client``
# on customers, contracts and cases) and everything of the car parks it is granted (``ApiClient.carparks``).
# Everything else is 404 to it, never 403, so ids cannot be probed. Car parks themselves (the catalogue of
# ``GET /api/v1/carparks/``) are public to every client with ``carparks:read``.


def granted_carpark_ids(client: Any) -> Any:
    """The ids of the car parks granted to ``client``, as a subquery."""
    return client.carparks.values("pk")


def contracts_for_client(client: Any, qs: QuerySet | None = None) -> QuerySet:
    """Contracts ``client`` applied for, or whose product is in a car park it is granted."""
    from carparks.models import Contract

    qs = Contract.objects.all() if qs is None else qs
    return qs.filter(Q(api_client=client) | Q(product__carpark_id__in=granted_carpark_ids(client)))


def customers_for_client(client: Any, qs: QuerySet | None = None) -> QuerySet:
    """Customers ``client`` created, or with a contract in a car park it is granted.

    A customer an application was matched to (the same email and name) is not the client's for that: it
    sees that contract, not the customer's other cases and invoices.
    """
    from carparks.models import Contract, Customer

    qs = (Customer.objects.all() if qs is None else qs).filter(merged_into__isnull=True)
    granted = Contract.objects.filter(product__carpark_id__in=granted_carpark_ids(client)).values("customer_id")
    return qs.filter(Q(api_client=client) | Q(pk__in=granted))


def cases_for_client(client: Any, qs: QuerySet | None = None) -> QuerySet:
    """Cases ``client`` opened, cases about a contract it may see, and cases about no contract of a
    customer it may see."""
    from carparks.models import Case

    qs = Case.objects.all() if qs is None else qs
    return qs.filter(
        Q(api_client=client)
        | Q(contract__in=contracts_for_client(client).values("pk"))
        | Q(contract__isnull=True, customer__in=customers_for_client(client).values("pk"))
    )


def processes_for_client(client: Any, qs: QuerySet | None = None) -> QuerySet:
    """Processes about a contract or case ``client`` may see, or about a car park it is granted; a process
    about anything else (or nothing) is not the client's."""
    from django.contrib.contenttypes.models import ContentType

    from carparks.models import CarPark, Case, Contract
    from workflows.models import Process

    qs = Process.objects.all() if qs is None else qs
    types = ContentType.objects.get_for_models(Contract, Case, CarPark)
    return qs.filter(
        Q(content_type=types[Contract], object_id__in=contracts_for_client(client).values("pk"))
        | Q(content_type=types[Case], object_id__in=cases_for_client(client).values("pk"))
        | Q(content_type=types[CarPark], object_id__in=granted_carpark_ids(client))
    )
