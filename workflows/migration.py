"""Moving the running processes of one version of a workflow to another version.

A process moves when its current step exists in the target version with the same type
(automatically) or when a step mapping names the step of the target version it goes to. The
selectors say, per current step, how many processes are there and where they can go; the batch
service plans every running or suspended process of the version, can stop at the plan (a dry run)
or migrates each process in its own transaction and writes one audit entry for the batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import Count, Q

from workflows.authoring import audit
from workflows.compiler import CompiledGraph, graph_for_version
from workflows.engine import lock_process
from workflows.errors import MigrationNotPossible, WorkflowError
from workflows.models import Process, WorkflowDefinition, WorkflowVersion
from workflows.services import process_migrate, step_mismatch

AUTOMATIC, MAPPED, NOT_POSSIBLE = "automatic", "mapped", "not_possible"
MIGRATABLE_STATES = (Process.State.RUNNING, Process.State.SUSPENDED)
TARGET_STATES = (WorkflowVersion.State.PUBLISHED, WorkflowVersion.State.RETIRED)
# How many processes a summary lists one by one (the counts always cover all of them).
LISTED = 200


class StepMapInvalid(MigrationNotPossible):
    """A step mapping names a step that does not exist or maps a step to one of another type;
    ``problems`` holds one message per old step id."""

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        super().__init__(" ".join(problems.values()))


def step_name(step: dict[str, Any] | None, step_id: str) -> str:
    return (step or {}).get("name") or step_id


# -- selectors ---------------------------------------------------------------------------------
def source_versions(definition: WorkflowDefinition) -> list[WorkflowVersion]:
    """The versions with running or suspended processes, oldest first, each with ``.active`` (how many)."""
    return list(
        definition.versions.annotate(active=Count("processes", filter=Q(processes__state__in=MIGRATABLE_STATES)))
        .filter(active__gt=0)
        .order_by("number")
    )


def target_versions(definition: WorkflowDefinition) -> list[WorkflowVersion]:
    """The versions processes can move to: published or retired (never a draft), newest first."""
    return list(definition.versions.filter(state__in=TARGET_STATES).order_by("-number"))


def versions_pick(
    *, definition: WorkflowDefinition, from_number: int, to_number: int
) -> tuple[WorkflowVersion, WorkflowVersion]:
    """Versions ``from_number`` and ``to_number`` of the workflow, checked for a migration."""
    versions = {v.number: v for v in definition.versions.filter(number__in=[from_number, to_number])}
    for number in (from_number, to_number):
        if number not in versions:
            raise MigrationNotPossible(f"{definition.name} has no version {number}.")
    if from_number == to_number:
        raise MigrationNotPossible(f"Processes of version {from_number} are on it already: choose another version.")
    target = versions[to_number]
    if target.state not in TARGET_STATES:
        raise MigrationNotPossible(
            f"Version {to_number} is a draft: processes can only move to a published or retired version."
        )
    return versions[from_number], target


@dataclass
class StepOption:
    id: str
    name: str


@dataclass
class StepRow:
    """One current step of version N in a migration plan."""

    step_id: str
    name: str
    type: str
    count: int
    automatic: StepOption | None  # the same step in version M, when processes can go there as they are
    candidates: list[StepOption]  # the steps of version M of the same type
    reason: str = ""  # why it does not map automatically


def migration_plan(
    *, definition: WorkflowDefinition, from_number: int, to_number: int, step_ids: list[str] | None = None
) -> list[StepRow]:
    """Per current step of version ``from_number`` (with running or suspended processes; only
    ``step_ids`` when given): how many processes, whether it maps automatically to version
    ``to_number``, and the steps of that version of the same type it could be mapped to."""
    source, target = versions_pick(definition=definition, from_number=from_number, to_number=to_number)
    from_graph, to_graph = graph_for_version(source.pk), graph_for_version(target.pk)
    processes = Process.objects.filter(version=source, state__in=MIGRATABLE_STATES)
    if step_ids is not None:
        processes = processes.filter(current_step__in=step_ids)
    counts = dict(processes.order_by().values("current_step").annotate(n=Count("id")).values_list("current_step", "n"))
    order = {sid: index for index, sid in enumerate(_step_order(source, from_graph))}
    rows = []
    for sid in sorted(counts, key=lambda s: (order.get(s, len(order)), s)):
        current = from_graph.steps.get(sid)
        same = to_graph.steps.get(sid)
        mismatch = step_mismatch(current, same, target.number) if same is not None else ""
        automatic = StepOption(sid, step_name(same, sid)) if same is not None and not mismatch else None
        reason = ""
        if automatic is None:
            reason = mismatch or f"Version {target.number} has no step '{sid}'."
        rows.append(
            StepRow(
                step_id=sid,
                name=step_name(current, sid),
                type=(current or {}).get("type", "unknown"),
                count=counts[sid],
                automatic=automatic,
                candidates=_candidates(current, to_graph, target),
                reason=reason,
            )
        )
    return rows


def _step_order(version: WorkflowVersion, graph: CompiledGraph) -> list[str]:
    """The step ids in the order the definition lists them (the stored graph's keys are not)."""
    listed = [
        s["id"] for s in (version.spec or {}).get("steps", []) if isinstance(s, dict) and s.get("id") in graph.steps
    ]
    return listed + [sid for sid in graph.steps if sid not in listed]


def _candidates(current: dict[str, Any] | None, to_graph: CompiledGraph, target: WorkflowVersion) -> list[StepOption]:
    if current is None:
        return []
    return [
        StepOption(sid, step_name(to_graph.steps[sid], sid))
        for sid in _step_order(target, to_graph)
        if not step_mismatch(current, to_graph.steps[sid], target.number)
    ]


# -- the batch ---------------------------------------------------------------------------------
@dataclass
class ProcessItem:
    process_id: int
    title: str
    state: str
    from_step: str
    from_name: str
    to_step: str = ""
    to_name: str = ""
    how: str = AUTOMATIC  # automatic | mapped | not_possible
    reason: str = ""  # why it cannot move
    outcome: str = "planned"  # planned | migrated | failed | not_migrated
    error: str = ""  # why the migration failed


@dataclass
class MigrationReport:
    definition_key: str
    definition_name: str
    from_number: int
    to_number: int
    step_map: dict[str, str]
    step_ids: list[str] | None
    dry_run: bool
    items: list[ProcessItem] = field(default_factory=list)

    @property
    def moving(self) -> list[ProcessItem]:
        """The processes that move (or would move)."""
        return [i for i in self.items if i.how != NOT_POSSIBLE]

    @property
    def staying(self) -> list[ProcessItem]:
        """The processes no step of the target version takes (with the reason)."""
        return [i for i in self.items if i.how == NOT_POSSIBLE]

    @property
    def migrated(self) -> list[ProcessItem]:
        return [i for i in self.items if i.outcome == "migrated"]

    @property
    def failed(self) -> list[ProcessItem]:
        return [i for i in self.items if i.outcome == "failed"]

    @property
    def not_migrated(self) -> list[ProcessItem]:
        """Everything that is (or would be) left on the old version: not possible, or failed."""
        return [i for i in self.items if i.how == NOT_POSSIBLE or i.outcome == "failed"]

    def counts(self) -> dict[str, int]:
        return {
            "processes": len(self.items),
            "moving": len(self.moving),
            "automatic": sum(1 for i in self.items if i.how == AUTOMATIC),
            "mapped": sum(1 for i in self.items if i.how == MAPPED),
            "not_possible": len(self.staying),
            "migrated": len(self.migrated),
            "failed": len(self.failed),
        }

    def steps(self) -> list[dict[str, Any]]:
        """Per current step: where its processes go, how (automatic, mapped, not possible) and how many."""
        rows: dict[str, dict[str, Any]] = {}
        for item in self.items:
            row = rows.setdefault(
                item.from_step,
                {
                    "from_step": item.from_step,
                    "from_name": item.from_name,
                    "to_step": item.to_step,
                    "to_name": item.to_name,
                    "how": item.how,
                    "reason": item.reason,
                    "count": 0,
                    "migrated": 0,
                    "failed": 0,
                },
            )
            row["count"] += 1
            row["migrated"] += item.outcome == "migrated"
            row["failed"] += item.outcome == "failed"
        return list(rows.values())

    def summary(self) -> dict[str, Any]:
        """Plain data for a page (also kept in the session after a migration): counts, the steps, and
        the processes one by one (up to LISTED of each kind)."""
        return {
            "definition_key": self.definition_key,
            "definition_name": self.definition_name,
            "from_number": self.from_number,
            "to_number": self.to_number,
            "step_map": self.step_map,
            "dry_run": self.dry_run,
            "counts": self.counts(),
            "steps": self.steps(),
            "moving": [asdict(i) for i in self.moving[:LISTED]],
            "staying": [asdict(i) for i in self.staying[:LISTED]],
            "failed": [asdict(i) for i in self.failed[:LISTED]],
        }


def step_map_check(
    *, from_graph: CompiledGraph, to_graph: CompiledGraph, from_number: int, to_number: int, step_map: dict[str, str]
) -> None:
    """Every mapping goes from a step of version N to a step of version M of the same type; else
    StepMapInvalid with one message per bad entry."""
    problems = {}
    for old, new in step_map.items():
        current = from_graph.steps.get(old)
        if current is None:
            problems[old] = f"Version {from_number} has no step '{old}' to map."
            continue
        target = to_graph.steps.get(new)
        if target is None:
            problems[old] = f"Version {to_number} has no step '{new}' to map '{old}' ({step_name(current, old)}) to."
            continue
        mismatch = step_mismatch(current, target, to_number)
        if mismatch:
            names = f"'{old}' ({step_name(current, old)}) cannot be mapped to '{new}' ({step_name(target, new)})"
            problems[old] = f"{names}: {mismatch}"
    if problems:
        raise StepMapInvalid(problems)


def _plan_item(
    process: Process, from_graph: CompiledGraph, to_graph: CompiledGraph, to_number: int, step_map: dict[str, str]
) -> ProcessItem:
    sid = process.current_step
    current = from_graph.steps.get(sid)
    item = ProcessItem(
        process_id=process.pk,
        title=process.title,
        state=process.state,
        from_step=sid,
        from_name=step_name(current, sid),
    )
    item.how = MAPPED if sid in step_map else AUTOMATIC
    item.to_step = step_map.get(sid, sid)
    target = to_graph.steps.get(item.to_step)
    if target is None:
        item.how, item.to_step = NOT_POSSIBLE, ""
        item.reason = f"Version {to_number} has no step '{sid}' ({item.from_name}) and it is not mapped."
        return item
    item.to_name = step_name(target, item.to_step)
    mismatch = step_mismatch(current, target, to_number)
    if mismatch:
        item.how, item.reason = NOT_POSSIBLE, f"{mismatch} Map it to a step of the same type."
    return item


def processes_migrate(
    *,
    definition: WorkflowDefinition,
    from_number: int,
    to_number: int,
    step_ids: list[str] | None = None,
    step_map: dict[str, str] | None = None,
    user: Any = None,
    dry_run: bool = False,
) -> MigrationReport:
    """Plan, and unless ``dry_run`` do, the move of every running or suspended process of version
    ``from_number`` (only those at ``step_ids`` when given) to version ``to_number``.

    Each process goes to its own step in the target version (automatic) or to the step ``step_map``
    names for its current step (mapped); the others stay, with the reason. Each process moves in
    its own transaction, so one failure does not stop the rest (it is reported). One audit entry
    records the batch: versions, mapping, counts. A bad mapping is refused as a whole (StepMapInvalid).
    """
    source, target = versions_pick(definition=definition, from_number=from_number, to_number=to_number)
    from_graph, to_graph = graph_for_version(source.pk), graph_for_version(target.pk)
    step_map = {old: new for old, new in (step_map or {}).items() if new and new != old}
    step_map_check(
        from_graph=from_graph, to_graph=to_graph, from_number=from_number, to_number=to_number, step_map=step_map
    )
    processes = Process.objects.filter(version=source, state__in=MIGRATABLE_STATES)
    if step_ids is not None:
        processes = processes.filter(current_step__in=step_ids)
    report = MigrationReport(
        definition_key=definition.key,
        definition_name=definition.name,
        from_number=from_number,
        to_number=to_number,
        step_map=step_map,
        step_ids=list(step_ids) if step_ids is not None else None,
        dry_run=dry_run,
        items=[
            _plan_item(p, from_graph, to_graph, to_number, step_map)
            for p in processes.order_by("pk").only("pk", "title", "state", "current_step")
        ],
    )
    if dry_run:
        return report
    for item in report.items:
        if item.how == NOT_POSSIBLE:
            item.outcome = "not_migrated"
            continue
        try:
            with transaction.atomic():
                locked = lock_process(item.process_id)
                if locked.version_id != source.pk or locked.current_step != item.from_step:
                    raise MigrationNotPossible(
                        f"Process #{locked.pk} moved on since the plan was made (now at '{locked.current_step}' "
                        f"of version {locked.version.number})."
                    )
                process_migrate(process=locked, to_version=target, user=user, step_map=step_map or None)
        except (WorkflowError, DatabaseError) as exc:  # rolled back to its savepoint; the others go on
            item.outcome, item.error = "failed", str(exc).strip()
        else:
            item.outcome = "migrated"
    counts = report.counts()
    with transaction.atomic():
        audit(
            user,
            "workflow.processes_migrated",
            definition,
            old={"version": from_number},
            new={
                "version": to_number,
                "step_map": step_map,
                "step_ids": report.step_ids,
                "processes": counts["processes"],
                "migrated": counts["migrated"],
                "not_migrated": counts["not_possible"],
                "failed": counts["failed"],
            },
        )
    return report
