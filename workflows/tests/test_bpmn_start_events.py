"""BPMN start events: a message start on a business event (condition, priority) and a none start (start form,
who may start it) survive export and import, Camunda 7 and 8 files bring their start along, other start
events are refused, exported files are valid BPMN 2.0, and a start that names a missing event or field is a
problem on the start element."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import pytest
from django.urls import reverse
from lxml import etree

from accounts import roles
from workflows import authoring
from workflows.bpmn import BPMN, BpmnError, bpmn_to_definition, definition_to_bpmn

# The BPMN 2.0 schema (OMG) as bpmn-js ships it; npm installs it with the editor (package.json).
BPMN_XSD = Path(__file__).resolve().parents[2] / "node_modules/bpmn-moddle/resources/bpmn/xsd/BPMN20.xsd"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
ZEEBE = "http://camunda.org/schema/zeebe/1.0"
CARD_CONDITION = 'event.kind == "card_replacement"'

ON_EVENT = {
    "key": "card-replacement",
    "name": "Card replacement",
    "steps": [
        {
            "id": "start",
            "type": "start",
            "name": "Case opened",
            "event": "case.opened",
            "condition": CARD_CONDITION,
            "priority": 5,
            "next": "send_card",
        },
        {"id": "send_card", "type": "user", "name": "Send a new card", "role": roles.CARE, "next": "done"},
        {"id": "done", "type": "end", "result": "sent"},
    ],
}

BY_HAND = {
    "key": "goodwill",
    "name": "Goodwill gesture",
    "steps": [
        {
            "id": "start",
            "type": "start",
            "name": "Goodwill asked",
            "inputs": [
                {"name": "amount", "label": "Amount", "type": "number", "required": True},
                {
                    "name": "reason",
                    "label": "Reason",
                    "type": "choice",
                    "required": False,
                    "choices": ["delay", "fault"],
                },
            ],
            "starters": [roles.CARE, roles.SUPERVISOR],
            "next": "approve",
        },
        {"id": "approve", "type": "user", "name": "Approve", "role": roles.SUPERVISOR, "next": "done"},
        {"id": "done", "type": "end"},
    ],
}


def steps(spec: dict) -> dict[str, dict]:
    return {s["id"]: s for s in spec["steps"]}


@cache
def bpmn_schema() -> etree.XMLSchema:
    assert BPMN_XSD.exists(), f"{BPMN_XSD} is missing: run npm ci (it installs bpmn-js and its BPMN 2.0 schema)"
    return etree.XMLSchema(etree.parse(str(BPMN_XSD)))


def start_problems(spec: dict) -> list[dict]:
    return [p for p in authoring.validate_spec(spec) if p["element_id"] == "start"]


# -- our own files -----------------------------------------------------------------------------------
def test_it_round_trips_a_message_start_with_condition_and_priority():
    xml = definition_to_bpmn(ON_EVENT)
    root = etree.fromstring(xml.encode())
    start = root.find(f"{{{BPMN}}}process/{{{BPMN}}}startEvent")
    ref = start.find(f"{{{BPMN}}}messageEventDefinition").get("messageRef")
    assert root.find(f"{{{BPMN}}}message[@id='{ref}']").get("name") == "case.opened"
    result = bpmn_to_definition(xml)
    assert result.spec == ON_EVENT
    assert result.warnings == []
    assert authoring.validate_spec(result.spec) == []


def test_it_round_trips_a_none_start_with_a_start_form_and_starters():
    xml = definition_to_bpmn(BY_HAND)
    start = etree.fromstring(xml.encode()).find(f"{{{BPMN}}}process/{{{BPMN}}}startEvent")
    assert start.find(f"{{{BPMN}}}messageEventDefinition") is None
    result = bpmn_to_definition(xml)
    assert result.spec == BY_HAND
    assert authoring.validate_spec(result.spec) == []


@pytest.mark.parametrize("spec", [ON_EVENT, BY_HAND], ids=["message-start", "none-start"])
def test_it_writes_start_events_that_validate_against_the_bpmn_2_0_schema(spec):
    schema = bpmn_schema()
    document = etree.fromstring(definition_to_bpmn(spec).encode())
    assert schema.validate(document), schema.error_log.filter_from_errors()
    # and it is a real check: an element BPMN does not know inside the start event fails it
    broken = copy.deepcopy(document)
    broken.find(f"{{{BPMN}}}process/{{{BPMN}}}startEvent").append(etree.Element(f"{{{BPMN}}}colour"))
    assert not schema.validate(broken)


# -- Camunda 7 and 8 ---------------------------------------------------------------------------------
def camunda7(start: str, messages: str = "") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="{BPMN}" xmlns:camunda="{CAMUNDA}" id="Definitions_1"
    targetNamespace="http://bpmn.io/schema/bpmn" exporter="Camunda Modeler" exporterVersion="5.28.0">
  <bpmn:process id="c7-start" name="Started (Camunda 7)" isExecutable="true" camunda:historyTimeToLive="180">
    {start}
    <bpmn:userTask id="Activity_handle" name="Handle" camunda:candidateGroups="{roles.CARE}">
      <bpmn:incoming>Flow_1</bpmn:incoming>
      <bpmn:outgoing>Flow_2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="EndEvent_1"><bpmn:incoming>Flow_2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="Flow_1" sourceRef="StartEvent_1" targetRef="Activity_handle" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Activity_handle" targetRef="EndEvent_1" />
  </bpmn:process>
  {messages}
</bpmn:definitions>"""


