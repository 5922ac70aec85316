"""What starts a process: business events matched against the published workflows' start bindings,
and manual starts from the portal or the command line.

The rule, as the portal shows it (:data:`START_RULE`): of the published workflows bound to an
event, those whose condition holds (or that have none) match; a workflow with a condition beats one
without, then the higher priority wins. Two workflows that would always tie (same event, same
condition, same priority) cannot both be published; two different conditions of the same priority
that both hold put the event on hold as an incident naming both, for an admin to settle.

The event row and the process it starts are written in the emitter's transaction: both exist or
neither, and the process's side effects (system steps, emails) run after commit as always. Matching
runs in a savepoint, so a condition that fails or a start that breaks records an incident on the
event instead of failing the emitter's request.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from workflows.compiler import graph_for_version
from workflows.engine import Run, enter, jsonable, new_process
from workflows.errors import ExpressionError, InvalidInputs, WorkflowError
from workflows.events import CATALOGUE, event_type, payload_validate
from workflows.expressions import Expression, compile_expression, evaluate
from workflows.models import BusinessEvent, Process, StartBinding, WorkflowDefinition, WorkflowVersion

log = logging.getLogger(__name__)

START_RULE = gettext_lazy(
    "Of the published workflows bound to an event, those whose condition holds (or that have no "
    "condition) match. A workflow with a condition beats one without; among those, the higher priority "
    "wins. Publishing is refused when another workflow has the same event, condition and priority. If two "
    "different conditions of the same priority both hold, the event is held as an incident naming both."
)


class StartRefused(WorkflowError):
    """A workflow cannot be published with its start (a tie with another workflow, a recursive call)."""


class StartNotAllowed(WorkflowError):
    """The user may not start this workflow by hand, or it is not started by hand."""


# -- emitting ----------------------------------------------------------------------------------
def event_emit(
    *,
    name: str,
    payload: dict[str, Any],
    business_object: Any = None,
    event_id: str | None = None,
    user: Any = None,
) -> BusinessEvent:
    """Record business event ``name`` and start the workflow it matches, in the caller's transaction.

    ``event_id`` makes the call idempotent: the same id records and starts once, however often and
    however concurrently it is emitted. A payload that does not match the event's schema raises
    EventPayloadInvalid before anything is written.
    """
    kind = event_type(name)
    payload = jsonable(payload)
    payload_validate(name, payload)
    event_id = event_id or f"{name}:{uuid.uuid4()}"
    actor = user if getattr(user, "pk", None) else None
    with transaction.atomic():
        try:
            with transaction.atomic():
                event = BusinessEvent.objects.create(
                    event_id=event_id[:200],
                    name=name,
                    schema_version=kind.version,
                    payload=payload,
                    content_type=ContentType.objects.get_for_model(business_object) if business_object else None,
                    object_id=getattr(business_object, "pk", None),
                    state=BusinessEvent.State.UNMATCHED,
                    emitted_by=actor,
                )
        except IntegrityError:
            return BusinessEvent.objects.get(event_id=event_id[:200])
        _dispatch(event, business_object, actor)
    return event


def event_replay(*, event: BusinessEvent, user: Any = None) -> BusinessEvent:
    """Match an event that started nothing again (after a workflow was published or a condition fixed)."""
    with transaction.atomic():
        locked = BusinessEvent.objects.select_for_update().get(pk=event.pk)
        if locked.state == BusinessEvent.State.STARTED:
            raise WorkflowError(
                gettext("Event #%(number)s already started process #%(process)s.")
                % {"number": locked.pk, "process": locked.process_id}
            )
        locked.attempts += 1
        obj = _business_object(locked)
        _dispatch(locked, obj, user if getattr(user, "pk", None) else None)
        _audit(user, "workflow.event_replayed", locked, new={"state": locked.state, "process": locked.process_id})
    return locked


def events_replay(*, name: str, user: Any = None, limit: int = 1000) -> dict[str, int]:
    """Replay the events of ``name`` that started nothing (oldest first, at most ``limit``), each in its
    own transaction; returns how many ended in each state. Events another replay holds are skipped."""
    event_type(name)
    outcome: dict[str, int] = {}
    waiting = BusinessEvent.objects.filter(
        name=name, state__in=[BusinessEvent.State.UNMATCHED, BusinessEvent.State.INCIDENT]
    ).order_by("emitted_at", "pk")
    for pk in list(waiting.values_list("pk", flat=True)[:limit]):
        with transaction.atomic():
            locked = BusinessEvent.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if locked is None or locked.state in (BusinessEvent.State.STARTED, BusinessEvent.State.DISMISSED):
                continue
            locked.attempts += 1
            _dispatch(locked, _business_object(locked), user if getattr(user, "pk", None) else None)
        outcome[locked.state] = outcome.get(locked.state, 0) + 1
    _audit(user, "workflow.events_replayed", f"business events {name}", new={"event": name, **outcome})
    return outcome


def event_dismiss(*, event: BusinessEvent, user: Any = None, reason: str = "") -> BusinessEvent:
    with transaction.atomic():
        locked = BusinessEvent.objects.select_for_update().get(pk=event.pk)
        if locked.state == BusinessEvent.State.STARTED:
            raise WorkflowError(
                gettext("Event #%(number)s started process #%(process)s; nothing to dismiss.")
                % {"number": locked.pk, "process": locked.process_id}
            )
        locked.state = BusinessEvent.State.DISMISSED
        locked.error = (reason or "Dismissed.")[:2000]
        locked.handled_at = timezone.now()
        locked.save(update_fields=["state", "error", "handled_at"])
        _audit(user, "workflow.event_dismissed", locked, new={"reason": reason})
    return locked


def _business_object(event: BusinessEvent) -> Any:
    if event.content_type_id is None or event.object_id is None:
        return None
    model = ContentType.objects.get_for_id(event.content_type_id).model_class()
    if model is None:
        return None
    return model._default_manager.filter(pk=event.object_id).first()


def _audit(user: Any, action: str, target: Any, old: Any = None, new: Any = None) -> None:
    from workflows.authoring import audit

    audit(user, action, target, old=old, new=new)


# -- matching ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Binding:
    version_id: int
    definition_id: int
    key: str
    name: str
    condition: str
    priority: int

    @property
    def rank(self) -> tuple[int, int]:
        return (1 if self.condition else 0, self.priority)


_CONDITIONS: dict[str, Expression] = {}
_CONDITIONS_LOCK = threading.Lock()


def _condition(source: str) -> Expression:
    with _CONDITIONS_LOCK:
        expression = _CONDITIONS.get(source)
    if expression is None:
        expression = compile_expression(source, {"event"})
        with _CONDITIONS_LOCK:
            if len(_CONDITIONS) > 1000:
                _CONDITIONS.clear()
            _CONDITIONS[source] = expression
    return expression


def bindings_for(name: str) -> list[Binding]:
    """The published workflows bound to event ``name`` (one indexed query)."""
    rows = StartBinding.objects.filter(event=name).values_list(
        "version_id", "definition_id", "definition__key", "definition__name", "condition", "priority"
    )
    return [Binding(*row) for row in rows]


@dataclass
class Match:
    chosen: Binding | None
    matched: list[Binding]
    error: str = ""


def match(name: str, payload: dict[str, Any]) -> Match:
    """Which published workflow event ``name`` with ``payload`` starts, by :data:`START_RULE`."""
    matched: list[Binding] = []
    for binding in bindings_for(name):
        if binding.condition:
            try:
                result = evaluate(_condition(binding.condition), {"event": payload})
            except ExpressionError as exc:
                return Match(None, matched, f"The start condition of '{binding.name}' failed: {exc}")
            if not isinstance(result, bool):
                return Match(
                    None,
                    matched,
                    f"The start condition of '{binding.name}' ({binding.condition}) gave "
                    f"{result!r}, not true or false.",
                )
            if not result:
                continue
        matched.append(binding)
    if not matched:
        return Match(None, [])
    best = max(b.rank for b in matched)
    top = sorted((b for b in matched if b.rank == best), key=lambda b: b.name)
    if len(top) > 1:
        names = " and ".join(f"'{b.name}'" for b in top)
        return Match(
            None,
            matched,
            f"Both {names} match with the same priority; give one of them a higher priority, then replay.",
        )
    return Match(top[0], matched)


def _dispatch(event: BusinessEvent, business_object: Any, actor: Any) -> None:
    found = match(event.name, event.payload)
    event.handled_at = timezone.now()
    if found.error:
        event.state, event.error = BusinessEvent.State.INCIDENT, found.error
    elif found.chosen is None:
        event.state, event.error = BusinessEvent.State.UNMATCHED, ""
    else:
        try:
            with transaction.atomic():
                process = _start(
                    found.chosen.version_id,
                    business_object=business_object,
                    variables=event.payload,
                    started_by=actor,
                )
            event.state, event.error, event.process_id = BusinessEvent.State.STARTED, "", process.pk
        except Exception as exc:  # noqa: BLE001 - the emitter's change stands; the event shows why
            log.exception("event %s (%s) could not start %s", event.pk, event.name, found.chosen.key)
            event.state = BusinessEvent.State.INCIDENT
            event.error = f"'{found.chosen.name}' could not be started: {exc}"[:2000]
    if event.state == BusinessEvent.State.INCIDENT:
        log.warning("business event %s (%s) held: %s", event.pk, event.name, event.error)
    event.save(update_fields=["state", "error", "process", "handled_at", "attempts"])


def _start(version_id: int, *, business_object: Any, variables: dict[str, Any], started_by: Any) -> Process:
    version = WorkflowVersion.objects.only("id", "definition_id", "number", "state").get(pk=version_id)
    graph = graph_for_version(version.pk)
    run = Run(actor=started_by)
    process = new_process(run, version, business_object=business_object, variables=variables, started_by=started_by)
    enter(run, process, graph, graph.start)
    run.flush()
    return process


# -- publishing ----------------------------------------------------------------------------------
def start_of(graph: dict[str, Any]) -> dict[str, Any]:
    return graph["steps"][graph["start"]]


def bindings_publish(version: WorkflowVersion) -> None:
    """Write the start binding of a version being published; refuse a tie or a recursive call.

    Runs inside the publishing transaction after the previously published version was retired.
    """
    calls_check(version)
    start = start_of(version.graph)
    StartBinding.objects.filter(definition_id=version.definition_id).delete()
    if not start.get("event"):
        return
    condition, priority = start.get("condition") or "", int(start.get("priority") or 0)
    other = (
        StartBinding.objects.filter(event=start["event"], condition=condition, priority=priority)
        .select_related("definition")
        .first()
    )
    if other is not None:
        raise StartRefused(_tie_message(version, other.definition, start["event"], condition, priority))
    try:
        with transaction.atomic():
            StartBinding.objects.create(
                version=version,
                definition_id=version.definition_id,
                event=start["event"],
                condition=condition,
                priority=priority,
            )
    except IntegrityError:  # published concurrently by someone else: the database decided
        other = StartBinding.objects.filter(event=start["event"], condition=condition, priority=priority).first()
        raise StartRefused(
            _tie_message(version, other.definition if other else None, start["event"], condition, priority)
        ) from None


def _tie_message(
    version: WorkflowVersion, other: WorkflowDefinition | None, event: str, condition: str, priority: int
) -> str:
    this = version.definition.name
    that = f"'{other.name}' ({other.key})" if other else "another workflow"
    what = f"the condition {condition!r}" if condition else "no condition"
    return (
        f"'{this}' cannot be published: {that} already starts on '{event}' with {what} and priority {priority}, "
        "so the two would always tie. Give this one a condition or a different priority, or retire the other."
    )


def bindings_retire(version: WorkflowVersion) -> None:
    StartBinding.objects.filter(version=version).delete()


def calls_check(version: WorkflowVersion) -> None:
    """Refuse a version whose call activities lead back to its own workflow (directly or not)."""
    key = version.definition.key
    graphs: dict[str, dict[str, Any]] = {key: version.graph}

    def calls(of: str) -> list[str]:
        graph = graphs.get(of)
        if graph is None:
            published = (
                WorkflowVersion.objects.filter(definition__key=of, state=WorkflowVersion.State.PUBLISHED)
                .order_by("-number")
                .values_list("graph", flat=True)
                .first()
            )
            graph = graphs[of] = published or {"steps": {}}
        return [s["definition"] for s in graph["steps"].values() if s.get("type") == "call" and s.get("definition")]

    stack: list[tuple[str, list[str]]] = [(key, [key])]
    seen: set[str] = set()
    while stack:
        current, path = stack.pop()
        for callee in calls(current):
            if callee == key:
                chain = " → ".join([*path, callee])
                raise StartRefused(f"'{version.definition.name}' cannot be published: it would call itself ({chain}).")
            if callee not in seen:
                seen.add(callee)
                stack.append((callee, [*path, callee]))


# -- manual start --------------------------------------------------------------------------------
def manual_start_step(version: WorkflowVersion) -> dict[str, Any] | None:
    """The start step if the version is started by hand (a none start event), else None."""
    start = start_of(version.graph)
    return None if start.get("event") else start


def may_start(user: Any, version: WorkflowVersion) -> bool:
    from accounts.roles import ADMINISTRATOR, WORKFLOW_ADMIN, has_role

    start = manual_start_step(version)
    if start is None or not getattr(user, "is_authenticated", False):
        return False
    return has_role(user, ADMINISTRATOR, WORKFLOW_ADMIN, *(start.get("starters") or []))


def startable_versions(user: Any) -> list[WorkflowVersion]:
    versions = (
        WorkflowVersion.objects.filter(state=WorkflowVersion.State.PUBLISHED)
        .select_related("definition")
        .order_by("definition__name")
    )
    return [v for v in versions if may_start(user, v)]


def start_values_clean(inputs: list[dict[str, Any]], raw: dict[str, Any]) -> dict[str, Any]:
    """Check and convert start-form values; raises InvalidInputs naming each field."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for item in inputs:
        name, kind = item["name"], item.get("type", "text")
        value = raw.get(name)
        if isinstance(value, str):
            value = value.strip()
        if value in (None, "") and kind != "bool":
            if item.get("required"):
                errors[name] = gettext("%(field)s is required.") % {"field": item.get("label") or name}
            continue
        try:
            if kind == "number":
                number = Decimal(str(value))
                if not number.is_finite():
                    raise InvalidOperation
                values[name] = int(number) if number == number.to_integral_value() else float(number)
            elif kind == "date":
                values[name] = date.fromisoformat(str(value)).isoformat()
            elif kind == "bool":
                values[name] = str(value).lower() in {"1", "true", "on", "yes"} if value is not None else False
            elif kind == "choice":
                if str(value) not in item.get("choices", []):
                    raise ValueError
                values[name] = str(value)
            elif "\x00" in str(value):  # PostgreSQL cannot store it
                errors[name] = gettext("%(field)s must not contain NUL characters.") % {
                    "field": item.get("label") or name
                }
            else:
                values[name] = str(value)[:10_000]
        except (InvalidOperation, ValueError):
            expected = {
                "number": gettext("%(field)s must be a number."),
                "date": gettext("%(field)s must be a date (YYYY-MM-DD)."),
                "choice": gettext("%(field)s must be one of the choices."),
            }
            errors[name] = expected.get(kind, gettext("%(field)s must be valid.")) % {
                "field": item.get("label") or name
            }
    if errors:
        raise InvalidInputs(errors)
    return values


