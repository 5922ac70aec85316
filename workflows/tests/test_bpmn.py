"""BPMN 2.0 interchange: the subset we run, Camunda 7/8 attributes, refusal of what we do not run, safe parsing,
diagram interchange and the round trip definition → BPMN → definition."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from lxml import etree

from workflows.bpmn import (
    BPMN,
    MAX_BYTES,
    BpmnError,
    Layout,
    bpmn_to_definition,
    definition_to_bpmn,
)
from workflows.bpmn.conditions import to_cel

FILES = Path(__file__).parent / "bpmn_files"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"

SPEC = {
    "key": "season-contract",
    "name": "Season parking contract",
    "category": "contracts",
    "description": "Review, approve, wait for the deposit.",
    "variables": ["offer_expires_at"],
    "steps": [
        {"id": "start", "type": "start", "next": "review"},
        {
            "id": "review",
            "type": "user",
            "name": "Review application",
            "role": "Back-office agent",
            "scope": "carpark",
            "instructions": "Check the application.",
            "due_in": "P2D",
            "escalation": [{"after": "PT0S", "to": "Supervisor"}, {"after": "P1D", "to": "Administrator"}],
            "inputs": [
                {"name": "note", "label": "Note", "type": "text", "required": False},
                {"name": "deposit", "label": "Deposit", "type": "number", "required": True},
                {"name": "kind", "label": "Kind", "type": "choice", "required": True, "choices": ["a", "b, c"]},
            ],
            "outcomes": {"approve": "approve_contract", "reject": "reject_contract"},
        },
        {
            "id": "approve_contract",
            "type": "system",
            "task": "carparks.contract_approve",
            "retry": {"max_attempts": 5, "backoff": "PT30S"},
            "timeout": "PT60S",
            "next": "needs_deposit",
        },
        {"id": "reject_contract", "type": "system", "task": "carparks.contract_reject", "next": "done"},
        {
            "id": "needs_deposit",
            "type": "decision",
            "name": "Deposit?",
            "branches": [{"when": "deposit > 0", "next": "wait_deposit"}],
            "default": "pause",
        },
        {
            "id": "wait_deposit",
            "type": "wait",
            "message": "deposit.paid",
            "timeout": {"after": "P14D", "next": "done"},
            "next": "until",
        },
        {"id": "pause", "type": "wait", "duration": "P1D", "next": "until"},
        {"id": "until", "type": "wait", "until_variable": "offer_expires_at", "next": "sub"},
        {"id": "sub", "type": "call", "definition": "other-key", "next": "done", "description": "kept as an extra"},
        {"id": "done", "type": "end", "result": "approved"},
    ],
}


def by_id(spec):
    return {**spec, "steps": sorted(spec["steps"], key=lambda s: s["id"])}


def read(name: str):
    return bpmn_to_definition((FILES / name).read_bytes())


def test_it_round_trips_every_step_type():
    xml = definition_to_bpmn(SPEC)
    result = bpmn_to_definition(xml)
    assert by_id(result.spec) == by_id(SPEC)
    assert result.warnings == []


def test_it_writes_diagram_interchange_for_every_element_and_flow():
    root = etree.fromstring(definition_to_bpmn(SPEC).encode())
    process = root.find(f"{{{BPMN}}}process")
    element_ids = {el.get("id") for el in process if el.tag != f"{{{BPMN}}}documentation" and el.get("id")}
    shapes = {s.get("bpmnElement") for s in root.iter(f"{{{BPMNDI}}}BPMNShape")}
    edges = {e.get("bpmnElement") for e in root.iter(f"{{{BPMNDI}}}BPMNEdge")}
    flows = {el.get("id") for el in process.findall(f"{{{BPMN}}}sequenceFlow")}
    assert flows and flows == edges
    assert element_ids - flows == shapes
    # the message+timeout wait is an event-based gateway with its two catch events, the due time a boundary timer
    assert process.find(f"{{{BPMN}}}eventBasedGateway").get("id") == "wait_deposit"
    assert process.find(f"{{{BPMN}}}boundaryEvent").get("attachedToRef") == "review"


def test_it_keeps_the_positions_of_an_imported_diagram():
    first = read("camunda7_season.bpmn")
    exported = definition_to_bpmn(first.spec, layout=first.layout)
    again = bpmn_to_definition(exported)
    assert again.layout.shapes["Activity_reject"].x == 530 and again.layout.shapes["Activity_reject"].y == 190
    assert again.layout.edges[("Gateway_approved", "Activity_reject")] == [(450, 142), (450, 230), (530, 230)]
    assert by_id(again.spec) == by_id(first.spec)


def test_it_lays_out_new_elements_next_to_kept_ones():
    spec = copy.deepcopy(SPEC)
    layout = bpmn_to_definition(definition_to_bpmn(spec)).layout
    kept = layout.shapes["review"]
    spec["steps"].append({"id": "extra", "type": "end"})
    spec["steps"][0]["next"] = "extra"
    spec["steps"].append({"id": "orphan_start_target", "type": "end"})
    result = bpmn_to_definition(definition_to_bpmn(spec, layout=layout))
    assert result.layout.shapes["review"] == kept
    assert "extra" in result.layout.shapes


def test_it_reads_a_camunda_7_file():
    spec = read("camunda7_season.bpmn").spec
    steps = {s["id"]: s for s in spec["steps"]}
    assert steps["Activity_review"]["role"] == "Back-office agent"
    assert steps["Activity_review"]["due_in"] == "P2D"
    assert steps["Activity_review"]["inputs"][0] == {
        "name": "approved",
        "label": "Approve the application",
        "type": "bool",
        "required": True,
    }
    assert steps["Activity_approve"]["task"] == "test.approve"  # external topic
    assert steps["Activity_reject"]["task"] == "test.reject"  # delegate expression
    assert steps["Activity_reject"]["retry"] == {"max_attempts": 5, "backoff": "PT30S"}
    assert steps["Gateway_approved"]["branches"] == [{"when": "approved && deposit >= 0", "next": "Activity_approve"}]
    assert steps["Gateway_approved"]["default"] == "Activity_reject"
    # the merging gateway disappears: both tasks lead straight to the end
    assert "Gateway_merge" not in steps
    assert steps["Activity_approve"]["next"] == steps["Activity_reject"]["next"] == "EndEvent_1"


def test_it_reads_a_camunda_8_file():
    spec = read("camunda8_season.bpmn").spec
    steps = {s["id"]: s for s in spec["steps"]}
    assert spec["key"] == "c8-season"
    assert steps["Task_review"]["role"] == "Back-office agent"
    assert steps["Task_review"]["due_in"] == "P1D"  # the boundary timer
    assert steps["Task_approve"]["task"] == "test.approve"
    assert steps["Task_approve"]["retry"] == {"max_attempts": 4}
    assert steps["Task_reject"]["task"] == "test.reject"  # ="test.reject" literal
    assert steps["Gateway_ok"]["branches"][0]["when"] == "approved == true && deposit >= 0"
    assert steps["Event_paid"] == {
        "id": "Event_paid",
        "type": "wait",
        "name": "Deposit paid",
        "message": "deposit.paid",
        "next": "End_ok",
    }
    assert spec["variables"] == ["approved", "deposit"]  # from the zeebe:ioMapping outputs


def test_it_refuses_a_parallel_gateway_naming_it_and_every_other_unsupported_element():
    with pytest.raises(BpmnError) as caught:
        read("parallel.bpmn")
    problems = {p.element_id: p for p in caught.value.problems}
    assert problems["Gateway_split"].element_name == "Do both"
    assert "parallel gateway" in problems["Gateway_split"].message
    assert "script task" in problems["b"].message
    assert "Gateway_split ('Do both')" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "words"),
    [("billion_laughs.bpmn", "entity-expansion"), ("external_entity.bpmn", "external entity")],
)
def test_it_refuses_entity_attacks_with_a_clear_error(name, words):
    with pytest.raises(BpmnError) as caught:
        read(name)
    assert words in str(caught.value)
    assert "DTD" in str(caught.value)


def test_it_refuses_a_file_over_the_size_limit():
    with pytest.raises(BpmnError, match="up to 2 MB"):
        bpmn_to_definition(b"<x/>" + b" " * MAX_BYTES)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"<bpmn:definitions", "not well-formed"),
        (b"<html><body/></html>", "not a BPMN 2.0 file"),
        (f'<definitions xmlns="{BPMN}"/>'.encode(), "no <process>"),
    ],
)
def test_it_explains_files_that_are_not_bpmn(data, message):
    with pytest.raises(BpmnError, match=message):
        bpmn_to_definition(data)


def _minimal(body: str, extra_ns: str = "") -> str:
    return (
        f'<bpmn:definitions xmlns:bpmn="{BPMN}" xmlns:phq="https://parkinghq.example/schema/bpmn/1.0" {extra_ns}>'
        f'<bpmn:process id="p" isExecutable="true">{body}</bpmn:process></bpmn:definitions>'
    )


def test_it_names_a_user_task_whose_flows_lack_outcomes():
    xml = _minimal(
        '<bpmn:startEvent id="s"/><bpmn:userTask id="u" name="Check"/><bpmn:endEvent id="e1"/>'
        '<bpmn:endEvent id="e2"/><bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="u"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="u" targetRef="e1" name="Approve"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="u" targetRef="e2"/>'
    )
    with pytest.raises(BpmnError) as caught:
        bpmn_to_definition(xml)
    assert [p.element_id for p in caught.value.problems] == ["f2"]


def test_it_takes_outcomes_from_flow_names():
    xml = _minimal(
        '<bpmn:startEvent id="s"/><bpmn:userTask id="u" phq:role="Finance"/><bpmn:endEvent id="e1"/>'
        '<bpmn:endEvent id="e2"/><bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="u"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="u" targetRef="e1" name="Approve refund"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="u" targetRef="e2" phq:outcome="decline"/>'
    )
    step = bpmn_to_definition(xml).spec["steps"][1]
    assert step["outcomes"] == {"approve_refund": "e1", "decline": "e2"}


def test_a_boundary_timer_with_a_path_interrupts_the_task_and_a_non_interrupting_one_is_refused():
    flows = (
        "<bpmn:timeDuration>P1D</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>"
        '<bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="u"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="u" targetRef="e"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e"/>'
    )
    tasks = '<bpmn:startEvent id="s"/><bpmn:userTask id="u" phq:role="Finance"/><bpmn:endEvent id="e"/>'
    xml = _minimal(
        tasks + '<bpmn:boundaryEvent id="t" name="Too late" attachedToRef="u"><bpmn:timerEventDefinition>' + flows
    )
    assert bpmn_to_definition(xml).spec["steps"][1]["timeout"] == {"after": "P1D", "next": "e"}
    xml = _minimal(
        tasks
        + '<bpmn:boundaryEvent id="t" cancelActivity="false" attachedToRef="u"><bpmn:timerEventDefinition>'
        + flows
    )
    with pytest.raises(BpmnError) as caught:
        bpmn_to_definition(xml)
    assert caught.value.problems[0].element_id == "t"
    assert "non-interrupting" in caught.value.problems[0].message


def test_it_reads_an_escalation_timer_on_a_user_task():
    xml = _minimal(
        '<bpmn:startEvent id="s"/><bpmn:userTask id="u" phq:role="Finance" phq:dueIn="P1D"/><bpmn:endEvent id="e"/>'
        '<bpmn:boundaryEvent id="t" attachedToRef="u" cancelActivity="false" phq:escalateTo="Supervisor">'
        "<bpmn:timerEventDefinition><bpmn:timeDuration>PT4H</bpmn:timeDuration></bpmn:timerEventDefinition>"
        '</bpmn:boundaryEvent><bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="u"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="u" targetRef="e"/>'
    )
    step = bpmn_to_definition(xml).spec["steps"][1]
    assert step["due_in"] == "P1D"
    assert step["escalation"] == [{"after": "PT4H", "to": "Supervisor"}]


@pytest.mark.parametrize(
    ("source", "cel"),
    [
        ("=x > 1", "x > 1"),
        ('=status = "ok" and not(blocked)', 'status == "ok" && !(blocked)'),
        ("=a != 1 or b >= 2", "a != 1 || b >= 2"),
        ("${amount gt 10 and approved}", "amount > 10 && approved"),
        ("${kind eq 'private'}", "kind == 'private'"),
        ('=note = "a = b and c"', 'note == "a = b and c"'),
        ("deposit > 0 && approved", "deposit > 0 && approved"),
    ],
)
def test_it_translates_simple_feel_and_juel_conditions_to_cel(source, cel):
    assert to_cel(source) == cel


def test_an_empty_layout_is_falsy():
    assert not Layout()


def test_an_unnamed_task_shows_its_id_in_words_and_reads_back_unnamed():
    spec = {
        "key": "k",
        "steps": [
            {"id": "start", "type": "start", "next": "approve_contract"},
            {"id": "approve_contract", "type": "system", "task": "carparks.contract_approve", "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }
    xml = definition_to_bpmn(spec)
    assert 'name="Approve contract"' in xml
    assert bpmn_to_definition(xml).spec["steps"] == spec["steps"]
    renamed = xml.replace('name="Approve contract"', 'name="Approve the contract"')
    assert bpmn_to_definition(renamed).spec["steps"][1]["name"] == "Approve the contract"
