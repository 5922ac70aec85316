"""Reads for the dashboard, analytics and statements. Every function takes a :class:`Scope` that
already holds what the user may see (car parks) and what they asked for (period, workflow)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.formats import get_format
from django.utils.translation import gettext

from accounts import roles
from monitoring.aggregation import day_bounds, summed
from workflows.compiler import step_label, step_names
from workflows.models import (
    Process,
    ProcessEvent,
    ProcessEventArchive,
    Task,
    Timer,
    WorkflowDefinition,
    WorkflowVersion,
)

Kind = ProcessEvent.Kind
LIVE_STATUSES = ("running", "waiting", "overdue", "escalated", "incident")


@dataclass
class Scope:
    day_from: date
    day_to: date
    definition: WorkflowDefinition | None = None
    carpark_ids: set[int] | None = None  # None: every car park and processes without one
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def definition_ids(self) -> set[int] | None:
        return {self.definition.pk} if self.definition else None

    @property
    def days(self) -> list[date]:
        return [self.day_from + timedelta(days=n) for n in range((self.day_to - self.day_from).days + 1)]

    def processes(self, queryset: QuerySet | None = None) -> QuerySet:
        qs = Process.objects.all() if queryset is None else queryset
        if self.definition:
            qs = qs.filter(definition=self.definition)
        if self.carpark_ids is not None:
            qs = qs.filter(scope_carpark_id__in=self.carpark_ids)
        return qs

    def tasks(self) -> QuerySet:
        qs = Task.objects.all()
        if self.definition:
            qs = qs.filter(process__definition=self.definition)
        if self.carpark_ids is not None:
            qs = qs.filter(process__scope_carpark_id__in=self.carpark_ids)
        return qs

    def summed(self, group: tuple[str, ...], **kwargs: Any) -> dict[tuple[Any, ...], dict[str, int]]:
        return summed(
            group,
            self.day_from,
            self.day_to,
            definition_ids=self.definition_ids,
            carpark_ids=self.carpark_ids,
            memo=self.extra.setdefault("live", {}),
            **kwargs,
        )


def visible_carpark_ids(user: Any) -> set[int] | None:
    """Car parks whose figures the user sees: all for the central roles, the own ones for managers."""
    if roles.has_role(user, roles.SUPERVISOR, roles.WORKFLOW_ADMIN, roles.FINANCE):
        return None
    return set(roles.responsible_carpark_ids(user) or ())


def sees_billing(user: Any) -> bool:
    return roles.has_role(user, roles.FINANCE, roles.SUPERVISOR)


def percent(part: int | float, whole: int | float) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def avg(total: int | float, count: int) -> float | None:
    return total / count if count else None


# -- live counts ----------------------------------------------------------------------------------
def _open_work(now: Any) -> Any:
    open_task = Task.objects.filter(process_id=OuterRef("pk"), state=Task.State.OPEN, assignee__isnull=True)
    pending_wait = Timer.objects.filter(
        process_id=OuterRef("pk"), state=Timer.State.PENDING, kind=Timer.Kind.WAIT, step_seq=OuterRef("step_seq")
    )
    return Q(waiting_for__gt="") | Q(Exists(open_task)) | Q(Exists(pending_wait))


def live_processes(scope: Scope, status: str, now: Any = None) -> QuerySet:
    """The processes behind a live count (for drill-down and for the counts themselves)."""
    now = now or timezone.now()
    running = scope.processes().filter(state=Process.State.RUNNING)
    if status == "running":
        return running
    if status == "waiting":
        return running.filter(_open_work(now))
    if status == "overdue":
        late = Task.objects.filter(
            process_id=OuterRef("pk"), state__in=Task.ACTIVE_STATES, due_at__lt=now, step_id=OuterRef("current_step")
        )
        return running.filter(Exists(late))
    if status == "escalated":
        up = Task.objects.filter(
            process_id=OuterRef("pk"),
            state__in=Task.ACTIVE_STATES,
            escalation_level__gt=0,
            step_id=OuterRef("current_step"),
        )
        return running.filter(Exists(up))
    if status == "incident":
        return scope.processes().filter(incident_open=True).exclude(state=Process.State.CANCELLED)
    raise ValueError(f"unknown status {status!r}")


def live_counts(scope: Scope, now: Any = None) -> list[dict[str, Any]]:
    """Rows per workflow and step with running, waiting, overdue, escalated and incident counts."""
    now = now or timezone.now()
    table: dict[tuple[int, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(LIVE_STATUSES, 0))
    for status in LIVE_STATUSES:
        step_field = "incident_step" if status == "incident" else "current_step"
        rows = live_processes(scope, status, now).values("definition_id", step_field).annotate(n=Count("id")).order_by()
        for r in rows:
            table[(r["definition_id"], r[step_field])][status] = r["n"]
    definitions = {d: (name, key) for d, name, key in _definition_names({d for d, _ in table})}
    steps = _published_step_names({d for d, _ in table})
    out = [
        {
            "definition_id": d,
            "definition": definitions.get(d, (d, ""))[0],
            "key": definitions.get(d, (d, ""))[1],
            "step": s,
            "step_name": (steps.get(d) or {}).get(s) or step_label(s) if s else "",
            **counts,
        }
        for (d, s), counts in table.items()
    ]
    out.sort(key=lambda r: (str(r["definition"]), r["step"]))
    return out


def _definition_names(ids: set[int]) -> list[tuple[int, str, str]]:
    return list(WorkflowDefinition.objects.filter(pk__in=ids).values_list("pk", "name", "key")) if ids else []


def _published_step_names(definition_ids: set[int]) -> dict[int, dict[str, str]]:
    """Step id → name per definition, from its published version (one query for all of them)."""
    if not definition_ids:
        return {}
    graphs = WorkflowVersion.objects.filter(
        definition_id__in=definition_ids, state=WorkflowVersion.State.PUBLISHED
    ).values_list("definition_id", "graph")
    return {d: step_names(graph or {}) for d, graph in graphs}


# -- period figures -------------------------------------------------------------------------------
def throughput(scope: Scope) -> list[dict[str, Any]]:
    per_day = scope.summed(("day",))
    return [
        {
            "day": day,
            "started": per_day.get((day,), {}).get("started", 0),
            "completed": per_day.get((day,), {}).get("completed", 0),
            "cancelled": per_day.get((day,), {}).get("cancelled", 0),
        }
        for day in scope.days
    ]


def per_workflow(scope: Scope) -> list[dict[str, Any]]:
    """Period totals per workflow: volumes, tasks, SLA, escalations, incidents."""
    rows = scope.summed(("definition_id",))
    definitions = {d.pk: d for d in WorkflowDefinition.objects.filter(pk__in={k[0] for k in rows})}
    out = []
    for (definition_id,), f in rows.items():
        definition = definitions.get(definition_id)
        out.append(
            {
                "definition_id": definition_id,
                "definition": definition.name if definition else str(definition_id),
                "key": definition.key if definition else "",
                **f,
                "sla_percent": percent(f["sla_met"], f["sla_due"]),
                "escalation_rate": percent(f["escalations"], f["tasks_created"]),
            }
        )
    out.sort(key=lambda r: r["definition"])
    return out


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("started", "completed", "cancelled", "tasks_created", "tasks_completed", "escalations", "incidents")
    total = {k: sum(r.get(k, 0) for r in rows) for k in (*keys, "sla_due", "sla_met", "reentered")}
    total["sla_percent"] = percent(total["sla_met"], total["sla_due"])
    total["escalation_rate"] = percent(total["escalations"], total["tasks_created"])
    return total


def basket_load(scope: Scope, now: Any = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Active tasks per role (open, claimed, overdue) and claimed tasks per person."""
    now = now or timezone.now()
    active = scope.tasks().filter(state__in=Task.ACTIVE_STATES)
    by_role = (
        active.values("role")
        .annotate(
            open=Count("id", filter=Q(state=Task.State.OPEN)),
            claimed=Count("id", filter=Q(state=Task.State.CLAIMED)),
            overdue=Count("id", filter=Q(due_at__lt=now)),
            total=Count("id"),
        )
        .order_by("-total", "role")
    )
    by_person = list(
        active.filter(assignee__isnull=False)
        .values("assignee_id")
        .annotate(claimed=Count("id"), overdue=Count("id", filter=Q(due_at__lt=now)))
        .order_by("-claimed", "assignee_id")[:50]
    )
    users = get_user_model().objects.in_bulk([r["assignee_id"] for r in by_person])
    for r in by_person:
        user = users.get(r["assignee_id"])
        r["name"] = (user.get_full_name() or user.username) if user else f"#{r['assignee_id']}"
    return list(by_role), by_person


