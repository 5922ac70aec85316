"""Diagram layout for exported BPMN: place shapes, route flows around them, find flows drawn through shapes.

- :func:`find_crossings` lists every flow segment that passes through a shape other than its own source or
  target (a boundary event belongs to the task it is attached to).
- :class:`Router` draws orthogonal flows that go around shapes: the straight line or the usual dog-leg when
  it is free, otherwise the cheapest path over the free channels between rows and columns (A* over a grid of
  channel lines, with a cost for length, for each bend and for running on the line of another flow).
- :func:`arrange` places the nodes of a definition without a diagram: longest-path columns left to right,
  the main path on one row, branches below it, a timer's path below its task.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ._common import Bounds

Point = tuple[float, float]

MARGIN = 20.0  # a flow leaves a shape straight for this long before it may bend
CLEARANCE = 8.0  # flows keep this distance from shapes they do not start or end at
BEND = 30.0  # the cost of a bend, in pixels of length
PORT_COST = {"right": 0.0, "top": 25.0, "bottom": 25.0, "left": 250.0}  # leaving a shape
BOUNDARY_PORT_COST = {"bottom": 0.0, "left": 80.0, "right": 80.0}  # leaving a boundary event
ENTRY_COST = {"left": 0.0, "top": 25.0, "bottom": 25.0, "right": 250.0}  # entering a shape
PORT_REUSE = 150.0  # a second flow leaving the same side of a shape (its label would sit on the first)
SHARED_LINE = 3.0  # per pixel run on the line of another flow (neither its source nor its target)
_DIRS = {"right": (1, 0), "left": (-1, 0), "top": (0, -1), "bottom": (0, 1)}
_OPPOSITE = {"right": "left", "left": "right", "top": "bottom", "bottom": "top"}


# -- the crossing check --------------------------------------------------------------------------
@dataclass(frozen=True)
class Crossing:
    """A flow segment drawn through a shape that is neither the flow's source nor its target."""

    edge: str
    source: str
    target: str
    shape: str
    segment: int  # 0 = the segment from the first waypoint to the second

    def __str__(self) -> str:
        return f"{self.edge} ({self.source} → {self.target}), segment {self.segment}, passes through {self.shape}"


def _clip(p: Point, q: Point, box: tuple[float, float, float, float]) -> float:
    """Length of the part of segment p→q inside the open box (x0, y0, x1, y1) (Liang–Barsky)."""
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return 0.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    low, high = 0.0, 1.0
    for step, distance in ((-dx, p[0] - x0), (dx, x1 - p[0]), (-dy, p[1] - y0), (dy, y1 - p[1])):
        if step == 0:
            if distance <= 0:
                return 0.0
            continue
        t = distance / step
        if step < 0:
            low = max(low, t)
        else:
            high = min(high, t)
        if low >= high:
            return 0.0
    return (high - low) * math.hypot(dx, dy)


def find_crossings(
    shapes: Mapping[str, Bounds],
    edges: Iterable[tuple[str, str, str, Sequence[Point]]],
    attached: Mapping[str, str] | None = None,
    tolerance: float = 2.0,
) -> list[Crossing]:
    """Every segment of ``edges`` ((edge id, source id, target id, waypoints)) through a foreign shape.

    ``attached`` maps a boundary event to its task: the task and all its boundary events count as the source
    of a flow leaving any of them. A segment only touching a shape's outline, or entering it by at most
    ``tolerance`` pixels (waypoints docked on the outline), is not a crossing.
    """
    attached = dict(attached or {})
    boundaries: dict[str, set[str]] = {}
    for boundary, task in attached.items():
        boundaries.setdefault(task, set()).add(boundary)
    found: list[Crossing] = []
    for edge_id, source, target, points in edges:
        owner = attached.get(source, source)
        own = {source, target, owner} | boundaries.get(owner, set())
        for index, (p, q) in enumerate(zip(points, points[1:], strict=False)):
            for shape_id, b in shapes.items():
                if shape_id in own:
                    continue
                box = (b.x + tolerance, b.y + tolerance, b.x + b.width - tolerance, b.y + b.height - tolerance)
                if _clip(p, q, box) > 0.5:
                    found.append(Crossing(edge_id, source, target, shape_id, index))
    return found


