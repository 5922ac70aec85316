"""Other engines read our BPMN files: every shipped workflow exports as valid BPMN 2.0 whose choices are
exclusive gateways (never an implicit parallel split), whose expressions are one language (CEL), whose phq
extensions are all declared in the editor's moddle descriptor, that SpiffWorkflow's parser accepts and that
reads back into the same compiled graph. The importer takes our older form, the standard form and the
Camunda (FEEL/JUEL) form of an outcome, and refuses expressions it cannot map, naming the element."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lxml import etree
from SpiffWorkflow.bpmn.parser import BpmnParser
from SpiffWorkflow.bpmn.specs.defaults import ExclusiveGateway as SpiffExclusiveGateway

from workflows.bpmn import BPMN, PHQ, BpmnError, bpmn_to_definition, definition_to_bpmn
from workflows.bpmn._common import CEL_LANGUAGE, XSI
from workflows.compiler import compile_spec
from workflows.tests.test_bpmn import SPEC as EVERY_STEP_TYPE
from workflows.tests.test_bpmn_start_events import BY_HAND, ON_EVENT, bpmn_schema

ROOT = Path(__file__).resolve().parents[2]
BUILT_INS = sorted(p for p in ROOT.glob("*/definitions/*.json") if ".venv" not in p.parts)
LIBRARY = sorted((ROOT / "workflows/library").glob("*.bpmn"))
MODDLE_JS = ROOT / "workflows/static/workflows/phq-moddle.js"
BPMN_MODDLE_JSON = ROOT / "node_modules/bpmn-moddle/resources/bpmn/json/bpmn.json"

# BPMN 2.0 flow nodes that are not gateways: an activity or event with several unconditioned outgoing
# sequence flows starts all of them at once (BPMN 2.0, 13.2.1 "uncontrolled flow": a parallel split).
_NOT_GATEWAYS = {
    "task", "userTask", "serviceTask", "sendTask", "receiveTask", "manualTask", "scriptTask", "businessRuleTask",
    "callActivity", "subProcess", "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent",
    "boundaryEvent",
}  # fmt: skip


def _shipped() -> list:
    items = [pytest.param("built-in", p, id=f"built-in:{p.stem}") for p in BUILT_INS]
    items += [pytest.param("library", p, id=f"library:{p.stem}") for p in LIBRARY]
    return items


SHIPPED = _shipped()


def source_spec(kind: str, path: Path) -> dict:
    if kind == "built-in":
        return json.loads(path.read_text())
    return bpmn_to_definition(path.read_bytes()).spec


def export(kind: str, path: Path) -> bytes:
    """The file a person downloads: a built-in laid out automatically, a library file with its own layout
    (as ``authoring.version_bpmn`` writes a version that has a diagram)."""
    if kind == "built-in":
        return definition_to_bpmn(json.loads(path.read_text())).encode()
    first = bpmn_to_definition(path.read_bytes())
    return definition_to_bpmn(first.spec, layout=first.layout).encode()


def process_of(xml: bytes) -> etree._Element:
    return etree.fromstring(xml).find(f"{{{BPMN}}}process")


def local(element: etree._Element) -> str:
    return etree.QName(element).localname


def parallel_splits(xml: bytes) -> list[str]:
    """Activities and events with more than one outgoing sequence flow without a conditionExpression."""
    process = process_of(xml)
    unconditioned: dict[str, list[str]] = {}
    for flow in process.iter(f"{{{BPMN}}}sequenceFlow"):
        if flow.find(f"{{{BPMN}}}conditionExpression") is None:
            unconditioned.setdefault(flow.get("sourceRef"), []).append(flow.get("id"))
    kinds = {el.get("id"): local(el) for el in process.iter() if isinstance(el.tag, str) and el.get("id")}
    return [
        f"{kinds[source]} {source!r} → {', '.join(flows)}"
        for source, flows in unconditioned.items()
        if kinds.get(source) in _NOT_GATEWAYS and len(flows) > 1
    ]


def compiled(spec: dict) -> dict:
    return compile_spec(spec, check_registry=False)


# -- every shipped workflow --------------------------------------------------------------------------------
def test_every_shipped_workflow_is_checked():
    assert len(BUILT_INS) >= 7 and len(LIBRARY) >= 11
    # the outcome form matters: most shipped workflows have a user task with two or more outcomes
    with_choices = [
        p
        for kind, p in (param.values for param in SHIPPED)
        if any(len(s.get("outcomes") or {}) > 1 for s in source_spec(kind, p)["steps"])
    ]
    assert len(with_choices) >= 10


@pytest.mark.parametrize(("kind", "path"), SHIPPED)
def test_the_export_validates_against_the_bpmn_2_0_schema(kind, path):
    schema = bpmn_schema()
    document = etree.fromstring(export(kind, path))
    assert schema.validate(document), schema.error_log.filter_from_errors()


@pytest.mark.parametrize(("kind", "path"), SHIPPED)
def test_the_export_has_no_implicit_parallel_split(kind, path):
    xml = export(kind, path)
    assert parallel_splits(xml) == []
    # every flow leaving an exclusive gateway that chooses has a condition or is its default flow
    process = process_of(xml)
    for gateway in process.iter(f"{{{BPMN}}}exclusiveGateway"):
        flows = [f for f in process.iter(f"{{{BPMN}}}sequenceFlow") if f.get("sourceRef") == gateway.get("id")]
        if len(flows) > 1:
            for flow in flows:
                assert flow.find(f"{{{BPMN}}}conditionExpression") is not None or flow.get("id") == gateway.get(
                    "default"
                ), f"{flow.get('id')} leaves {gateway.get('id')} without a condition"


@pytest.mark.parametrize(("kind", "path"), SHIPPED)
def test_spiffworkflow_parses_the_export(kind, path):
    xml = export(kind, path)
    parser = BpmnParser()
    parser.add_bpmn_str(xml)
    spec = parser.get_spec(process_of(xml).get("id"))
    for step in source_spec(kind, path)["steps"]:
        if step["type"] == "user" and len(step.get("outcomes") or {}) > 1:
            # the choice is an exclusive gateway leading to each outcome's target, not the task itself
            # (a task with boundary timers reaches it through SpiffWorkflow's boundary-event join)
            gateway = spec.task_specs[f"{step['id']}__outcome"]
            assert isinstance(gateway, SpiffExclusiveGateway)
            reached = {t.name.removesuffix(".BoundaryEventSplit") for t in gateway.outputs}  # a target with timers
            assert reached == set(step["outcomes"].values())
            assert not {t.name for t in spec.task_specs[step["id"]].outputs} & set(step["outcomes"].values())


@pytest.mark.parametrize(("kind", "path"), SHIPPED)
def test_the_export_reads_back_into_the_same_compiled_graph(kind, path):
    again = bpmn_to_definition(export(kind, path))
    assert again.warnings == []
    assert compiled(again.spec) == compiled(source_spec(kind, path))


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_the_library_files_are_stored_in_the_standard_form(path):
    """The files themselves (what is installed and what a person may open in another modeler)."""
    xml = path.read_bytes()
    assert parallel_splits(xml) == []
    schema = bpmn_schema()
    assert schema.validate(etree.fromstring(xml)), schema.error_log.filter_from_errors()
    parser = BpmnParser()
    parser.add_bpmn_str(xml)
    parser.get_spec(process_of(xml).get("id"))


# -- one expression language -------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "path"), SHIPPED)
def test_the_export_declares_cel_and_writes_only_cel(kind, path):
    xml = export(kind, path)
    root = etree.fromstring(xml)
    assert root.get("expressionLanguage") == CEL_LANGUAGE
    for expression in root.iter(f"{{{BPMN}}}conditionExpression", f"{{{BPMN}}}timeDate", f"{{{BPMN}}}timeDuration"):
        text = (expression.text or "").strip()
        assert "${" not in text and "#{" not in text and not text.startswith("="), text
        assert expression.get("language") in (None, CEL_LANGUAGE)


def test_a_timer_until_a_variable_is_the_bare_cel_expression_and_older_exports_still_import():
    xml = definition_to_bpmn(EVERY_STEP_TYPE)
    date = etree.fromstring(xml.encode()).find(f".//{{{BPMN}}}timeDate")
    assert date.text == "offer_expires_at"
    older = xml.replace(">offer_expires_at<", ">${offer_expires_at}<")
    assert older != xml
    for text in (xml, older):
        without_hint = re.sub(r' phq:untilVariable="[^"]*"', "", text)  # the date alone says which variable
        step = next(s for s in bpmn_to_definition(without_hint).spec["steps"] if s["id"] == "until")
        assert step["until_variable"] == "offer_expires_at"


def test_an_outcome_with_quotes_is_an_escaped_cel_string_and_reads_back():
    spec = _review({'say "yes"': "done", "no\\": "done"})
    xml = definition_to_bpmn(spec)
    conditions = [c.text for c in etree.fromstring(xml.encode()).iter(f"{{{BPMN}}}conditionExpression")]
    assert conditions == ['outcome == "say \\"yes\\""', 'outcome == "no\\\\"']
    assert _steps(bpmn_to_definition(xml).spec)["review"]["outcomes"] == {'say "yes"': "done", "no\\": "done"}


# -- the outcome gateway --------------------------------------------------------------------------------------
def _review(outcomes: dict[str, str]) -> dict:
    targets = sorted(set(outcomes.values()) - {"done"})
    return {
        "key": "review",
        "name": "Review",
        "steps": [
            {"id": "start", "type": "start", "next": "review"},
            {"id": "review", "type": "user", "name": "Review", "role": "Supervisor", "outcomes": outcomes},
            *({"id": t, "type": "end", "result": t} for t in targets),
            {"id": "done", "type": "end"},
        ],
    }


def _steps(spec: dict) -> dict[str, dict]:
    return {s["id"]: s for s in spec["steps"]}


def test_two_outcomes_are_a_named_exclusive_gateway_with_a_condition_per_outcome_and_one_stays_a_flow():
    xml = definition_to_bpmn(_review({"approve": "approved", "reject": "rejected"})).encode()
    process = process_of(xml)
    gateway = process.find(f"{{{BPMN}}}exclusiveGateway")
    assert gateway.get("id") == "review__outcome" and gateway.get("name") == "Review?"
    flows = {f.get("id"): f for f in process.iter(f"{{{BPMN}}}sequenceFlow")}
    leaving_task = [f for f in flows.values() if f.get("sourceRef") == "review"]
    assert [(f.get("targetRef"), f.find(f"{{{BPMN}}}conditionExpression")) for f in leaving_task] == [
        ("review__outcome", None)
    ]
    choices = [f for f in flows.values() if f.get("sourceRef") == "review__outcome"]
    assert [(f.get("name"), f.get(f"{{{PHQ}}}outcome"), f.get("targetRef")) for f in choices] == [
        ("approve", "approve", "approved"),
        ("reject", "reject", "rejected"),
    ]
    condition = choices[0].find(f"{{{BPMN}}}conditionExpression")
    assert condition.text == 'outcome == "approve"'
    assert condition.get(f"{{{XSI}}}type") == "bpmn:tFormalExpression"
    marker = etree.fromstring(xml).find(".//{*}BPMNShape[@bpmnElement='review__outcome']")
    assert marker is not None and marker.get("isMarkerVisible") == "true"

    single = process_of(definition_to_bpmn(_review({"done": "done"})).encode())
    assert single.find(f"{{{BPMN}}}exclusiveGateway") is None
    (flow,) = [f for f in single.iter(f"{{{BPMN}}}sequenceFlow") if f.get("sourceRef") == "review"]
    assert flow.get(f"{{{PHQ}}}outcome") == "done" and flow.find(f"{{{BPMN}}}conditionExpression") is None


def _file(flows: str, gateway: str = '<bpmn:exclusiveGateway id="g" name="Decided?"/>', extra_ns: str = "") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="{BPMN}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns:phq="{PHQ}" {extra_ns} id="d" targetNamespace="x">
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="s"/>
    <bpmn:userTask id="u" name="Decide the refund"/>
    {gateway}
    <bpmn:endEvent id="yes" name="Refunded"/>
    <bpmn:endEvent id="no" name="Declined"/>
    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="u"/>
    {flows}
  </bpmn:process>
</bpmn:definitions>"""


