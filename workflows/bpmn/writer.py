"""Compact definition dict → BPMN 2.0 XML with diagram interchange (BPMN DI).

Positions come from a :class:`Layout` (read from the file the editor saved or the file imported);
a definition without one is laid out left to right automatically. The output opens in bpmn-js and
Camunda Modeler and reads back (``bpmn_to_definition``) into the same definition.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lxml import etree

from ._common import BPMN, BPMNDI, CEL_LANGUAGE, DC, DI, NSMAP, PHQ, SIZES, XSI, Bounds, Layout, q
from .layout import Router, arrange, docked

_KNOWN = {
    "start": {"id", "type", "name", "next", "event", "condition", "priority", "inputs", "starters"},
    "end": {"id", "type", "name", "result"},
    "user": {
        "id",
        "type",
        "name",
        "role",
        "scope",
        "instructions",
        "due_in",
        "escalation",
        "inputs",
        "outcomes",
        "timeout",
        "next",
    },
    "system": {"id", "type", "name", "task", "retry", "timeout", "next"},
    "decision": {"id", "type", "name", "branches", "default"},
    "wait": {"id", "type", "name", "message", "timeout", "duration", "until_variable", "next"},
    "call": {"id", "type", "name", "definition", "next"},
}
_SPEC_KNOWN = {"key", "name", "category", "description", "steps"}


def _kind(step: dict[str, Any]) -> str:
    """Shape family of a step's main element."""
    if step["type"] in {"start", "end"}:
        return "event"
    if step["type"] == "decision":
        return "gateway"
    if step["type"] == "wait":
        return "gateway" if step.get("message") and step.get("timeout") else "event"
    return "task"


def humanize(step_id: str) -> str:
    """``approve_contract`` → ``Approve contract``: the label of a step that has no name."""
    words = re.sub(r"[_\-.]+", " ", step_id).strip()
    return words[:1].upper() + words[1:]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def outcome_gateway_id(task_id: str) -> str:
    """The exclusive gateway that carries a user task's outcomes."""
    return f"{task_id}__outcome"


def outcome_condition(outcome: str) -> str:
    """``outcome == "approve"``: the CEL condition of an outcome's flow (a JSON string is a valid CEL literal)."""
    return f"outcome == {json.dumps(outcome, ensure_ascii=False)}"


