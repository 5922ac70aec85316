"""What starts a workflow, shown where people look: the workflow page and the process page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts import roles
from carparks.models import CarPark
from workflows.services import definition_install
from workflows.starting import event_emit

pytestmark = pytest.mark.django_db


def onboarding(key: str, *, condition: str = "", priority: int = 0, name: str = "") -> dict:
    start = {"id": "start", "type": "start", "event": "carpark.added", "next": "check"}
    if condition:
        start["condition"] = condition
    if priority:
        start["priority"] = priority
    return {
        "key": key,
        "name": name or key,
        "steps": [
            start,
            {"id": "check", "type": "user", "role": roles.MANAGER, "outcomes": {"done": "end"}},
            {"id": "end", "type": "end"},
        ],
    }


def test_it_shows_the_event_its_condition_and_the_rivals(client, login, make_user):
    definition_install(spec=onboarding("any-carpark", name="Any car park"))
    definition_install(
        spec=onboarding("sync-carpark", condition='event.source == "cpms_sync"', name="Car park from the CPMS")
    )
    login(client, make_user("wf", roles.WORKFLOW_ADMIN))
    page = client.get(reverse("workflows:definition-detail", kwargs={"key": "sync-carpark"})).content.decode()
    assert "Starts on:</strong> Car park added <code>carpark.added</code>" in page
    assert "when <code>event.source == &quot;cpms_sync&quot;</code>" in page
    assert "Also bound to this event: Any car park, priority 0" in page
    assert "A workflow with a condition beats one without" in page


def test_it_says_a_workflow_without_event_is_started_by_hand(client, login, make_user):
    spec = {
        "key": "by-hand",
        "steps": [
            {"id": "start", "type": "start", "next": "end", "starters": [roles.CARE],
             "inputs": [{"name": "topic", "type": "text", "required": True}]},
            {"id": "end", "type": "end"},
        ],
    }  # fmt: skip
    definition_install(spec=spec)
    login(client, make_user("wf", roles.WORKFLOW_ADMIN))
    page = client.get(reverse("workflows:definition-detail", kwargs={"key": "by-hand"})).content.decode()
    assert "by hand from the Start process page, with a start form of 1 field" in page
    assert "Administrators, Workflow admins, Customer care" in page


def test_the_process_page_names_the_event_that_started_it(client, login, make_user):
    definition_install(spec=onboarding("any-carpark"))
    carpark = CarPark.objects.create(name="Harbour", code="harbour")
    event = event_emit(
        name="carpark.added",
        payload={"carpark_id": carpark.pk, "source": "portal"},
        business_object=carpark,
        event_id=f"carpark.added:{carpark.pk}",
    )
    assert event.process_id
    login(client, make_user("wf", roles.WORKFLOW_ADMIN))
    page = client.get(reverse("workflows:process-detail", args=[event.process_id])).content.decode()
    assert f"on business event <code>carpark.added</code> #{event.pk}" in page