def _cond(text: str, language: str = "") -> str:
    lang = f' language="{language}"' if language else ""
    return f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"{lang}>{text}</bpmn:conditionExpression>'


@pytest.mark.parametrize(
    ("yes", "no"),
    [
        ('outcome == "approve"', 'outcome == "decline"'),  # CEL, as we write it
        ("outcome == 'approve'", "'decline' == outcome"),
        ('=outcome = "approve"', '=outcome = "decline"'),  # Camunda 8 FEEL
        ("${outcome == 'approve'}", "${outcome eq 'decline'}"),  # Camunda 7 JUEL
    ],
    ids=["cel", "cel-single-quotes", "feel", "juel"],
)
def test_it_folds_a_gateway_testing_the_outcome_back_into_the_user_tasks_outcomes(yes, no):
    flows = (
        '<bpmn:sequenceFlow id="f1" sourceRef="u" targetRef="g"/>'
        f'<bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="yes">{_cond(yes)}</bpmn:sequenceFlow>'
        f'<bpmn:sequenceFlow id="f3" sourceRef="g" targetRef="no">{_cond(no)}</bpmn:sequenceFlow>'
    )
    result = bpmn_to_definition(_file(flows))
    steps = _steps(result.spec)
    assert "g" not in steps
    assert steps["u"]["outcomes"] == {"approve": "yes", "decline": "no"}
    assert "next" not in steps["u"]
    # its diagram position travels as the outcome gateway of the task
    exported = definition_to_bpmn(result.spec)
    assert _steps(bpmn_to_definition(exported).spec)["u"]["outcomes"] == {"approve": "yes", "decline": "no"}


