"""The start page: a user's work today (queue, claimed, overdue, due today, done today, next tasks),
incidents for those who oversee processes, billing exceptions for Finance."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from billing.models import BillingException
from workflows.models import Task
from workflows.services import task_claim, task_complete
from workflows.tests.basket_support import CarParkFactory, install, person, start_review

pytestmark = pytest.mark.django_db
HOME = reverse("portal-home")


def figure(response, name: str) -> int:
    html = response.content.decode()
    card = html.split(f'data-figure="{name}"', 1)[1]
    return int(card.split("fs-3 fw-semibold", 1)[1].split(">", 1)[1].split("<", 1)[0])


def test_the_start_page_counts_the_users_work_and_lists_what_is_next(client, login, time_machine):
    time_machine.move_to("2026-06-10 09:00+02:00", tick=False)
    install()
    a, b = CarParkFactory(name="Altstadt"), CarParkFactory(name="Bahnhof")
    agent = person("agent_a", roles.AGENT, carparks=[a])
    late, later_today, tomorrow, claimed, done = (start_review(a) for _ in range(5))
    start_review(b)  # another car park: not the agent's
    now = timezone.now()
    Task.objects.filter(pk=late.pk).update(due_at=now - dt.timedelta(hours=2))
    Task.objects.filter(pk=later_today.pk).update(due_at=now + dt.timedelta(hours=3))
    Task.objects.filter(pk=claimed.pk).update(due_at=now - dt.timedelta(minutes=5))
    task_claim(task=Task.objects.get(pk=claimed.pk), user=agent)
    task_complete(task=done, user=agent, outcome="approve", inputs={"deposit_ok": True})

    login(client, agent)
    response = client.get(HOME)
    assert response.status_code == 200
    # queue: late, later_today, tomorrow (the claimed and the completed are not open any more)
    assert figure(response, "queue") == 3 and figure(response, "mine") == 1
    assert figure(response, "overdue") == 2 and figure(response, "due-today") == 1
    assert figure(response, "done-today") == 1
    work = response.context["work"]
    assert (work.overdue_mine, work.overdue_queue) == (1, 1)
    # claimed first, then the queue by due time
    assert [t.pk for t in work.next_up] == [claimed.pk, late.pk, later_today.pk, tomorrow.pk]
    assert 'data-figure="incidents"' not in response.content.decode()
    assert 'data-figure="billing-exceptions"' not in response.content.decode()

    time_machine.move_to("2026-06-11 09:00+02:00", tick=False)  # a new day: nothing completed yet
    login(client, agent)  # (the session of yesterday has expired)
    assert figure(client.get(HOME), "done-today") == 0


def test_a_user_without_tasks_sees_an_empty_state(client, login):
    install()
    login(client, person("care", roles.CARE))
    response = client.get(HOME)
    assert figure(response, "queue") == 0 and "Nothing waiting for you right now." in response.content.decode()


def test_supervisors_see_incidents_and_finance_sees_billing_exceptions(client, login):
    from billing.tests.factories import ContractFactory

    install()
    task = start_review(CarParkFactory())
    task.process.__class__.objects.filter(pk=task.process_id).update(incident_open=True, incident_error="CPMS down")
    login(client, person("sup", roles.SUPERVISOR))
    response = client.get(HOME)
    assert figure(response, "incidents") == 1
    assert f"{reverse('workflows:process-list')}?state=incident" in response.content.decode()

    contract = ContractFactory()
    BillingException.objects.create(
        kind=BillingException.Kind.MISSING_PAYMENT_METHOD, dedupe_key="t1", message="No card",
        customer=contract.customer,
    )  # fmt: skip
    login(client, person("fin", roles.FINANCE))
    response = client.get(HOME)
    assert figure(response, "billing-exceptions") == 1
    assert 'data-figure="incidents"' not in response.content.decode()


def test_the_start_page_costs_a_few_queries_however_much_work_there_is(client, login, django_assert_max_num_queries):
    install()
    a = CarParkFactory()
    agent = person("agent_a", roles.AGENT, carparks=[a])
    for _ in range(12):
        start_review(a)
    login(client, agent)
    client.get(HOME)
    with django_assert_max_num_queries(12):
        assert client.get(HOME).status_code == 200
