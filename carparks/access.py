"""Who may see which car parks, customers, contracts and cases.

Administrators, Supervisors and Finance (by role) see every car park; everybody else sees the car
parks they are responsible for (the guardian permission ``carparks.responsible_carpark``). Customers
belong to the car parks of their contracts: one whose contracts are all in other car parks is 404; a
customer without any contract is visible to every back-office role, since someone has to take its
first application. A customer merged into another is in no list.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from accounts.roles import ADMINISTRATOR, FINANCE, SUPERVISOR, has_role, responsible_carpark_ids

# Roles that see every car park: Administrators and Supervisors, and Finance by its role (it invoices,
# dunns and refunds every customer, whichever car park).
SEE_ALL_ROLES = (ADMINISTRATOR, SUPERVISOR, FINANCE)


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
    from carparks.models import Case

    qs = Case.objects.all() if qs is None else qs
    ids = visible_carpark_ids(user)
    if ids is None:
        return qs
    return qs.filter(
        Q(contract__product__carpark_id__in=ids)
        | Q(contract__isnull=True, customer__contracts__product__carpark_id__in=ids)
        | Q(contract__isnull=True, customer__contracts__isnull=True)
    ).distinct()


def get_for_user(qs: QuerySet, pk: Any) -> Any:
    """The object with ``pk`` from a queryset already filtered to the user; 404 otherwise."""
    try:
        return qs.get(pk=pk)
    except (qs.model.DoesNotExist, ValueError, TypeError):
        raise Http404 from None