# -- billing and CPMS (the tables may be empty or not installed yet) ---------------------------------
def _model(label: str) -> Any:
    try:
        return apps.get_model(label)
    except LookupError:
        return None


#: Charges whose money was not collected: declined or failed, and direct debits the customer's bank took back
#: after they succeeded (``returned``): both count as failed in every billing figure.
FAILED_CHARGE_STATUSES = ("failed", "returned")


def billing_figures(day_from: date, day_to: date) -> dict[str, Any]:
    """Invoices issued and card payments in the period; ``available`` is False without billing data."""
    invoice, payment = _model("billing.Invoice"), _model("billing.Payment")
    if invoice is None or payment is None:
        return {"available": False}
    start, _ = day_bounds(day_from)
    _, end = day_bounds(day_to)
    issued = invoice.objects.filter(issue_date__gte=day_from, issue_date__lte=day_to).exclude(state="draft")
    inv = issued.aggregate(count=Count("id"), gross=Sum("gross_total"), net=Sum("net_total"))
    charges = payment.objects.filter(kind="charge", created_at__gte=start, created_at__lt=end)
    pay = charges.aggregate(
        succeeded=Count("id", filter=Q(status="succeeded")),
        failed=Count("id", filter=Q(status__in=FAILED_CHARGE_STATUSES)),
        pending=Count("id", filter=Q(status="pending")),
        amount=Sum("amount", filter=Q(status="succeeded")),
    )
    refunds = payment.objects.filter(kind="refund", status="succeeded", created_at__gte=start, created_at__lt=end)
    ref = refunds.aggregate(count=Count("id"), amount=Sum("amount"))
    finished = pay["succeeded"] + pay["failed"]
    runs = _model("billing.InvoicingRun")
    run_count = runs.objects.filter(created_at__gte=start, created_at__lt=end).count() if runs else 0
    return {
        "available": True,
        "has_data": bool(inv["count"] or finished or pay["pending"] or ref["count"] or run_count),
        "invoices": inv["count"],
        "invoiced_gross": inv["gross"] or Decimal("0.00"),
        "invoiced_net": inv["net"] or Decimal("0.00"),
        "payments_succeeded": pay["succeeded"],
        "payments_failed": pay["failed"],
        "payments_pending": pay["pending"],
        "paid_amount": pay["amount"] or Decimal("0.00"),
        "failure_rate": percent(pay["failed"], finished),
        "refunds": ref["count"],
        "refunded_amount": ref["amount"] or Decimal("0.00"),
        "invoicing_runs": run_count,
        "by_method": _billing_by_method(payment, start, end),
    }