def test_a_default_flow_of_the_outcome_gateway_is_the_outcome_it_is_named_by():
    flows = (
        '<bpmn:sequenceFlow id="f1" sourceRef="u" targetRef="g"/>'
        f'<bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="yes">{_cond("outcome == &quot;approve&quot;")}'
        "</bpmn:sequenceFlow>"
        '<bpmn:sequenceFlow id="f3" sourceRef="g" targetRef="no" name="Send back"/>'
    )
    gateway = '<bpmn:exclusiveGateway id="g" default="f3"/>'
    steps = _steps(bpmn_to_definition(_file(flows, gateway)).spec)
    assert steps["u"]["outcomes"] == {"approve": "yes", "send_back": "no"}


def test_older_exports_with_named_flows_leaving_the_task_still_import():
    flows = (
        '<bpmn:sequenceFlow id="f1" sourceRef="u" targetRef="yes" name="approve" phq:outcome="approve"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="u" targetRef="no" name="decline" phq:outcome="decline"/>'
    )
    steps = _steps(bpmn_to_definition(_file(flows, gateway="")).spec)
    assert steps["u"]["outcomes"] == {"approve": "yes", "decline": "no"}


def test_a_gateway_after_a_task_with_other_conditions_stays_a_decision():
    flows = (
        '<bpmn:sequenceFlow id="f1" sourceRef="u" targetRef="g"/>'
        f'<bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="yes">{_cond("outcome == &quot;approve&quot;")}'
        "</bpmn:sequenceFlow>"
        f'<bpmn:sequenceFlow id="f3" sourceRef="g" targetRef="no">{_cond("amount &gt; 100")}</bpmn:sequenceFlow>'
    )
    steps = _steps(bpmn_to_definition(_file(flows)).spec)
    assert steps["u"]["next"] == "g" and "outcomes" not in steps["u"]
    assert steps["g"]["type"] == "decision"
    assert steps["g"]["branches"] == [
        {"when": 'outcome == "approve"', "next": "yes"},
        {"when": "amount > 100", "next": "no"},
    ]


