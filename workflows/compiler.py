"""The compact definition format → the compiled graph, with validation that names the step.

The compiled graph is a plain JSON dict (stored on WorkflowVersion.graph)::

    {"key", "name", "category", "description", "start": step_id, "variables": [...],
     "steps": {step_id: {normalised step}}}

:func:`load_graph` turns it into a :class:`CompiledGraph` with the CEL programs compiled; the
engine caches those in-process by version id (a published version never changes).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from workflows.durations import parse_duration
from workflows.errors import DefinitionInvalid, ExpressionError, StepProblem
from workflows.expressions import Expression, compile_expression, is_identifier

STEP_TYPES = ("start", "user", "system", "decision", "wait", "end", "call")
INPUT_TYPES = ("text", "number", "date", "choice", "bool", "file")
SCOPES = (None, "", "carpark")
# A user task's priority in the basket (Task.Priority values).
PRIORITIES = {"low": 1, "normal": 2, "high": 3, "urgent": 4}
BUILTIN_VARIABLES = ("outcome", "now")
DEFAULT_RETRY = {"max_attempts": 3, "backoff": "PT30S"}
DEFAULT_TIMEOUT = "PT5M"


def _path_timeout(sid: str, timeout: Any, errors: Problems) -> dict[str, str] | None:
    """A timeout that ends the step and takes a path of its own: a wait for a message that does not
    come, or a user task nobody finished (its open tasks are cancelled)."""
    if not timeout:
        return None
    if not isinstance(timeout, dict) or not timeout.get("after") or not timeout.get("next"):
        errors.step(sid, _("timeout needs 'after' (a duration) and 'next'"))
        return None
    return {"after": _duration(sid, "timeout.after", timeout["after"], errors) or "", "next": timeout["next"]}


def _targets(step: dict[str, Any]) -> list[str]:
    kind = step["type"]
    out: list[str] = []
    if (kind in ("start", "system", "call") or (kind == "wait")) and step.get("next"):
        out.append(step["next"])
    if kind in ("wait", "user") and isinstance(step.get("timeout"), dict) and step["timeout"].get("next"):
        out.append(step["timeout"]["next"])
    if kind == "user":
        out.extend(v for v in (step.get("outcomes") or {}).values() if isinstance(v, str))
    if kind == "decision":
        out.extend(b.get("next") for b in step.get("branches") or [] if isinstance(b, dict) and b.get("next"))
        if step.get("default"):
            out.append(step["default"])
    return out


def known_variables(spec: dict[str, Any]) -> set[str]:
    """Names a condition may use: declared variables, task inputs, system-task reads/writes, payloads."""
    from workflows.events import CATALOGUE as catalogue
    from workflows.registry import get_task, is_registered

    names: set[str] = set(BUILTIN_VARIABLES)
    declared = spec.get("variables") or []
    names.update(declared.keys() if isinstance(declared, dict) else [str(v) for v in declared])
    for step in spec.get("steps") or []:
        if not isinstance(step, dict):
            continue
        for item in step.get("inputs") or []:
            if isinstance(item, dict) and item.get("name"):
                names.add(item["name"])
        if step.get("type") == "system" and isinstance(step.get("task"), str) and is_registered(step["task"]):
            registered = get_task(step["task"])
            names.update(registered.reads)
            names.update(registered.writes)
        names.update(str(v) for v in step.get("payload") or [])
        names.update(str(v) for v in step.get("writes") or [])
        if step.get("type") == "start" and step.get("event") in catalogue:
            names.update(catalogue[step["event"]].properties)
        if step.get("type") == "call" and step.get("id"):
            names.add(f"{step['id']}_result")
    return names


class Problems:
    """The problems found while compiling, each about a step (named by its name) or the whole definition."""

    def __init__(self, names: dict[str, str]):
        self.names = names
        self.items: list[StepProblem] = []

    def __bool__(self) -> bool:
        return bool(self.items)

    def append(self, message: str) -> None:
        """A problem of the whole definition (no step to mark)."""
        self.items.append(StepProblem("", "", message))

    def step(self, sid: str, message: str) -> None:
        self.items.append(StepProblem(sid, self.names.get(sid) or step_label(sid), message))

    def named(self, sid: str) -> str:
        return f"“{self.names.get(sid) or step_label(sid)}”"

    def invalid(self, *more: str) -> DefinitionInvalid:
        for message in more:
            self.append(message)
        return DefinitionInvalid.of(self.items)


def step_label(step_id: str, name: str | None = None) -> str:
    """What a person reads for a step: its name, or its id in words when it has none (``Activity_1`` →
    ``Activity 1``)."""
    if name and name != step_id:
        return name
    from workflows.bpmn.writer import humanize

    return humanize(step_id) or step_id


def step_names(spec: dict[str, Any]) -> dict[str, str]:
    """Step id → the name a person reads, from a compact definition (raw or compiled steps)."""
    raw_steps = spec.get("steps") if isinstance(spec, dict) else None
    if isinstance(raw_steps, dict):
        raw_steps = list(raw_steps.values())
    names: dict[str, str] = {}
    for raw in raw_steps if isinstance(raw_steps, list) else []:
        if isinstance(raw, dict) and isinstance(raw.get("id"), str) and raw["id"] not in names:
            names[raw["id"]] = step_label(raw["id"], raw.get("name") if isinstance(raw.get("name"), str) else None)
    return names


def compile_spec(spec: dict[str, Any], *, check_registry: bool = True) -> dict[str, Any]:
    """Validate a compact definition and return its compiled graph. Raises DefinitionInvalid, whose
    problems name each step by its name (``problems`` keeps the step's id for the editor)."""
    from workflows.registry import is_registered

    if not isinstance(spec, dict):
        raise DefinitionInvalid([_("the definition must be a JSON object")])
    errors = Problems(step_names(spec))
    key = spec.get("key")
    if not isinstance(key, str) or not key.strip():
        errors.append(_("the definition needs a 'key'"))
    elif len(key) > 100 or not all(c.isalnum() or c in "-_." for c in key):
        errors.append(
            _("key %(key)s: use letters, digits, '-', '_' or '.' (at most 100 characters)") % {"key": repr(key)}
        )
    raw_steps = spec.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise errors.invalid(_("the definition needs a non-empty list of 'steps'"))

    known = known_variables(spec)
    steps: OrderedDict[str, dict[str, Any]] = OrderedDict()
    for index, raw in enumerate(raw_steps):
        if not isinstance(raw, dict):
            errors.append(_("step #%(number)s: must be an object") % {"number": index + 1})
            continue
        sid = raw.get("id")
        if not isinstance(sid, str) or not sid.strip():
            if isinstance(raw.get("name"), str):
                label = _("“%(name)s” (step #%(number)s)") % {"name": raw["name"], "number": index + 1}
            else:
                label = _("step #%(number)s") % {"number": index + 1}
            errors.append(_("%(step)s: needs an 'id'") % {"step": label})
            continue
        if len(sid) > 100:
            errors.step(sid, _("the id is longer than 100 characters"))
            continue
        if sid in steps:
            errors.step(sid, _("the id is used by two steps"))
            continue
        kind = raw.get("type")
        if kind not in STEP_TYPES:
            errors.step(
                sid,
                _("unknown type %(type)s (use one of %(types)s)")
                % {"type": repr(kind), "types": ", ".join(STEP_TYPES)},
            )
            continue
        steps[sid] = _normalise(sid, kind, raw, known, errors, check_registry, is_registered)

    starts = [sid for sid, s in steps.items() if s["type"] == "start"]
    if len(starts) != 1:
        if starts:
            found = ", ".join(errors.named(s) for s in starts)
            errors.append(_("the definition needs exactly one start step (found %(steps)s)") % {"steps": found})
        else:
            errors.append(_("the definition needs exactly one start step"))
    if not any(s["type"] == "end" for s in steps.values()):
        errors.append(_("the definition needs at least one end step"))
    for sid, step in steps.items():
        for target in _targets(step):
            if target not in steps:
                errors.step(sid, _("leads to unknown step '%(step)s'") % {"step": target})
    if errors:
        raise errors.invalid()

    start = starts[0]
    reachable = _reach(steps, [start], forward=True)
    for sid in steps:
        if sid not in reachable:
            errors.step(sid, _("cannot be reached from the start"))
    ends = [sid for sid, s in steps.items() if s["type"] == "end"]
    reaches_end = _reach(steps, ends, forward=False)
    for sid in steps:
        if sid in reachable and sid not in reaches_end:
            errors.step(sid, _("no end can be reached from it"))
    cycle = _cycle_without_wait(steps)
    if cycle:
        loop = " → ".join(errors.named(s) for s in [*cycle, cycle[0]])
        errors.step(cycle[0], _("is part of a loop without a user task or wait (%(loop)s)") % {"loop": loop})
    if errors:
        raise errors.invalid()
    declared = spec.get("variables") or []
    return {
        "key": key,
        "name": spec.get("name") or key,
        "category": spec.get("category") or "",
        "description": spec.get("description") or "",
        "start": start,
        "variables": sorted(declared.keys() if isinstance(declared, dict) else [str(v) for v in declared]),
        "steps": dict(steps),
    }


def known_roles() -> list[str]:
    """The roles a step may name: the portal's roles, then every other group (a role an admin added)."""
    from django.contrib.auth.models import Group

    from accounts.roles import ALL_ROLES

    others = Group.objects.exclude(name__in=ALL_ROLES).order_by("name").values_list("name", flat=True)
    return [*ALL_ROLES, *others]


def role_problems(spec: dict[str, Any], roles: list[str] | None = None) -> list[StepProblem]:
    """Roles a definition names that do not exist: a user task's ``role``, an escalation's ``to`` and a
    start's ``starters``. Such tasks would go to nobody, so publishing refuses them (a draft may keep them)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("steps"), list):
        return []
    from django.utils.translation import gettext

    from accounts.roles import ALL_ROLES, role_label

    fetched: list[list[str]] = [roles] if roles is not None else []

    def all_roles() -> list[str]:  # the groups are read only when a name is not one of the portal's roles
        if not fetched:
            fetched.append(known_roles())
        return fetched[0]

    class _Known:
        def __contains__(self, name: object) -> bool:
            return (roles is None and name in ALL_ROLES) or name in all_roles()

    known = _Known()
    names = step_names(spec)
    problems: list[StepProblem] = []

    def unknown(sid: str, message: str) -> None:
        # The names a file must use, with each portal role's label in the reader's language beside it.
        listed = ", ".join(name if role_label(name) == name else f"{name} ({role_label(name)})" for name in all_roles())
        text = gettext("%(problem)s (roles: %(roles)s)") % {"problem": message, "roles": listed}
        problems.append(StepProblem(sid, names.get(sid) or step_label(sid), text))

    for raw in spec["steps"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            continue
        sid = raw["id"]
        if raw.get("type") == "user":
            role = raw.get("role")
            if isinstance(role, str) and role.strip() and role not in known:
                unknown(
                    sid, gettext("role “%(role)s” does not exist, so its tasks would go to nobody") % {"role": role}
                )
            for level, item in enumerate(raw.get("escalation") or [], start=1):
                target = item.get("to") if isinstance(item, dict) else None
                if isinstance(target, str) and target and target not in known:
                    unknown(
                        sid,
                        gettext("escalation level %(level)s goes to “%(role)s”, which is not a role")
                        % {"level": level, "role": target},
                    )
        elif raw.get("type") == "start" and not raw.get("event"):
            starters = raw.get("starters") or []
            if isinstance(starters, str):
                starters = [s.strip() for s in starters.split(",") if s.strip()]
            for starter in starters if isinstance(starters, list) else []:
                if isinstance(starter, str) and starter not in known:
                    unknown(
                        sid,
                        gettext("starter “%(role)s” is not a role, so nobody with it could start the workflow")
                        % {"role": starter},
                    )
    return problems


def publish_check(spec: dict[str, Any]) -> dict[str, Any]:
    """Everything publishing refuses: what :func:`compile_spec` refuses and roles that do not exist.
    Returns the compiled graph; raises DefinitionInvalid listing every problem by step name."""
    problems: list[StepProblem] = []
    graph: dict[str, Any] = {}
    try:
        graph = compile_spec(spec)
    except DefinitionInvalid as exc:
        problems = list(exc.problems)
    problems += role_problems(spec)
    if problems:
        raise DefinitionInvalid.of(problems)
    return graph


def _duration(sid: str, label: str, value: Any, errors: Problems) -> str | None:
    if value in (None, ""):
        return None
    try:
        parse_duration(value)
    except ValueError as exc:
        errors.step(sid, _("%(field)s: %(problem)s") % {"field": label, "problem": exc})
        return None
    return value


def _normalise(sid, kind, raw, known, errors, check_registry, is_registered) -> dict[str, Any]:  # noqa: C901
    step: dict[str, Any] = {"id": sid, "type": kind, "name": raw.get("name") or sid}
    if raw.get("description"):
        step["description"] = str(raw["description"])
    if kind in ("start", "system", "call", "wait"):
        nxt = raw.get("next")
        if not nxt or not isinstance(nxt, str):
            errors.step(sid, _("needs 'next'"))
        step["next"] = nxt
    if kind == "start":
        _normalise_start(sid, raw, step, errors)
    if kind == "user":
        role = raw.get("role")
        if not isinstance(role, str) or not role.strip():
            errors.step(sid, _("a user task needs a 'role'"))
        step["role"] = role or ""
        scope = raw.get("scope") or None
        if scope not in SCOPES:
            errors.step(sid, _("scope must be 'carpark' or empty, not %(scope)s") % {"scope": repr(scope)})
        step["scope"] = scope
        step["instructions"] = str(raw.get("instructions") or "")
        step["due_in"] = _duration(sid, "due_in", raw.get("due_in"), errors)
        priority = raw.get("priority") or "normal"
        if priority not in PRIORITIES:
            errors.step(
                sid,
                _("priority must be one of %(priorities)s, not %(priority)s")
                % {"priorities": ", ".join(PRIORITIES), "priority": repr(priority)},
            )
        step["priority"] = PRIORITIES.get(priority, 2)
        chain = []
        for level, item in enumerate(raw.get("escalation") or [], start=1):
            if not isinstance(item, dict) or not item.get("to"):
                errors.step(sid, _("escalation level %(level)s needs 'to' (a role)") % {"level": level})
                continue
            label = _("escalation level %(level)s 'after'") % {"level": level}
            after = _duration(sid, label, item.get("after") or "PT0S", errors)
            chain.append({"after": after or "PT0S", "to": item["to"]})
        step["escalation"] = chain
        step["inputs"] = _inputs(sid, raw, errors)
        outcomes = raw.get("outcomes")
        if isinstance(outcomes, list):
            outcomes = {str(o): None for o in outcomes}
        if not isinstance(outcomes, dict) or not outcomes:
            if raw.get("next"):
                outcomes = {"done": raw["next"]}
            else:
                errors.step(sid, _("a user task needs 'outcomes' (outcome → next step)"))
                outcomes = {}
        for outcome, target in outcomes.items():
            if not isinstance(target, str) or not target:
                errors.step(sid, _("outcome '%(outcome)s' needs a next step") % {"outcome": outcome})
        step["outcomes"] = dict(outcomes)
        step["timeout"] = _path_timeout(sid, raw.get("timeout"), errors)
    elif kind == "system":
        task = raw.get("task")
        if not isinstance(task, str) or not task:
            errors.step(sid, _("a system task needs 'task' (a registered name)"))
        elif check_registry and not is_registered(task):
            errors.step(sid, _("system task '%(task)s' is not registered") % {"task": task})
        step["task"] = task or ""
        retry = {**DEFAULT_RETRY, **(raw.get("retry") or {})}
        try:
            retry["max_attempts"] = int(retry["max_attempts"])
            if not 1 <= retry["max_attempts"] <= 100:
                raise ValueError
        except (TypeError, ValueError):
            errors.step(sid, _("retry.max_attempts must be a whole number from 1 to 100"))
            retry["max_attempts"] = 1
        retry["backoff"] = _duration(sid, "retry.backoff", retry.get("backoff"), errors) or "PT0S"
        step["retry"] = {"max_attempts": retry["max_attempts"], "backoff": retry["backoff"]}
        step["timeout"] = _duration(sid, "timeout", raw.get("timeout") or DEFAULT_TIMEOUT, errors) or DEFAULT_TIMEOUT
    elif kind == "decision":
        branches = []
        for number, branch in enumerate(raw.get("branches") or [], start=1):
            if not isinstance(branch, dict) or not branch.get("next"):
                errors.step(sid, _("branch %(number)s needs 'when' and 'next'") % {"number": number})
                continue
            try:
                compile_expression(branch.get("when", ""), known)
            except ExpressionError as exc:
                errors.step(sid, _("branch %(number)s: %(problem)s") % {"number": number, "problem": exc})
            branches.append({"when": branch.get("when", ""), "next": branch["next"]})
        step["branches"] = branches
        if not raw.get("default"):
            errors.step(sid, _("a decision needs a 'default' branch"))
        step["default"] = raw.get("default")
    elif kind == "wait":
        modes = [m for m in ("duration", "until_variable", "message") if raw.get(m)]
        if len(modes) != 1:
            errors.step(sid, _("a wait needs exactly one of 'duration', 'until_variable' or 'message'"))
        step["duration"] = _duration(sid, "duration", raw.get("duration"), errors)
        until = raw.get("until_variable")
        if until and (not is_identifier(until) or until not in known):
            errors.step(
                sid,
                _(
                    "until_variable '%(name)s' is not a known variable "
                    '(declare process variables in the definition\'s "variables" list)'
                )
                % {"name": until},
            )
        step["until_variable"] = until or None
        step["message"] = raw.get("message") or None
        payload = raw.get("payload")
        if payload is not None:
            if not isinstance(payload, list) or not all(is_identifier(str(p)) for p in payload):
                errors.step(sid, _("payload must be a list of variable names"))
                payload = []
            step["payload"] = [str(p) for p in payload]
        if raw.get("timeout") and not step["message"]:
            errors.step(sid, _("only a wait for a message can have a timeout"))
        step["timeout"] = _path_timeout(sid, raw.get("timeout"), errors)
    elif kind == "call":
        definition = raw.get("definition")
        if not isinstance(definition, str) or not definition:
            errors.step(sid, _("a call needs 'definition' (the key of another workflow)"))
        step["definition"] = definition or ""
    elif kind == "end":
        step["result"] = str(raw.get("result") or "")
    return step


START_PRIORITY_RANGE = (-100, 100)
_EVENT_FIELD = re.compile(r"\bevent\.([A-Za-z_][A-Za-z0-9_]*)")


def _normalise_start(sid: str, raw: dict[str, Any], step: dict[str, Any], errors: Problems) -> None:
    """A message start (``event`` from the catalogue, optional ``condition`` on ``event.<field>`` and
    ``priority``) or a none start, started by hand with a start form (``inputs``) by ``starters``."""
    from workflows.events import CATALOGUE

    event = raw.get("event") or ""
    if not isinstance(event, str):
        errors.step(sid, _("'event' must be the name of a business event"))
        event = ""
    step["event"] = event
    step["condition"] = ""
    step["priority"] = 0
    if event:
        event_type = CATALOGUE.get(event)
        if event_type is None:
            errors.step(
                sid,
                _("'%(event)s' is not a business event (use one of %(events)s)")
                % {"event": event, "events": ", ".join(sorted(CATALOGUE))},
            )
        condition = str(raw.get("condition") or "").strip()
        if condition:
            try:
                compile_expression(condition, {"event"})
            except ExpressionError as exc:
                errors.step(sid, _("start condition: %(problem)s") % {"problem": exc})
            if event_type is not None:
                fields = set(event_type.properties)
                for name in sorted(set(_EVENT_FIELD.findall(condition)) - fields):
                    errors.step(
                        sid,
                        _(
                            "start condition uses event.%(field)s, which '%(event)s' does not have "
                            "(its fields: %(fields)s)"
                        )
                        % {"field": name, "event": event, "fields": ", ".join(sorted(fields))},
                    )
        step["condition"] = condition
        try:
            priority = int(raw.get("priority") or 0)
        except (TypeError, ValueError):
            priority = None
        if priority is None or not START_PRIORITY_RANGE[0] <= priority <= START_PRIORITY_RANGE[1]:
            errors.step(sid, _("priority must be a whole number from -100 to 100"))
            priority = 0
        step["priority"] = priority
        if raw.get("inputs"):
            errors.step(sid, _("a workflow started by an event has no start form; remove its fields"))
    elif raw.get("condition"):
        errors.step(sid, _("a start condition needs an event to test"))
    step["inputs"] = [] if event else _inputs(sid, raw, errors)
    starters = raw.get("starters") or []
    if isinstance(starters, str):
        starters = [s.strip() for s in starters.split(",") if s.strip()]
    if not isinstance(starters, list) or not all(isinstance(s, str) for s in starters):
        errors.step(sid, _("'starters' must be a list of role names"))
        starters = []
    step["starters"] = [] if event else list(starters)


def _inputs(sid: str, raw: dict[str, Any], errors: Problems) -> list[dict[str, Any]]:
    """The fields a person fills in: a user task's inputs, or a manual start's start form."""
    inputs = []
    seen: set[str] = set()
    for item in raw.get("inputs") or []:
        if not isinstance(item, dict) or not is_identifier(item.get("name", "")):
            errors.step(sid, _("every input needs a 'name' made of letters, digits and '_'"))
            continue
        name = item["name"]
        if name in seen:
            errors.step(sid, _("input '%(name)s' is listed twice") % {"name": name})
        seen.add(name)
        itype = item.get("type", "text")
        if itype not in INPUT_TYPES:
            errors.step(sid, _("input '%(name)s' has unknown type %(type)s") % {"name": name, "type": repr(itype)})
        field_spec = {
            "name": name,
            "label": item.get("label") or name.replace("_", " ").capitalize(),
            "type": itype,
            "required": bool(item.get("required", False)),
        }
        if itype == "choice":
            choices = item.get("choices")
            if not isinstance(choices, list) or not choices:
                errors.step(sid, _("choice input '%(name)s' needs a list of 'choices'") % {"name": name})
            field_spec["choices"] = [str(c) for c in choices or []]
        if item.get("help"):
            field_spec["help"] = str(item["help"])
        inputs.append(field_spec)
    return inputs


def _reach(steps: dict[str, dict[str, Any]], roots: list[str], *, forward: bool) -> set[str]:
    edges: dict[str, set[str]] = {sid: set() for sid in steps}
    for sid, step in steps.items():
        for target in _targets(step):
            if forward:
                edges[sid].add(target)
            else:
                edges[target].add(sid)
    seen = set(roots)
    stack = list(roots)
    while stack:
        for nxt in edges[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _cycle_without_wait(steps: dict[str, dict[str, Any]]) -> list[str] | None:
    """A loop through steps none of which waits for a person or a time/message."""
    nodes = {sid for sid, s in steps.items() if s["type"] not in ("user", "wait")}
    colour: dict[str, int] = {}
    path: list[str] = []

    def visit(sid: str) -> list[str] | None:
        colour[sid] = 1
        path.append(sid)
        for target in _targets(steps[sid]):
            if target not in nodes:
                continue
            if colour.get(target) == 1:
                return path[path.index(target) :]
            if target not in colour and (found := visit(target)):
                return found
        colour[sid] = 2
        path.pop()
        return None

    for sid in nodes:
        if sid not in colour and (found := visit(sid)):
            return found
    return None


@dataclass
class CompiledGraph:
    version_id: int | None
    data: dict[str, Any]
    conditions: dict[tuple[str, int], Expression] = field(default_factory=dict)

    @property
    def start(self) -> str:
        return self.data["start"]

    @property
    def steps(self) -> dict[str, dict[str, Any]]:
        return self.data["steps"]

    def step(self, step_id: str) -> dict[str, Any]:
        return self.data["steps"][step_id]


def load_graph(data: dict[str, Any], version_id: int | None = None) -> CompiledGraph:
    graph = CompiledGraph(version_id=version_id, data=data)
    for sid, step in data["steps"].items():
        if step["type"] == "decision":
            for index, branch in enumerate(step["branches"]):
                graph.conditions[(sid, index)] = compile_expression(branch["when"])
    return graph


_CACHE: OrderedDict[int, CompiledGraph] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 256


def graph_for_version(version_id: int) -> CompiledGraph:
    """The compiled graph of a version, cached in-process (published versions are immutable)."""
    with _CACHE_LOCK:
        graph = _CACHE.get(version_id)
        if graph is not None:
            _CACHE.move_to_end(version_id)
            return graph
    from workflows.models import WorkflowVersion

    data = WorkflowVersion.objects.values_list("graph", flat=True).get(pk=version_id)
    graph = load_graph(data, version_id)
    with _CACHE_LOCK:
        _CACHE[version_id] = graph
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return graph


def forget_version(version_id: int) -> None:
    with _CACHE_LOCK:
        _CACHE.pop(version_id, None)
