"""Demo history: a month of finished processes, so the dashboard, the analytics and the statements of a
fresh demo show what a month of work looks like instead of one day.

The processes are written the way the engine writes them (a process row, its tasks, and its history:
process started, every step entered and left with its duration, each task created, claimed and
completed by a demo user of the task's role, process completed), along a path through the
published graph chosen at random (mostly a user task's first outcome), backdated over the past
days; then every past day is aggregated as the nightly job does. Only the demo loader calls this.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from workflows.compiler import graph_for_version
from workflows.durations import add_duration
from workflows.models import Process, ProcessEvent, StartBinding, Task, WorkflowDefinition

Kind = ProcessEvent.Kind
TITLE = "Demo history"
# Processes per weekday, on average, of the workflow each business event starts.
EVENTS = {"application.received": 5, "case.opened": 4, "termination.requested": 2}
MAX_STEPS = 30


def _workflows() -> list[tuple[WorkflowDefinition, int]]:
    """The published workflow that each of :data:`EVENTS` starts whatever its payload (the one bound without
    a condition; of several, the highest priority), with its daily average, in the definitions' order."""
    chosen: dict[int, int] = {}
    for event, per_day in EVENTS.items():
        binding = StartBinding.objects.filter(event=event, condition="").order_by("-priority", "pk").first()
        if binding is not None:
            chosen.setdefault(binding.definition_id, per_day)
    return [(definition, chosen[definition.pk]) for definition in WorkflowDefinition.objects.filter(pk__in=chosen)]


def _path(graph: Any, rng: random.Random) -> list[tuple[dict[str, Any], str]]:
    """(step, outcome) of one run from start to end: a user task's first outcome four times in five,
    another one otherwise; a decision's branches at random. Empty when no end is reached in time."""
    steps, step_id = [], graph.start
    for _ in range(MAX_STEPS):
        step = graph.steps[step_id]
        kind, outcome = step["type"], ""
        if kind == "end":
            steps.append((step, outcome))
            return steps
        if kind == "user":
            outcomes = list(step["outcomes"])
            outcome = outcomes[0] if len(outcomes) == 1 or rng.random() < 0.8 else rng.choice(outcomes[1:])
            step_id = step["outcomes"][outcome]
        elif kind == "decision":
            step_id = rng.choice([branch["next"] for branch in step["branches"]] + [step["default"]])
        else:
            step_id = step.get("next") or ""
        steps.append((step, outcome))
        if step_id not in graph.steps:
            return []
    return []


def _duration(rng: random.Random, kind: str) -> tuple[timedelta, timedelta]:
    """(waiting, working) time of a step of ``kind``."""
    if kind == "user":
        return timedelta(minutes=rng.triangular(10, 40 * 60, 3 * 60)), timedelta(minutes=rng.uniform(3, 40))
    if kind == "system":
        return timedelta(0), timedelta(seconds=rng.uniform(0.5, 6))
    if kind == "wait":
        return timedelta(hours=rng.uniform(1, 30)), timedelta(0)
    return timedelta(0), timedelta(0)


def _users_by_role() -> dict[str, Any]:
    users: dict[str, Any] = {}
    for user in get_user_model().objects.filter(is_active=True).prefetch_related("groups").order_by("pk"):
        for group in user.groups.all():
            users.setdefault(group.name, user)
    return users


