"""Fixtures for fault tests: a private stack of real services that a test may break."""

from __future__ import annotations

import pytest

from .harness import Stack

# Creates what a season application needs and applies; prints the contract id.
APPLY = """
from datetime import date
from decimal import Decimal
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from guardian.shortcuts import assign_perm
from carparks.models import CarPark, Customer, Product
from carparks.services import contract_apply
call_command("workflow_sync", verbosity=0)
agent, _ = User.objects.get_or_create(username="fault-agent")
agent.groups.add(Group.objects.get(name="Back-office agent"))
carpark, _ = CarPark.objects.get_or_create(code="fault-cp", defaults={"name": "Fault Car Park", "capacity": 50})
product, _ = Product.objects.get_or_create(
    carpark=carpark, name="Fault season", defaults={"monthly_price": Decimal("80"), "quota": 50})
assign_perm("carparks.responsible_carpark", agent, carpark)
customer = Customer.objects.create(name="Fault Customer", email="fault@example.com")
contract = contract_apply(customer=customer, product=product, vehicles=[f"F-AU {customer.pk}"])
print(contract.pk)
"""

# Completes the review task of the contract's process as the agent (the worker runs what follows).
APPROVE = """
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from carparks.models import Contract
from workflows.models import Process, Task
from workflows.services import task_claim, task_complete
contract = Contract.objects.get(pk={contract_id})
process = Process.objects.get(content_type=ContentType.objects.get_for_model(Contract), object_id=contract.pk)
task = Task.objects.get(process=process, state="open")
agent = User.objects.get(username="fault-agent")
task = task_claim(task=task, user=agent)
task_complete(task=task, user=agent, outcome="approve", inputs={{}})
print(process.pk)
"""

STATE = """
from carparks.models import Contract
from workflows.models import Process
print(Contract.objects.get(pk={contract_id}).state, Process.objects.get(pk={process_id}).state)
"""


@pytest.fixture(scope="module")
def stack():
    services = Stack()
    try:
        yield services
    finally:
        services.close()


def apply_and_approve(stack: Stack) -> tuple[int, int]:
    contract_id = int(stack.shell(APPLY).split()[-1])
    process_id = int(stack.shell(APPROVE.format(contract_id=contract_id)).split()[-1])
    return contract_id, process_id


def states(stack: Stack, contract_id: int, process_id: int) -> tuple[str, str]:
    contract_state, process_state = (
        stack.shell(STATE.format(contract_id=contract_id, process_id=process_id)).splitlines()[-1].split()
    )
    return contract_state, process_state