def _distance(point: Point, b: Bounds) -> float:
    dx = max(b.x - point[0], 0.0, point[0] - b.x - b.width)
    dy = max(b.y - point[1], 0.0, point[1] - b.y - b.height)
    return math.hypot(dx, dy)


def docked(points: Sequence[Point], source: Bounds, target: Bounds, tolerance: float = 6.0) -> bool:
    """Whether a saved route still starts at its source and ends at its target (shapes may have moved)."""
    return len(points) >= 2 and _distance(points[0], source) <= tolerance and _distance(points[-1], target) <= tolerance


# -- the router ----------------------------------------------------------------------------------
def _port(b: Bounds, side: str) -> Point:
    cx, cy = b.mid
    return {
        "right": (b.x + b.width, cy),
        "left": (b.x, cy),
        "top": (cx, b.y),
        "bottom": (cx, b.y + b.height),
    }[side]


def _side_of(point: Point, b: Bounds) -> str:
    """The side of ``b`` a waypoint is docked on (nearest side)."""
    distances = {
        "left": abs(point[0] - b.x),
        "right": abs(point[0] - b.x - b.width),
        "top": abs(point[1] - b.y),
        "bottom": abs(point[1] - b.y - b.height),
    }
    return min(distances, key=distances.__getitem__)


def _free_gaps(intervals: list[tuple[float, float]]) -> list[float]:
    """Middles of the free strips between the occupied ``intervals`` (the channels between rows/columns)."""
    middles: list[float] = []
    reach = -math.inf
    for start, end in sorted(intervals):
        if start > reach and reach > -math.inf:
            middles.append((reach + start) / 2)
        reach = max(reach, end)
    return middles