def _billing_by_method(payment: Any, start: Any, end: Any) -> list[dict[str, Any]]:
    """Collected amounts and failures per payment option (card, SEPA Direct Debit, bank transfer).

    A charge booked from the bank (a statement entry, or by hand: no provider PaymentIntent) is a bank
    transfer; a bank transfer "fails" when it is overdue (its ``payment.failed`` event of the period), a
    direct debit also when the bank returned it (``returned``).
    """
    from django.db.models import Case, CharField, Value, When

    from billing.payment_options import PaymentOption

    method = Case(
        When(Q(bank_entry__isnull=False) | Q(stripe_payment_intent_id=""), then=Value("bank_transfer")),
        default="method",
        output_field=CharField(),
    )
    rows = {
        row["how"]: row
        for row in payment.objects.filter(kind="charge", created_at__gte=start, created_at__lt=end)
        .annotate(how=method)
        .values("how")
        .annotate(
            succeeded=Count("id", filter=Q(status="succeeded")),
            failed=Count("id", filter=Q(status__in=FAILED_CHARGE_STATUSES)),
            processing=Count("id", filter=Q(status__in=["pending", "processing"])),
            amount=Sum("amount", filter=Q(status="succeeded")),
        )
    }
    overdue = 0
    event = _model("workflows.BusinessEvent")
    if event is not None:
        overdue = event.objects.filter(
            name="payment.failed",
            event_id__endswith=":transfer-overdue",
            emitted_at__gte=start,
            emitted_at__lt=end,
        ).count()
    result = []
    for option in PaymentOption:
        row = rows.get(option.value, {})
        succeeded, failed = row.get("succeeded", 0), row.get("failed", 0)
        if option == PaymentOption.BANK_TRANSFER:
            failed += overdue
        result.append(
            {
                "method": option.value,
                "label": str(option.label),
                "succeeded": succeeded,
                "amount": row.get("amount") or Decimal("0.00"),
                "processing": row.get("processing", 0),
                "failed": failed,
                "failure_rate": percent(failed, succeeded + failed),
            }
        )
    return result