def test_a_flow_whose_phq_outcome_contradicts_its_condition_is_refused_by_id_and_name():
    flows = (
        '<bpmn:sequenceFlow id="f1" sourceRef="u" targetRef="g"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="yes" name="Yes" phq:outcome="reject">'
        f"{_cond('outcome == &quot;approve&quot;')}</bpmn:sequenceFlow>"
        f'<bpmn:sequenceFlow id="f3" sourceRef="g" targetRef="no">{_cond("outcome == &quot;no&quot;")}'
        "</bpmn:sequenceFlow>"
    )
    with pytest.raises(BpmnError) as refused:
        bpmn_to_definition(_file(flows))
    (problem,) = refused.value.problems
    assert (problem.element_id, problem.element_name) == ("f2", "Yes")
    assert "'reject'" in problem.message and "'approve'" in problem.message


# -- expressions of other languages -------------------------------------------------------------------------
CAMUNDA_NS = 'xmlns:camunda="http://camunda.org/schema/1.0/bpmn"'


@pytest.mark.parametrize(
    ("condition", "language", "words"),
    [
        ("${execution.getVariable('amount') &gt; 100}", "", "execution.getVariable"),
        ("=string length(note) &gt; 3", "", "length"),
        ("=amount between 1 and 3", "", "between"),
        ("${empty note}", "", "empty"),
        ("amount &gt; 100", "javascript", "javascript"),
        ("Total: ${amount}", "", "mixed"),
    ],
    ids=["juel-method", "feel-function", "feel-between", "juel-empty", "script", "juel-in-text"],
)
def test_an_expression_without_a_cel_form_is_refused_naming_the_flow_by_id_and_name(condition, language, words):
    flows = (
        '<bpmn:sequenceFlow id="f1" sourceRef="u" targetRef="g"/>'
        f'<bpmn:sequenceFlow id="big" name="Large amount" sourceRef="g" targetRef="yes">{_cond(condition, language)}'
        "</bpmn:sequenceFlow>"
        '<bpmn:sequenceFlow id="rest" sourceRef="g" targetRef="no"/>'
    )
    with pytest.raises(BpmnError) as refused:
        bpmn_to_definition(_file(flows, '<bpmn:exclusiveGateway id="g" default="rest"/>', CAMUNDA_NS))
    (problem,) = refused.value.problems
    assert (problem.element_id, problem.element_name) == ("big", "Large amount")
    assert words in problem.message
    assert "Large amount" in str(refused.value) and "big" in str(refused.value)