class Router:
    """Routes flows between the shapes of one diagram; each routed flow is remembered (see :meth:`occupy`)."""

    def __init__(self, shapes: Mapping[str, Bounds], attached: Mapping[str, str] | None = None) -> None:
        self.shapes = dict(shapes)
        self.attached = dict(attached or {})
        self._lines: dict[str, list[tuple[float, float, float, str, str]]] = {"h": [], "v": []}
        self._ports_used: dict[str, set[str]] = {}
        xs: set[float] = set()
        ys: set[float] = set()
        for b in self.shapes.values():
            cx, cy = b.mid
            xs |= {b.x - MARGIN, b.x + b.width + MARGIN, cx}
            ys |= {b.y - MARGIN, b.y + b.height + MARGIN, cy}
        if self.shapes:
            left = min(b.x for b in self.shapes.values())
            right = max(b.x + b.width for b in self.shapes.values())
            top = min(b.y for b in self.shapes.values())
            bottom = max(b.y + b.height for b in self.shapes.values())
            xs |= {left - 2 * MARGIN, right + 2 * MARGIN}
            ys |= {top - 2 * MARGIN, bottom + 2 * MARGIN}
            xs |= set(_free_gaps([(b.x - CLEARANCE, b.x + b.width + CLEARANCE) for b in self.shapes.values()]))
            ys |= set(_free_gaps([(b.y - CLEARANCE, b.y + b.height + CLEARANCE) for b in self.shapes.values()]))
        self.xs = sorted({round(x * 2) / 2 for x in xs})
        self.ys = sorted({round(y * 2) / 2 for y in ys})
        self._x_index = {x: i for i, x in enumerate(self.xs)}
        self._y_index = {y: i for i, y in enumerate(self.ys)}
        self._blockers: dict[tuple[str, float, float, float], list[tuple[str, bool, bool]]] = {}
        self._lines_near: dict[tuple[str, float], list[tuple[str, bool, tuple[float, float]]]] = {}

    # what is in the way
    def _segment_blockers(self, axis: str, fixed: float, a: float, b: float) -> list[tuple[str, bool, bool]]:
        """Shapes a grid segment passes through: (shape id, through the shape itself, through its clearance)."""
        key = (axis, fixed, a, b)
        cached = self._blockers.get(key)
        if cached is not None:
            return cached
        found = []
        low, high = min(a, b), max(a, b)
        for shape_id, inner_across, along in self._near(axis, fixed):
            if along[0] - CLEARANCE < high and low < along[1] + CLEARANCE:
                found.append((shape_id, inner_across and along[0] < high and low < along[1], True))
        self._blockers[key] = found
        return found

    def _near(self, axis: str, fixed: float) -> list[tuple[str, bool, tuple[float, float]]]:
        """Shapes whose clearance a horizontal (``h``) or vertical (``v``) line at ``fixed`` runs through:
        (shape id, whether it runs through the shape itself, the shape's extent along the line)."""
        key = (axis, fixed)
        near = self._lines_near.get(key)
        if near is None:
            near = []
            for shape_id, box in self.shapes.items():
                if axis == "h":
                    across, along = (box.y, box.y + box.height), (box.x, box.x + box.width)
                else:
                    across, along = (box.x, box.x + box.width), (box.y, box.y + box.height)
                if across[0] - CLEARANCE < fixed < across[1] + CLEARANCE:
                    near.append((shape_id, across[0] < fixed < across[1], along))
            self._lines_near[key] = near
        return near

    def _strict(self, source: str, target: str) -> set[str]:
        """Shapes a flow may touch (its ends; the task a boundary event source sits on)."""
        return {source, target, self.attached.get(source, source)}

    def _free(self, p: Point, q: Point, strict: set[str]) -> bool:
        if p[1] == q[1]:
            blockers = self._segment_blockers("h", p[1], p[0], q[0])
        elif p[0] == q[0]:
            blockers = self._segment_blockers("v", p[0], p[1], q[1])
        else:
            return False
        return not any((inner if shape in strict else outer) for shape, inner, outer in blockers)

    def _shared(self, p: Point, q: Point, source: str, target: str) -> float:
        """Length of p→q that runs on the line of another flow (one that shares neither end)."""
        if p[1] == q[1]:
            axis, fixed, low, high = "h", p[1], min(p[0], q[0]), max(p[0], q[0])
        else:
            axis, fixed, low, high = "v", p[0], min(p[1], q[1]), max(p[1], q[1])
        total = 0.0
        for line_fixed, a, b, other_source, other_target in self._lines[axis]:
            if (
                a < high
                and low < b
                and abs(line_fixed - fixed) < 6
                and other_source != source
                and other_target != target
            ):
                total += min(high, b) - max(low, a)
        return total

    def occupy(self, source: str, target: str, points: Sequence[Point]) -> None:
        """Remember a drawn flow: others avoid its lines, and the side it leaves its source from."""
        for p, q in zip(points, points[1:], strict=False):
            if p[1] == q[1]:
                self._lines["h"].append((p[1], min(p[0], q[0]), max(p[0], q[0]), source, target))
            elif p[0] == q[0]:
                self._lines["v"].append((p[0], min(p[1], q[1]), max(p[1], q[1]), source, target))
        if source in self.shapes and points:
            self._ports_used.setdefault(source, set()).add(_side_of(points[0], self.shapes[source]))

    def crosses(self, source: str, target: str, points: Sequence[Point]) -> bool:
        return bool(find_crossings(self.shapes, [("", source, target, points)], self.attached))

    # the route
    def route(self, source: str, target: str) -> list[Point]:
        """An orthogonal route from ``source`` to ``target`` through no other shape; remembered."""
        points = self._simple(source, target) or self._search(source, target) or self._fallback(source, target)
        self.occupy(source, target, points)
        return points

    def _source_sides(self, source: str) -> dict[str, float]:
        used = self._ports_used.get(source, set())
        # a boundary event leaves downwards, away from its task
        sides = BOUNDARY_PORT_COST if source in self.attached else PORT_COST
        return {side: cost + (PORT_REUSE if side in used else 0.0) for side, cost in sides.items()}

    def _simple(self, source: str, target: str) -> list[Point] | None:
        """The straight line or the dog-leg between right and left side, when it is free and not reused."""
        s, t = self.shapes[source], self.shapes[target]
        if source in self.attached or "right" in self._ports_used.get(source, set()):
            return None
        start, end = _port(s, "right"), _port(t, "left")
        if abs(start[1] - end[1]) < 1 and end[0] > start[0]:
            candidate = [start, (end[0], start[1])]
        elif end[0] - start[0] < 2 * MARGIN:
            return None
        else:
            middle = round((start[0] + end[0]) / 2)
            candidate = [start, (middle, start[1]), (middle, end[1]), end]
        strict = self._strict(source, target)
        for p, q in zip(candidate, candidate[1:], strict=False):
            if not self._free(p, q, strict) or self._shared(p, q, source, target):
                return None
        return candidate

    def _search(self, source: str, target: str) -> list[Point] | None:
        s, t = self.shapes[source], self.shapes[target]
        strict = self._strict(source, target)
        xs, ys, xi, yi = self.xs, self.ys, self._x_index, self._y_index
        # the starts: a short straight stub out of each side of the source
        heap: list[tuple[float, float, int, int, int, str, Point | None]] = []
        came: dict[tuple[int, int, str], tuple[int, int, str] | None] = {}
        best: dict[tuple[int, int, str], float] = {}
        goals: dict[tuple[int, int], list[tuple[str, Point, float]]] = {}
        for side, cost in ENTRY_COST.items():
            port = _port(t, side)
            dx, dy = _DIRS[side]
            stub = (round((port[0] + dx * MARGIN) * 2) / 2, round((port[1] + dy * MARGIN) * 2) / 2)
            if stub[0] in xi and stub[1] in yi and self._free(stub, port, strict):
                goals.setdefault((xi[stub[0]], yi[stub[1]]), []).append((_OPPOSITE[side], port, cost))
        if not goals:
            return None
        goal_points = [(xs[i], ys[j]) for i, j in goals]

        def estimate(x: float, y: float) -> float:
            return min(abs(x - gx) + abs(y - gy) for gx, gy in goal_points)

        counter = 0
        ports: dict[tuple[int, int, str], Point] = {}
        for side, cost in self._source_sides(source).items():
            port = _port(s, side)
            dx, dy = _DIRS[side]
            stub = (round((port[0] + dx * MARGIN) * 2) / 2, round((port[1] + dy * MARGIN) * 2) / 2)
            if stub[0] not in xi or stub[1] not in yi or not self._free(port, stub, strict):
                continue
            state = (xi[stub[0]], yi[stub[1]], side)
            g = cost + MARGIN
            if g < best.get(state, math.inf):
                best[state] = g
                came[state] = None
                ports[state] = port
                counter += 1
                heapq.heappush(heap, (g + estimate(*stub), g, counter, state[0], state[1], side, None))
        while heap:
            _, g, _, i, j, direction, end = heapq.heappop(heap)
            state = (i, j, direction)
            if end is not None:  # the route is complete
                return self._path(state, came, ports, end)
            if g > best.get(state, math.inf):
                continue
            for inward, port, cost in goals.get((i, j), []):
                if inward != _OPPOSITE[direction]:
                    total = g + cost + MARGIN + (BEND if inward != direction else 0.0)
                    counter += 1
                    heapq.heappush(heap, (total, total, counter, i, j, direction, port))
            here = (xs[i], ys[j])
            for move, (dx, dy) in _DIRS.items():
                if move == _OPPOSITE[direction]:
                    continue
                ni, nj = i + dx, j + dy
                if not (0 <= ni < len(xs) and 0 <= nj < len(ys)):
                    continue
                there = (xs[ni], ys[nj])
                if not self._free(here, there, strict):
                    continue
                length = abs(there[0] - here[0]) + abs(there[1] - here[1])
                step = length + (BEND if move != direction else 0.0)
                shared = self._shared(here, there, source, target)
                ng = g + step + SHARED_LINE * shared
                next_state = (ni, nj, move)
                if ng < best.get(next_state, math.inf):
                    best[next_state] = ng
                    came[next_state] = state
                    counter += 1
                    heapq.heappush(heap, (ng + estimate(*there), ng, counter, ni, nj, move, None))
        return None

    def _path(
        self,
        state: tuple[int, int, str],
        came: dict[tuple[int, int, str], tuple[int, int, str] | None],
        ports: dict[tuple[int, int, str], Point],
        end: Point,
    ) -> list[Point]:
        chain = []
        current: tuple[int, int, str] | None = state
        first = state
        while current is not None:
            chain.append((self.xs[current[0]], self.ys[current[1]]))
            first = current
            current = came[current]
        points = [ports[first], *reversed(chain), end]
        return _simplify(points)

    def _fallback(self, source: str, target: str) -> list[Point]:
        """No free route (shapes overlap each other): the plain route of the two shapes."""
        return plain_route(self.shapes[source], self.shapes[target])


