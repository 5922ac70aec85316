"""Daily figures from the engine's history, pre-aggregated into ``DailyStepStat`` by the beat.

``compute_rows(start, end)`` reads the history of one time range with three grouped queries and
returns one row of figures per (workflow, version, step, car park). ``aggregate_day(day)`` stores a
day's rows (idempotent: it replaces what the day had). ``summed()`` answers every reporting query
from the stored rows, and computes days that are not stored yet (today, or a day the beat missed)
live from the history with the same code, so a figure never depends on whether the beat has run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Exists, Max, OuterRef, Subquery, Sum
from django.utils import timezone

from monitoring.models import AggregatedDay, DailyStepStat
from workflows.models import ProcessEvent

Kind = ProcessEvent.Kind
DIMENSIONS = ("definition_id", "version_id", "step_id", "carpark_id")
COUNTERS = (
    "started",
    "completed",
    "cancelled",
    "entered",
    "reentered",
    "left",
    "duration_ms_sum",
    "tasks_created",
    "tasks_completed",
    "escalations",
    "incidents",
    "sla_due",
    "sla_met",
    "wait_ms_sum",
    "work_ms_sum",
)
FIELDS = (*COUNTERS, "duration_ms_max")
KIND_FIELD = {
    Kind.PROCESS_STARTED: "started",
    Kind.PROCESS_COMPLETED: "completed",
    Kind.PROCESS_CANCELLED: "cancelled",
    Kind.STEP_ENTERED: "entered",
    Kind.STEP_LEFT: "left",
    Kind.TASK_CREATED: "tasks_created",
    Kind.TASK_COMPLETED: "tasks_completed",
    Kind.TASK_ESCALATED: "escalations",
    Kind.INCIDENT_OPENED: "incidents",
}
PROCESS_KINDS = {Kind.PROCESS_STARTED, Kind.PROCESS_COMPLETED, Kind.PROCESS_CANCELLED}
LIVE_CACHE_SECONDS = 30

Key = tuple[int, int, str, int]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Start (inclusive) and end (exclusive) of a calendar day in the portal's time zone."""
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(day, time.min), tz)
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min), tz)
    return start, end


def empty_row() -> dict[str, int]:
    return dict.fromkeys(FIELDS, 0)


def _ms(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds() * 1000))


def compute_rows(start: datetime, end: datetime) -> dict[Key, dict[str, int]]:
    """Figures of the history between ``start`` and ``end`` per (definition, version, step, car park)."""
    rows: dict[Key, dict[str, int]] = defaultdict(empty_row)
    events = ProcessEvent.objects.filter(at__gte=start, at__lt=end)
    dims = ("process__definition_id", "process__version_id", "step_id", "process__scope_carpark_id")

    counted = (
        events.filter(kind__in=list(KIND_FIELD))
        .values(*dims, "kind")
        .annotate(n=Count("id"), dsum=Sum("duration_ms"), dmax=Max("duration_ms"))
        .order_by()
    )
    for r in counted:
        kind = r["kind"]
        step = "" if kind in PROCESS_KINDS else r["step_id"]
        row = rows[(r["process__definition_id"], r["process__version_id"], step, r["process__scope_carpark_id"] or 0)]
        row[KIND_FIELD[kind]] += r["n"]
        if kind == Kind.STEP_LEFT:
            row["duration_ms_sum"] += r["dsum"] or 0
            row["duration_ms_max"] = max(row["duration_ms_max"], r["dmax"] or 0)

    # Rework: an entry into a step the same process had entered before.
    earlier = ProcessEvent.objects.filter(
        process_id=OuterRef("process_id"), kind=Kind.STEP_ENTERED, step_id=OuterRef("step_id"), id__lt=OuterRef("id")
    )
    again = (
        events.filter(kind=Kind.STEP_ENTERED).filter(Exists(earlier)).values(*dims).annotate(n=Count("id")).order_by()
    )
    for r in again:
        key = (r["process__definition_id"], r["process__version_id"], r["step_id"], r["process__scope_carpark_id"] or 0)
        rows[key]["reentered"] += r["n"]

    # Tasks completed in the range: waiting (created → first claimed) versus working (→ completed), SLA.
    first_claim = (
        ProcessEvent.objects.filter(task_id=OuterRef("task_id"), kind__in=[Kind.TASK_CLAIMED, Kind.TASK_DELEGATED])
        .order_by("at", "id")
        .values("at")[:1]
    )
    completions = (
        events.filter(kind=Kind.TASK_COMPLETED, task__isnull=False)
        .annotate(first_claim=Subquery(first_claim))
        .values_list(*dims, "at", "task__created_at", "task__due_at", "first_claim")
        .order_by()
    )
    for definition_id, version_id, step_id, carpark_id, at, created_at, due_at, claimed_at in completions:
        row = rows[(definition_id, version_id, step_id, carpark_id or 0)]
        if claimed_at is None or claimed_at > at:
            row["wait_ms_sum"] += _ms(at - created_at)
        else:
            row["wait_ms_sum"] += _ms(claimed_at - created_at)
            row["work_ms_sum"] += _ms(at - claimed_at)
        if due_at is not None:
            row["sla_due"] += 1
            row["sla_met"] += int(at <= due_at)
    return dict(rows)