def outcome_tasks(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The user tasks whose outcomes the export writes as an exclusive gateway (two or more outcomes)."""
    return [s for s in spec.get("steps", []) if s["type"] == "user" and len(s.get("outcomes") or {}) > 1]


def edges_of(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every sequence flow the export writes: (source element, target element, flow attributes)."""
    edges: list[tuple[str, str, dict[str, Any]]] = []
    for step in spec.get("steps", []):
        sid, kind = step["id"], step["type"]
        if kind == "user" and step.get("timeout") and step["timeout"].get("next"):
            edges.append((f"{sid}__timeout", step["timeout"]["next"], {"name": "timeout"}))
        if kind == "user" and len(step.get("outcomes") or {}) > 1:
            # BPMN 2.0: several unconditioned flows leaving a task are a parallel split. The choice is an
            # exclusive gateway after the task, one flow per outcome with the condition ``outcome == "…"``.
            gateway = outcome_gateway_id(sid)
            edges.append((sid, gateway, {}))
            for outcome, target in step["outcomes"].items():
                edges.append((gateway, target, {"outcome": outcome, "condition": outcome_condition(outcome)}))
        elif kind == "user" and step.get("outcomes"):
            for outcome, target in step["outcomes"].items():
                edges.append((sid, target, {"outcome": outcome}))
        elif kind == "decision":
            for branch in step.get("branches", []):
                edges.append((sid, branch["next"], {"condition": branch.get("when", "")}))
            if step.get("default"):
                edges.append((sid, step["default"], {"default": True}))
        elif kind == "wait" and step.get("message") and step.get("timeout"):
            edges.append((sid, f"{sid}__message", {}))
            edges.append((sid, f"{sid}__timeout", {}))
            if step.get("next"):
                edges.append((f"{sid}__message", step["next"], {}))
            if step["timeout"].get("next"):
                edges.append((f"{sid}__timeout", step["timeout"]["next"], {"name": "timeout"}))
        elif step.get("next"):
            edges.append((sid, step["next"], {}))
    return edges


# -- automatic layout --------------------------------------------------------------------------
def auto_layout(spec: dict[str, Any]) -> Layout:
    """Left-to-right columns by longest path from the start; the main path on one row, branches below."""
    steps = {s["id"]: s for s in spec.get("steps", [])}
    sizes: dict[str, tuple[float, float]] = {sid: SIZES[_kind(s)] for sid, s in steps.items()}
    for sid, step in steps.items():
        if step["type"] == "wait" and step.get("message") and step.get("timeout"):
            sizes[f"{sid}__message"] = SIZES["event"]
            sizes[f"{sid}__timeout"] = SIZES["event"]
    for step in outcome_tasks(spec):  # the outcome gateway is a node of the graph, in the column after its task
        sizes[outcome_gateway_id(step["id"])] = SIZES["gateway"]
    # a user task's timer path is laid out as leaving the task, its target below the task
    timers = {f"{sid}__timeout": sid for sid, step in steps.items() if step["type"] == "user" and step.get("timeout")}
    edges = [(timers.get(source, source), target) for source, target, _ in edges_of(spec)]
    below = {(timers[source], target) for source, target, _ in edges_of(spec) if source in timers}
    start = next((s["id"] for s in spec.get("steps", []) if s["type"] == "start"), None)
    return Layout(shapes=arrange(sizes, edges, start=start, below=below))


# -- the XML -----------------------------------------------------------------------------------
class _Writer:
    def __init__(self, spec: dict[str, Any], layout: Layout | None) -> None:
        self.spec = spec
        self.steps = {s["id"]: s for s in spec.get("steps", [])}
        wanted = set(self.steps)
        for sid, step in self.steps.items():
            if step["type"] == "wait" and step.get("message") and step.get("timeout"):
                wanted |= {f"{sid}__message", f"{sid}__timeout"}
        if layout and wanted <= set(layout.shapes):
            self.layout = layout
        else:
            self.layout = auto_layout(spec)
            if layout:  # keep the edited positions of what is there; new elements get automatic places
                for element in wanted & set(layout.shapes):
                    self.layout.shapes[element] = layout.shapes[element]
                self.layout.edges = dict(layout.edges)
        self._place_outcome_gateways(layout)
        for sid, step in self.steps.items():
            # an interrupting timer sits on the task's lower left edge (its due timer on the right)
            if step["type"] == "user" and step.get("timeout") and sid in self.layout.shapes:
                task = self.layout.shapes[sid]
                self.layout.shapes.setdefault(f"{sid}__timeout", Bounds(task.x + 12, task.y + task.height - 18, 36, 36))
        self.saved_edges = self.layout.edges if layout else {}
        self.messages: dict[str, str] = {}
        self.flow_ids: list[tuple[str, str, str]] = []  # (flow id, source, target)
        self.outgoing: dict[str, list[str]] = {}
        self.incoming: dict[str, list[str]] = {}

    def _place_outcome_gateways(self, saved: Layout | None) -> None:
        """An outcome gateway the saved diagram does not show (a file of the older form, or a task that
        got a second outcome) sits right of its task, vertically centred. When the next shape on its row or
        one of the task's targets is too close, everything right of the task moves right to make room (the
        saved waypoints there move with it; a flow left with a loose end is routed again)."""
        gateways = {outcome_gateway_id(s["id"]) for s in outcome_tasks(self.spec)}
        if saved is not None and self.layout is saved:  # never change the caller's layout
            self.layout = Layout(shapes=dict(saved.shapes), edges=dict(saved.edges))
        for stale in [e for e in self.layout.shapes if e.endswith("__outcome") and e not in gateways]:
            del self.layout.shapes[stale]  # the task has one outcome now: no gateway to draw
        width, height = SIZES["gateway"]
        gap = 40.0
        for step in outcome_tasks(self.spec):
            gateway = outcome_gateway_id(step["id"])
            task = self.layout.shapes.get(step["id"])
            if gateway in (saved.shapes if saved else self.layout.shapes) or task is None:
                continue
            right, middle = task.x + task.width, task.mid[1]
            targets = set(step["outcomes"].values())
            ahead = [
                b.x
                for element, b in self.layout.shapes.items()
                if b.x >= right
                and (
                    element in targets
                    or (b.y < middle + height / 2 + gap and b.y + b.height > middle - height / 2 - gap)
                )
            ]
            room = 2 * gap + width
            if ahead and min(ahead) - right < room:
                self._shift_right_of(right, room - (min(ahead) - right))
            self.layout.shapes[gateway] = Bounds(right + gap, middle - height / 2, width, height)

    def _shift_right_of(self, x: float, delta: float) -> None:
        """Move every shape whose left side is at or right of ``x`` (and the waypoints of flows wholly there)."""
        for element, b in list(self.layout.shapes.items()):
            if b.x >= x:
                self.layout.shapes[element] = Bounds(b.x + delta, b.y, b.width, b.height)
        for ends, points in list(self.layout.edges.items()):
            if all(px >= x for px, _ in points):
                self.layout.edges[ends] = [(px + delta, py) for px, py in points]

    def write(self) -> bytes:
        definitions = etree.Element(q(BPMN, "definitions"), nsmap=NSMAP)
        key = self.spec["key"]
        definitions.set("id", f"Definitions_{_slug(key)}")
        definitions.set("targetNamespace", "https://parkinghq.example/bpmn")
        definitions.set("expressionLanguage", CEL_LANGUAGE)
        definitions.set("exporter", "ParkingHQ Business Workflow")
        definitions.set("exporterVersion", "1.0")

        for step in self.spec.get("steps", []):
            if step["type"] == "wait" and step.get("message"):
                self.messages.setdefault(step["message"], f"Message_{_slug(step['message'])}")
            if step["type"] == "start" and step.get("event"):
                self.messages.setdefault(step["event"], f"Message_{_slug(step['event'])}")
        for name, message_id in self.messages.items():
            etree.SubElement(definitions, q(BPMN, "message"), id=message_id, name=name)

        process = etree.SubElement(definitions, q(BPMN, "process"), id=key, isExecutable="true")
        process.set("name", self.spec.get("name") or key)
        if self.spec.get("category"):
            process.set(q(PHQ, "category"), self.spec["category"])
        if self.spec.get("description"):
            etree.SubElement(process, q(BPMN, "documentation")).text = self.spec["description"]
        self._extras(process, {k: v for k, v in self.spec.items() if k not in _SPEC_KNOWN})

        flows = []
        for number, (source, target, attrs) in enumerate(edges_of(self.spec), start=1):
            label = attrs.get("outcome") or ("default" if attrs.get("default") else str(number))
            flow_id = f"Flow_{_slug(source)}_{_slug(label)}"
            if any(f[0] == flow_id for f in self.flow_ids):
                flow_id = f"{flow_id}_{number}"
            self.flow_ids.append((flow_id, source, target))
            self.outgoing.setdefault(source, []).append(flow_id)
            self.incoming.setdefault(target, []).append(flow_id)
            flows.append((flow_id, source, target, attrs))

        for step in self.spec.get("steps", []):
            getattr(self, f"_write_{step['type']}")(process, step)
        for flow_id, source, target, attrs in flows:
            flow = etree.SubElement(process, q(BPMN, "sequenceFlow"), id=flow_id, sourceRef=source, targetRef=target)
            if attrs.get("outcome"):
                flow.set("name", attrs["outcome"])
                flow.set(q(PHQ, "outcome"), attrs["outcome"])
            if attrs.get("name"):
                flow.set("name", attrs["name"])
            if "condition" in attrs:
                condition = etree.SubElement(flow, q(BPMN, "conditionExpression"))
                condition.set(q(XSI, "type"), "bpmn:tFormalExpression")
                condition.text = attrs["condition"]
                if not attrs.get("outcome"):
                    flow.set("name", attrs["condition"][:60])
        self._diagram(definitions, key)
        return etree.tostring(definitions, xml_declaration=True, encoding="UTF-8", pretty_print=True)

    # -- elements --------------------------------------------------------------------------
    def _node(
        self,
        process: etree._Element,
        tag: str,
        step: dict[str, Any],
        element_id: str | None = None,
        name: str | None = None,
    ) -> etree._Element:
        element_id = element_id or step["id"]
        node = etree.SubElement(process, q(BPMN, tag), id=element_id)
        label = name if name is not None else step.get("name")
        if not label and tag in {"userTask", "serviceTask", "callActivity"}:
            # an unnamed task would be a blank box: show its id in words, marked so it reads back as unnamed
            label = humanize(step["id"])
            node.set(q(PHQ, "autoName"), "true")
        if label:
            node.set("name", label)
        return node

    def _flows(self, node: etree._Element, element_id: str) -> None:
        for flow_id in self.incoming.get(element_id, []):
            etree.SubElement(node, q(BPMN, "incoming")).text = flow_id
        for flow_id in self.outgoing.get(element_id, []):
            etree.SubElement(node, q(BPMN, "outgoing")).text = flow_id

    def _extension(self, node: etree._Element) -> etree._Element:
        ext = node.find(q(BPMN, "extensionElements"))
        if ext is None:
            ext = etree.SubElement(node, q(BPMN, "extensionElements"))
        return ext

    def _extras(self, node: etree._Element, extras: dict[str, Any]) -> None:
        for name, value in sorted(extras.items()):
            extra = etree.SubElement(self._extension(node), q(PHQ, "extra"), name=name)
            extra.text = json.dumps(value, sort_keys=True)

    def _step_extras(self, node: etree._Element, step: dict[str, Any]) -> None:
        self._extras(node, {k: v for k, v in step.items() if k not in _KNOWN[step["type"]]})

    def _write_start(self, process: etree._Element, step: dict[str, Any]) -> None:
        node = self._node(process, "startEvent", step)
        if step.get("event"):  # a message start: the business event, with its condition and priority
            if step.get("condition"):
                node.set(q(PHQ, "condition"), step["condition"])
            if step.get("priority"):
                node.set(q(PHQ, "priority"), str(int(step["priority"])))
        if step.get("starters"):
            node.set(q(PHQ, "starters"), ", ".join(step["starters"]))
        self._inputs(node, step)
        self._step_extras(node, step)
        self._flows(node, step["id"])
        if step.get("event"):
            etree.SubElement(node, q(BPMN, "messageEventDefinition"), messageRef=self.messages[step["event"]])

    def _write_end(self, process: etree._Element, step: dict[str, Any]) -> None:
        node = self._node(process, "endEvent", step)
        if step.get("result"):
            node.set(q(PHQ, "result"), str(step["result"]))
        self._step_extras(node, step)
        self._flows(node, step["id"])

    def _write_user(self, process: etree._Element, step: dict[str, Any]) -> None:
        node = self._node(process, "userTask", step)
        if step.get("role"):
            node.set(q(PHQ, "role"), step["role"])
        if step.get("scope"):
            node.set(q(PHQ, "scope"), step["scope"])
        if step.get("instructions"):
            etree.SubElement(node, q(BPMN, "documentation")).text = step["instructions"]
        for level in step.get("escalation", []):
            etree.SubElement(self._extension(node), q(PHQ, "escalation"), after=level["after"], to=level["to"])
        self._inputs(node, step)
        self._step_extras(node, step)
        self._flows(node, step["id"])
        if len(step.get("outcomes") or {}) > 1:  # the employee's choice: an exclusive gateway after the task
            gateway_id = outcome_gateway_id(step["id"])
            label = f"{step.get('name') or humanize(step['id'])}?"
            gateway = etree.SubElement(process, q(BPMN, "exclusiveGateway"), id=gateway_id, name=label)
            self._flows(gateway, gateway_id)
        if step.get("due_in"):  # marks the due time: the task stays
            self._timer_boundary(process, step["id"], "due", "Due", step["due_in"], cancelActivity="false")
        if step.get("timeout"):  # interrupting (the default): the task ends, the process follows the timer
            after = step["timeout"].get("after", "")
            self._timer_boundary(process, step["id"], "timeout", f"Not done after {after}", after)

    def _inputs(self, node: etree._Element, step: dict[str, Any]) -> None:
        for item in step.get("inputs", []):
            attrs = {
                "name": item["name"],
                "label": item.get("label") or item["name"],
                "type": item.get("type", "text"),
                "required": "true" if item.get("required") else "false",
            }
            element = etree.SubElement(self._extension(node), q(PHQ, "input"), **attrs)
            for choice in item.get("choices", []):
                etree.SubElement(element, q(PHQ, "choice"), value=str(choice))

    def _timer_boundary(
        self, process: etree._Element, task_id: str, suffix: str, name: str, duration: str, **attrs: str
    ) -> None:
        element_id = f"{task_id}__{suffix}"
        boundary = etree.SubElement(
            process, q(BPMN, "boundaryEvent"), id=element_id, name=name, **attrs, attachedToRef=task_id
        )
        self._flows(boundary, element_id)
        timer = etree.SubElement(boundary, q(BPMN, "timerEventDefinition"))
        text = etree.SubElement(timer, q(BPMN, "timeDuration"))
        text.set(q(XSI, "type"), "bpmn:tFormalExpression")
        text.text = duration

    def _write_system(self, process: etree._Element, step: dict[str, Any]) -> None:
        node = self._node(process, "serviceTask", step)
        node.set(q(PHQ, "task"), step["task"])
        retry = step.get("retry") or {}
        if "max_attempts" in retry:
            node.set(q(PHQ, "retries"), str(retry["max_attempts"]))
        if retry.get("backoff"):
            node.set(q(PHQ, "retryBackoff"), retry["backoff"])
        if step.get("timeout"):
            node.set(q(PHQ, "timeout"), step["timeout"])
        extra = {k: v for k, v in retry.items() if k not in {"max_attempts", "backoff"}}
        if extra:
            self._extras(node, {"retry": retry})
        self._step_extras(node, step)
        self._flows(node, step["id"])

    def _write_decision(self, process: etree._Element, step: dict[str, Any]) -> None:
        node = self._node(process, "exclusiveGateway", step)
        if step.get("default"):
            default_id = next(f for f, s, t in self.flow_ids if s == step["id"] and f.endswith("_default"))
            node.set("default", default_id)
        self._step_extras(node, step)
        self._flows(node, step["id"])

    def _write_call(self, process: etree._Element, step: dict[str, Any]) -> None:
        node = self._node(process, "callActivity", step)
        node.set("calledElement", step["definition"])
        self._step_extras(node, step)
        self._flows(node, step["id"])

    def _write_wait(self, process: etree._Element, step: dict[str, Any]) -> None:
        sid = step["id"]
        if step.get("message") and step.get("timeout"):
            gateway = self._node(process, "eventBasedGateway", step)
            self._step_extras(gateway, step)
            self._flows(gateway, sid)
            message = self._node(process, "intermediateCatchEvent", step, f"{sid}__message", step["message"])
            self._flows(message, f"{sid}__message")
            etree.SubElement(message, q(BPMN, "messageEventDefinition"), messageRef=self.messages[step["message"]])
            timer = self._node(
                process, "intermediateCatchEvent", step, f"{sid}__timeout", f"After {step['timeout'].get('after', '')}"
            )
            self._flows(timer, f"{sid}__timeout")
            definition = etree.SubElement(timer, q(BPMN, "timerEventDefinition"))
            duration = etree.SubElement(definition, q(BPMN, "timeDuration"))
            duration.set(q(XSI, "type"), "bpmn:tFormalExpression")
            duration.text = step["timeout"].get("after", "")
            return
        node = self._node(process, "intermediateCatchEvent", step)
        self._step_extras(node, step)
        self._flows(node, sid)
        if step.get("message"):
            etree.SubElement(node, q(BPMN, "messageEventDefinition"), messageRef=self.messages[step["message"]])
        else:
            definition = etree.SubElement(node, q(BPMN, "timerEventDefinition"))
            if step.get("until_variable"):
                node.set(q(PHQ, "untilVariable"), step["until_variable"])
                date = etree.SubElement(definition, q(BPMN, "timeDate"))
                date.set(q(XSI, "type"), "bpmn:tFormalExpression")
                date.text = step["until_variable"]  # a CEL expression: the variable's value
            else:
                duration = etree.SubElement(definition, q(BPMN, "timeDuration"))
                duration.set(q(XSI, "type"), "bpmn:tFormalExpression")
                duration.text = step.get("duration", "")

    # -- diagram interchange ---------------------------------------------------------------
    def _diagram(self, definitions: etree._Element, key: str) -> None:
        diagram = etree.SubElement(definitions, q(BPMNDI, "BPMNDiagram"), id=f"BPMNDiagram_{_slug(key)}")
        plane = etree.SubElement(diagram, q(BPMNDI, "BPMNPlane"), id=f"BPMNPlane_{_slug(key)}", bpmnElement=key)
        shapes = self.layout.shapes

        drawn: dict[str, Bounds] = {}

        def shape(element_id: str, bounds: Bounds, marker: bool = False) -> None:
            drawn[element_id] = bounds
            node = etree.SubElement(plane, q(BPMNDI, "BPMNShape"), id=f"{element_id}_di", bpmnElement=element_id)
            if marker:
                node.set("isMarkerVisible", "true")
            etree.SubElement(
                node,
                q(DC, "Bounds"),
                x=_num(bounds.x),
                y=_num(bounds.y),
                width=_num(bounds.width),
                height=_num(bounds.height),
            )

        for element_id, bounds in shapes.items():
            step = self.steps.get(element_id)
            if step is None and "__" not in element_id:
                continue
            if element_id.endswith("__due"):
                continue
            marker = bool(step and step["type"] == "decision") or element_id.endswith("__outcome")
            shape(element_id, bounds, marker=marker)
        for step in self.steps.values():
            if step["type"] == "user" and step.get("due_in"):
                task = shapes[step["id"]]
                bounds = shapes.get(f"{step['id']}__due") or Bounds(
                    task.x + task.width - 28, task.y + task.height - 18, 36, 36
                )
                shape(f"{step['id']}__due", bounds)
        for flow_id, points in self._routes(drawn).items():
            edge = etree.SubElement(plane, q(BPMNDI, "BPMNEdge"), id=f"{flow_id}_di", bpmnElement=flow_id)
            for x, y in points:
                etree.SubElement(edge, q(DI, "waypoint"), x=_num(x), y=_num(y))

    def _routes(self, drawn: dict[str, Bounds]) -> dict[str, list[tuple[float, float]]]:
        """Waypoints of every flow: the saved ones while they still join their shapes and cross no other
        shape, otherwise a route around the shapes (the positions of the shapes are kept)."""
        attached = {
            f"{sid}__{kind}": sid
            for sid, step in self.steps.items()
            if step["type"] == "user"
            for kind in ("due", "timeout")
            if f"{sid}__{kind}" in drawn
        }
        router = Router(drawn, attached)
        routes: dict[str, list[tuple[float, float]]] = {}
        for flow_id, source, target in self.flow_ids:
            saved = self.saved_edges.get((source, target))
            if saved and docked(saved, drawn[source], drawn[target]) and not router.crosses(source, target, saved):
                routes[flow_id] = list(saved)
                router.occupy(source, target, saved)
        for flow_id, source, target in self.flow_ids:
            if flow_id not in routes:
                routes[flow_id] = router.route(source, target)
        return {flow_id: routes[flow_id] for flow_id, _, _ in self.flow_ids}


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def definition_to_bpmn(spec: dict[str, Any], *, layout: Layout | None = None) -> str:
    """Write a compact definition as BPMN 2.0 XML with diagram interchange."""
    return _Writer(spec, layout).write().decode("utf-8")
