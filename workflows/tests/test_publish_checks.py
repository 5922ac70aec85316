"""Publishing refuses what cannot run, naming each step by its name; the published version stays in force.

The workflow's ids differ from its names (as a BPMN modeler makes them), so a message that names the
step by its id instead of its name fails here.
"""

from __future__ import annotations

import copy

import pytest
from django.contrib.auth.models import Group

from accounts import roles
from workflows import authoring
from workflows.compiler import compile_spec
from workflows.errors import DefinitionInvalid
from workflows.models import WorkflowDefinition, WorkflowVersion
from workflows.services import definition_install, process_start, version_publish

pytestmark = pytest.mark.django_db

KEY = "refund-request"
CHECK = "Activity_009j129"

REFUND = {
    "key": KEY,
    "name": "Refund request",
    "steps": [
        {"id": "StartEvent_1", "type": "start", "name": "Request received", "next": CHECK, "starters": [roles.CARE]},
        {
            "id": CHECK,
            "type": "user",
            "name": "Check the request",
            "role": roles.AGENT,
            "escalation": [{"after": "P1D", "to": roles.SUPERVISOR}],
            "outcomes": {"approve": "Activity_1pay", "reject": "Event_0rejected"},
        },
        {
            "id": "Activity_1pay",
            "type": "system",
            "name": "Pay the refund",
            "task": "tests.activate_credential",
            "next": "Event_0done",
        },
        {"id": "Event_0done", "type": "end", "name": "Refunded"},
        {"id": "Event_0rejected", "type": "end", "name": "Rejected"},
    ],
}


def refund(**step_changes: dict) -> dict:
    spec = copy.deepcopy(REFUND)
    for step in spec["steps"]:
        step.update(step_changes.get(step["id"], {}))
    return spec


def unknown_role(spec: dict) -> dict:
    return refund(**{CHECK: {"role": "Night porter"}})


def unknown_escalation(spec: dict) -> dict:
    return refund(**{CHECK: {"escalation": [{"after": "P1D", "to": "Night manager"}]}})


def unknown_starter(spec: dict) -> dict:
    return refund(StartEvent_1={"starters": [roles.CARE, "Night porter"]})


def unknown_system_task(spec: dict) -> dict:
    return refund(Activity_1pay={"task": "refunds.pay_by_cheque"})


def unreachable(spec: dict) -> dict:
    spec = refund()
    orphan = {"id": "Activity_0orphan", "type": "user", "name": "Call the customer", "role": roles.CARE}
    spec["steps"].append(orphan | {"outcomes": {"done": "Event_0done"}})
    return spec


def no_end(spec: dict) -> dict:
    spec = refund(**{CHECK: {"outcomes": {"approve": "Activity_1pay", "reject": "Activity_0limbo"}}})
    spec["steps"].append(
        {
            "id": "Activity_0limbo",
            "type": "wait",
            "name": "Wait for the letter",
            "duration": "P1D",
            "next": "Activity_0limbo",
        }
    )
    return spec


REFUSALS = [
    # (broken definition, element id, element name, words the message must hold)
    (unknown_role, CHECK, "Check the request", ["“Night porter”", "does not exist", roles.AGENT, roles.FINANCE]),
    (unknown_escalation, CHECK, "Check the request", ["escalation level 1", "“Night manager”", roles.SUPERVISOR]),
    (unknown_starter, "StartEvent_1", "Request received", ["starter “Night porter”", roles.CARE]),
    (unknown_system_task, "Activity_1pay", "Pay the refund", ["'refunds.pay_by_cheque' is not registered"]),
    (unreachable, "Activity_0orphan", "Call the customer", ["cannot be reached from the start"]),
    (no_end, "Activity_0limbo", "Wait for the letter", ["no end can be reached"]),
]


@pytest.fixture
def wfadmin(make_user):
    return make_user("wfadmin", roles.WORKFLOW_ADMIN)


@pytest.fixture
def published():
    return definition_install(spec=refund())


