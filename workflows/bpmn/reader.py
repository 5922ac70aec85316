"""BPMN 2.0 XML → compact definition dict.

The subset we run: none start event (started by hand), message start event (a business event),
end event, user task, service task, exclusive gateway (conditions and a default flow; a gateway with
one unconditional outgoing flow is a merge and disappears), event-based gateway choosing between one
message and one timer (a wait with a timeout), timer and message intermediate catch events, timer
boundary events on user tasks (due time, escalation, or an interrupting timer with a path of its
own), call activity.
Anything else is refused by id and name — never dropped silently.

Parsing is defensive: a size limit, and defusedxml refuses any DTD, entity declaration or external
reference before a single element is looked at.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring
from django.utils.translation import gettext, gettext_lazy

from ._common import (
    BPMN,
    BPMNDI,
    CAMUNDA,
    DC,
    DEFINITION_LIMITS,
    DI,
    MAX_BYTES,
    PHQ,
    ZEEBE,
    Bounds,
    BpmnError,
    BpmnImport,
    Layout,
    Problem,
    q,
)
from .conditions import ExpressionError, expression_to_cel, outcome_literal, strip_expression
from .writer import humanize, outcome_gateway_id

_DURATION = re.compile(
    r"^-?P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$"
)

# Elements a process may contain that we run (or that only carry structure).
_RUN = {
    "startEvent",
    "endEvent",
    "userTask",
    "serviceTask",
    "exclusiveGateway",
    "eventBasedGateway",
    "intermediateCatchEvent",
    "boundaryEvent",
    "callActivity",
    "sequenceFlow",
}
# Artifacts: no behaviour; kept out of the definition with a warning.
_ARTIFACTS = {
    "textAnnotation",
    "association",
    "group",
    "dataObject",
    "dataObjectReference",
    "dataStoreReference",
    "documentation",
    "extensionElements",
    "laneSet",
    "property",
    "ioSpecification",
    "category",
}
_LABELS = {
    "parallelGateway": gettext_lazy("parallel gateway"),
    "inclusiveGateway": gettext_lazy("inclusive gateway"),
    "complexGateway": gettext_lazy("complex gateway"),
    "scriptTask": gettext_lazy("script task"),
    "businessRuleTask": gettext_lazy("business rule task"),
    "sendTask": gettext_lazy("send task"),
    "receiveTask": gettext_lazy("receive task"),
    "manualTask": gettext_lazy("manual task"),
    "task": gettext_lazy("task without a type"),
    "subProcess": gettext_lazy("embedded sub-process"),
    "adHocSubProcess": gettext_lazy("ad-hoc sub-process"),
    "transaction": gettext_lazy("transaction"),
    "intermediateThrowEvent": gettext_lazy("intermediate throw event"),
    "callChoreography": gettext_lazy("choreography"),
}


def is_duration(value: str) -> bool:
    return bool(value) and bool(_DURATION.match(value))


def parse_xml(data: bytes | str) -> Element:
    """Parse untrusted XML: size limit, no DTD, no entities, no external references.

    Bytes are decoded by the parser as the XML specification says (byte order mark, then the
    declaration's encoding, else UTF-8), so UTF-16 or ISO-8859-1 files read as well as UTF-8 ones.
    Text is parsed as text: its declaration's encoding no longer applies.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_BYTES:
        raise BpmnError(
            gettext("The file is %(size)s MB; BPMN files up to %(limit)s MB are accepted.")
            % {"size": f"{len(raw) / 1024 / 1024:.1f}", "limit": MAX_BYTES // 1024 // 1024}
        )
    if not raw.strip():
        raise BpmnError(gettext("The file is empty."))
    try:
        source = data.removeprefix("\ufeff") if isinstance(data, str) else raw
        return fromstring(source, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DTDForbidden:
        head = xml_text(raw[:65536], errors="replace")
        if re.search(r"<!ENTITY\s+(%\s*)?[\w.:-]+\s+(SYSTEM|PUBLIC)\b", head):
            reason = gettext("it declares an external entity (a reference to a file or URL outside the document)")
        elif "<!ENTITY" in head:
            reason = gettext("it declares XML entities, the makings of an entity-expansion (“billion laughs”) attack")
        else:
            reason = gettext("it has a document type declaration")
        raise BpmnError(
            gettext(
                "The file is refused: %(reason)s. BPMN files never need a DTD (<!DOCTYPE …>), so entity expansion, "
                "external entities and DTDs are not accepted."
            )
            % {"reason": reason}
        ) from None
    except EntitiesForbidden as exc:
        raise BpmnError(
            gettext(
                "The file declares the XML entity %(name)s. Entity declarations are refused "
                "(they enable entity-expansion and external-entity attacks)."
            )
            % {"name": repr(exc.name)}
        ) from None
    except ExternalReferenceForbidden:
        raise BpmnError(
            gettext("The file refers to an external resource (external entity); such files are refused.")
        ) from None
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise BpmnError(
            gettext("The file is not well-formed XML (line %(line)s, column %(column)s): %(error)s")
            % {"line": line, "column": column, "error": exc}
        ) from None


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose mark it starts with
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Without a byte order mark, the first bytes of "<?" tell the width (XML 1.0, appendix F).
_UNMARKED = ((b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"), (b"\x00<\x00?", "utf-16-be"),
             (b"<\x00?\x00", "utf-16-le"))  # fmt: skip
_DECLARED = re.compile(r"""^(<\?xml\s[^>]*?\bencoding\s*=\s*)(["'])([A-Za-z][A-Za-z0-9._-]*)\2""")


def xml_text(data: bytes | str, *, errors: str = "strict") -> str:
    """The document as text to store and serve as UTF-8: decoded as the XML specification says
    (byte order mark, the width of ``<?``, then the declaration's encoding, else UTF-8), without the
    byte order mark, and with the declaration saying UTF-8 (the text is no longer in the file's encoding).
    """
    if isinstance(data, bytes):
        codec = next((c for bom, c in _BOMS if data.startswith(bom)), None)
        codec = codec or next((c for start, c in _UNMARKED if data.startswith(start)), None)
        if codec is None:
            declared = _DECLARED.match(data[:200].decode("ascii", "replace"))
            codec = declared.group(3) if declared else "utf-8"
        try:
            data = data.decode(codec, errors)
        except (LookupError, UnicodeDecodeError) as exc:
            raise BpmnError(
                gettext("The file cannot be read as %(codec)s: %(error)s. Save it as UTF-8 and import it again.")
                % {"codec": codec, "error": exc}
            ) from None
    text = data.removeprefix("\ufeff")
    return _DECLARED.sub(lambda m: f"{m.group(1)}{m.group(2)}UTF-8{m.group(2)}", text, count=1)


def _local(element: Element) -> tuple[str, str]:
    tag = element.tag if isinstance(element.tag, str) else ""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _text(element: Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _ext(element: Element) -> list[Element]:
    ext = element.find(q(BPMN, "extensionElements"))
    return list(ext) if ext is not None else []


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"true", "1", "yes"}


class _Reader:
    def __init__(self, root: Element, key: str | None) -> None:
        self.root = root
        self.key_override = key
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.layout = Layout()

    # -- helpers -----------------------------------------------------------------------------
    def refuse(self, element: Element | None, message: str) -> None:
        if element is None:
            self.problems.append(Problem(message))
        else:
            self.problems.append(Problem(message, element.get("id", ""), element.get("name", "")))

    # -- entry -------------------------------------------------------------------------------
    def read(self) -> BpmnImport:
        ns, local = _local(self.root)
        if (ns, local) != (BPMN, "definitions"):
            raise BpmnError(
                gettext(
                    "This is not a BPMN 2.0 file: the root element is <%(element)s> in namespace %(namespace)s; "
                    "expected <definitions> in %(bpmn)s."
                )
                % {"element": local, "namespace": repr(ns or "none"), "bpmn": BPMN}
            )
        process = self._choose_process()
        # CEL for our files; FEEL (Camunda 8), JUEL (Camunda 7) or the XPath default for others. An expression's
        # own ``language`` wins; the text's form (``=…``, ``${…}``) tells FEEL and JUEL apart when nothing is said.
        self.language = self.root.get("expressionLanguage", "")
        self.messages = {
            m.get("id", ""): m.get("name") or m.get("id", "") for m in self.root.findall(q(BPMN, "message"))
        }
        spec = self._read_process(process)
        if self.problems:
            raise BpmnError(gettext("The file cannot be imported"), self.problems)
        self._read_diagram(process.get("id", ""))
        return BpmnImport(spec=spec, layout=self.layout, warnings=self.warnings)

    def _choose_process(self) -> Element:
        processes = self.root.findall(q(BPMN, "process"))
        if not processes:
            raise BpmnError(gettext("The file contains no <process>."))
        if len(processes) == 1:
            return processes[0]
        executable = [p for p in processes if _bool(p.get("isExecutable"))]
        if len(executable) == 1:
            return executable[0]
        names = ", ".join(p.get("id", "?") for p in processes)
        raise BpmnError(
            gettext(
                "The file contains several processes (%(names)s); a workflow is one process. "
                "Mark exactly one as executable or split the file."
            )
            % {"names": names}
        )

    # -- the process -------------------------------------------------------------------------
    def _read_process(self, process: Element) -> dict[str, Any]:
        key = self.key_override or process.get("id", "")
        if not key:
            raise BpmnError(gettext("The process has no id; pass a key for it."))
        self.lane_of: dict[str, str] = {}
        for lane in process.iter(q(BPMN, "lane")):
            for ref in lane.findall(q(BPMN, "flowNodeRef")):
                self.lane_of[_text(ref)] = lane.get("name", "")

        nodes: dict[str, Element] = {}
        flows: list[Element] = []
        for child in process:
            ns, local = _local(child)
            if ns != BPMN:
                continue
            if local == "sequenceFlow":
                flows.append(child)
            elif local in _RUN:
                nodes[child.get("id", "")] = child
                self._check_loop(child)
            elif local in _ARTIFACTS:
                if local in {"textAnnotation", "group", "dataObject", "dataObjectReference", "dataStoreReference"}:
                    self.warnings.append(
                        gettext("%(element)s %(id)s is not part of the workflow and was left out.")
                        % {"element": local, "id": child.get("id", "")}
                    )
            else:
                label = _LABELS.get(local, local)
                self.refuse(
                    child,
                    gettext(
                        "%(element)s is not supported: this engine runs one step at a time "
                        "(start, user task, service task, exclusive gateway, timer/message catch, "
                        "call activity, end)"
                    )
                    % {"element": label},
                )
        for flow in flows:
            if flow.get("sourceRef") not in nodes or flow.get("targetRef") not in nodes:
                missing = [r for r in (flow.get("sourceRef"), flow.get("targetRef")) if r not in nodes]
                if not self.problems:  # otherwise it points at an element already refused
                    self.refuse(
                        flow,
                        gettext("sequence flow refers to unknown element(s) %(elements)s")
                        % {"elements": ", ".join(map(str, missing))},
                    )
        if self.problems:
            return {}
        self.nodes = nodes
        self.flows = flows
        self.outgoing: dict[str, list[Element]] = {}
        self.incoming: dict[str, list[Element]] = {}
        for flow in flows:
            self.outgoing.setdefault(flow.get("sourceRef", ""), []).append(flow)
            self.incoming.setdefault(flow.get("targetRef", ""), []).append(flow)
        self.boundaries: dict[str, list[Element]] = {}
        for node in nodes.values():
            if _local(node)[1] == "boundaryEvent":
                self.boundaries.setdefault(node.get("attachedToRef", ""), []).append(node)
        self.merges = {
            nid for nid, node in nodes.items() if _local(node)[1] == "exclusiveGateway" and self._is_merge(node)
        }
        # exclusive gateways that carry a user task's outcomes (the standard form of our export)
        self.outcome_gateways: dict[str, tuple[Element, list[tuple[Element, str]]]] = {}
        for nid, node in nodes.items():
            if _local(node)[1] == "userTask":
                found = self._outcome_gateway(node)
                if found is not None:
                    self.outcome_gateways[nid] = found
        self._owned_ids: dict[str, str] = {
            gateway.get("id", ""): outcome_gateway_id(task_id)
            for task_id, (gateway, _) in self.outcome_gateways.items()
        }
        # catch events owned by an event-based gateway (they become part of its wait step)
        self.owned: set[str] = set()
        for node in nodes.values():
            if _local(node)[1] == "eventBasedGateway":
                for flow in self.outgoing.get(node.get("id", ""), []):
                    self.owned.add(flow.get("targetRef", ""))

        steps: list[dict[str, Any]] = []
        starts = [n for n in nodes.values() if _local(n)[1] == "startEvent"]
        if len(starts) != 1:
            self.refuse(
                starts[1] if len(starts) > 1 else None,
                gettext("a workflow has exactly one start event; this process has %(count)s") % {"count": len(starts)},
            )
        outcome_gateway_ids = {gateway.get("id", "") for gateway, _ in self.outcome_gateways.values()}
        for nid, node in nodes.items():
            kind = _local(node)[1]
            if nid in self.merges or nid in self.owned or nid in outcome_gateway_ids or kind == "boundaryEvent":
                if kind == "boundaryEvent":
                    self._check_boundary(node)
                continue
            step = getattr(self, f"_step_{kind}")(node)
            if step is not None:
                steps.append(step)

        spec: dict[str, Any] = {"key": key, "name": process.get("name") or key}
        category = process.get(q(PHQ, "category"))
        if category:
            spec["category"] = category
        for field, label in (("key", "id"), ("name", "name"), ("category", "category")):
            length, limit = len(spec.get(field) or ""), DEFINITION_LIMITS[field]
            if length > limit:
                self.refuse(
                    process,
                    gettext(
                        "the process %(label)s has %(length)s characters; a workflow %(field)s has at most %(limit)s"
                    )
                    % {"label": label, "length": length, "field": field, "limit": limit},
                )
        description = _text(process.find(q(BPMN, "documentation")))
        if description:
            spec["description"] = description
        spec.update(self._extras(process))
        declared = self._declared_variables(nodes.values())
        if declared:
            known = spec.get("variables") or []
            spec["variables"] = sorted(set(known if isinstance(known, list) else list(known)) | declared)
        spec["steps"] = steps
        return spec

    def _declared_variables(self, nodes: Any) -> set[str]:
        """Variables a Camunda file writes through output mappings (Zeebe ioMapping, Camunda 7 inputOutput)."""
        names: set[str] = set()
        for node in nodes:
            for ext in _ext(node):
                if ext.tag == q(ZEEBE, "ioMapping"):
                    names.update(o.get("target", "") for o in ext.findall(q(ZEEBE, "output")))
                elif ext.tag == q(CAMUNDA, "inputOutput"):
                    names.update(o.get("name", "") for o in ext.findall(q(CAMUNDA, "outputParameter")))
        return {n for n in names if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n)}

    def _check_loop(self, node: Element) -> None:
        for tag in ("multiInstanceLoopCharacteristics", "standardLoopCharacteristics"):
            if node.find(q(BPMN, tag)) is not None:
                self.refuse(
                    node,
                    gettext(
                        "multi-instance and loop markers are not supported (a step runs once per visit; "
                        "loop with a gateway, or process a list inside a system task)"
                    ),
                )

    def _is_merge(self, node: Element) -> bool:
        out = self.outgoing.get(node.get("id", ""), [])
        return len(out) == 1 and out[0].find(q(BPMN, "conditionExpression")) is None

    def _condition(self, flow: Element) -> str | None:
        """The CEL form of a flow's condition; None (and the flow refused, named) when it has none here."""
        condition = flow.find(q(BPMN, "conditionExpression"))
        language = (condition.get("language") if condition is not None else "") or self.language
        try:
            return expression_to_cel(_text(condition), language)
        except ExpressionError as exc:
            self.refuse(
                flow,
                gettext("the condition %(condition)s cannot be read: %(problem)s")
                % {"condition": repr(_text(condition)), "problem": exc},
            )
            return None

    def _outcome_gateway(self, task: Element) -> tuple[Element, list[tuple[Element, str]]] | None:
        """The exclusive gateway right after a user task that chooses by the task's outcome: its only
        incoming flow is the task's only outgoing flow, and each of its flows is ``outcome == "<literal>"``
        (in CEL, FEEL or JUEL) or its default flow, named by the outcome. Else None: a decision step."""
        out = self.outgoing.get(task.get("id", ""), [])
        if len(out) != 1 or out[0].find(q(BPMN, "conditionExpression")) is not None:
            return None
        gateway = self.nodes.get(out[0].get("targetRef", ""))
        if gateway is None or _local(gateway)[1] != "exclusiveGateway":
            return None
        gid = gateway.get("id", "")
        flows = self.outgoing.get(gid, [])
        if gid in self.merges or len(self.incoming.get(gid, [])) != 1 or not flows:
            return None
        outcomes: list[tuple[Element, str]] = []
        for flow in flows:
            condition = flow.find(q(BPMN, "conditionExpression"))
            if flow.get("id") == gateway.get("default"):
                name = self._outcome_name(flow)
            elif condition is None or not _text(condition):
                return None
            else:
                language = condition.get("language") or self.language
                try:
                    name = outcome_literal(expression_to_cel(_text(condition), language)) or ""
                except ExpressionError:
                    return None  # read as a decision, which names the flow and the reason
            if not name:
                return None
            outcomes.append((flow, name))
        return gateway, outcomes

    def _target(self, flow: Element) -> str:
        """Where a flow leads, looking through merge gateways."""
        target = flow.get("targetRef", "")
        seen: set[str] = set()
        while target in self.merges and target not in seen:
            seen.add(target)
            target = self.outgoing[target][0].get("targetRef", "")
        return target

    def _base(self, node: Element, kind: str) -> dict[str, Any]:
        step: dict[str, Any] = {"id": node.get("id", ""), "type": kind}
        name = node.get("name")
        if name and _bool(node.get(q(PHQ, "autoName"))) and name == humanize(step["id"]):
            name = None  # the label the exporter gave an unnamed step; an edited label is a real name
        if name:
            step["name"] = name
        return step

    def _single_next(self, node: Element, step: dict[str, Any], what: str) -> None:
        out = self.outgoing.get(node.get("id", ""), [])
        if len(out) != 1:
            self.refuse(
                node,
                gettext(
                    "a %(element)s needs exactly one outgoing sequence flow (it has %(count)s); "
                    "branch with an exclusive gateway"
                )
                % {"element": gettext(what), "count": len(out)},
            )
            return
        if out[0].find(q(BPMN, "conditionExpression")) is not None:
            self.refuse(
                out[0], gettext("a condition on a flow that does not leave an exclusive gateway is not supported")
            )
        step["next"] = self._target(out[0])

    def _extras(self, node: Element) -> dict[str, Any]:
        """Keys of our format that have no BPMN home travel as <phq:extra name="…">json</phq:extra>."""
        extras: dict[str, Any] = {}
        for ext in _ext(node):
            if ext.tag == q(PHQ, "extra"):
                try:
                    extras[ext.get("name", "")] = json.loads(ext.text or "null")
                except ValueError:
                    self.refuse(node, gettext("phq:extra %(name)s is not valid JSON") % {"name": repr(ext.get("name"))})
        return extras

    # -- steps -------------------------------------------------------------------------------
    def _step_startEvent(self, node: Element) -> dict[str, Any] | None:
        """A none start (started by hand, with a start form) or a message start whose message is a
        business event (Camunda 7 and 8 write message starts the same way)."""
        kinds = self._event_definitions(node)
        if kinds not in ([], ["message"]):
            self.refuse(
                node,
                gettext(
                    "a %(kind)s start event is not supported; a workflow starts on a business event "
                    "(message start event) or by hand (none start event)"
                )
                % {"kind": kinds[0]},
            )
            return None
        step = self._base(node, "start")
        if kinds == ["message"]:
            step["event"] = self._message_name(node)
            if node.get(q(PHQ, "condition")):
                step["condition"] = node.get(q(PHQ, "condition"))
            if node.get(q(PHQ, "priority")):
                try:
                    step["priority"] = int(node.get(q(PHQ, "priority"), "0"))
                except ValueError:
                    self.refuse(node, gettext("phq:priority must be a whole number"))
        else:
            inputs = self._inputs(node)
            if inputs:
                step["inputs"] = inputs
            starters = [s.strip() for s in (node.get(q(PHQ, "starters")) or "").split(",") if s.strip()]
            if starters:
                step["starters"] = starters
        self._single_next(node, step, "start event")
        step.update(self._extras(node))
        return step

    def _step_endEvent(self, node: Element) -> dict[str, Any] | None:
        if self._event_definitions(node):
            self.refuse(
                node,
                gettext("a %(kind)s end event is not supported; use a none end event")
                % {"kind": self._event_definitions(node)[0]},
            )
            return None
        step = self._base(node, "end")
        if node.get(q(PHQ, "result")):
            step["result"] = node.get(q(PHQ, "result"))
        if self.outgoing.get(node.get("id", "")):
            self.refuse(node, gettext("an end event cannot have outgoing flows"))
        step.update(self._extras(node))
        return step

    def _event_definitions(self, node: Element) -> list[str]:
        return [_local(c)[1].replace("EventDefinition", "") for c in node if _local(c)[1].endswith("EventDefinition")]

    def _step_userTask(self, node: Element) -> dict[str, Any] | None:
        nid = node.get("id", "")
        step = self._base(node, "user")
        role = node.get(q(PHQ, "role")) or ""
        if not role and node.get(q(CAMUNDA, "candidateGroups")):
            role = self._first_group(node, node.get(q(CAMUNDA, "candidateGroups"), ""))
        assignment = next((e for e in _ext(node) if e.tag == q(ZEEBE, "assignmentDefinition")), None)
        if not role and assignment is not None and assignment.get("candidateGroups"):
            role = self._first_group(node, assignment.get("candidateGroups", ""))
        if not role and self.lane_of.get(nid):
            role = self.lane_of[nid]
        if role:
            step["role"] = role
        scope = node.get(q(PHQ, "scope"))
        if scope:
            step["scope"] = scope
        instructions = _text(node.find(q(BPMN, "documentation")))
        if instructions:
            step["instructions"] = instructions

        due = node.get(q(PHQ, "dueIn")) or ""
        if not due and node.get(q(CAMUNDA, "dueDate")):
            due = self._duration_of(node, node.get(q(CAMUNDA, "dueDate"), ""), "camunda:dueDate")
        schedule = next((e for e in _ext(node) if e.tag == q(ZEEBE, "taskSchedule")), None)
        if not due and schedule is not None and schedule.get("dueDate"):
            due = self._duration_of(node, schedule.get("dueDate", ""), "zeebe:taskSchedule dueDate")
        escalation = [
            {"after": e.get("after", ""), "to": e.get("to", "")} for e in _ext(node) if e.tag == q(PHQ, "escalation")
        ]
        for boundary in self.boundaries.get(nid, []):
            after = self._boundary_duration(boundary)
            if after is None:
                continue
            target_role = boundary.get(q(PHQ, "escalateTo"))
            paths = self.outgoing.get(boundary.get("id", ""), [])
            if paths:  # an interrupting timer with a path of its own (checked in _check_boundary)
                if len(paths) == 1 and boundary.get("cancelActivity", "true") != "false" and not target_role:
                    step["timeout"] = {"after": after, "next": self._target(paths[0])}
                continue
            if target_role:
                escalation.append({"after": after, "to": target_role})
            elif due and due != after:
                self.refuse(
                    boundary,
                    gettext("the task already has a due time (%(due)s); a second due timer is ambiguous")
                    % {"due": due},
                )
            else:
                due = after
        if due:
            step["due_in"] = due
        if escalation:
            step["escalation"] = escalation
        inputs = self._inputs(node)
        if inputs:
            step["inputs"] = inputs

        out = self.outgoing.get(nid, [])
        if not out:
            self.refuse(node, gettext("a user task needs at least one outgoing sequence flow"))
        elif nid in self.outcome_gateways:  # task → exclusive gateway with one flow per outcome
            outcomes = {}
            for flow, name in self.outcome_gateways[nid][1]:
                written = flow.get(q(PHQ, "outcome"))
                if written and written != name:
                    self.refuse(
                        flow,
                        gettext("the flow's phq:outcome %(written)s differs from the outcome %(name)s it tests")
                        % {"written": repr(written), "name": repr(name)},
                    )
                elif name in outcomes:
                    self.refuse(
                        flow,
                        gettext("outcome %(name)s appears twice on the flows after %(step)s")
                        % {"name": repr(name), "step": repr(nid)},
                    )
                else:
                    outcomes[name] = self._target(flow)
            step["outcomes"] = outcomes
        elif len(out) == 1 and not self._outcome_name(out[0]):
            step["next"] = self._target(out[0])
        else:
            outcomes: dict[str, str] = {}
            for flow in out:
                name = self._outcome_name(flow)
                if not name:
                    self.refuse(
                        flow,
                        gettext(
                            "user task %(step)s has several outgoing flows: name each one with the "
                            "outcome the employee chooses (phq:outcome or the flow's name)"
                        )
                        % {"step": repr(nid)},
                    )
                elif name in outcomes:
                    self.refuse(
                        flow,
                        gettext("outcome %(name)s appears twice on the flows leaving %(step)s")
                        % {"name": repr(name), "step": repr(nid)},
                    )
                else:
                    outcomes[name] = self._target(flow)
                if flow.find(q(BPMN, "conditionExpression")) is not None:
                    self.refuse(
                        flow, gettext("conditions belong on the flows leaving an exclusive gateway, not a user task")
                    )
            step["outcomes"] = outcomes
        step.update(self._extras(node))
        return step

    def _first_group(self, node: Element, groups: str) -> str:
        text = strip_expression(groups).strip("[]")
        names = [g.strip().strip("\"'") for g in text.split(",") if g.strip()]
        if len(names) > 1:
            self.warnings.append(
                gettext("%(id)s: several candidate groups (%(groups)s); the first, %(first)s, is used.")
                % {"id": node.get("id"), "groups": ", ".join(names), "first": repr(names[0])}
            )
        return names[0] if names else ""

    def _duration_of(self, node: Element, value: str, what: str) -> str:
        text = value.strip()
        if is_duration(text):
            return text
        match = re.search(r"(P(?:\d+[YMWD])*(?:T(?:\d+[HMS])+)?)", text)
        if match and match.group(1) != "P" and is_duration(match.group(1)):
            return match.group(1)
        self.refuse(
            node,
            gettext("%(field)s %(value)s is not an ISO 8601 duration such as P2D or PT4H")
            % {"field": gettext(what), "value": repr(value)},
        )
        return ""

    def _boundary_duration(self, boundary: Element) -> str | None:
        timer = boundary.find(q(BPMN, "timerEventDefinition"))
        if timer is None:
            return None
        duration = timer.find(q(BPMN, "timeDuration"))
        if duration is None:
            self.refuse(boundary, gettext("a timer on a user task needs a duration (timeDuration), e.g. P2D"))
            return None
        return self._duration_of(boundary, strip_expression(_text(duration)), "timer duration")

    def _check_boundary(self, boundary: Element) -> None:
        attached = self.nodes.get(boundary.get("attachedToRef", ""))
        definitions = self._event_definitions(boundary)
        if attached is None or _local(attached)[1] != "userTask":
            self.refuse(boundary, gettext("boundary events are supported on user tasks only"))
        elif definitions != ["timer"]:
            self.refuse(
                boundary,
                gettext("a %(kind)s boundary event is not supported; only timers (due time, escalation) on user tasks")
                % {"kind": definitions[0] if definitions else "none"},
            )
        elif self.outgoing.get(boundary.get("id", "")):
            paths = self.outgoing[boundary.get("id", "")]
            if boundary.get("cancelActivity", "true") == "false":
                self.refuse(
                    boundary,
                    gettext(
                        "a non-interrupting timer on a user task marks its due time or escalation and cannot "
                        "start a path of its own; make it interrupting (the task is cancelled and the process "
                        "follows the timer) or remove its outgoing flow"
                    ),
                )
            elif boundary.get(q(PHQ, "escalateTo")):
                self.refuse(boundary, gettext("a timer that escalates the task cannot also start a path of its own"))
            elif len(paths) != 1:
                self.refuse(boundary, gettext("an interrupting timer on a user task needs exactly one outgoing flow"))
            elif (
                sum(1 for b in self.boundaries.get(attached.get("id", ""), []) if self.outgoing.get(b.get("id", "")))
                > 1
            ):
                self.refuse(boundary, gettext("a user task can have one interrupting timer"))

    def _outcome_name(self, flow: Element) -> str:
        name = flow.get(q(PHQ, "outcome")) or ""
        if not name and flow.get("name"):
            name = re.sub(r"[^a-z0-9]+", "_", flow.get("name", "").strip().lower()).strip("_")
        return name

    def _inputs(self, node: Element) -> list[dict[str, Any]]:
        inputs: list[dict[str, Any]] = []
        for ext in _ext(node):
            if ext.tag == q(PHQ, "input"):
                item: dict[str, Any] = {
                    "name": ext.get("name", ""),
                    "label": ext.get("label") or ext.get("name", ""),
                    "type": ext.get("type") or "text",
                    "required": _bool(ext.get("required")),
                }
                choices = [c.get("value", "") for c in ext.findall(q(PHQ, "choice"))]
                if choices or item["type"] == "choice":
                    item["choices"] = choices
                inputs.append(item)
            elif ext.tag == q(CAMUNDA, "formData"):
                inputs.extend(self._camunda_form(node, ext))
        return inputs

    def _camunda_form(self, node: Element, form: Element) -> list[dict[str, Any]]:
        types = {"string": "text", "long": "number", "boolean": "bool", "date": "date", "enum": "choice"}
        inputs = []
        for field in form.findall(q(CAMUNDA, "formField")):
            kind = types.get(field.get("type", "string"))
            if kind is None:
                self.refuse(
                    node,
                    gettext("form field %(field)s has type %(type)s, which has no input type here")
                    % {"field": repr(field.get("id")), "type": repr(field.get("type"))},
                )
                continue
            required = any(c.get("name") == "required" for c in field.iter(q(CAMUNDA, "constraint")))
            item: dict[str, Any] = {
                "name": field.get("id", ""),
                "label": field.get("label") or field.get("id", ""),
                "type": kind,
                "required": required,
            }
            if kind == "choice":
                item["choices"] = [v.get("id", "") for v in field.findall(q(CAMUNDA, "value"))]
            inputs.append(item)
        return inputs

    def _step_serviceTask(self, node: Element) -> dict[str, Any] | None:
        step = self._base(node, "system")
        task = node.get(q(PHQ, "task")) or ""
        definition = next((e for e in _ext(node) if e.tag == q(ZEEBE, "taskDefinition")), None)
        if not task and node.get(q(CAMUNDA, "topic")):
            task = node.get(q(CAMUNDA, "topic"), "")
        if not task and node.get(q(CAMUNDA, "delegateExpression")):
            task = strip_expression(node.get(q(CAMUNDA, "delegateExpression"), ""))
        if not task and definition is not None:
            task = strip_expression(definition.get("type", ""))
        if not task:
            self.refuse(
                node,
                gettext(
                    "the service task names no system task: set phq:task, or in Camunda Modeler an external "
                    "topic, a delegate expression ${name} or a Zeebe job type"
                ),
            )
            return None
        step["task"] = task
        retry: dict[str, Any] = {}
        if node.get(q(PHQ, "retries")):
            retry["max_attempts"] = int(node.get(q(PHQ, "retries"), "0"))
        elif definition is not None and definition.get("retries"):
            retry["max_attempts"] = int(strip_expression(definition.get("retries", "0")) or 0)
        if node.get(q(PHQ, "retryBackoff")):
            retry["backoff"] = node.get(q(PHQ, "retryBackoff"))
        cycle = next((e for e in _ext(node) if e.tag == q(CAMUNDA, "failedJobRetryTimeCycle")), None)
        if cycle is not None and not retry:
            match = re.fullmatch(r"R(\d+)/(P\S+)", _text(cycle))
            if match:
                retry = {"max_attempts": int(match.group(1)), "backoff": match.group(2)}
        if retry:
            step["retry"] = retry
        if node.get(q(PHQ, "timeout")):
            step["timeout"] = node.get(q(PHQ, "timeout"))
        self._single_next(node, step, "service task")
        step.update(self._extras(node))
        return step

    def _step_callActivity(self, node: Element) -> dict[str, Any] | None:
        step = self._base(node, "call")
        called = node.get("calledElement") or ""
        zeebe = next((e for e in _ext(node) if e.tag == q(ZEEBE, "calledElement")), None)
        if not called and zeebe is not None:
            called = strip_expression(zeebe.get("processId", ""))
        if not called:
            self.refuse(node, gettext("the call activity names no process to call (calledElement)"))
            return None
        step["definition"] = called
        self._single_next(node, step, "call activity")
        step.update(self._extras(node))
        return step

    def _step_exclusiveGateway(self, node: Element) -> dict[str, Any] | None:
        nid = node.get("id", "")
        step = self._base(node, "decision")
        default_flow = node.get("default") or ""
        branches = []
        default = None
        for flow in self.outgoing.get(nid, []):
            condition = flow.find(q(BPMN, "conditionExpression"))
            if flow.get("id") == default_flow:
                default = self._target(flow)
                continue
            if condition is None or not _text(condition):
                self.refuse(
                    flow,
                    gettext(
                        "the flow from decision %(step)s to %(target)s has no condition and is not the default flow"
                    )
                    % {"step": repr(nid), "target": repr(flow.get("targetRef"))},
                )
                continue
            when = self._condition(flow)
            if when is not None:
                branches.append({"when": when, "next": self._target(flow)})
        if not self.outgoing.get(nid):
            self.refuse(node, gettext("a decision needs outgoing sequence flows"))
        step["branches"] = branches
        if default is not None:
            step["default"] = default
        step.update(self._extras(node))
        return step

    def _step_eventBasedGateway(self, node: Element) -> dict[str, Any] | None:
        """An event-based gateway choosing between a message and a timer: a wait with a timeout."""
        nid = node.get("id", "")
        step = self._base(node, "wait")
        message = timer = None
        for flow in self.outgoing.get(nid, []):
            event = self.nodes.get(flow.get("targetRef", ""))
            kinds = self._event_definitions(event) if event is not None else []
            if event is not None and _local(event)[1] == "intermediateCatchEvent" and kinds == ["message"]:
                message = message or event
            elif event is not None and _local(event)[1] == "intermediateCatchEvent" and kinds == ["timer"]:
                timer = timer or event
            else:
                self.refuse(
                    node,
                    gettext(
                        "an event-based gateway must lead to one message catch event and one timer catch "
                        "event (a wait with a timeout)"
                    ),
                )
                return None
        if message is None or timer is None or len(self.outgoing.get(nid, [])) != 2:
            self.refuse(
                node,
                gettext(
                    "an event-based gateway must lead to exactly one message catch event and one timer "
                    "catch event (a wait with a timeout)"
                ),
            )
            return None
        step["message"] = self._message_name(message)
        after = self._boundary_duration(timer)
        timeout_target = {}
        out = self.outgoing.get(timer.get("id", ""), [])
        if len(out) == 1:
            timeout_target["next"] = self._target(out[0])
        else:
            self.refuse(timer, gettext("the timeout timer needs exactly one outgoing flow"))
        step["timeout"] = {"after": after or "", **timeout_target}
        self._single_next(message, step, "message catch event")
        step.update(self._extras(node))
        self._owned_ids = getattr(self, "_owned_ids", {})
        self._owned_ids[message.get("id", "")] = f"{nid}__message"
        self._owned_ids[timer.get("id", "")] = f"{nid}__timeout"
        return step

    def _message_name(self, event: Element) -> str:
        definition = event.find(q(BPMN, "messageEventDefinition"))
        ref = definition.get("messageRef", "") if definition is not None else ""
        name = self.messages.get(ref, "") if ref else ""
        if not name:
            self.refuse(event, gettext("the message event names no message (messageRef to a <message name=…>)"))
        return strip_expression(name)

    def _step_intermediateCatchEvent(self, node: Element) -> dict[str, Any] | None:
        kinds = self._event_definitions(node)
        step = self._base(node, "wait")
        if kinds == ["message"]:
            step["message"] = self._message_name(node)
        elif kinds == ["timer"]:
            timer = node.find(q(BPMN, "timerEventDefinition"))
            assert timer is not None
            duration, date = timer.find(q(BPMN, "timeDuration")), timer.find(q(BPMN, "timeDate"))
            variable = node.get(q(PHQ, "untilVariable"))
            if variable:
                step["until_variable"] = variable
            elif duration is not None:
                step["duration"] = self._duration_of(node, strip_expression(_text(duration)), "timer duration")
            elif date is not None and (variable := self._date_variable(node, date)) is not None:
                if not variable:
                    return None  # its expression was refused, with the reason
                step["until_variable"] = variable
            else:
                self.refuse(
                    node,
                    gettext(
                        "a timer catch event waits a duration (timeDuration, e.g. P1D) or until the date in "
                        "a process variable (timeDate naming it: terminate_at in CEL, ${terminate_at} in JUEL, "
                        "=terminate_at in FEEL); fixed dates and cycles are not supported"
                    ),
                )
                return None
        else:
            label = kinds[0] if kinds else "none"
            self.refuse(
                node,
                gettext("a %(kind)s intermediate catch event is not supported; catch a timer or a message")
                % {"kind": label},
            )
            return None
        self._single_next(node, step, "catch event")
        step.update(self._extras(node))
        return step

    def _date_variable(self, node: Element, date: Element) -> str | None:
        """The variable a timeDate waits for: ``terminate_at`` (CEL), ``${terminate_at}``, ``=terminate_at``;
        None when the date is something else (a fixed date), "" when its expression was refused."""
        text = _text(date)
        try:
            cel = expression_to_cel(text, date.get("language") or self.language)
        except ExpressionError as exc:
            self.refuse(
                node,
                gettext("the timer date %(value)s cannot be read: %(problem)s") % {"value": repr(text), "problem": exc},
            )
            return ""
        return cel if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", cel) else None

    def _step_boundaryEvent(self, node: Element) -> None:  # handled with its user task
        return None

    # -- diagram -----------------------------------------------------------------------------
    def _read_diagram(self, process_id: str) -> None:
        owned = getattr(self, "_owned_ids", {})
        flow_ends = {
            f.get("id", ""): (f.get("sourceRef", ""), f.get("targetRef", "")) for f in getattr(self, "flows", [])
        }
        boundary_ids: dict[str, str] = {}
        outgoing = getattr(self, "outgoing", {})
        for task_id, boundaries in getattr(self, "boundaries", {}).items():
            for boundary in boundaries:
                if outgoing.get(boundary.get("id", "")):  # the step's timeout, with its own path
                    boundary_ids[boundary.get("id", "")] = f"{task_id}__timeout"
                elif not boundary.get(q(PHQ, "escalateTo")):
                    boundary_ids[boundary.get("id", "")] = f"{task_id}__due"
        for diagram in self.root.findall(q(BPMNDI, "BPMNDiagram")):
            plane = diagram.find(q(BPMNDI, "BPMNPlane"))
            if plane is None:
                continue
            for shape in plane.findall(q(BPMNDI, "BPMNShape")):
                element = shape.get("bpmnElement", "")
                bounds = shape.find(q(DC, "Bounds"))
                if bounds is None:
                    continue
                try:
                    box = Bounds(*(float(bounds.get(a, "0")) for a in ("x", "y", "width", "height")))
                except ValueError:
                    continue
                canonical = owned.get(element) or boundary_ids.get(element) or element
                self.layout.shapes[canonical] = box
            for edge in plane.findall(q(BPMNDI, "BPMNEdge")):
                ends = flow_ends.get(edge.get("bpmnElement", ""))
                if not ends:
                    continue
                points = []
                for point in edge.findall(q(DI, "waypoint")):
                    try:
                        points.append((float(point.get("x", "0")), float(point.get("y", "0"))))
                    except ValueError:
                        points = []
                        break
                if len(points) >= 2:
                    source = owned.get(ends[0]) or boundary_ids.get(ends[0]) or ends[0]
                    target = owned.get(ends[1], ends[1])
                    self.layout.edges[(source, target)] = points
            break  # the first diagram is the one that shows the process


def bpmn_to_definition(data: bytes | str, *, key: str | None = None) -> BpmnImport:
    """Read a BPMN 2.0 file into our compact definition format; raise BpmnError listing every problem."""
    root = parse_xml(data)
    return _Reader(root, key).read()