def _simplify(points: list[Point]) -> list[Point]:
    """Drop repeated points and the middle of three points on one line."""
    result: list[Point] = []
    for point in points:
        if result and result[-1] == point:
            continue
        if len(result) >= 2:
            a, b = result[-2], result[-1]
            if (a[0] == b[0] == point[0]) or (a[1] == b[1] == point[1]):
                result[-1] = point
                continue
        result.append(point)
    return result


def plain_route(source: Bounds, target: Bounds) -> list[Point]:
    """Straight or one dog-leg forward; backward below both shapes (takes no other shape into account)."""
    sx, sy = source.mid
    tx, ty = target.mid
    if target.x >= source.x + source.width:
        start = (source.x + source.width, sy)
        end = (target.x, ty)
        if abs(sy - ty) < 1:
            return [start, end]
        middle = (start[0] + end[0]) / 2
        return [start, (middle, sy), (middle, ty), end]
    below = max(source.y + source.height, target.y + target.height) + 40
    return [(sx, source.y + source.height), (sx, below), (tx, below), (tx, target.y + target.height)]


# -- automatic placement -------------------------------------------------------------------------
COLUMN_GAP = 70.0
ROW_HEIGHT = 140.0
FIRST_CENTER = (180.0, 160.0)


def arrange(
    sizes: Mapping[str, tuple[float, float]],
    edges: Sequence[tuple[str, str]],
    *,
    start: str | None = None,
    below: Iterable[tuple[str, str]] = (),
) -> dict[str, Bounds]:
    """Positions for the nodes ``sizes`` (id → width, height) joined by ``edges`` (source, target).

    Columns: the longest path from ``start`` over the graph without its back edges, so a node sits right of
    every node that leads to it. Rows: a node continues the row of the node that first leads to it when it
    is that node's first way on; further ways and the ``below`` edges (a timer's path) take the next free
    row beneath. Each column is as wide as its widest shape.
    """
    below = set(below)
    graph: dict[str, list[str]] = {}
    for source, target in edges:
        if source in sizes and target in sizes and target not in graph.setdefault(source, []):
            graph[source].append(target)
    order: list[str] = []
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}
    roots = [start] if start in sizes else []
    roots += [n for n in sizes if n != start and not any(n in targets for targets in graph.values())]
    roots += list(sizes)
    for root in roots:
        if root in state:
            continue
        state[root] = 1
        order.append(root)
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, index = stack[-1]
            targets = graph.get(node, [])
            if index >= len(targets):
                state[node] = 2
                stack.pop()
                continue
            stack[-1] = (node, index + 1)
            target = targets[index]
            if state.get(target) == 1:
                back.add((node, target))
            elif target not in state:
                state[target] = 1
                order.append(target)
                stack.append((target, 0))
    layer = dict.fromkeys(order, 0)
    for _ in range(len(order)):
        changed = False
        for source in order:
            for target in graph.get(source, []):
                if (source, target) not in back and layer[target] < layer[source] + 1:
                    layer[target] = layer[source] + 1
                    changed = True
        if not changed:
            break
    # rows
    row: dict[str, int] = {}
    taken: dict[int, set[int]] = {}
    continued: set[str] = set()  # nodes whose row a successor already continues

    def place(node: str, wanted: int) -> None:
        rows = taken.setdefault(layer[node], set())
        while wanted in rows:
            wanted += 1
        rows.add(wanted)
        row[node] = wanted

    for node in order:
        if node in row:
            continue
        predecessors = [s for s in order if node in graph.get(s, []) and (s, node) not in back and s in row]
        if not predecessors:
            place(node, max((r for rows in taken.values() for r in rows), default=-1) + 1 if row else 0)
            continue
        parent = predecessors[0]
        if (parent, node) in below:
            place(node, row[parent] + 1)
        elif parent not in continued:
            continued.add(parent)
            place(node, row[parent])
        else:
            place(node, row[parent] + 1)
    # coordinates
    widths: dict[int, float] = {}
    for node, column in layer.items():
        widths[column] = max(widths.get(column, 0.0), sizes[node][0])
    centers: dict[int, float] = {}
    x = FIRST_CENTER[0]
    for column in range(max(widths, default=-1) + 1):
        width = widths.get(column, 0.0)
        if column:
            x += widths.get(column - 1, 0.0) / 2 + COLUMN_GAP + width / 2
        centers[column] = x
    top = min(row.values(), default=0)
    placed: dict[str, Bounds] = {}
    for node in order:
        width, height = sizes[node]
        center_x = centers[layer[node]]
        center_y = FIRST_CENTER[1] + (row[node] - top) * ROW_HEIGHT
        placed[node] = Bounds(center_x - width / 2, center_y - height / 2, width, height)
    return placed