@pytest.mark.parametrize(("broken", "element_id", "name", "words"), REFUSALS, ids=[r[0].__name__ for r in REFUSALS])
def test_publishing_refuses_naming_the_step_and_keeps_the_published_version(
    published, wfadmin, broken, element_id, name, words
):
    saved = authoring.draft_save(spec=broken(REFUND), user=wfadmin)
    draft = saved.version
    assert draft.state == WorkflowVersion.State.DRAFT and draft.number == 2  # the draft is kept, whatever is wrong

    result = authoring.draft_publish(version=draft, user=wfadmin)

    mine = [p for p in result.problems if p["element_id"] == element_id]
    assert mine, result.problems
    assert mine[0]["element_name"] == name
    assert all(word in mine[0]["message"] for word in words), mine[0]["message"]
    assert all(p.get("severity", "error") == "error" for p in result.problems)
    draft.refresh_from_db()
    published.refresh_from_db()
    assert draft.state == WorkflowVersion.State.DRAFT
    assert published.state == WorkflowVersion.State.PUBLISHED
    assert process_start(definition_key=KEY).version_id == published.pk  # new processes still run version 1

    # The engine's own publish says the same, the step by its name first and the id as a hint.
    with pytest.raises(DefinitionInvalid) as refused:
        version_publish(version=draft, user=wfadmin)
    text = next(e for e in refused.value.errors if e.startswith(f"“{name}” ({element_id}): "))
    assert all(word in text for word in words)
    assert (element_id, name) in {(p.element_id, p.element_name) for p in refused.value.problems}


def test_a_draft_with_an_unknown_role_saves_with_a_warning(wfadmin):
    saved = authoring.draft_save(spec=unknown_role(REFUND), user=wfadmin)

    assert saved.version is not None and saved.version.state == WorkflowVersion.State.DRAFT
    assert saved.valid  # a warning, not an error: the draft is saved and its graph compiled
    assert saved.version.graph["steps"][CHECK]["role"] == "Night porter"
    [warning] = saved.problems
    assert warning["severity"] == "warning" and warning["element_id"] == CHECK
    assert warning["element_name"] == "Check the request" and "“Night porter”" in warning["message"]


def test_a_role_an_admin_added_as_a_group_is_a_role(wfadmin):
    Group.objects.create(name="Night porter")
    saved = authoring.draft_save(spec=unknown_role(REFUND), user=wfadmin)
    assert saved.problems == []
    assert authoring.draft_publish(version=saved.version, user=wfadmin).valid
    saved.version.refresh_from_db()
    assert saved.version.state == WorkflowVersion.State.PUBLISHED


def test_installing_and_publishing_at_once_refuses_an_unknown_role_and_writes_nothing():
    with pytest.raises(DefinitionInvalid, match="“Check the request” \\(Activity_009j129\\): role “Night porter”"):
        definition_install(spec=unknown_role(REFUND))
    assert not WorkflowDefinition.objects.filter(key=KEY).exists()
    # As a draft it installs (the role may be created before publishing).
    assert definition_install(spec=unknown_role(REFUND), publish=False).state == WorkflowVersion.State.DRAFT


CAMUNDA = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Definitions_1" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="Process_refund" name="Refund request" isExecutable="true">
    <bpmn:startEvent id="StartEvent_1"><bpmn:outgoing>Flow_1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="Activity_009j129" name="Check the request" camunda:candidateGroups="backoffice">
      <bpmn:incoming>Flow_1</bpmn:incoming><bpmn:outgoing>Flow_2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="Event_0x1"><bpmn:incoming>Flow_2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="Flow_1" sourceRef="StartEvent_1" targetRef="Activity_009j129" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Activity_009j129" targetRef="Event_0x1" />
  </bpmn:process>
</bpmn:definitions>
"""


def test_a_camunda_file_with_an_unknown_candidate_group_saves_and_is_refused_at_publish(wfadmin):
    saved = authoring.draft_save_bpmn(xml=CAMUNDA, key="camunda-refund", user=wfadmin)
    assert saved.version is not None and saved.version.state == WorkflowVersion.State.DRAFT
    assert [p["severity"] for p in saved.problems] == ["warning"]

    result = authoring.draft_publish(version=saved.version, user=wfadmin)

    [problem] = result.problems
    assert problem["element_id"] == CHECK and problem["element_name"] == "Check the request"
    assert "role “backoffice” does not exist" in problem["message"] and roles.AGENT in problem["message"]
    saved.version.refresh_from_db()
    assert saved.version.state == WorkflowVersion.State.DRAFT


def test_compile_problems_keep_the_step_id_apart_from_the_text():
    spec = refund(**{CHECK: {"role": ""}})
    del spec["steps"][1]["role"]
    with pytest.raises(DefinitionInvalid) as refused:
        compile_spec(spec)
    assert refused.value.errors == ["“Check the request” (Activity_009j129): a user task needs a 'role'"]
    [problem] = refused.value.problems
    assert (problem.element_id, problem.element_name, problem.message) == (
        CHECK,
        "Check the request",
        "a user task needs a 'role'",
    )
    # A step without a name is named by its id in words.
    spec = refund(Event_0done={"name": ""})
    spec["steps"].append({"id": "Event_0done", "type": "end"})
    with pytest.raises(DefinitionInvalid, match="“Event 0done” \\(Event_0done\\): the id is used by two steps"):
        compile_spec(spec)
    assert authoring.problems_from_errors(refused.value)[0]["element_id"] == CHECK