def test_it_imports_a_camunda_7_message_start_as_the_business_event():
    xml = camunda7(
        """<bpmn:startEvent id="StartEvent_1" name="Case opened">
             <bpmn:outgoing>Flow_1</bpmn:outgoing>
             <bpmn:messageEventDefinition id="MessageEventDefinition_0a" messageRef="Message_0x1" />
           </bpmn:startEvent>""",
        '<bpmn:message id="Message_0x1" name="case.opened" />',
    )
    start = steps(bpmn_to_definition(xml).spec)["StartEvent_1"]
    assert start == {"id": "StartEvent_1", "type": "start", "name": "Case opened", "event": "case.opened",
                     "next": "Activity_handle"}  # fmt: skip


def test_it_imports_a_camunda_7_start_form_as_the_start_form_of_a_none_start():
    xml = camunda7(
        """<bpmn:startEvent id="StartEvent_1" name="Asked for goodwill">
             <bpmn:extensionElements>
               <camunda:formData>
                 <camunda:formField id="amount" label="Amount" type="long">
                   <camunda:validation><camunda:constraint name="required" /></camunda:validation>
                 </camunda:formField>
                 <camunda:formField id="reason" label="Reason" type="enum">
                   <camunda:value id="delay" name="Delay" />
                   <camunda:value id="fault" name="Fault" />
                 </camunda:formField>
               </camunda:formData>
             </bpmn:extensionElements>
             <bpmn:outgoing>Flow_1</bpmn:outgoing>
           </bpmn:startEvent>"""
    )
    start = steps(bpmn_to_definition(xml).spec)["StartEvent_1"]
    assert "event" not in start
    assert start["inputs"] == [
        {"name": "amount", "label": "Amount", "type": "number", "required": True},
        {"name": "reason", "label": "Reason", "type": "choice", "required": False, "choices": ["delay", "fault"]},
    ]


@pytest.mark.parametrize("name", ["case.opened", '="case.opened"'])
def test_it_imports_a_camunda_8_message_start_as_the_business_event(name):
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="{BPMN}" xmlns:zeebe="{ZEEBE}" xmlns:modeler="http://camunda.org/schema/modeler/1.0"
    id="Definitions_1" targetNamespace="http://bpmn.io/schema/bpmn" modeler:executionPlatform="Camunda Cloud"
    modeler:executionPlatformVersion="8.6.0">
  <bpmn:process id="c8-start" name="Started (Camunda 8)" isExecutable="true">
    <bpmn:startEvent id="StartEvent_1" name="Case opened">
      <bpmn:outgoing>Flow_1</bpmn:outgoing>
      <bpmn:messageEventDefinition id="MessageEventDefinition_1" messageRef="Message_1" />
    </bpmn:startEvent>
    <bpmn:userTask id="Task_handle" name="Handle">
      <bpmn:extensionElements>
        <zeebe:userTask />
        <zeebe:assignmentDefinition candidateGroups="{roles.CARE}" />
      </bpmn:extensionElements>
      <bpmn:incoming>Flow_1</bpmn:incoming>
      <bpmn:outgoing>Flow_2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="End_1"><bpmn:incoming>Flow_2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="Flow_1" sourceRef="StartEvent_1" targetRef="Task_handle" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Task_handle" targetRef="End_1" />
  </bpmn:process>
  <bpmn:message id="Message_1" name='{name}' />
