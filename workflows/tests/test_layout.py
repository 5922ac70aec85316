"""Diagrams that read: no flow is drawn through a shape that is not its source or target.

The crossing check on hand-made cases, the router around shapes, the automatic layout, saved waypoints that
cross a shape routed again, and every shipped workflow (built-in definitions, the library as stored and as
exported) read back from its BPMN DI."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from django.conf import settings
from lxml import etree

from workflows.authoring import LIBRARY_DIR
from workflows.bpmn import bpmn_to_definition, definition_to_bpmn
from workflows.bpmn._common import BPMN, BPMNDI, DC, DI, Bounds, Layout
from workflows.bpmn.layout import Router, find_crossings

DEFINITIONS = sorted(Path(settings.BASE_DIR).glob("*/definitions/*.json"))
LIBRARY = sorted(LIBRARY_DIR.glob("*.bpmn"))


def box(x: float, y: float, width: float = 100, height: float = 80) -> Bounds:
    return Bounds(x, y, width, height)


# -- the crossing check on hand-made cases --------------------------------------------------------
def test_a_segment_through_a_box_is_found():
    shapes = {"a": box(0, 0), "b": box(400, 0), "middle": box(200, 0)}
    found = find_crossings(shapes, [("Flow_1", "a", "b", [(100, 40), (400, 40)])])
    assert [(c.edge, c.shape, c.segment) for c in found] == [("Flow_1", "middle", 0)]


def test_a_segment_touching_only_its_own_ends_is_not_a_crossing():
    shapes = {"a": box(0, 0), "b": box(200, 0)}
    # docked on the outlines, and even a waypoint a little inside its own source and target
    assert find_crossings(shapes, [("Flow_1", "a", "b", [(100, 40), (200, 40)])]) == []
    assert find_crossings(shapes, [("Flow_1", "a", "b", [(50, 40), (250, 40)])]) == []


def test_the_outline_and_a_corner_of_another_shape_are_not_crossings_a_diagonal_through_it_is():
    shapes = {"a": box(0, 0), "b": box(400, 200), "other": box(200, 100)}
    along_the_top = [(100, 40), (150, 40), (150, 100), (400, 100), (400, 240)]
    assert find_crossings(shapes, [("Flow_1", "a", "b", along_the_top)]) == []
    just_inside = [(100, 40), (150, 40), (150, 101), (400, 101), (400, 240)]
    assert find_crossings(shapes, [("Flow_1", "a", "b", just_inside)]) == []  # within the tolerance
    diagonal = [(100, 40), (400, 240)]
    assert [c.shape for c in find_crossings(shapes, [("Flow_1", "a", "b", diagonal)])] == ["other"]


def test_a_boundary_event_belongs_to_its_task():
    shapes = {"task": box(0, 0), "task__timeout": Bounds(12, 62, 36, 36), "next": box(0, 200)}
    attached = {"task__timeout": "task"}
    down_through_the_task = [(30, 98), (30, 0), (-20, 0), (-20, 240), (0, 240)]
    assert find_crossings(shapes, [("t", "task__timeout", "next", down_through_the_task)], attached) == []
    # the task's own flow may leave across its timer; another flow through the timer is a crossing
    assert find_crossings(shapes, [("f", "task", "next", [(30, 80), (30, 200)])], attached) == []
    found = find_crossings(shapes, [("g", "next", "task", [(30, 200), (30, 80)])], attached)
    assert [c.shape for c in found] == ["task__timeout"]
    assert str(found[0]) == "g (next → task), segment 0, passes through task__timeout"


# -- the router ------------------------------------------------------------------------------------
def orthogonal(points):
    return all(p[0] == q[0] or p[1] == q[1] for p, q in zip(points, points[1:], strict=False))


def test_the_router_goes_around_a_shape_in_the_way():
    shapes = {"a": box(0, 0), "b": box(400, 0), "middle": box(200, 0)}
    router = Router(shapes)
    points = router.route("a", "b")
    assert orthogonal(points) and len(points) > 2
    assert find_crossings(shapes, [("f", "a", "b", points)]) == []
    assert points[0][0] >= 100 and points[-1] == (400, 40)  # enters the target from the left


def test_the_router_takes_the_straight_line_when_it_is_free():
    shapes = {"a": box(0, 0), "b": box(400, 0), "other": box(200, 200)}
    assert Router(shapes).route("a", "b") == [(100, 40), (400, 40)]


def test_a_backward_flow_runs_around_not_through():
    shapes = {"a": box(0, 0), "b": box(200, 0), "c": box(400, 0)}
    router = Router(shapes)
    points = router.route("c", "a")
    assert orthogonal(points)
    assert find_crossings(shapes, [("back", "c", "a", points)]) == []
    assert all(y < 0 or y > 80 for _, y in points[1:-1])  # above or below the row


def test_the_outcomes_of_a_gateway_leave_on_different_sides():
    shapes = {"g": Bounds(0, 15, 50, 50), "x": box(200, -150), "y": box(200, 0), "z": box(200, 150)}
    router = Router(shapes)
    routes = [router.route("g", target) for target in ("y", "x", "z")]
    assert len({points[0] for points in routes}) == 3
    assert find_crossings(shapes, [("f", "g", t, p) for t, p in zip("yxz", routes, strict=True)]) == []


# -- the automatic layout -------------------------------------------------------------------------
SPEC = {
    "key": "review",
    "name": "Review",
    "steps": [
        {"id": "start", "type": "start", "next": "review"},
        {
            "id": "review",
            "type": "user",
            "name": "Review",
            "role": "Agent",
            "outcomes": {"approve": "book", "reject": "tell"},
            "timeout": {"after": "P2D", "next": "escalate"},
        },
        {"id": "book", "type": "system", "task": "carparks.case_resolve", "next": "done"},
        {"id": "tell", "type": "system", "task": "carparks.case_resolve", "next": "done"},
        {"id": "escalate", "type": "user", "name": "Escalate", "role": "Supervisor", "next": "done"},
        {"id": "done", "type": "end"},
    ],
}


def test_the_outcome_gateway_has_its_own_column_and_the_timer_path_runs_below():
    shapes = read_di(definition_to_bpmn(SPEC))[0]
    task, gateway = shapes["review"], shapes["review__outcome"]
    assert task.x + task.width < gateway.x
    assert gateway.x + gateway.width < min(shapes["book"].x, shapes["tell"].x)
    assert shapes["escalate"].y > task.y + task.height


def test_saved_waypoints_that_cross_a_shape_are_routed_again_and_the_shapes_stay():
    layout = bpmn_to_definition(definition_to_bpmn(SPEC)).layout
    start, review, book = layout.shapes["start"], layout.shapes["review"], layout.shapes["book"]
    # docked on both its ends, but out through the outcome gateway and the next task and back
    through = [
        (start.x + start.width, start.mid[1]),
        (book.x + 30, start.mid[1]),
        (book.x + 30, review.y - 30),
        (review.mid[0], review.y - 30),
        (review.mid[0], review.y),
    ]
    assert crossings_of(definition_to_bpmn(SPEC, layout=Layout(shapes=dict(layout.shapes)))) == []
    kept = [(start.x + start.width, start.mid[1]), (start.x + start.width + 10, start.mid[1] - 200)]
    edges = {("start", "review"): through, ("book", "done"): kept}
    spec = copy.deepcopy(SPEC)
    exported = definition_to_bpmn(spec, layout=Layout(shapes=dict(layout.shapes), edges=edges))
    shapes, flows = read_di(exported)
    steps = [step["id"] for step in SPEC["steps"]]
    assert {k: shapes[k] for k in steps} == {k: layout.shapes[k] for k in steps}
    first = next(points for _, source, target, points, _ in flows if (source, target) == ("start", "review"))
    assert crossings_of(exported) == []
    assert first != through
    # a saved route that crosses nothing but no longer ends at its target is routed again too
    loose = next(points for _, source, target, points, _ in flows if (source, target) == ("book", "done"))
    assert loose != kept


def test_saved_waypoints_that_cross_nothing_are_kept():
    layout = bpmn_to_definition(definition_to_bpmn(SPEC)).layout
    review, escalate = layout.shapes["review"], layout.shapes["escalate"]
    detour = [
        (review.x + 30, review.y + review.height + 18),
        (review.x + 30, escalate.mid[1]),
        (escalate.x, escalate.mid[1]),
    ]
    edges = {("review__timeout", "escalate"): detour}
    exported = definition_to_bpmn(SPEC, layout=Layout(shapes=dict(layout.shapes), edges=edges))
    flows = read_di(exported)[1]
    assert next(points for _, source, _, points, _ in flows if source == "review__timeout") == detour


# -- every shipped workflow ------------------------------------------------------------------------
def read_di(xml: str | bytes):
    """Shapes (element id → Bounds) and flows (id, source, target, waypoints, name) as the file draws them."""
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    shapes = {}
    for shape in root.iter(f"{{{BPMNDI}}}BPMNShape"):
        bounds = shape.find(f"{{{DC}}}Bounds")
        shapes[shape.get("bpmnElement")] = Bounds(*(float(bounds.get(a)) for a in ("x", "y", "width", "height")))
    flows = {f.get("id"): f for f in root.iter(f"{{{BPMN}}}sequenceFlow")}
    edges = []
    for edge in root.iter(f"{{{BPMNDI}}}BPMNEdge"):
        flow = flows[edge.get("bpmnElement")]
        points = [(float(p.get("x")), float(p.get("y"))) for p in edge.findall(f"{{{DI}}}waypoint")]
        edges.append((flow.get("id"), flow.get("sourceRef"), flow.get("targetRef"), points, flow.get("name")))
    return shapes, edges


def crossings_of(xml: str | bytes) -> list[str]:
    """Each crossing in words: the flow (by name when it has one) and the shape it runs through (by name)."""
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    names = {e.get("id"): e.get("name") or e.get("id") for e in root.iter() if e.get("id")}
    attached = {b.get("id"): b.get("attachedToRef") for b in root.iter(f"{{{BPMN}}}boundaryEvent")}
    shapes, flows = read_di(xml)
    found = find_crossings(shapes, [(f, s, t, p) for f, s, t, p, _ in flows], attached)
    return [
        f"flow {names[c.edge]!r} ({names[c.source]!r} → {names[c.target]!r}) runs through {names[c.shape]!r}"
        for c in found
    ]


def exported(path: Path) -> str:
    """Imported, then exported with its own layout (as a version's BPMN download is)."""
    result = bpmn_to_definition(path.read_bytes())
    return definition_to_bpmn(result.spec, layout=result.layout)


def test_every_shipped_workflow_is_checked():
    assert len(DEFINITIONS) >= 8 and len(LIBRARY) >= 11


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.stem)
def test_a_built_in_definition_is_drawn_without_crossings(path):
    xml = definition_to_bpmn(json.loads(path.read_text()))
    assert crossings_of(xml) == []
    shapes, flows = read_di(xml)
    assert shapes and all(len(points) >= 2 for *_, points, _ in flows)


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.stem)
def test_a_library_file_as_stored_has_no_crossings(path):
    assert crossings_of(path.read_bytes()) == []


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.stem)
def test_a_library_workflow_as_exported_has_no_crossings(path):
    assert crossings_of(exported(path)) == []
