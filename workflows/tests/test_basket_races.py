"""Two people claim the same task at the same moment, on PostgreSQL with real threads."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts import roles
from workflows.models import Task
from workflows.tests.basket_support import CarParkFactory, install, person, start_review


@pytest.mark.django_db(transaction=True)
def test_two_users_claim_the_same_task_at_once_one_wins_the_other_is_told(login):
    install()
    carpark = CarParkFactory()
    task = start_review(carpark)
    users = [person(f"agent{i}", roles.AGENT, carparks=[carpark]) for i in range(2)]
    clients = []
    for user in users:
        client = Client()
        login(client, user)
        clients.append(client)
    barrier = threading.Barrier(2)
    responses: dict[int, object] = {}
    errors: list[BaseException] = []

    def claim(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            responses[index] = clients[index].post(reverse("workflows:task-claim", args=[task.pk]), follow=True)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    task.refresh_from_db()
    assert task.state == Task.State.CLAIMED
    winner = users.index(task.assignee)
    loser = 1 - winner
    assert "You claimed" in responses[winner].content.decode()
    told = responses[loser].content.decode()
    assert "cannot be claimed: it is already claimed by Agent" in told, told[:3000]
    assert responses[loser].redirect_chain[-1][0] == reverse("workflows:basket")