@transaction.atomic
def aggregate_day(day: date) -> int:
    """Store the figures of ``day`` (replacing any stored before). Returns how many rows were written."""
    marker, _ = AggregatedDay.objects.get_or_create(day=day)
    marker = AggregatedDay.objects.select_for_update().get(pk=marker.pk)
    start, end = day_bounds(day)
    rows = compute_rows(start, end)
    DailyStepStat.objects.filter(day=day).delete()
    DailyStepStat.objects.bulk_create(
        DailyStepStat(day=day, definition_id=d, version_id=v, step_id=s, carpark_id=c, **figures)
        for (d, v, s, c), figures in rows.items()
    )
    marker.events = ProcessEvent.objects.filter(at__gte=start, at__lt=end).count()
    marker.computed_at = timezone.now()
    marker.save(update_fields=["events", "computed_at"])
    return len(rows)


def aggregate_pending(*, today: date | None = None, lookback_days: int = 3, backfill_days: int = 400) -> list[date]:
    """Aggregate yesterday and the ``lookback_days`` before it again (late events), plus any day of
    the last ``backfill_days`` that has history but no stored figures. Returns the days done."""
    today = today or timezone.localdate()
    wanted = {today - timedelta(days=n) for n in range(1, lookback_days + 1)}
    earliest = ProcessEvent.objects.order_by("at").values_list("at", flat=True).first()
    if earliest is not None:
        first = max(timezone.localtime(earliest).date(), today - timedelta(days=backfill_days))
        stored = set(AggregatedDay.objects.filter(day__gte=first, day__lt=today).values_list("day", flat=True))
        day = first
        while day < today:
            if day not in stored:
                wanted.add(day)
            day += timedelta(days=1)
    done = []
    for day in sorted(wanted):
        aggregate_day(day)
        done.append(day)
    return done


def _live_rows(day: date) -> dict[Key, dict[str, int]]:
    """A day's figures computed from the history (today's briefly cached: the dashboard reloads often)."""
    start, end = day_bounds(day)
    if not LIVE_CACHE_SECONDS or day != timezone.localdate():
        return compute_rows(start, end)
    # Keyed by the newest event: a new event makes a new key, so the cache never hides one.
    last_id = ProcessEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    cache_key = f"monitoring:live:{day.isoformat()}:{last_id}"
    rows = cache.get(cache_key)
    if rows is None:
        rows = compute_rows(start, end)
        cache.set(cache_key, rows, LIVE_CACHE_SECONDS)
    return rows


def summed(
    group: Iterable[str],
    day_from: date,
    day_to: date,
    *,
    definition_ids: Iterable[int] | None = None,
    version_ids: Iterable[int] | None = None,
    carpark_ids: Iterable[int] | None = None,
    step_ids: Iterable[str] | None = None,
    memo: dict[date, dict[Key, dict[str, int]]] | None = None,
) -> dict[tuple[Any, ...], dict[str, int]]:
    """Figures between two days (inclusive), summed per ``group`` (names from ``day`` and DIMENSIONS).

    Stored days are summed by the database; days without stored figures are computed live.
    ``carpark_ids`` limits to those car parks (0 stands for processes without one). ``memo`` keeps
    live days between calls of one request, so a page computes today once.
    """
    group = tuple(group)
    if day_to < day_from:
        return {}
    definition_ids = None if definition_ids is None else set(definition_ids)
    version_ids = None if version_ids is None else set(version_ids)
    carpark_ids = None if carpark_ids is None else set(carpark_ids)
    step_ids = None if step_ids is None else set(step_ids)
    result: dict[tuple[Any, ...], dict[str, int]] = defaultdict(empty_row)

    stats = DailyStepStat.objects.filter(day__gte=day_from, day__lte=day_to)
    if definition_ids is not None:
        stats = stats.filter(definition_id__in=definition_ids)
    if version_ids is not None:
        stats = stats.filter(version_id__in=version_ids)
    if carpark_ids is not None:
        stats = stats.filter(carpark_id__in=carpark_ids)
    if step_ids is not None:
        stats = stats.filter(step_id__in=step_ids)
    sums = {name: Sum(name) for name in COUNTERS}
    if group:
        grouped = list(stats.values(*group).annotate(**sums, duration_ms_max=Max("duration_ms_max")).order_by())
    else:
        grouped = [stats.aggregate(**sums, duration_ms_max=Max("duration_ms_max"))]
    for r in grouped:
        key = tuple(r[name] for name in group)
        target = result[key]
        for name in COUNTERS:
            target[name] += r[name] or 0
        target["duration_ms_max"] = max(target["duration_ms_max"], r["duration_ms_max"] or 0)

    stored = set(AggregatedDay.objects.filter(day__gte=day_from, day__lte=day_to).values_list("day", flat=True))
    day = day_from
    today = timezone.localdate()
    while day <= min(day_to, today):
        if day not in stored:
            if memo is None:
                live = _live_rows(day)
            else:
                live = memo.get(day)
                if live is None:
                    live = memo[day] = _live_rows(day)
            for (d, v, s, c), figures in live.items():
                if definition_ids is not None and d not in definition_ids:
                    continue
                if version_ids is not None and v not in version_ids:
                    continue
                if carpark_ids is not None and c not in carpark_ids:
                    continue
                if step_ids is not None and s not in step_ids:
                    continue
                values = {"day": day, "definition_id": d, "version_id": v, "step_id": s, "carpark_id": c}
                target = result[tuple(values[name] for name in group)]
                for name in COUNTERS:
                    target[name] += figures[name]
                target["duration_ms_max"] = max(target["duration_ms_max"], figures["duration_ms_max"])
        day += timedelta(days=1)
    return dict(result)
