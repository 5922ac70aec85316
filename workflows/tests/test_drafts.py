"""Drafts never lose work: a half-drawn diagram the BPMN reader refuses is saved as drawn, its errors are
marked on its elements, publishing refuses it naming them, and the pages that list or open it render."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts import roles
from workflows import authoring
from workflows.bpmn import definition_to_bpmn
from workflows.models import WorkflowDefinition, WorkflowVersion
from workflows.services import definition_install

pytestmark = pytest.mark.django_db

KEY = "refund"

# What a new user has drawn after a minute: a start, a user task without a role and without an outgoing flow.
HALF_DRAWN = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
    xmlns:di="http://www.omg.org/spec/DD/20100524/DI" id="Definitions_1" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="{KEY}" name="Refund" isExecutable="true">
    <bpmn:startEvent id="StartEvent_1"><bpmn:outgoing>Flow_1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="Activity_check" name="Check the refund"><bpmn:incoming>Flow_1</bpmn:incoming></bpmn:userTask>
    <bpmn:sequenceFlow id="Flow_1" sourceRef="StartEvent_1" targetRef="Activity_check" />
  </bpmn:process>
  <bpmndi:BPMNDiagram id="BPMNDiagram_1"><bpmndi:BPMNPlane id="BPMNPlane_1" bpmnElement="{KEY}">
    <bpmndi:BPMNShape id="StartEvent_1_di" bpmnElement="StartEvent_1">
      <dc:Bounds x="152" y="102" width="36" height="36" />
    </bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="Activity_check_di" bpmnElement="Activity_check">
      <dc:Bounds x="240" y="80" width="100" height="80" />
    </bpmndi:BPMNShape>
    <bpmndi:BPMNEdge id="Flow_1_di" bpmnElement="Flow_1"><di:waypoint x="188" y="120" /><di:waypoint x="240" y="120" />
    </bpmndi:BPMNEdge>
  </bpmndi:BPMNPlane></bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


def spec(role: str = roles.FINANCE) -> dict:
    return {
        "key": KEY,
        "name": "Refund",
        "steps": [
            {"id": "start", "type": "start", "next": "check"},
            {"id": "check", "type": "user", "name": "Check refund", "role": role, "due_in": "P2D", "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }


@pytest.fixture
def wfadmin(make_user, login, client):
    for name in roles.ALL_ROLES:
        Group.objects.get_or_create(name=name)
    user = make_user("wfadmin", roles.WORKFLOW_ADMIN)
    login(client, user)
    return user


def _by_element(problems: list[dict]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for p in problems:
        assert {"element_id", "element_name", "message", "severity"} <= set(p), p
        found.setdefault(p["element_id"], []).append(f"{p['severity']}: {p['message']}")
    return found


def test_draft_save_bpmn_keeps_a_diagram_the_reader_refuses(wfadmin):
    published = definition_install(spec=spec())
    saved = authoring.draft_save_bpmn(xml=HALF_DRAWN, key=KEY, user=wfadmin, keep_refused=True)
    assert saved.version is not None and saved.version.state == WorkflowVersion.State.DRAFT
    assert saved.version.number == published.number + 1
    assert saved.version.bpmn_xml == HALF_DRAWN  # as drawn, not a re-export
    assert saved.version.spec["steps"] == [] and not saved.version.graph  # never runs
    assert not saved.valid
    problems = _by_element(saved.problems)
    task = problems["Activity_check"]
    assert any(m.startswith("error:") and "outgoing sequence flow" in m for m in task), task
    assert any(m.startswith("error:") and "role" in m for m in task), task
    assert any(m.startswith("warning:") and "due time" in m for m in task), task
    assert all(p["element_name"] == "Check the refund" for p in saved.problems if p["element_id"] == "Activity_check")
    # The draft's problems are read again from the stored diagram (what the editor shows on reload).
    assert _by_element(authoring.draft_problems(saved.version)) == problems
    # Without keep_refused a refused file still changes nothing.
    before = WorkflowVersion.objects.count()
    with pytest.raises(Exception, match="outgoing sequence flow"):
        authoring.draft_save_bpmn(xml=HALF_DRAWN.replace(KEY, "other"), key="other", user=wfadmin)
    assert WorkflowVersion.objects.count() == before


def test_publish_refuses_a_draft_saved_as_drawn_naming_the_problem(wfadmin):
    definition_install(spec=spec())
    saved = authoring.draft_save_bpmn(xml=HALF_DRAWN, key=KEY, user=wfadmin, keep_refused=True)
    refused = authoring.draft_publish(version=saved.version, user=wfadmin)
    assert not refused.valid
    assert [(p["element_id"], p["message"]) for p in refused.problems] == [
        ("Activity_check", "a user task needs at least one outgoing sequence flow")
    ]
    saved.version.refresh_from_db()
    assert saved.version.state == WorkflowVersion.State.DRAFT
    assert WorkflowDefinition.objects.get(key=KEY).published_version().number == 1


def test_the_save_view_stores_the_draft_and_the_pages_render_it(client, wfadmin):
    definition_install(spec=spec())
    url = reverse("workflows:editor-save", kwargs={"key": KEY})
    answer = client.post(url, {"xml": HALF_DRAWN, "comment": "half done"}, "application/json").json()
    assert answer["ok"] and answer["saved"] and not answer["valid"] and answer["version"] == 2
    assert answer["message"] == "Draft saved (v2) \u2014 2 problems to fix before publishing (1 warning)"
    assert {p["element_id"] for p in answer["errors"]} == {"Activity_check"}
    assert [p["severity"] for p in answer["problems"]] == ["error", "error", "warning"]
    draft = WorkflowDefinition.objects.get(key=KEY).versions.get(number=2)
    assert (draft.bpmn_xml, draft.comment) == (HALF_DRAWN, "half done")

    validate = client.post(
        reverse("workflows:editor-validate", kwargs={"key": KEY}), {"xml": HALF_DRAWN}, "application/json"
    ).json()
    assert not validate["ok"] and validate["message"] == "2 errors, 1 warning"

    publish = client.post(
        reverse("workflows:editor-publish", kwargs={"key": KEY}), {"xml": HALF_DRAWN}, "application/json"
    ).json()
    assert (
        not publish["ok"] and publish["message"] == "Not published: fix the 2 errors marked. The draft is saved (v2)."
    )
    assert "cannot be imported" not in json.dumps([answer["message"], validate["message"], publish["message"]])

    detail = client.get(reverse("workflows:definition-detail", kwargs={"key": KEY}))
    assert detail.status_code == 200 and "Edit draft v2" in detail.content.decode()
    editor = client.get(reverse("workflows:editor", kwargs={"key": KEY}))
    assert editor.status_code == 200
    config = json.loads(editor.content.decode().split('id="editor-config" type="application/json">')[1].split("<")[0])
    assert config["xml"] == HALF_DRAWN and config["draft"] == 2
    assert _by_element(config["problems"]) == _by_element(answer["problems"])
    view = client.get(reverse("workflows:version-view", kwargs={"key": KEY, "number": 2}))
    assert view.status_code == 200
    export = client.get(reverse("workflows:version-export", kwargs={"key": KEY, "number": 2}))
    assert export.content.decode() == HALF_DRAWN
    compare = client.get(reverse("workflows:version-compare", kwargs={"key": KEY}), {"a": 1, "b": 2})
    assert compare.status_code == 200


def test_validate_and_publish_status_lines(client, wfadmin):
    definition_install(spec=spec())
    good = definition_to_bpmn({**spec(), "steps": [*spec()["steps"][:1], {**spec()["steps"][1]}, spec()["steps"][2]]})
    validate = client.post(
        reverse("workflows:editor-validate", kwargs={"key": KEY}), {"xml": good}, "application/json"
    ).json()
    assert validate["ok"] and validate["message"] == "Valid: can be published" and validate["errors"] == []
    changed = good.replace("Check refund", "Check the refund")
    published = client.post(
        reverse("workflows:editor-publish", kwargs={"key": KEY}), {"xml": changed}, "application/json"
    ).json()
    assert published["ok"] and published["message"] == "Published as version 2", published


def test_text_that_is_no_diagram_is_refused_and_nothing_is_saved(client, wfadmin):
    definition_install(spec=spec())
    before = WorkflowVersion.objects.count()
    answer = client.post(
        reverse("workflows:editor-save", kwargs={"key": KEY}), {"xml": "<html>no</html>"}, "application/json"
    ).json()
    assert not answer["ok"] and answer["message"].startswith("Not saved: this is not a BPMN diagram")
    assert WorkflowVersion.objects.count() == before