</bpmn:definitions>"""
    spec = bpmn_to_definition(xml).spec
    assert steps(spec)["StartEvent_1"]["event"] == "case.opened"
    assert steps(spec)["Task_handle"]["role"] == roles.CARE
    assert authoring.validate_spec(spec) == []


@pytest.mark.parametrize(
    "definition, kind",
    [
        ("<bpmn:timerEventDefinition><bpmn:timeCycle>R/PT1H</bpmn:timeCycle></bpmn:timerEventDefinition>", "timer"),
        ('<bpmn:signalEventDefinition signalRef="Signal_1" />', "signal"),
    ],
)
def test_it_refuses_a_timer_or_signal_start_saying_what_starts_a_workflow(definition, kind):
    xml = camunda7(
        f"""<bpmn:startEvent id="StartEvent_1" name="Every hour">
              <bpmn:outgoing>Flow_1</bpmn:outgoing>{definition}</bpmn:startEvent>""",
        '<bpmn:signal id="Signal_1" name="tick" />',
    )
    with pytest.raises(BpmnError) as refused:
        bpmn_to_definition(xml)
    [problem] = refused.value.problems
    assert problem.element_id == "StartEvent_1"
    assert f"a {kind} start event is not supported" in problem.message
    assert "business event (message start event) or by hand (none start event)" in problem.message


# -- problems on the start element -------------------------------------------------------------------
def test_an_unknown_event_is_a_problem_on_the_start_element():
    spec = copy.deepcopy(ON_EVENT)
    steps(spec)["start"].update(event="case.reopened", condition="")
    spec = bpmn_to_definition(definition_to_bpmn(spec)).spec
    [problem] = start_problems(spec)
    assert "'case.reopened' is not a business event" in problem["message"]
    assert "case.opened" in problem["message"]  # the events it may use are named


def test_a_condition_on_a_field_the_event_lacks_is_a_problem_on_the_start_element():
    spec = copy.deepcopy(ON_EVENT)
    steps(spec)["start"]["condition"] = 'event.colour == "red" && event.kind == "complaint"'
    spec = bpmn_to_definition(definition_to_bpmn(spec)).spec
    [problem] = start_problems(spec)
    assert "event.colour" in problem["message"] and "'case.opened' does not have" in problem["message"]


@pytest.mark.django_db
def test_the_editor_checks_a_start_condition_against_the_events_payload(client, make_user, login):
    login(client, make_user("wfadmin", roles.WORKFLOW_ADMIN))
    url = reverse("workflows:expression-validate")

    def check(expression: str, event: str = "case.opened") -> dict:
        return client.post(url, {"expression": expression, "event": event}, "application/json").json()

    assert check(CARD_CONDITION) == {"ok": True, "error": ""}
    missing = check('event.colour == "red"')
    assert not missing["ok"] and "event.colour" in missing["error"] and "kind" in missing["error"]
    bare = check('kind == "complaint"')  # a start condition sees the payload only as event.<field>
    assert not bare["ok"] and "kind" in bare["error"]
    assert "does not parse" in check("event.kind ==")["error"]
    assert "not a business event" in check(CARD_CONDITION, event="case.reopened")["error"]


@pytest.mark.django_db
def test_the_editor_gets_the_event_catalogue_the_roles_and_the_start_rule(client, make_user, login):
    import json

    from workflows.services import definition_install

    login(client, make_user("wfadmin", roles.WORKFLOW_ADMIN))
    definition_install(spec=ON_EVENT)
    page = client.get(reverse("workflows:editor", kwargs={"key": ON_EVENT["key"]})).content.decode()
    config = json.loads(page.split('id="editor-config" type="application/json">')[1].split("</script>")[0])
    case_opened = next(e for e in config["events"] if e["name"] == "case.opened")
    assert case_opened["title"] == "Case opened"
    assert {"name": "kind", "type": "string", "required": True}.items() <= next(
        f for f in case_opened["fields"] if f["name"] == "kind"
    ).items()
    assert roles.CARE in config["roles"]
    assert config["always_starters"] == [roles.ADMINISTRATOR, roles.WORKFLOW_ADMIN]
    assert "condition beats none" in config["start_rule"]
