"""Reads of the task basket: who sees which task, the tabs, their counts, search and summaries.

Visibility follows :func:`workflows.services.can_work_on`: a task is visible to users who hold
its role and, when it is scoped to a car park, responsibility for that car park (guardian
permission ``carparks.responsible_carpark``); supervisors and workflow admins see every car park,
administrators see everything. Every list here is a constant number of queries, however many
tasks there are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, F, Q, QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from accounts.roles import (
    ADMINISTRATOR,
    RESPONSIBLE_PERMISSION,
    SUPERVISOR,
    WORKFLOW_ADMIN,
    has_role,
    responsible_carpark_ids,
    user_roles,
)
from workflows.compiler import graph_for_version, step_label
from workflows.models import Absence, Task, Timer, WorkflowVersion
from workflows.services import can_work_on

TABS = ("queue", "mine", "team", "done")
SORTS = {
    "due": (F("due_at").asc(nulls_last=True), "id"),
    "priority": ("-priority", F("due_at").asc(nulls_last=True), "id"),
    "age": ("created_at", "id"),
}
# Roles whose members oversee every car park (as in ``can_work_on``).
ALL_CARPARK_ROLES = (WORKFLOW_ADMIN, SUPERVISOR)


def is_supervisor(user: Any) -> bool:
    """Supervisors (and workflow admins, administrators) see the team, reassign and take over."""
    return has_role(user, SUPERVISOR, WORKFLOW_ADMIN)


def role_scope_q(user: Any) -> Q | None:
    """Tasks whose role the user holds, in car parks the user answers for; ``None``: no task at all."""
    roles = user_roles(user)
    if not roles:
        return None
    if ADMINISTRATOR in roles:
        return Q()
    q = Q(role__in=sorted(roles))
    if roles.intersection(ALL_CARPARK_ROLES):
        return q
    carparks = responsible_carpark_ids(user)
    if carparks is None:
        return q
    return q & (Q(scope_carpark_id__isnull=True) | Q(scope_carpark_id__in=sorted(carparks)))


def can_see_task(user: Any, task: Task) -> bool:
    """The task page: whoever may work on it, whoever holds or completed it, and supervisors."""
    return (
        can_work_on(user, task)
        or is_supervisor(user)
        or (user.pk is not None and user.pk in (task.assignee_id, task.completed_by_id))
    )


@dataclass
class BasketFilters:
    workflow: str = ""
    step: str = ""
    carpark: int | None = None
    overdue: bool = False
    escalated: bool = False
    priority: int | None = None
    q: str = ""
    sort: str = "due"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        """No filter narrows the tab (sorting does not)."""
        return not (
            self.workflow
            or self.step
            or self.carpark is not None
            or self.overdue
            or self.escalated
            or self.priority is not None
            or self.q.strip()
        )


def basket_tasks(user: Any, *, tab: str, filters: BasketFilters | None = None) -> QuerySet[Task]:
    """The rows of one basket tab, filtered and sorted (not yet paginated)."""
    filters = filters or BasketFilters()
    rows = Task.objects.select_related("process__definition", "assignee").defer(
        "instructions", "inputs", "comment", "process__variables", "process__incident_error"
    )
    if tab == "done":
        rows = rows.filter(state=Task.State.COMPLETED, completed_by=user).order_by("-completed_at", "-id")
    elif tab == "mine":
        rows = rows.filter(state=Task.State.CLAIMED, assignee=user)
    elif tab == "team":
        if not is_supervisor(user):
            return Task.objects.none()
        rows = rows.filter(state__in=Task.ACTIVE_STATES).exclude(assignee=user)
    else:
        scope = role_scope_q(user)
        if scope is None:
            return Task.objects.none()
        rows = rows.filter(scope, state=Task.State.OPEN)
    rows = apply_filters(rows, filters)
    if tab != "done":
        rows = rows.order_by(*SORTS.get(filters.sort, SORTS["due"]))
    return rows


def apply_filters(rows: QuerySet[Task], filters: BasketFilters) -> QuerySet[Task]:
    if filters.workflow:
        rows = rows.filter(process__definition__key=filters.workflow)
    if filters.step:
        rows = rows.filter(step_id=filters.step)
    if filters.carpark is not None:
        rows = rows.filter(scope_carpark_id=filters.carpark)
    if filters.overdue:
        rows = rows.filter(due_at__lt=timezone.now())
    if filters.escalated:
        rows = rows.filter(escalation_level__gt=0)
    if filters.priority is not None:
        rows = rows.filter(priority=filters.priority)
    if filters.q.strip():
        rows = rows.filter(search_q(filters.q, rows))
    return rows


SEARCH_LIMIT = 1000  # matching objects per kind when searching everything; a search is for narrowing down
SEARCH_SCAN_LIMIT = 2000  # up to this many candidate tasks, the search starts from them


def search_q(text: str, rows: QuerySet[Task] | None = None) -> Q:
    """Tasks whose process is about a customer, contract, vehicle or case matching ``text``:
    a customer's name (part) or email, a contract number, a plate (any spelling).

    The process's business object is a generic relation, so each kind of object is matched on its
    own table. The search starts from the smaller side: when the tab holds at most
    ``SEARCH_SCAN_LIMIT`` tasks (an agent's queue: a few hundred), only their objects are checked,
    by primary key; otherwise the objects are looked up first and the processes about them found
    through the (content type, object id) index. Either way a handful of queries, however many
    tasks there are.
    """
    from carparks.models import Case, Contract, Customer, Vehicle, normalise_plate

    text = text.strip()[:100]
    types = ContentType.objects.get_for_models(Contract, Customer, Vehicle, Case)  # cached after first use
    plate = normalise_plate(text)
    number = text.upper().removeprefix("C-").removeprefix("#")
    number = int(number) if number.isdigit() and len(number) < 18 else None
    person = Q(name__icontains=text) | Q(email__iexact=text)

    def via(prefix: str) -> Q:
        return Q(**{f"{prefix}name__icontains": text}) | Q(**{f"{prefix}email__iexact": text})

    matchers: dict[type, Q] = {
        Customer: person,
        Vehicle: Q(plate=plate) if plate else Q(pk__in=[]),
        Contract: via("customer__") | (Q(vehicles__plate=plate) if plate else Q(pk__in=[])),
        Case: via("customer__") | (Q(contract__vehicles__plate=plate) if plate else Q(pk__in=[])),
    }
    if number is not None:
        matchers[Contract] |= Q(pk=number)
        matchers[Case] |= Q(contract_id=number)

    candidates = None
    if rows is not None:
        candidates = list(
            rows.order_by().values_list("process_id", "process__content_type_id", "process__object_id")[
                : SEARCH_SCAN_LIMIT + 1
            ]
        )
        if len(candidates) > SEARCH_SCAN_LIMIT:
            candidates = None
    if candidates is not None:
        by_type: dict[int, set[int]] = {}
        for _, type_id, object_id in candidates:
            if type_id is not None:
                by_type.setdefault(type_id, set()).add(object_id)
        matched: set[tuple[int, int]] = set()
        for model, match in matchers.items():
            object_ids = by_type.get(types[model].pk)
            if object_ids:
                found = model.objects.filter(match, pk__in=sorted(object_ids)).values_list("pk", flat=True)
                matched.update((types[model].pk, pk) for pk in found.distinct().order_by())
        return Q(process_id__in=sorted({pid for pid, type_id, oid in candidates if (type_id, oid) in matched}))

    about = Q(pk__in=[])
    for model, match in matchers.items():
        object_ids = list(model.objects.filter(match).values_list("pk", flat=True).distinct().order_by()[:SEARCH_LIMIT])
        if object_ids:
            about |= Q(content_type=types[model], object_id__in=object_ids)
    from workflows.models import Process

    return Q(process_id__in=Process.objects.filter(about).values("pk"))


def basket_counts(user: Any) -> dict[str, int]:
    """Open tasks in the queue, my claimed tasks and (supervisors) the team's active tasks: one query."""
    scope = role_scope_q(user)
    supervisor = is_supervisor(user)
    aggregates: dict[str, Any] = {"mine": Count("pk", filter=Q(state=Task.State.CLAIMED, assignee=user))}
    relevant = Q(assignee=user)
    if scope is not None:
        aggregates["queue"] = Count("pk", filter=scope & Q(state=Task.State.OPEN))
        relevant |= scope
    if supervisor:
        aggregates["team"] = Count("pk", filter=~Q(assignee=user) | Q(assignee__isnull=True))
        relevant = Q()
    counts = Task.objects.filter(relevant, state__in=Task.ACTIVE_STATES).aggregate(**aggregates)
    return {"queue": counts.get("queue") or 0, "mine": counts["mine"] or 0, "team": counts.get("team") or 0}


@dataclass
class WorkSummary:
    """What the start page tells a user about their work: counts and the next few tasks."""

    queue: int
    mine: int
    overdue_queue: int
    overdue_mine: int
    due_today: int
    done_today: int
    next_up: list[Task]

    @property
    def overdue(self) -> int:
        return self.overdue_queue + self.overdue_mine


def work_summary(user: Any, *, now: Any = None, size: int = 5) -> WorkSummary:
    """Counts of the user's queue and claimed tasks (overdue, due today) and completions today in one
    query; the next tasks (claimed ones first, then the queue, each by due time) in at most two."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    day_start = timezone.make_aware(datetime.combine(today, time.min))
    day_end = timezone.make_aware(datetime.combine(today + timedelta(days=1), time.min))  # DST-safe
    scope = role_scope_q(user)
    mine = Q(state=Task.State.CLAIMED, assignee=user)
    late, later_today = Q(due_at__lt=now), Q(due_at__gte=now, due_at__lt=day_end)
    done = Q(state=Task.State.COMPLETED, completed_by=user, completed_at__gte=day_start)
    aggregates: dict[str, Any] = {
        "mine": Count("pk", filter=mine),
        "overdue_mine": Count("pk", filter=mine & late),
        "done_today": Count("pk", filter=Q(state=Task.State.COMPLETED)),
    }
    active = mine
    if scope is not None:  # a user without a working role has no queue
        queue = scope & Q(state=Task.State.OPEN)
        aggregates |= {"queue": Count("pk", filter=queue), "overdue_queue": Count("pk", filter=queue & late)}
        active = mine | queue
    aggregates["due_today"] = Count("pk", filter=active & later_today)
    counts = {"queue": 0, "overdue_queue": 0} | Task.objects.filter(active | done).aggregate(**aggregates)
    next_up: list[Task] = []
    if counts["mine"]:
        next_up = list(basket_tasks(user, tab="mine")[:size])
    if len(next_up) < size and counts["queue"]:
        next_up += list(basket_tasks(user, tab="queue")[: size - len(next_up)])
    return WorkSummary(**{k: v or 0 for k, v in counts.items()}, next_up=next_up)


def task_closes_at(task: Task) -> Timer | None:
    """The pending timeout of the task's step (a user step's ``timeout``): when it fires, the task is
    cancelled and the process goes on without it. ``timer.data["next"]`` is where it goes."""
    return (
        Timer.objects.filter(
            process_id=task.process_id,
            step_seq=task.step_seq,
            kind=Timer.Kind.TASK_TIMEOUT,
            state=Timer.State.PENDING,
        )
        .order_by("due_at")
        .first()
    )


def filter_choices(user: Any) -> dict[str, list]:
    """Choices for the filter form: workflows with their user steps (one query) and car parks (one)."""
    from carparks.models import CarPark

    workflows: list[tuple[str, str]] = []
    steps: dict[str, str] = {}
    for version_id, key, name in (
        WorkflowVersion.objects.filter(state=WorkflowVersion.State.PUBLISHED)
        .order_by("definition__name")
        .values_list("pk", "definition__key", "definition__name")
    ):
        workflows.append((key, name))
        # Compiled graphs are cached in-process (published versions never change): no JSON per request.
        for step_id, step in graph_for_version(version_id).steps.items():
            if step.get("type") == "user":
                steps.setdefault(step_id, step_label(step_id, step.get("name")))
    carparks = CarPark.objects.order_by("name")
    ids = None if has_role(user, *ALL_CARPARK_ROLES) else responsible_carpark_ids(user)
    if ids is not None:
        carparks = carparks.filter(pk__in=sorted(ids))
    return {
        "workflows": workflows,
        "steps": sorted(steps.items(), key=lambda item: item[1].lower()),
        "carparks": list(carparks.values_list("pk", "name")),
    }


def carpark_names(ids: set[int]) -> dict[int, str]:
    from carparks.models import CarPark

    ids = {i for i in ids if i is not None}
    return dict(CarPark.objects.filter(pk__in=sorted(ids)).values_list("pk", "name")) if ids else {}


def colleagues_for(task: Task, *, exclude: Any = None, role_holders_only: bool = False) -> QuerySet:
    """Active users who may work on ``task`` (as ``can_work_on`` decides), in one query.

    With ``role_holders_only`` only those who hold the task's role itself (not supervisors or
    administrators, who may work on anything): the people a task addressed to the role is for.
    """
    from guardian.models import GroupObjectPermission, UserObjectPermission

    from carparks.models import CarPark

    users = get_user_model().objects.filter(is_active=True)
    if role_holders_only:
        users = users.filter(groups__name=task.role)
    else:
        users = users.filter(Q(groups__name__in=[task.role, SUPERVISOR, ADMINISTRATOR]) | Q(is_superuser=True))
    if task.scope_carpark_id is not None:
        carpark_type = ContentType.objects.get_for_model(CarPark)
        app_label, codename = RESPONSIBLE_PERMISSION.split(".")
        permission = {
            "permission__codename": codename,
            "permission__content_type": carpark_type,
            "content_type": carpark_type,
            "object_pk": str(task.scope_carpark_id),
        }
        users = users.filter(
            Q(pk__in=UserObjectPermission.objects.filter(**permission).values("user_id"))
            | Q(groups__in=GroupObjectPermission.objects.filter(**permission).values("group_id"))
            | Q(groups__name__in=[*ALL_CARPARK_ROLES, ADMINISTRATOR])
            | Q(is_superuser=True)
        )
    if exclude is not None:
        users = users.exclude(pk=exclude.pk)
    return users.distinct().order_by("first_name", "last_name", "username")


def active_absence(user: Any, day: date | None = None) -> Absence | None:
    day = day or timezone.localdate()
    return (
        Absence.objects.select_related("substitute")
        .filter(user=user, starts_on__lte=day, ends_on__gte=day)
        .order_by("-created_at")
        .first()
    )


def substitute_for(user: Any, day: date | None = None) -> Any:
    """Whom work for ``user`` goes to today: their substitute while they are away (following a
    substitute who is away too, never in a circle); the user when present."""
    current, seen = user, {user.pk}
    for _ in range(5):
        absence = active_absence(current, day)
        if absence is None or absence.substitute_id in seen:
            break
        current = absence.substitute
        seen.add(current.pk)
    return current


def _link(obj: Any) -> str | None:
    if hasattr(obj, "get_absolute_url"):
        try:
            return obj.get_absolute_url()
        except NoReverseMatch:
            return None
    meta = obj._meta
    try:
        return reverse(f"{meta.app_label}:{meta.model_name}-detail", args=[obj.pk])
    except NoReverseMatch:
        return None


def business_summary(obj: Any) -> list[dict[str, Any]]:
    """What the task is about: the object and its customer, contract, car park (as applicable), with links."""
    if obj is None:
        return []
    items: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()

    def add(label: str, thing: Any, detail: str = "") -> None:
        if thing is None:
            return
        key = (thing._meta.label, thing.pk)
        if key in seen:
            return
        seen.add(key)
        items.append({"label": label, "text": str(thing), "detail": detail, "url": _link(thing)})

    model = obj._meta.model_name
    state = getattr(obj, "get_state_display", None)
    add(obj._meta.verbose_name.capitalize(), obj, state() if callable(state) else "")
    for attr, label in (("customer", "Customer"), ("contract", "Contract"), ("invoice", "Invoice"), ("case", "Case")):
        related = getattr(obj, attr, None)
        if related is not None and hasattr(related, "_meta"):
            add(label, related)
    carpark = getattr(obj, "carpark", None)
    if carpark is None and model == "contract":
        carpark = obj.product.carpark
    if carpark is not None and hasattr(carpark, "_meta"):
        add("Car park", carpark)
    if model == "contract":
        plates = ", ".join(v.plate for v in obj.vehicles.all())
        if plates:
            items.append({"label": "Vehicles", "text": plates, "detail": "", "url": None})
    customer = obj if model == "customer" else getattr(obj, "customer", None)
    duplicate_of = getattr(customer, "possible_duplicate_of", None)
    if duplicate_of is not None:  # a review point (carparks.customer_services.customer_find_or_flag)
        what = "company" if customer.kind == "corporate" else "customer"
        text = f"May be the same {what} as {duplicate_of} (customer {duplicate_of.pk}): merge or mark as different"
        items.append({"label": "Possible duplicate", "text": text, "detail": "", "url": _link(customer)})
    extra = getattr(obj, "task_summary", None)  # an object may add what its task needs (label, text, detail, url)
    if callable(extra):
        items.extend(extra())
    return items