def cpms_figures(day_from: date, day_to: date) -> dict[str, Any]:
    """Sync runs per CPMS connection in the period; ``available`` is False without Connect data."""
    sync_run = _model("connect.SyncRun")
    if sync_run is None:
        return {"available": False}
    start, _ = day_bounds(day_from)
    _, end = day_bounds(day_to)
    rows = list(
        sync_run.objects.filter(started_at__gte=start, started_at__lt=end)
        .values("connection_id", "connection__name")
        .annotate(
            total=Count("id"),
            # A partly succeeded run stored every valid record: a success that also refused some.
            succeeded=Count("id", filter=Q(status__in=["succeeded", "partly"])),
            partly=Count("id", filter=Q(status="partly")),
            failed=Count("id", filter=Q(status="failed")),
            retrying=Count("id", filter=Q(status="retrying")),
        )
        .order_by("connection__name")
    )
    for r in rows:
        r["success_rate"] = percent(r["succeeded"], r["succeeded"] + r["failed"])
    total = sum(r["total"] for r in rows)
    failed = sum(r["failed"] for r in rows)
    succeeded = sum(r["succeeded"] for r in rows)
    return {
        "available": True,
        "has_data": bool(total),
        "connections": rows,
        "runs": total,
        "failed": failed,
        "succeeded": succeeded,
        "success_rate": percent(succeeded, succeeded + failed),
    }