def test_a_file_declaring_feel_is_read_as_feel_even_without_the_leading_equals():
    flows = (
        '<bpmn:sequenceFlow id="f1" sourceRef="u" targetRef="g"/>'
        f'<bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="yes">{_cond("amount &gt; 1 and not(blocked)")}'
        "</bpmn:sequenceFlow>"
        '<bpmn:sequenceFlow id="f3" sourceRef="g" targetRef="no"/>'
    )
    text = _file(flows, '<bpmn:exclusiveGateway id="g" default="f3"/>').replace(
        'id="d"', 'id="d" expressionLanguage="https://www.omg.org/spec/DMN/20191111/FEEL/"'
    )
    assert _steps(bpmn_to_definition(text).spec)["g"]["branches"][0]["when"] == "amount > 1 && !(blocked)"


@pytest.mark.parametrize(
    ("date", "expected"),
    [("terminate_at", "terminate_at"), ("${terminate_at}", "terminate_at"), ("=terminate_at", "terminate_at")],
)
def test_a_timer_date_naming_a_variable_imports_in_cel_juel_and_feel(date, expected):
    assert _timer_step(date)["until_variable"] == expected


def test_a_timer_date_with_a_juel_method_call_is_refused_naming_the_event():
    with pytest.raises(BpmnError) as refused:
        _timer_step("${execution.getVariable('terminate_at')}")
    (problem,) = refused.value.problems
    assert (problem.element_id, problem.element_name) == ("w", "Until the end date")
    assert "execution.getVariable" in problem.message


def _timer_step(date: str) -> dict:
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="{BPMN}" {CAMUNDA_NS} id="d" targetNamespace="x">
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="s"/>
    <bpmn:intermediateCatchEvent id="w" name="Until the end date">
      <bpmn:timerEventDefinition><bpmn:timeDate>{date}</bpmn:timeDate></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="e"/>
    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="w"/>
    <bpmn:sequenceFlow id="f1" sourceRef="w" targetRef="e"/>
  </bpmn:process>
