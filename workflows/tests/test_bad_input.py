"""Input that PostgreSQL cannot store or a column cannot hold is refused with a clear error, never a 500:
NUL characters in reasons, names, start-form values, drafts and the editor's JSON; an over-long process
name in a BPMN file; and BPMN files in any encoding the XML specification allows."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from accounts import roles
from workflows import services
from workflows.models import BusinessEvent, Process, Task, WorkflowDefinition, WorkflowVersion
from workflows.starting import event_emit
from workflows.testing import install_definition
from workflows.tests.basket_support import CarParkFactory, install, person, start_review
from workflows.tests.test_events import case_payload
from workflows.tests.test_manual_start import form_url, goodwill_spec

pytestmark = pytest.mark.django_db

NUL = "bad\x00reason"


@pytest.fixture
def no_500(client):
    """The client answers a server error as a response (status 500) instead of raising it in the test."""
    client.raise_request_exception = False
    return client


def test_a_nul_in_a_process_action_reason_is_refused_with_a_message(no_500, login, admin_user, season_spec):
    install_definition(season_spec)
    process = services.process_start(definition_key="test-season", variables={"deposit": 1})
    login(no_500, admin_user)
    for action in ("suspend", "cancel"):
        response = no_500.post(reverse("workflows:process-action", args=[process.pk, action]), {"reason": NUL})
        assert response.status_code == 302, action
        page = no_500.get(response["Location"]).content.decode()
        assert "Reason must not contain NUL characters." in page, action
        assert Process.objects.get(pk=process.pk).state == Process.State.RUNNING
    # A clean reason still works.
    no_500.post(reverse("workflows:process-action", args=[process.pk, "cancel"]), {"reason": "duplicate"})
    assert Process.objects.get(pk=process.pk).state == Process.State.CANCELLED


def test_a_nul_in_a_dismiss_reason_is_refused_with_a_message(no_500, login, make_user):
    event = event_emit(name="case.opened", payload=case_payload())
    login(no_500, make_user("wfadmin", roles.WORKFLOW_ADMIN))
    response = no_500.post(reverse("workflows:event-dismiss", args=[event.pk]), {"reason": NUL}, follow=True)
    assert response.status_code == 200
    assert "Reason must not contain NUL characters." in response.content.decode()
    event.refresh_from_db()
    assert event.state == BusinessEvent.State.UNMATCHED


def test_a_nul_in_a_start_form_value_is_answered_at_the_field(no_500, login, make_user):
    install_definition(goodwill_spec())
    login(no_500, make_user("wfadmin", roles.WORKFLOW_ADMIN))
    response = no_500.post(form_url(), {"reason": NUL, "amount": "3"})
    assert response.status_code == 200
    errors = {f["name"]: f["error"] for f in response.context["fields"]}
    assert errors["reason"] == "Reason must not contain NUL characters."
    assert not Process.objects.exists()


def test_a_nul_in_a_saved_task_draft_is_answered_at_the_form(no_500, login):
    install()
    carpark = CarParkFactory(name="Altstadt")
    agent = person("agent_a", roles.AGENT, carparks=[carpark])
    task = start_review(carpark, customer_name="Erika Mustermann")
    login(no_500, agent)
    no_500.post(reverse("workflows:task-claim", args=[task.pk]))
    response = no_500.post(reverse("workflows:task-complete", args=[task.pk]), {"action": "save", "note": NUL})
    assert response.status_code == 400
    assert "Null characters are not allowed." in response.content.decode()
    task.refresh_from_db()
    assert task.state == Task.State.CLAIMED and not task.inputs


def test_a_nul_in_a_new_workflow_name_is_answered_at_the_field(no_500, login, make_user):
    login(no_500, make_user("wfadmin", roles.WORKFLOW_ADMIN))
    response = no_500.post(reverse("workflows:definition-new"), {"key": "k1", "name": NUL})
    assert response.status_code == 200
    assert response.context["errors"] == {"name": "Name must not contain NUL characters."}
    response = no_500.post(reverse("workflows:definition-new"), {"key": "k1", "name": "n" * 201})
    assert response.status_code == 200
    assert response.context["errors"] == {"name": "Use at most 200 characters (this name has 201)."}
    assert not WorkflowDefinition.objects.exists()


def test_a_nul_in_the_editors_json_is_a_400(no_500, login, make_user):
    install_definition(goodwill_spec())
    login(no_500, make_user("wfadmin", roles.WORKFLOW_ADMIN))
    xml = no_500.get(reverse("workflows:definition-export", args=["goodwill"])).content.decode()
    url = reverse("workflows:editor-save", args=["goodwill"])
    response = no_500.post(url, json.dumps({"xml": xml, "comment": NUL}), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["message"] == "The request must not contain NUL characters."
    assert WorkflowVersion.objects.filter(definition__key="goodwill").count() == 1


def _bpmn(name: str, key: str = "goodwill") -> str:
    from workflows.bpmn import definition_to_bpmn

    return definition_to_bpmn({**goodwill_spec(), "key": key, "name": name})


def _upload(client, content: bytes, filename: str = "goodwill.bpmn"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile(filename, content, content_type="application/xml")
    return client.post(reverse("workflows:definition-import"), {"file": upload})


def test_a_process_name_longer_than_the_column_is_refused_naming_the_process(no_500, login, make_user):
    install_definition(goodwill_spec())
    before = list(WorkflowVersion.objects.values_list("pk", "checksum"))
    login(no_500, make_user("wfadmin", roles.WORKFLOW_ADMIN))
    long_name = "Goodwill " + "x" * 200

    response = _upload(no_500, _bpmn(long_name).encode())
    assert response.status_code == 200
    problems = response.context["problems"]
    assert [(p["element_id"], p["message"]) for p in problems] == [
        ("goodwill", "the process name has 209 characters; a workflow name has at most 200")
    ]

    for endpoint in ("editor-save", "editor-publish"):
        response = no_500.post(
            reverse(f"workflows:{endpoint}", args=["goodwill"]),
            json.dumps({"xml": _bpmn(long_name)}),
            content_type="application/json",
        )
        assert response.status_code == 200, endpoint
        body = response.json()
        assert body["ok"] is False and body["errors"][0]["element_id"] == "goodwill", endpoint
    # The published version and the definition are untouched.
    assert list(WorkflowVersion.objects.values_list("pk", "checksum")) == before
    assert WorkflowDefinition.objects.get(key="goodwill").name == "Goodwill gesture"


def test_a_spec_with_an_over_long_name_is_refused_before_anything_is_written():
    from workflows import authoring

    saved = authoring.draft_save(spec={**goodwill_spec(), "name": "n" * 201})
    assert saved.version is None
    assert saved.problems == [
        {"element_id": "", "element_name": "", "message": "the workflow name has 201 characters; at most 200"}
    ]
    assert not WorkflowDefinition.objects.exists()


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "iso-8859-1"])
def test_a_bpmn_file_in_any_xml_encoding_is_imported(no_500, login, make_user, codec):
    login(no_500, make_user("wfadmin", roles.WORKFLOW_ADMIN))
    text = _bpmn("Kulanz für Kunden")
    declared = {"utf-16-le": "UTF-16", "utf-16-be": "UTF-16", "utf-8-sig": "UTF-8"}.get(codec, codec.upper())
    text = text.replace("encoding='UTF-8'", f"encoding='{declared}'")
    assert f"encoding='{declared}'" in text
    content = text.encode(codec)
    if codec in ("utf-16-le", "utf-16-be"):  # with a byte order mark, as Windows editors write it
        content = ("\ufeff" + text).encode(codec)

    response = _upload(no_500, content)
    assert response.status_code == 302, response.context and response.context["summary"]
    version = WorkflowVersion.objects.get(definition__key="goodwill")
    assert version.definition.name == "Kulanz für Kunden"
    # Stored as text, the declaration no longer claims an encoding the text is not in; it reads back.
    assert version.bpmn_xml.startswith("<?xml version='1.0' encoding='UTF-8'?>")
    export = no_500.get(reverse("workflows:definition-export", args=["goodwill"]))
    assert export.status_code == 200 and "Kulanz für Kunden" in export.content.decode("utf-8")
    assert no_500.get(reverse("workflows:editor", args=["goodwill"])).status_code == 200


def test_a_bpmn_file_whose_bytes_do_not_match_its_encoding_is_refused_clearly(no_500, login, make_user):
    login(no_500, make_user("wfadmin", roles.WORKFLOW_ADMIN))
    response = _upload(no_500, _bpmn("Kulanz für Kunden").encode("iso-8859-1"))  # declared UTF-8
    assert response.status_code == 200
    assert "not well-formed" in response.context["summary"]
    assert not WorkflowDefinition.objects.exists()


def test_the_bpmn_readers_limits_are_the_definitions_columns():
    from workflows.bpmn import DEFINITION_LIMITS

    columns = {name: WorkflowDefinition._meta.get_field(name).max_length for name in ("key", "name", "category")}
    assert columns == DEFINITION_LIMITS