def process_start_manual(
    *,
    definition: WorkflowDefinition,
    user: Any = None,
    values: dict[str, Any] | None = None,
    business_object: Any = None,
    check_permission: bool = True,
    extra_variables: dict[str, Any] | None = None,
) -> Process:
    """Start the published version of a workflow that is started by hand, with its start form's values.

    ``extra_variables`` are set as given next to the checked start-form values (the command line's
    ``--var`` names that the start form does not declare)."""
    version = (
        WorkflowVersion.objects.filter(definition=definition, state=WorkflowVersion.State.PUBLISHED)
        .order_by("-number")
        .first()
    )
    if version is None:
        raise StartNotAllowed(gettext("'%(name)s' has no published version.") % {"name": definition.name})
    start = manual_start_step(version)
    if start is None:
        event = start_of(version.graph)["event"]
        raise StartNotAllowed(
            gettext("'%(name)s' starts on the business event '%(event)s', not by hand.")
            % {"name": definition.name, "event": event}
        )
    if check_permission and not may_start(user, version):
        raise StartNotAllowed(gettext("You may not start '%(name)s'.") % {"name": definition.name})
    variables = {**(extra_variables or {}), **start_values_clean(start.get("inputs") or [], values or {})}
    actor = user if getattr(user, "pk", None) else None
    with transaction.atomic():
        process = _start(version.pk, business_object=business_object, variables=variables, started_by=actor)
        _audit(user, "workflow.process_started", process, new={"workflow": definition.key, "version": version.number})
    return process


def catalogue_names() -> list[str]:
    return sorted(CATALOGUE)