</bpmn:definitions>"""
    return _steps(bpmn_to_definition(xml).spec)["w"]


# -- only declared phq attributes and elements --------------------------------------------------------------
def moddle_descriptor() -> dict:
    text = MODDLE_JS.read_text()
    match = re.search(r"/\* moddle:begin \*/(.*)/\* moddle:end \*/", text, re.DOTALL)
    assert match, "phq-moddle.js lost its /* moddle:begin */ … /* moddle:end */ markers"
    return json.loads(match.group(1))


def bpmn_ancestors() -> dict[str, set[str]]:
    """Each BPMN type with every type it inherits from, by bpmn-moddle's (the BPMN 2.0 metamodel's) superClass."""
    types = {t["name"]: t for t in json.loads(BPMN_MODDLE_JSON.read_text())["types"]}

    def up(name: str) -> set[str]:
        found = {name}
        for parent in types.get(name, {}).get("superClass", []):
            found |= up(parent.removeprefix("bpmn:"))
        return found

    return {name: up(name) for name in types}


def undeclared(xml: bytes, descriptor: dict) -> list[str]:
    """Every phq attribute or element of a file that the moddle descriptor does not declare for where it is."""
    assert descriptor["uri"] == PHQ and descriptor["prefix"] == "phq"
    assert descriptor["xml"]["tagAlias"] == "lowerCase"
    ancestors = bpmn_ancestors()
    types = {t["name"]: t for t in descriptor["types"]}
    attributes_of: dict[str, set[str]] = {}  # BPMN type → phq attributes declared on it
    for t in descriptor["types"]:
        for extended in t.get("extends", []):
            attributes_of.setdefault(extended.removeprefix("bpmn:"), set()).update(
                p["name"] for p in t["properties"] if p.get("isAttr")
            )
    missing: list[str] = []
    for element in etree.fromstring(xml).iter():
        if not isinstance(element.tag, str):
            continue
        qname = etree.QName(element)
        if qname.namespace == BPMN:
            bpmn_type = qname.localname[:1].upper() + qname.localname[1:]
            allowed = set().union(*(attributes_of.get(a, set()) for a in ancestors.get(bpmn_type, {bpmn_type})))
            for attribute in element.attrib:
                name = etree.QName(attribute)
                if name.namespace == PHQ and name.localname not in allowed:
                    missing.append(f"phq:{name.localname} on bpmn:{qname.localname} {element.get('id')!r}")
        elif qname.namespace == PHQ:
            type_name = qname.localname[:1].upper() + qname.localname[1:]  # tagAlias lowerCase
            declared = types.get(type_name)
            if declared is None or declared.get("isAbstract"):
                missing.append(f"element phq:{qname.localname}")
                continue
            properties = {p["name"]: p for p in declared["properties"]}
            parent = etree.QName(element.getparent())
            if parent.namespace == PHQ:  # a child of one of ours: a property of the parent's type holds it
                holder = types.get(parent.localname[:1].upper() + parent.localname[1:], {"properties": []})
                if not any(p.get("type") == type_name and not p.get("isAttr") for p in holder["properties"]):
                    missing.append(f"phq:{qname.localname} inside phq:{parent.localname}")
            elif parent.localname != "extensionElements" or "Element" not in declared.get("superClass", []):
                missing.append(f"phq:{qname.localname} outside extensionElements")
            for attribute in element.attrib:
                if not (properties.get(attribute) or {}).get("isAttr"):
                    missing.append(f"attribute {attribute} of phq:{qname.localname}")
            if (element.text or "").strip() and not any(p.get("isBody") for p in properties.values()):
                missing.append(f"text of phq:{qname.localname}")
    return missing


UNNAMED = {
    "key": "unnamed",
    "category": "tests",
    "steps": [
        {"id": "start", "type": "start", "next": "check"},
        {"id": "check", "type": "user", "role": "Supervisor", "outcomes": {"ok": "sub", "redo": "check"}},
        {"id": "sub", "type": "call", "definition": "other", "next": "done"},
        {"id": "done", "type": "end"},
    ],
}


@pytest.mark.parametrize(
    "spec",
    [EVERY_STEP_TYPE, ON_EVENT, BY_HAND, UNNAMED],
    ids=["every-step-type", "message-start", "start-form", "unnamed-steps"],
)
def test_every_phq_attribute_the_writer_produces_is_declared_in_the_moddle(spec):
    xml = definition_to_bpmn(spec).encode()
    assert undeclared(xml, moddle_descriptor()) == []
    # the check has teeth: an attribute declared for another element type is caught
    wrong = xml.replace(b"<bpmn:endEvent ", b'<bpmn:endEvent phq:role="Supervisor" ', 1)
    assert undeclared(wrong, moddle_descriptor()) == ["phq:role on bpmn:endEvent 'done'"]


@pytest.mark.parametrize(("kind", "path"), SHIPPED)
def test_every_phq_attribute_of_a_shipped_export_is_declared_in_the_moddle(kind, path):
    assert undeclared(export(kind, path), moddle_descriptor()) == []