# -- process analytics ----------------------------------------------------------------------------
def step_percentiles(
    version_ids: set[int], day_from: date, day_to: date, carpark_ids: set[int] | None = None
) -> dict[str, dict[str, float]]:
    """p50, p90 and max of step durations (ms) from the history's step_left events."""
    if not version_ids:
        return {}
    start, _ = day_bounds(day_from)
    _, end = day_bounds(day_to)
    if connection.vendor == "postgresql":
        sql = (
            "SELECT e.step_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY e.duration_ms), "
            "percentile_cont(0.9) WITHIN GROUP (ORDER BY e.duration_ms), max(e.duration_ms) "
            # The live history and its archive (history_archive); the conditions reach both tables' indexes.
            "FROM (SELECT process_id, kind, at, step_id, duration_ms FROM workflows_processevent UNION ALL "
            "SELECT process_id, kind, at, step_id, duration_ms FROM workflows_processeventarchive) e "
            "JOIN workflows_process p ON p.id = e.process_id "
            "WHERE e.kind = %s AND e.at >= %s AND e.at < %s AND e.duration_ms IS NOT NULL "
            "AND p.version_id = ANY(%s)"
        )
        params: list[Any] = [Kind.STEP_LEFT, start, end, list(version_ids)]
        if carpark_ids is not None:
            sql += " AND COALESCE(p.scope_carpark_id, 0) = ANY(%s)"
            params.append(list(carpark_ids))
        sql += " GROUP BY e.step_id"
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {
                step: {"p50": float(p50), "p90": float(p90), "max": float(mx)}
                for step, p50, p90, mx in cursor.fetchall()
            }
    values: dict[str, list[int]] = defaultdict(list)
    for model in (ProcessEvent, ProcessEventArchive):
        events = model.objects.filter(
            kind=Kind.STEP_LEFT,
            at__gte=start,
            at__lt=end,
            duration_ms__isnull=False,
            process__version_id__in=version_ids,
        )
        for step, ms, carpark in events.values_list("step_id", "duration_ms", "process__scope_carpark_id"):
            if carpark_ids is None or (carpark or 0) in carpark_ids:
                values[step].append(ms)
    return {step: {"p50": _pct(v, 0.5), "p90": _pct(v, 0.9), "max": float(max(v))} for step, v in values.items()}


def _pct(values: list[int], q: float) -> float:
    """Linear interpolation between closest ranks (what PostgreSQL's percentile_cont does)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return float(ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower))


def step_order(version: WorkflowVersion) -> list[tuple[str, str, str]]:
    """(step id, name, type) in the definition's order."""
    return [(s["id"], step_label(s["id"], s.get("name")), s["type"]) for s in (version.spec or {}).get("steps", [])]


def step_analytics(
    versions: list[WorkflowVersion], day_from: date, day_to: date, carpark_ids: set[int] | None = None
) -> list[dict[str, Any]]:
    """Per step: entries, rework, durations (avg, p50, p90, max), waiting versus working, escalations."""
    version_ids = {v.pk for v in versions}
    figures = summed(("step_id",), day_from, day_to, version_ids=version_ids, carpark_ids=carpark_ids)
    pct = step_percentiles(version_ids, day_from, day_to, carpark_ids)
    order: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for version in sorted(versions, key=lambda v: -v.number):
        for entry in step_order(version):
            if entry[0] not in seen:
                seen.add(entry[0])
                order.append(entry)
    for (step,), _ in figures.items():
        if step and step not in seen:
            seen.add(step)
            order.append((step, step, ""))
    rows = []
    for step, name, kind in order:
        f = figures.get((step,), {})
        p = pct.get(step, {})
        rows.append(
            {
                "step": step,
                "name": name,
                "type": kind,
                "entered": f.get("entered", 0),
                "reentered": f.get("reentered", 0),
                "left": f.get("left", 0),
                "avg_ms": avg(f.get("duration_ms_sum", 0), f.get("left", 0)),
                "p50_ms": p.get("p50"),
                "p90_ms": p.get("p90"),
                "max_ms": p.get("max") if p else (f.get("duration_ms_max") or None),
                "tasks_created": f.get("tasks_created", 0),
                "tasks_completed": f.get("tasks_completed", 0),
                "wait_avg_ms": avg(f.get("wait_ms_sum", 0), f.get("tasks_completed", 0)),
                "work_avg_ms": avg(f.get("work_ms_sum", 0), f.get("tasks_completed", 0)),
                "escalations": f.get("escalations", 0),
                "escalation_rate": percent(f.get("escalations", 0), f.get("tasks_created", 0)),
                "incidents": f.get("incidents", 0),
                "sla_percent": percent(f.get("sla_met", 0), f.get("sla_due", 0)),
            }
        )
    return rows


