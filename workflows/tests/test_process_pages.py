"""The processes list and process detail pages: visibility by role and car park, filters, actions."""

from __future__ import annotations

import copy

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from accounts import roles
from carparks.models import CarPark
from workflows import services
from workflows.models import Process
from workflows.testing import install_definition, run_pending_system_steps

from .conftest import FAILURES

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(season_spec, make_user):
    north = CarPark.objects.create(name="North Garage", code="north")
    south = CarPark.objects.create(name="South Deck", code="south")
    install_definition(season_spec)
    in_north = services.process_start(definition_key="test-season", business_object=north, variables={"deposit": 1})
    in_south = services.process_start(definition_key="test-season", business_object=south, variables={"deposit": 1})
    agent = make_user("north-agent", roles.AGENT)
    assign_perm(roles.RESPONSIBLE_PERMISSION, agent, north)
    return {"north": north, "south": south, "in_north": in_north, "in_south": in_south, "agent": agent}


def test_the_list_is_filtered_to_what_the_user_may_see(client, login, world, make_user):
    login(client, world["agent"])
    page = client.get(reverse("workflows:process-list"))
    assert page.status_code == 200
    shown = [p.pk for p in page.context["page"].object_list]
    assert shown == [world["in_north"].pk]
    assert client.get(reverse("workflows:process-detail", args=[world["in_south"].pk])).status_code == 404
    assert client.get(reverse("workflows:process-detail", args=[world["in_north"].pk])).status_code == 200

    login(client, make_user("boss", roles.SUPERVISOR))
    shown = {p.pk for p in client.get(reverse("workflows:process-list")).context["page"].object_list}
    assert shown == {world["in_north"].pk, world["in_south"].pk}


def test_people_without_a_role_are_refused_and_anonymous_visitors_sent_to_login(
    client, login, world, django_user_model
):
    url = reverse("workflows:process-list")
    assert client.get(url).status_code == 302
    login(client, django_user_model.objects.create_user("nobody"))
    assert client.get(url).status_code == 403


def test_filters_and_search(client, login, world, admin_user, season_spec):
    spec = copy.deepcopy(season_spec)
    spec["key"], spec["name"] = "test-other", "Other workflow"
    install_definition(spec)
    other = services.process_start(definition_key="test-other", variables={"deposit": 1})
    login(client, admin_user)

    def shown(**params):
        response = client.get(reverse("workflows:process-list"), params)
        assert response.status_code == 200
        return {p.pk for p in response.context["page"].object_list}

    everyone = {world["in_north"].pk, world["in_south"].pk, other.pk}
    assert shown() == everyone
    assert shown(workflow="test-other") == {other.pk}
    assert shown(carpark=world["south"].pk) == {world["in_south"].pk}
    assert shown(state="completed") == set()
    assert shown(state="running", step="review") == everyone
    assert shown(q="North") == {world["in_north"].pk}
    assert shown(q=f"#{other.pk}") == {other.pk}
    assert shown(started_from="2000-01-01", started_to="2000-01-02") == set()
    response = client.get(reverse("workflows:process-list"), {"started_from": "yesterday"})
    assert "is not a date" in response.content.decode()
    response = client.get(reverse("workflows:process-list"), {"workflow": "test-other", "q": "nothing-like-this"})
    assert "No process matches these filters." in response.content.decode()


def test_detail_shows_state_variables_object_history_and_the_incident_actions(
    client, login, world, admin_user, make_user
):
    spec_process = world["in_north"]
    # Make it hold an incident: switch its system step to one that fails.
    flaky = services.process_start(
        definition_key="test-season", business_object=world["north"], variables={"deposit": 2}
    )
    Process.objects.filter(pk=flaky.pk).update()
    install_definition(
        {
            "key": "test-flaky-page",
            "name": "Flaky page",
            "steps": [
                {"id": "start", "type": "start", "next": "sync"},
                {"id": "sync", "type": "system", "task": "tests.flaky", "retry": {"max_attempts": 1}, "next": "end"},
                {"id": "end", "type": "end", "result": "synced"},
            ],
        }
    )
    broken = services.process_start(definition_key="test-flaky-page", business_object=world["north"])
    FAILURES["flaky"] = 1
    run_pending_system_steps()
    broken.refresh_from_db()
    assert broken.incident_open

    login(client, admin_user)
    page = client.get(reverse("workflows:process-detail", args=[broken.pk])).content.decode()
    assert "Incident at step" in page and "the CPMS did not answer" in page
    assert "Retry the step" in page and "North Garage" in page

    detail = client.get(reverse("workflows:process-detail", args=[spec_process.pk])).content.decode()
    assert "Review application" in detail and ">Deposit</th><td>1</td>" in detail  # a labelled row, no JSON
    assert "&quot;deposit&quot;" not in detail
    assert "Task created" in detail and "History" in detail

    supervisor = make_user("sup", roles.SUPERVISOR)
    login(client, supervisor)
    assert "Retry the step" not in client.get(reverse("workflows:process-detail", args=[broken.pk])).content.decode()
    assert client.post(reverse("workflows:process-action", args=[broken.pk, "retry"])).status_code == 403

    login(client, admin_user)
    response = client.post(reverse("workflows:process-action", args=[broken.pk, "retry"]), follow=True)
    assert "The failed step runs again." in response.content.decode()
    run_pending_system_steps()
    broken.refresh_from_db()
    assert (broken.state, broken.incident_open) == ("completed", False)

    response = client.post(
        reverse("workflows:process-action", args=[spec_process.pk, "cancel"]), {"reason": "dup"}, follow=True
    )
    assert "The process was cancelled." in response.content.decode()
    assert Process.objects.get(pk=spec_process.pk).state == "cancelled"
    response = client.post(reverse("workflows:process-action", args=[spec_process.pk, "cancel"]), follow=True)
    assert "already cancelled" in response.content.decode()


def test_actions_need_post_and_csrf(login, world, admin_user):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    login(csrf_client, admin_user)
    url = reverse("workflows:process-action", args=[world["in_north"].pk, "cancel"])
    assert csrf_client.get(url).status_code == 405
    assert csrf_client.post(url, {"reason": "x"}).status_code == 403
    assert Process.objects.get(pk=world["in_north"].pk).state == "running"
