"""Factories for billing tests (contracts come straight in the state a test needs)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import factory

from carparks.models import Contract, Vehicle
from carparks.tests.factories import CustomerFactory, ProductFactory


class VehicleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Vehicle

    customer = factory.SubFactory(CustomerFactory)
    plate = factory.Sequence(lambda n: f"M-PH {1000 + n}")


class ContractFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contract

    customer = factory.SubFactory(CustomerFactory)
    product = factory.SubFactory(ProductFactory)
    state = Contract.State.ACTIVE
    start_date = date(2026, 1, 1)
    monthly_price = Decimal("119.00")
