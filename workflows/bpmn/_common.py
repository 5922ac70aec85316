"""Namespaces, element sizes and the error raised for a refused BPMN file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
# Our own extension namespace: role, scope, due time, escalation, inputs, outcomes, system task.
PHQ = "https://parkinghq.example/schema/bpmn/1.0"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
ZEEBE = "http://camunda.org/schema/zeebe/1.0"
CEL_LANGUAGE = "https://github.com/google/cel-spec"

NSMAP = {"bpmn": BPMN, "bpmndi": BPMNDI, "dc": DC, "di": DI, "xsi": XSI, "phq": PHQ}

# Upload limit: a real process diagram is a few dozen kilobytes.
MAX_BYTES = 2 * 1024 * 1024
# The longest key, name and category a workflow definition's columns hold (WorkflowDefinition).
DEFINITION_LIMITS = {"key": 100, "name": 200, "category": 100}

# Default shape sizes, as bpmn-js draws them.
SIZES = {
    "event": (36.0, 36.0),
    "task": (100.0, 80.0),
    "gateway": (50.0, 50.0),
}


def q(ns: str, tag: str) -> str:
    """Clark notation: ``{namespace}tag``."""
    return f"{{{ns}}}{tag}"


@dataclass(frozen=True)
class Problem:
    """One reason a file was refused, tied to the BPMN element it is about (when there is one)."""

    message: str
    element_id: str = ""
    element_name: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"message": self.message, "element_id": self.element_id, "element_name": self.element_name}

    def __str__(self) -> str:
        if self.element_id:
            label = f"{self.element_id}" + (f" ({self.element_name!r})" if self.element_name else "")
            return f"{label}: {self.message}"
        return self.message


class BpmnError(ValueError):
    """The file is refused; ``problems`` lists every reason found (never only the first)."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.problems = problems or [Problem(message)]
        detail = "; ".join(str(p) for p in self.problems) if problems else ""
        super().__init__(f"{message}: {detail}" if detail else message)
        self.summary = message


@dataclass
class Bounds:
    x: float
    y: float
    width: float
    height: float

    @property
    def mid(self) -> tuple[float, float]:
        return (self.x + self.width / 2, self.y + self.height / 2)


@dataclass
class Layout:
    """Diagram positions keyed by the ids the exporter writes (step ids and derived ids)."""

    shapes: dict[str, Bounds] = field(default_factory=dict)
    # (source element id, target element id) -> waypoints
    edges: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.shapes)


@dataclass
class BpmnImport:
    spec: dict[str, Any]
    layout: Layout
    warnings: list[str] = field(default_factory=list)
