"""Nothing typed on a task is lost: "Can't decide", delegate and release keep the entries (and who
kept them) for whoever opens the task next; a refused action shows the page again with the entries."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts import roles
from workflows.models import Task
from workflows.tests.basket_support import CarParkFactory, install, person, start_review

pytestmark = pytest.mark.django_db


def task_url(task: Task, action: str = "") -> str:
    return reverse(f"workflows:task-{action or 'detail'}", args=[task.pk])


@pytest.fixture
def world(db):
    install()
    a = CarParkFactory(name="Altstadt")
    return {
        "agent": person("agent_a", roles.AGENT, carparks=[a]),
        "colleague": person("agent_a2", roles.AGENT, carparks=[a]),
        "supervisor": person("supervisor", roles.SUPERVISOR),
        "task": start_review(a, customer_name="Erika Mustermann", plate="M-AB 123"),
    }


def typed(**extra: str) -> dict[str, str]:
    """What the task page's form sends when an action button of it is clicked."""
    return {"with_inputs": "1", "note": "customer says paid twice", "amount": "50", "comment": "see scan", **extra}


def test_cant_decide_hands_the_entries_and_who_kept_them_to_the_supervisor(client, login, world):
    login(client, world["agent"])
    task = world["task"]
    client.post(task_url(task, "claim"))
    response = client.post(task_url(task, "escalate"), typed(reason="Deposit paid twice?"))
    assert response.status_code == 302
    new = Task.objects.get(escalated_from=task)
    assert new.inputs["note"] == "customer says paid twice" and new.inputs["amount"] == "50"
    assert new.draft["action"] == "escalate" and new.draft["by"] == world["agent"].pk
    assert new.draft["comment"] == "see scan"
    login(client, world["supervisor"])
    body = client.get(task_url(new)).content.decode()
    assert "Entries saved by Agent_A when escalating" in body
    assert "customer says paid twice</textarea>" in body
    assert "see scan</textarea>" in body


def test_delegate_keeps_the_entries_for_the_colleague(client, login, world):
    login(client, world["agent"])
    task = world["task"]
    client.post(task_url(task, "claim"))
    response = client.post(task_url(task, "delegate"), typed(to_user=str(world["colleague"].pk)))
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.assignee == world["colleague"]
    assert task.inputs["note"] == "customer says paid twice" and task.draft["action"] == "delegate"
    login(client, world["colleague"])
    body = client.get(task_url(task)).content.decode()
    assert "Entries saved by Agent_A when delegating" in body
    assert "customer says paid twice</textarea>" in body


def test_release_keeps_the_entries_in_the_queue(client, login, world):
    login(client, world["agent"])
    task = world["task"]
    client.post(task_url(task, "claim"))
    assert client.post(task_url(task, "release"), typed()).status_code == 302
    task.refresh_from_db()
    assert task.state == Task.State.OPEN and task.assignee is None
    assert task.inputs["note"] == "customer says paid twice" and task.draft["action"] == "release"
    login(client, world["colleague"])
    body = client.get(task_url(task)).content.decode()
    assert "Entries saved by Agent_A when releasing" in body
    assert "customer says paid twice</textarea>" in body


def test_a_release_without_entries_keeps_the_saved_ones(client, login, world):
    login(client, world["agent"])
    task = world["task"]
    client.post(task_url(task, "claim"))
    client.post(task_url(task, "complete"), {"action": "save", "note": "kept"})
    login(client, world["supervisor"])
    client.post(task_url(task, "release"))  # a supervisor's release from the basket sends no entries
    task.refresh_from_db()
    assert task.state == Task.State.OPEN and task.inputs["note"] == "kept" and task.draft == {}


def test_completing_uses_the_submitted_values_over_the_draft(client, login, world):
    login(client, world["agent"])
    task = world["task"]
    client.post(task_url(task, "claim"))
    client.post(task_url(task, "release"), typed())
    client.post(task_url(task, "claim"))
    response = client.post(
        task_url(task, "complete"),
        {"outcome": "approve", "note": "checked: paid once", "amount": "60", "deposit_ok": "on"},
    )
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.state == Task.State.COMPLETED
    assert task.inputs["note"] == "checked: paid once" and task.inputs["amount"] == 60


def test_refused_actions_show_the_page_again_with_the_entries(client, login, world):
    login(client, world["agent"])
    task = world["task"]
    client.post(task_url(task, "claim"))
    # No reason for "Can't decide": the page again, the note still in its field, nothing escalated.
    response = client.post(task_url(task, "escalate"), typed(reason=""))
    assert response.status_code == 400 and "customer says paid twice</textarea>" in response.content.decode()
    # No colleague chosen for "Delegate".
    response = client.post(task_url(task, "delegate"), typed(to_user=""))
    assert response.status_code == 400 and "customer says paid twice</textarea>" in response.content.decode()
    assert "Choose a colleague who can work on this task." in response.content.decode()
    task.refresh_from_db()
    assert task.state == Task.State.CLAIMED and task.inputs.get("note") in (None, "")
    # The task was escalated meanwhile: completing fails, and what was typed is still on the page.
    Task.objects.filter(pk=task.pk).update(assignee=None, state=Task.State.ESCALATED)
    login(client, world["agent"])
    response = client.post(task_url(task, "complete"), {"outcome": "approve", "note": "my verdict", "deposit_ok": "on"})
    assert response.status_code == 409
    assert "What you entered (not saved)" in response.content.decode()
    assert "my verdict</dd>" in response.content.decode()
