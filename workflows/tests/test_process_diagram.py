"""The process page's diagram data: current step with who has it, the path with a loop counted, the
flows' outcomes, an incident, open timers on their boundary events, the end reached; names, not ids;
the page without a diagram; permission; a flat query count."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from guardian.shortcuts import assign_perm

from accounts import roles
from carparks.models import CarPark
from workflows import services
from workflows.models import Process, Task, WorkflowVersion
from workflows.testing import install_definition, run_pending_system_steps

from .conftest import FAILURES

pytestmark = pytest.mark.django_db

KEY = "test-diagram"
SPEC = {
    "key": KEY,
    "name": "Diagram claim",
    "steps": [
        {"id": "start", "type": "start", "next": "review"},
        {
            "id": "review",
            "type": "user",
            "name": "Review claim",
            "role": roles.AGENT,
            "scope": "carpark",
            "due_in": "P2D",
            "escalation": [{"after": "P1D", "to": roles.SUPERVISOR}],
            "timeout": {"after": "P10D", "next": "expired"},
            "outcomes": {"rework": "fix", "ok": "sync"},
        },
        {
            "id": "fix",
            "type": "user",
            "name": "Fix documents",
            "role": roles.AGENT,
            "scope": "carpark",
            "next": "review",
        },
        {
            "id": "sync",
            "type": "system",
            "name": "Sync with the CPMS",
            "task": "tests.flaky",
            "retry": {"max_attempts": 1},
            "next": "done",
        },
        {"id": "done", "type": "end", "result": "synced"},
        {"id": "expired", "type": "end", "result": "expired"},
    ],
}


@pytest.fixture
def world(make_user):
    north = CarPark.objects.create(name="North Garage", code="north")
    install_definition(SPEC)
    agent = make_user("north-agent", roles.AGENT)
    assign_perm(roles.RESPONSIBLE_PERMISSION, agent, north)
    process = services.process_start(definition_key=KEY, business_object=north)
    return {"north": north, "agent": agent, "process": process}


def diagram_of(client, process) -> dict:
    response = client.get(reverse("workflows:process-detail", args=[process.pk]))
    assert response.status_code == 200
    return response.context["diagram"]


def complete(process, user, outcome):
    task = Task.objects.get(process=process, state__in=Task.ACTIVE_STATES)
    services.task_claim(task=task, user=user)
    services.task_complete(task=task, user=user, outcome=outcome)


def test_a_running_process_shows_its_current_step_who_has_it_and_its_timers(client, login, world, admin_user):
    login(client, admin_user)
    data = diagram_of(client, world["process"])
    assert data["current"]["id"] == "review" and data["current"]["name"] == "Review claim"
    assert data["current"]["tasks"] == [{"name": "Review claim", "role": roles.AGENT, "assignee": "", "state": "Open"}]
    assert data["visits"] == {"start": 1, "review": 1}
    assert data["path"] == [{"from": "start", "to": "review", "outcome": "", "timeout": False}]
    assert data["incident"] is None and data["ended"] is None
    # the step's timers sit on its boundary events (the task element as the fallback)
    timers = {t["kind"]: t for t in data["timers"]}
    assert timers["task_timeout"]["elements"] == ["review__timeout", "review"]
    assert timers["task_timeout"]["label"].startswith("times out ")
    assert timers["escalation"]["elements"] == ["review__due", "review"]
    assert timers["escalation"]["label"].startswith(f"escalates to {roles.SUPERVISOR} ")
    # the diagram is the version's own BPMN, with the step ids as element ids
    assert 'id="review"' in data["xml"] and 'id="review__timeout"' in data["xml"]

    complete(world["process"], world["agent"], "rework")  # claimed by someone: the badge says who
    task = Task.objects.get(process=world["process"], state=Task.State.OPEN)
    services.task_claim(task=task, user=world["agent"])
    data = diagram_of(client, world["process"])
    assert data["current"]["id"] == "fix"
    assert data["current"]["tasks"] == [
        {"name": "Fix documents", "role": roles.AGENT, "assignee": "North-Agent", "state": "Claimed"}
    ]


def test_a_loop_is_counted_the_incident_marked_and_the_end_reached_shown(client, login, world, admin_user, make_user):
    process, agent = world["process"], world["agent"]
    complete(process, agent, "rework")
    complete(process, agent, "done")  # fix → back to review
    complete(process, agent, "rework")
    complete(process, agent, "done")
    FAILURES["flaky"] = 1
    complete(process, agent, "ok")
    run_pending_system_steps()
    process.refresh_from_db()
    assert process.incident_open

    login(client, admin_user)
    response = client.get(reverse("workflows:process-detail", args=[process.pk]))
    data = response.context["diagram"]
    assert data["visits"] == {"start": 1, "review": 3, "fix": 2, "sync": 1}
    assert [(m["from"], m["to"], m["outcome"]) for m in data["path"]] == [
        ("start", "review", ""),
        ("review", "fix", "rework"),
        ("fix", "review", "done"),
        ("review", "fix", "rework"),
        ("fix", "review", "done"),
        ("review", "sync", "ok"),
    ]
    assert data["incident"]["id"] == "sync" and data["incident"]["name"] == "Sync with the CPMS"
    assert "the CPMS did not answer" in data["incident"]["error"]
    assert data["current"]["id"] == "sync" and data["timers"] == []
    page = response.content.decode()
    # names, not ids: the incident heading and the history name the step, the id is only a title
    assert 'Incident at step <span title="sync">Sync with the CPMS</span>' in page
    assert 'data-step="fix" title="fix — show on the diagram">Fix documents</button>' in page
    assert "<code>review</code>" not in page and "<code>sync</code>" not in page
    # the retry form the diagram's incident overlay uses (admins only)
    retry_url = reverse("workflows:process-action", args=[process.pk, "retry"])
    assert f'<template id="process-diagram-retry"><form method="post" action="{retry_url}"' in page
    assert 'id="process-diagram-data"' in page and "process-diagram.js" in page

    login(client, make_user("boss", roles.SUPERVISOR))
    page = client.get(reverse("workflows:process-detail", args=[process.pk])).content.decode()
    assert "Sync with the CPMS" in page and "process-diagram-retry" not in page  # may see, may not act

    login(client, admin_user)
    client.post(retry_url)
    run_pending_system_steps()
    data = diagram_of(client, process)
    assert data["current"] is None and data["incident"] is None
    assert data["ended"] == {"id": "done", "name": "Done", "state": "completed", "label": "Ended: synced"}
    assert data["visits"]["done"] == 1 and data["path"][-1]["to"] == "done"


def test_a_cancelled_process_shows_where_it_stopped(client, login, world, admin_user):
    services.process_cancel(process=world["process"], user=admin_user, reason="duplicate")
    login(client, admin_user)
    data = diagram_of(client, world["process"])
    assert data["current"] is None
    assert data["ended"]["id"] == "review" and data["ended"]["label"] == "Cancelled here"


def test_the_page_sends_the_diagram_csp_and_keeps_its_query_count_flat(client, login, world, admin_user):
    login(client, admin_user)
    url = reverse("workflows:process-detail", args=[world["process"].pk])
    response = client.get(url)
    csp = response["Content-Security-Policy"]
    assert "'unsafe-inline'" in csp.split("style-src")[1].split(";")[0]
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]

    with CaptureQueriesContext(connection) as short:
        client.get(url)
    for outcome in ("rework", "done") * 3:  # many more events, tasks and visits
        complete(world["process"], world["agent"], outcome)
    with CaptureQueriesContext(connection) as long:
        client.get(url)
    assert len(long.captured_queries) == len(short.captured_queries)


def test_a_version_without_a_drawable_diagram_still_shows_the_page(client, login, world, admin_user):
    # a version whose stored definition the export cannot read (steps without a type): written as a
    # draft, then published (a published version's content can no longer change)
    v1 = WorkflowVersion.objects.get(pk=world["process"].version_id)
    broken = WorkflowVersion.objects.create(
        definition=v1.definition, number=2, spec={"key": KEY, "steps": [{"id": "start"}]}, graph=v1.graph, checksum="x"
    )
    WorkflowVersion.objects.filter(pk=broken.pk).update(state=WorkflowVersion.State.PUBLISHED)
    Process.objects.filter(pk=world["process"].pk).update(version=broken)
    login(client, admin_user)
    response = client.get(reverse("workflows:process-detail", args=[world["process"].pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "No diagram: The diagram of this version cannot be drawn" in page
    assert 'id="process-diagram"' not in page and "process-diagram.js" not in page
    assert "Review claim" in page  # the rest of the page is there


def test_only_people_who_may_see_the_process_get_its_diagram(client, login, world, make_user):
    south = CarPark.objects.create(name="South Deck", code="south")
    other = make_user("south-agent", roles.AGENT)
    assign_perm(roles.RESPONSIBLE_PERMISSION, other, south)
    url = reverse("workflows:process-detail", args=[world["process"].pk])
    assert client.get(url).status_code == 302  # anonymous: to the login page
    login(client, other)
    response = client.get(url)
    assert response.status_code == 404
    assert b"process-diagram-data" not in response.content
    login(client, world["agent"])
    assert client.get(url).status_code == 200
    assert Process.objects.get(pk=world["process"].pk).state == "running"