@transaction.atomic
def load(*, days: int = 30, seed: int = 11, today: date | None = None) -> int:
    """Write finished demo processes over the ``days - 1`` days before today (with today, the
    dashboard's "last 30 days"), once, and aggregate those days. Returns how many processes were
    written (0 when the history is there already or nothing can be shown)."""
    from carparks.models import CarPark
    from monitoring.aggregation import aggregate_day

    if Process.objects.filter(title=TITLE).exists():
        return 0
    rng = random.Random(seed)
    today = today or timezone.localdate()
    carparks = list(CarPark.objects.values_list("pk", flat=True))
    users = _users_by_role()
    workflows = []
    for definition, per_day in _workflows():
        version = definition.published_version()
        if version is not None:
            workflows.append((definition, version, graph_for_version(version.pk), per_day))
    if not workflows or not carparks:
        return 0

    plans: list[tuple[Process, list[tuple[dict[str, Any], str, datetime, datetime, datetime]]]] = []
    for back in range(days - 1, 0, -1):
        day = today - timedelta(days=back)
        weekend = day.weekday() >= 5
        for definition, version, graph, per_day in workflows:
            for _ in range(rng.randint(0, 2) if weekend else rng.randint(1, 2 * per_day - 1)):
                path = _path(graph, rng)
                start = timezone.make_aware(datetime.combine(day, datetime.min.time())) + timedelta(
                    minutes=rng.uniform(7 * 60, 18 * 60)
                )
                clock, timeline = start, []
                for step, outcome in path:
                    waiting, working = _duration(rng, step["type"])
                    entered, picked = clock, clock + waiting
                    clock = picked + working
                    timeline.append((step, outcome, entered, picked, clock))
                if not path or clock.date() >= today:
                    continue  # only finished history: today's figures are the live ones
                process = Process(
                    definition=definition,
                    version=version,
                    state=Process.State.COMPLETED,
                    current_step=path[-1][0]["id"],
                    step_seq=len(path),
                    step_entered_at=clock,
                    title=TITLE,
                    scope_carpark_id=rng.choice(carparks),
                    result=path[-1][0].get("result") or "",
                    started_at=start,
                    ended_at=clock,
                )
                plans.append((process, timeline))
    Process.objects.bulk_create([process for process, _ in plans])

    tasks: list[Task] = []
    for process, timeline in plans:
        for seq, (step, outcome, entered, picked, left) in enumerate(timeline, start=1):
            if step["type"] != "user":
                continue
            due = add_duration(entered, step["due_in"]) if step.get("due_in") else None
            actor = users.get(step["role"])
            tasks.append(
                Task(
                    process=process, step_id=step["id"], step_seq=seq, name=step.get("name") or step["id"],
                    role=step["role"], scope_carpark_id=process.scope_carpark_id, state=Task.State.COMPLETED,
                    assignee=actor, completed_by=actor, due_at=due, created_at=entered, claimed_at=picked,
                    completed_at=left, outcome=outcome,
                )
            )  # fmt: skip
    Task.objects.bulk_create(tasks)
    task_of = {(t.process_id, t.step_seq): t for t in tasks}

    events = [event for process, timeline in plans for event in _history(process, timeline, task_of)]
    ProcessEvent.objects.bulk_create(events, batch_size=2000)
    for back in range(days - 1, 0, -1):
        aggregate_day(today - timedelta(days=back))
    return len(plans)


def _history(process: Process, timeline: list, task_of: dict[tuple[int, int], Task]) -> list[ProcessEvent]:
    """The events the engine would have written for ``process`` along ``timeline``."""

    def event(kind: str, step_id: str, at: datetime, **extra: Any) -> ProcessEvent:
        return ProcessEvent(process=process, kind=kind, step_id=step_id, at=at, **extra)

    events = [event(Kind.PROCESS_STARTED, "", process.started_at, data={"version": process.version.number})]
    for seq, (step, _outcome, entered, picked, left) in enumerate(timeline, start=1):
        took = int((left - entered).total_seconds() * 1000)
        events.append(event(Kind.STEP_ENTERED, step["id"], entered))
        task = task_of.get((process.pk, seq))
        if task is not None:
            events += [
                event(Kind.TASK_CREATED, step["id"], entered, task=task, data={"role": task.role}),
                event(Kind.TASK_CLAIMED, step["id"], picked, task=task, actor=task.assignee),
                event(
                    Kind.TASK_COMPLETED, step["id"], left, task=task, actor=task.assignee,
                    data={"outcome": task.outcome}, duration_ms=took,
                ),
            ]  # fmt: skip
        events.append(event(Kind.STEP_LEFT, step["id"], left, duration_ms=took))
    events.append(
        event(Kind.PROCESS_COMPLETED, process.current_step, process.ended_at, data={"result": process.result})
    )
    return events
