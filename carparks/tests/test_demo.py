"""The demo loader: every state, waitlists, cases; consistent with the quota; idempotent."""

import io

import pytest
from django.db.models import Count, Q

from carparks import demo
from carparks.models import CarPark, Case, Contract, Customer, Product

pytestmark = pytest.mark.django_db


def test_it_loads_the_demo_and_a_second_run_changes_nothing(django_user_model):
    out = io.StringIO()
    demo.load(out)
    assert CarPark.objects.count() == 10
    assert Customer.objects.count() == 200
    assert Customer.objects.filter(kind="corporate").exists()
    states = set(Contract.objects.values_list("state", flat=True))
    assert states == set(Contract.State.values)
    assert Case.objects.filter(state="open").exists()
    assert {c.kind for c in Case.objects.all()} == set(Case.Kind.values)
    fleet = Contract.objects.annotate(n=Count("vehicles")).filter(n=20)
    assert fleet.count() == 1
    assert fleet.get().customer.kind == "corporate"
    oversold = Product.objects.annotate(
        held=Count("contracts", filter=Q(contracts__state__in=Contract.QUOTA_STATES))
    ).filter(held__gt=models_quota())
    assert not oversold.exists()
    assert Contract.objects.filter(state="waitlisted").exists()
    pool = Contract.objects.get(product__name="Company pool")
    assert (pool.state, pool.places, pool.vehicles.count()) == ("active", 3, 6)
    assert pool.change_requests.get().state == "pending"
    counts = (Contract.objects.count(), Case.objects.count())
    demo.load(io.StringIO())
    assert (Contract.objects.count(), Case.objects.count()) == counts


def models_quota():
    from django.db.models import F

    return F("quota")
