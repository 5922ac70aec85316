"""Business events start workflows: schema refusal, one process per event under concurrency, unmatched
events and incidents on the Business events page and their replay, ties and recursive calls refused at
publish, and who may see and act on the page."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connection, transaction
from django.urls import reverse

from accounts import roles
from carparks.tests.factories import CarParkFactory
from workflows import authoring
from workflows.bpmn.writer import definition_to_bpmn
from workflows.events import EventPayloadInvalid
from workflows.models import BusinessEvent, Process, StartBinding, WorkflowVersion
from workflows.starting import event_emit
from workflows.testing import install_definition

EVENTS = reverse("workflows:event-list")


def case_payload(**changes):
    payload = {"case_id": 11, "kind": "complaint", "priority": "normal", "channel": "email", "customer_id": 7}
    payload.update(changes)
    return payload


def bound(key: str, name: str, *, condition: str = "", priority: int = 0, event: str = "case.opened") -> dict:
    """A workflow that starts on ``event`` and opens one task."""
    start = {"id": "start", "type": "start", "event": event, "next": "handle"}
    if condition:
        start["condition"] = condition
    if priority:
        start["priority"] = priority
    return {
        "key": key,
        "name": name,
        "steps": [
            start,
            {"id": "handle", "type": "user", "name": "Handle it", "role": roles.AGENT, "outcomes": {"done": "end"}},
            {"id": "end", "type": "end"},
        ],
    }


def by_hand(key: str, name: str, *, calls: str = "") -> dict:
    steps: list[dict] = [{"id": "start", "type": "start", "next": "call" if calls else "handle"}]
    if calls:
        steps.append({"id": "call", "type": "call", "definition": calls, "next": "handle"})
    steps += [
        {"id": "handle", "type": "user", "name": "Handle it", "role": roles.AGENT, "outcomes": {"done": "end"}},
        {"id": "end", "type": "end"},
    ]
    return {"key": key, "name": name, "steps": steps}


def publish(spec: dict, user=None):
    saved = authoring.draft_save(spec=spec, user=user)
    assert saved.valid, saved.problems
    return authoring.draft_publish(version=saved.version, user=user)


@pytest.fixture
def workflow_admin(make_user):
    return make_user("wfadmin", roles.WORKFLOW_ADMIN)


def shown_events(client, **params):
    response = client.get(EVENTS, params)
    assert response.status_code == 200
    return response, {row["event"].pk: row for row in response.context["rows"]}


# -- emitting ------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_it_refuses_a_payload_that_breaks_the_schema_and_writes_nothing():
    install_definition(bound("complaints", "Complaints"))
    with pytest.raises(EventPayloadInvalid) as caught:
        event_emit(name="case.opened", payload=case_payload(case_id="eleven", kind="parking"))
    assert "case_id: 'eleven' is not of type 'integer'" in str(caught.value)
    assert "kind: 'parking' is not one of" in str(caught.value)
    assert not BusinessEvent.objects.exists()
    assert not Process.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_emits_of_the_same_event_give_one_event_and_one_process():
    install_definition(bound("complaints", "Complaints"))
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def emit(index: int) -> None:
        try:
            with transaction.atomic():
                barrier.wait(timeout=10)
                event = event_emit(name="case.opened", payload=case_payload(), event_id="case:11:opened")
                time.sleep(0.3)  # keep the transaction open so the other insert meets the uncommitted row
            results[index] = ("ok", event.pk)
        except Exception as exc:  # collected and asserted below
            results[index] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=emit, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert [r[0] for r in results] == ["ok", "ok"], results
    assert results[0][1] == results[1][1]
    event = BusinessEvent.objects.get()
    assert event.state == BusinessEvent.State.STARTED
    assert Process.objects.count() == 1
    assert event.process == Process.objects.get()


# -- unmatched, replay ---------------------------------------------------------------------------------
@pytest.mark.django_db
def test_an_unmatched_event_is_listed_and_its_replay_starts_one_process_once(client, login, workflow_admin):
    event = event_emit(name="case.opened", payload=case_payload(subject="Barrier broken"))
    assert event.state == BusinessEvent.State.UNMATCHED and event.process is None
    login(client, workflow_admin)

    response, rows = shown_events(client)
    assert event.pk in rows
    page = response.content.decode()
    assert "No workflow matched" in page
    assert ">subject</dt>" in page and ">Barrier broken</dd>" in page  # the payload as keys and values
    assert "&quot;subject&quot;: &quot;Barrier broken&quot;" not in page  # not raw JSON
    assert response.context["rule"] in page

    replay = reverse("workflows:event-replay", args=[event.pk])
    response = client.post(replay, {"next": EVENTS}, follow=True)
    assert "still matches no published workflow" in response.content.decode()
    assert not Process.objects.exists()

    publish(bound("complaints", "Complaints"))
    response = client.post(replay, {"next": EVENTS}, follow=True)
    process = Process.objects.get()
    assert f"started process #{process.pk} of Complaints" in response.content.decode()
    event.refresh_from_db()
    assert (event.state, event.process_id, event.attempts) == (BusinessEvent.State.STARTED, process.pk, 3)
    assert process.variables["subject"] == "Barrier broken"
    assert event.pk not in shown_events(client)[1]  # it no longer needs attention
    started = shown_events(client, state="started")[0].content.decode()
    assert reverse("workflows:process-detail", args=[process.pk]) in started

    response = client.post(replay, {"next": EVENTS}, follow=True)
    assert f"already started process #{process.pk}" in response.content.decode()
    assert Process.objects.count() == 1


@pytest.mark.django_db
def test_a_condition_that_fails_at_runtime_holds_the_event_as_an_incident_until_fixed(client, login, workflow_admin):
    publish(bound("contract-cases", "Contract cases", condition="event.contract_id > 5"))
    event = event_emit(name="case.opened", payload=case_payload(contract_id=None))  # no exception for the emitter
    assert event.state == BusinessEvent.State.INCIDENT
    assert "The start condition of 'Contract cases' failed" in event.error
    assert not Process.objects.exists()

    login(client, workflow_admin)
    response, rows = shown_events(client, state="incident")
    assert event.pk in rows
    assert "The start condition of &#x27;Contract cases&#x27; failed" in response.content.decode()

    response = client.post(reverse("workflows:event-replay", args=[event.pk]), follow=True)
    assert "held as an incident again" in response.content.decode()
    assert not Process.objects.exists()

    publish(bound("contract-cases", "Contract cases", condition="event.contract_id != null && event.contract_id > 5"))
    publish(bound("cases", "Cases"))
    response = client.post(reverse("workflows:event-replay", args=[event.pk]), follow=True)
    event.refresh_from_db()
    assert event.state == BusinessEvent.State.STARTED
    assert Process.objects.get().definition.key == "cases"
    assert "started process" in response.content.decode()


@pytest.mark.django_db
def test_an_event_is_dismissed_with_a_reason(client, login, workflow_admin):
    event = event_emit(name="case.opened", payload=case_payload())
    login(client, workflow_admin)
    dismiss = reverse("workflows:event-dismiss", args=[event.pk])
    response = client.post(dismiss, {"reason": ""}, follow=True)
    assert "was not dismissed" in response.content.decode()
    event.refresh_from_db()
    assert event.state == BusinessEvent.State.UNMATCHED

    response = client.post(dismiss, {"reason": "Test case from the training"}, follow=True)
    assert "is dismissed: Test case from the training" in response.content.decode()
    event.refresh_from_db()
    assert (event.state, event.error) == (BusinessEvent.State.DISMISSED, "Test case from the training")
    assert event.pk not in shown_events(client)[1]
    assert event.pk in shown_events(client, state="dismissed")[1]
    assert not shown_events(client, name="case.opened")[1]  # needs attention, of that name: none left


# -- publishing ----------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_tie_is_refused_at_publish_naming_the_other_workflow_and_a_condition_wins(client, login, workflow_admin):
    assert publish(bound("complaints", "Complaints")).valid

    refused = publish(bound("more-complaints", "More complaints"))
    assert not refused.valid
    message = refused.problems[0]["message"]
    assert "'Complaints' (complaints) already starts on 'case.opened'" in message
    assert refused.problems[0]["element_id"] == "start"
    assert refused.version.state == WorkflowVersion.State.DRAFT
    assert list(StartBinding.objects.values_list("definition__key", flat=True)) == ["complaints"]

    login(client, workflow_admin)
    spec = bound("other-complaints", "Other complaints")
    authoring.draft_save(spec=spec)
    response = client.post(
        reverse("workflows:editor-publish", args=["other-complaints"]),
        json.dumps({"xml": definition_to_bpmn(spec)}),
        content_type="application/json",
    )
    answer = response.json()
    assert answer["ok"] is False
    assert any("'Complaints' (complaints) already starts on 'case.opened'" in e["message"] for e in answer["errors"])

    urgent = publish(bound("urgent", "Urgent complaints", condition='event.priority == "urgent"'))
    assert urgent.valid, urgent.problems
    assert event_emit(name="case.opened", payload=case_payload(priority="urgent")).process.definition.key == "urgent"
    assert event_emit(name="case.opened", payload=case_payload(priority="low")).process.definition.key == "complaints"

    response = client.get(EVENTS)
    catalogue = {item["type"].name: item for item in response.context["catalogue"]}
    verdicts = [(row["name"], row["wins"]) for row in catalogue["case.opened"]["bindings"]]
    assert verdicts[0][0] == "Urgent complaints" and verdicts[0][1].startswith("Wins when its condition holds")
    assert verdicts[1] == ("Complaints", "Wins when no workflow with a condition matches.")
    assert "event.priority == &quot;urgent&quot;" in response.content.decode()


@pytest.mark.django_db
def test_a_recursive_call_activity_is_refused_at_publish_naming_the_chain():
    assert publish(by_hand("alpha", "Alpha")).valid
    assert publish(by_hand("beta", "Beta", calls="alpha")).valid
    refused = publish(by_hand("alpha", "Alpha", calls="beta"))
    assert not refused.valid
    assert "'Alpha' cannot be published: it would call itself (alpha → beta → alpha)" in refused.problems[0]["message"]
    assert WorkflowVersion.objects.get(definition__key="alpha", state="published").number == 1


# -- who sees and acts ---------------------------------------------------------------------------------
@pytest.mark.django_db
def test_agents_may_not_see_events_and_supervisors_may_not_replay(client, login, make_user, agent):
    event = event_emit(name="case.opened", payload=case_payload())
    replay = reverse("workflows:event-replay", args=[event.pk])
    dismiss = reverse("workflows:event-dismiss", args=[event.pk])

    login(client, agent)
    assert client.get(EVENTS).status_code == 403
    assert client.post(replay).status_code == 403
    assert client.post(dismiss, {"reason": "no"}).status_code == 403

    login(client, make_user("boss", roles.SUPERVISOR))
    response = client.get(EVENTS)
    assert response.status_code == 200 and event.pk in {r["event"].pk for r in response.context["rows"]}
    assert "Replay" not in response.content.decode()
    assert client.post(replay).status_code == 403
    event.refresh_from_db()
    assert event.attempts == 1 and event.state == BusinessEvent.State.UNMATCHED


@pytest.mark.django_db
def test_the_page_says_when_nothing_needs_attention_and_paginates(
    client, login, workflow_admin, django_assert_max_num_queries
):
    login(client, workflow_admin)
    response = client.get(EVENTS)
    assert "No event needs attention" in response.content.decode()
    for number in range(30):
        event_emit(name="case.opened", payload=case_payload(case_id=number + 1), business_object=CarParkFactory())
    with django_assert_max_num_queries(15):  # not one more per event or business object
        response = client.get(EVENTS)
    assert response.context["page"].paginator.count == 30 and len(response.context["rows"]) == 25
    assert len(client.get(EVENTS, {"page": 2}).context["rows"]) == 5
    response = client.get(EVENTS, {"name": "no.such_event"})
    assert "is not a business event" in response.content.decode()


# -- replaying every waiting event of one name -------------------------------------------------------
@pytest.mark.django_db
def test_it_replays_every_waiting_event_of_a_name_once_a_workflow_exists(client, login, workflow_admin):
    waiting = [event_emit(name="case.opened", payload=case_payload(case_id=n)) for n in (1, 2, 3)]
    other = event_emit(name="customer.created", payload={"customer_id": 4, "customer_kind": "private"})
    login(client, workflow_admin)
    page = client.get(EVENTS)
    assert [(w["name"], w["unmatched"], w["bound"]) for w in page.context["waiting"]] == [
        ("case.opened", 3, False),
        ("customer.created", 1, False),
    ]
    assert b"Publish a workflow that starts on case.opened first" in page.content

    publish(bound("care", "Care"))
    response = client.post(reverse("workflows:events-replay-all"), {"name": "case.opened"}, follow=True)
    assert "Replayed 3 case.opened events: each started a process." in response.content.decode()
    for event in waiting:
        event.refresh_from_db()
        assert event.state == BusinessEvent.State.STARTED
    assert Process.objects.filter(definition__key="care").count() == 3
    other.refresh_from_db()
    assert other.state == BusinessEvent.State.UNMATCHED  # only the chosen event's are replayed

    again = client.post(reverse("workflows:events-replay-all"), {"name": "case.opened"}, follow=True)
    assert "No case.opened event was waiting." in again.content.decode()
    assert Process.objects.filter(definition__key="care").count() == 3


@pytest.mark.django_db
def test_only_editors_replay_everything(client, login, make_user):
    event_emit(name="case.opened", payload=case_payload())
    login(client, make_user("sup", roles.SUPERVISOR))
    assert client.post(reverse("workflows:events-replay-all"), {"name": "case.opened"}).status_code == 403
    assert BusinessEvent.objects.get().state == BusinessEvent.State.UNMATCHED
