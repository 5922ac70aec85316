"""A case and its basket task are one piece of work: assigning the case claims the task (and claiming or
releasing the task assigns or unassigns the case), two assignments at once leave one winner and a clear
message; the task is due when the case's SLA is; the case form takes invoice numbers as printed."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.urls import reverse
from guardian.shortcuts import assign_perm

from accounts.roles import CARE
from carparks import services
from carparks.models import Case
from carparks.tests.factories import CustomerFactory, ProductFactory, UserFactory, january_invoice
from carparks.tests.test_views import running
from workflows.models import Task

pytestmark = pytest.mark.django_db


def case_task(case: Case) -> Task:
    return Task.objects.get(
        process__content_type=ContentType.objects.get_for_model(Case),
        process__object_id=case.pk,
        state__in=Task.ACTIVE_STATES,
    )


def care_user(carpark, name: str):
    user = UserFactory(roles=[CARE], username=name, first_name=name.title())
    assign_perm("carparks.responsible_carpark", user, carpark)
    return user


@pytest.fixture
def world(db):
    product = ProductFactory(carpark__name="Alpha Garage")
    contract = running(product, "M CC 1")
    case = services.case_open(customer=contract.customer, contract=contract, kind="complaint", subject="Gate stuck")
    return {"product": product, "contract": contract, "case": case}


def test_the_task_is_due_when_the_case_is(world):
    case = world["case"]
    assert case_task(case).due_at == case.sla_due_at
    urgent = services.case_open(
        customer=world["contract"].customer, contract=world["contract"], kind="question", subject="?", priority="urgent"
    )
    assert case_task(urgent).due_at == urgent.sla_due_at


def test_the_task_follows_when_the_sla_changes(world):
    case = Case.objects.get(pk=world["case"].pk)
    case.sla_due_at = case.sla_due_at + timedelta(hours=5)
    case.save()
    assert case_task(case).due_at == case.sla_due_at


def test_assigning_the_case_claims_its_task(client, world):
    case = world["case"]
    user = care_user(world["product"].carpark, "carla")
    client.force_login(user)
    client.post(reverse("carparks:case-action", args=[case.pk, "take"]))
    case = Case.objects.get(pk=case.pk)
    task = case_task(case)
    assert case.assignee == user and case.state == Case.State.IN_PROGRESS
    assert task.state == Task.State.CLAIMED and task.assignee == user


def test_claiming_the_task_assigns_the_case_and_releasing_unassigns_it(client, world):
    case = world["case"]
    user = care_user(world["product"].carpark, "carla")
    client.force_login(user)
    task = case_task(case)
    client.post(reverse("workflows:task-claim", args=[task.pk]))
    case = Case.objects.get(pk=case.pk)
    assert case.assignee == user
    client.post(reverse("workflows:task-release", args=[task.pk]))
    case = Case.objects.get(pk=case.pk)
    task = Task.objects.get(pk=task.pk)
    assert task.state == Task.State.OPEN and case.assignee is None


def test_a_case_whose_task_someone_else_holds_is_not_taken(client, world):
    case = world["case"]
    first, second = care_user(world["product"].carpark, "carla"), care_user(world["product"].carpark, "conrad")
    services.case_assign(case=case, assignee=first, user=first)
    client.force_login(second)
    response = client.post(reverse("carparks:case-action", args=[case.pk, "take"]), follow=True)
    assert "already being handled by Carla" in response.content.decode()
    case = Case.objects.get(pk=case.pk)
    assert case.assignee == first and case_task(case).assignee == first


@pytest.mark.django_db(transaction=True)
def test_two_assignments_at_once_one_wins_the_other_is_told():
    product = ProductFactory(carpark__name="Alpha Garage")
    contract = running(product, "M CC 2")
    case = services.case_open(customer=contract.customer, contract=contract, kind="complaint", subject="Gate stuck")
    users = [care_user(product.carpark, name) for name in ("carla", "conrad")]
    barrier = threading.Barrier(2)
    outcome: dict[int, str] = {}

    def assign(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            services.case_assign(case=case, assignee=users[index], user=users[index])
            outcome[index] = "won"
        except services.CarparkError as exc:
            outcome[index] = str(exc)
        except BaseException as exc:  # surfaced below
            outcome[index] = f"unexpected {exc!r}"
        finally:
            connection.close()

    threads = [threading.Thread(target=assign, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcome) == [0, 1]
    winners = [i for i, text in outcome.items() if text == "won"]
    assert len(winners) == 1, outcome
    winner, loser = winners[0], 1 - winners[0]
    assert "is already being handled by" in outcome[loser], outcome
    case = Case.objects.get(pk=case.pk)
    task = case_task(case)
    assert case.assignee == users[winner] and task.assignee == users[winner]


def test_the_case_form_takes_the_printed_invoice_number_and_the_case_links_to_it(client, world):
    contract = world["contract"]
    invoice = january_invoice(contract.customer, contract, series="INV2026", number=133)
    other = january_invoice(CustomerFactory(), series="INV2026", number=134)
    user = care_user(world["product"].carpark, "carla")
    client.force_login(user)
    url = reverse("carparks:case-create", args=[contract.customer.pk])
    response = client.post(url, {"kind": "refund", "subject": "Charged twice", "invoice_id": "INV2026-000134"})
    body = response.content.decode()
    assert "has no invoice INV2026-000134 you may see" in body
    assert 'value="INV2026-000134"' in body and 'value="Charged twice"' in body  # nothing typed is lost
    assert not contract.customer.cases.filter(invoice_id=other.pk).exists()
    response = client.post(url, {"kind": "refund", "subject": "Charged twice", "invoice_id": "INV2026-000133"})
    case = contract.customer.cases.get(subject="Charged twice")
    assert case.invoice_id == invoice.pk
    page = client.get(reverse("carparks:case-detail", args=[case.pk])).content.decode()
    assert f'href="{reverse("billing:invoice-detail", args=[invoice.pk])}"' in page
    assert "INV2026-000133</a>" in page