def process_summary(
    versions: list[WorkflowVersion], day_from: date, day_to: date, carpark_ids: set[int] | None = None
) -> dict[str, Any]:
    version_ids = {v.pk for v in versions}
    f = summed((), day_from, day_to, version_ids=version_ids, carpark_ids=carpark_ids).get((), {})
    start, _ = day_bounds(day_from)
    _, end = day_bounds(day_to)
    done = Process.objects.filter(
        version_id__in=version_ids, state=Process.State.COMPLETED, ended_at__gte=start, ended_at__lt=end
    )
    if carpark_ids is not None:
        done = done.filter(scope_carpark_id__in=carpark_ids)
    durations = [(e - s).total_seconds() * 1000 for s, e in done.values_list("started_at", "ended_at")[:100_000]]
    reworked: set[int] = set()
    for model in (ProcessEvent, ProcessEventArchive):  # the live history and its archive (history_archive)
        rework = model.objects.filter(
            kind=Kind.STEP_ENTERED, at__gte=start, at__lt=end, process__version_id__in=version_ids
        )
        if carpark_ids is not None:
            rework = rework.filter(process__scope_carpark_id__in=carpark_ids)
        reworked.update(
            rework.order_by()
            .values("process_id", "step_id")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
            .values_list("process_id", flat=True)
            .distinct()
        )
    return {
        "started": f.get("started", 0),
        "completed": f.get("completed", 0),
        "cancelled": f.get("cancelled", 0),
        "tasks_created": f.get("tasks_created", 0),
        "escalations": f.get("escalations", 0),
        "escalation_rate": percent(f.get("escalations", 0), f.get("tasks_created", 0)),
        "incidents": f.get("incidents", 0),
        "reentered": f.get("reentered", 0),
        "reworked_processes": len(reworked),
        "sla_percent": percent(f.get("sla_met", 0), f.get("sla_due", 0)),
        "avg_process_ms": sum(durations) / len(durations) if durations else None,
        "p50_process_ms": _pct(durations, 0.5) if durations else None,
        "p90_process_ms": _pct(durations, 0.9) if durations else None,
    }


def heatmap(version: WorkflowVersion, day_from: date, day_to: date, carpark_ids: set[int] | None = None) -> dict:
    """Per BPMN element (= step id): how often it was entered and how long it took on average."""
    figures = summed(("step_id",), day_from, day_to, version_ids={version.pk}, carpark_ids=carpark_ids)
    elements = {}
    for step, name, _kind in step_order(version):
        f = figures.get((step,), {})
        elements[step] = {
            "name": name,
            "entered": f.get("entered", 0),
            "left": f.get("left", 0),
            "avg_ms": round(f["duration_ms_sum"] / f["left"]) if f.get("left") else None,
            "reentered": f.get("reentered", 0),
            "escalations": f.get("escalations", 0),
            "incidents": f.get("incidents", 0),
        }
    busiest = max((e["entered"] for e in elements.values()), default=0)
    slowest = max((e["avg_ms"] or 0 for e in elements.values()), default=0)
    for e in elements.values():
        e["avg_label"] = duration_label(e["avg_ms"])
        e["heat"] = round(e["entered"] / busiest, 3) if busiest else 0
        e["slowness"] = round((e["avg_ms"] or 0) / slowest, 3) if slowest else 0
    return {
        "version": version.pk,
        "definition": version.definition.key,
        "number": version.number,
        "day_from": day_from.isoformat(),
        "day_to": day_to.isoformat(),
        "elements": elements,
    }


def duration_label(ms: float | None) -> str:
    if ms is None:
        return "–"
    seconds = ms / 1000
    if seconds < 1:
        return f"{ms:.0f} ms"
    point = get_format("DECIMAL_SEPARATOR")
    if seconds < 60:
        return f"{seconds:.1f} s".replace(".", point)
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    if hours < 48:
        return f"{hours:.1f} h".replace(".", point)
    return gettext("%(days)s d") % {"days": f"{hours / 24:.1f}".replace(".", point)}
