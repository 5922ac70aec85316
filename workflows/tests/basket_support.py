"""Shared set-up for the basket's tests: a definition with every input type, contracts in car parks,
users with roles and responsibilities."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm

from accounts import roles
from carparks.models import Contract, Vehicle
from carparks.tests.factories import CarParkFactory, CustomerFactory, ProductFactory
from workflows.services import definition_install, process_start

SPEC = {
    "key": "basket-review",
    "name": "Basket review",
    "category": "contracts",
    "steps": [
        {"id": "start", "type": "start", "next": "review"},
        {
            "id": "review",
            "type": "user",
            "name": "Review application",
            "role": roles.AGENT,
            "scope": "carpark",
            "priority": "high",
            "instructions": "Check the application and the deposit.",
            "due_in": "P1D",
            "escalation": [{"after": "PT0S", "to": roles.SUPERVISOR}, {"after": "P1D", "to": roles.ADMINISTRATOR}],
            "inputs": [
                {"name": "note", "label": "Note", "type": "text"},
                {"name": "amount", "label": "Deposit amount", "type": "number"},
                {"name": "paid_on", "label": "Paid on", "type": "date"},
                {"name": "channel", "label": "Channel", "type": "choice", "choices": ["mail", "phone"]},
                {"name": "deposit_ok", "label": "Deposit received", "type": "bool", "required": True},
                {"name": "scan", "label": "Scan", "type": "file"},
            ],
            "outcomes": {"approve": "done", "reject": "done"},
        },
        {"id": "done", "type": "end", "result": "done"},
    ],
}


def install() -> Any:
    return definition_install(spec=copy.deepcopy(SPEC))


def person(username: str, *role_names: str, carparks: Any = (), email: str | None = None) -> Any:
    user = get_user_model().objects.create_user(
        username, password="pw", first_name=username.title(), email=email or f"{username}@parkinghq.example"
    )
    for name in role_names:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    for carpark in carparks:
        assign_perm(roles.RESPONSIBLE_PERMISSION, user, carpark)
    return user


def contract_in(carpark: Any, *, customer_name: str | None = None, plate: str = "") -> Contract:
    product = ProductFactory(carpark=carpark)
    customer = CustomerFactory(**({"name": customer_name} if customer_name else {}))
    contract = Contract.objects.create(
        customer=customer, product=product, start_date=dt.date(2026, 12, 1), monthly_price=Decimal("99")
    )
    if plate:
        contract.vehicles.add(Vehicle.objects.create(customer=customer, plate=plate))
    return contract


def start_review(carpark: Any, **kwargs: Any) -> Any:
    """Start a review process about a new contract in ``carpark``; returns its open task."""
    process = process_start(definition_key=SPEC["key"], business_object=contract_in(carpark, **kwargs))
    return process.tasks.get()


__all__ = ["CarParkFactory", "SPEC", "contract_in", "install", "person", "start_review"]
