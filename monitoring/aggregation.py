"""Daily figures from the engine's history, pre-aggregated into ``DailyStepStat`` by the beat.

``compute_rows(start, end)`` reads the history of one time range with three grouped queries and
returns one row of figures per (workflow, version, step, car park). ``aggregate_day(day)`` stores a
day's rows (idempotent: it replaces what the day had). ``summed()`` answers every reporting query
from the stored rows, and computes days that are not stored yet (today, or a day the beat missed)
live from the history with the same code, so a figure never depends on whether the beat has run.
"""

from __future__ import annotations

import hashlib
import time as clock
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Max, Sum
from django.utils import timezone

from monitoring.models import AggregatedDay, DailyStepStat, DailyWorkflowStat
from workflows.models import Process, ProcessEvent, ProcessEventArchive, Task

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
# Caching (settings.MONITORING_CACHE, off in tests): today's figures for 30 s; sums of stored days
# until a day is aggregated again, which bumps the version in the cache.
LIVE_CACHE_SECONDS = 30
STORED_CACHE_SECONDS = 3600
STATS_VERSION_KEY = "monitoring:stats-version"

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


def _history(*fields: str, **filters: Any) -> list[tuple]:
    """Rows of the live history and of its archive (``manage.py history_archive`` moves the events of
    long-finished processes there), so a day's figures are the same before and after archiving."""
    live = ProcessEvent.objects.filter(**filters).values_list(*fields).order_by()
    archived = ProcessEventArchive.objects.filter(**filters).values_list(*fields).order_by()
    return list(live.union(archived, all=True))


def compute_rows(start: datetime, end: datetime) -> dict[Key, dict[str, int]]:
    """Figures of the history between ``start`` and ``end`` per (definition, version, step, car park).

    A handful of index lookups (events by time, their processes by id, earlier entries and first
    claims by process and task) and the counting in Python: joining the whole process table in SQL
    is what makes a day slow on years of history.
    """
    rows: dict[Key, dict[str, int]] = defaultdict(empty_row)
    events = _history(
        "id",
        "process_id",
        "kind",
        "step_id",
        "task_id",
        "duration_ms",
        at__gte=start,
        at__lt=end,
        kind__in=list(KIND_FIELD),
    )
    if not events:
        return {}
    # Timestamps only where they are needed (parsing thousands of them is the slow part).
    completed_at = dict(_history("id", "at", at__gte=start, at__lt=end, kind=Kind.TASK_COMPLETED))
    process_ids = {e[1] for e in events}
    dims = {
        pk: (definition_id, version_id, carpark_id or 0)
        for pk, definition_id, version_id, carpark_id in Process.objects.filter(pk__in=process_ids)
        .values_list("pk", "definition_id", "version_id", "scope_carpark_id")
        .order_by()
    }
    # Rework: an entry into a step the same process had entered before (perhaps on an earlier day).
    entries: dict[tuple[int, str], int] = {}
    for process_id, step_id, event_id in _history(
        "process_id", "step_id", "id", process_id__in=process_ids, kind=Kind.STEP_ENTERED, at__lt=end
    ):
        key = (process_id, step_id)
        entries[key] = min(entries.get(key, event_id), event_id)
    completed_tasks = {e[4] for e in events if e[2] == Kind.TASK_COMPLETED and e[4] is not None}
    tasks = {
        pk: (created_at, due_at)
        for pk, created_at, due_at in Task.objects.filter(pk__in=completed_tasks)
        .values_list("pk", "created_at", "due_at")
        .order_by()
    }
    first_claims: dict[int, datetime] = {}
    for task_id, claimed_at in _history(
        "task_id", "at", task_id__in=completed_tasks, kind__in=[Kind.TASK_CLAIMED, Kind.TASK_DELEGATED]
    ):
        if task_id not in first_claims or claimed_at < first_claims[task_id]:
            first_claims[task_id] = claimed_at

    for event_id, process_id, kind, step_id, task_id, duration_ms in events:
        definition_id, version_id, carpark_id = dims[process_id]
        step = "" if kind in PROCESS_KINDS else step_id
        row = rows[(definition_id, version_id, step, carpark_id)]
        row[KIND_FIELD[kind]] += 1
        if kind == Kind.STEP_LEFT:
            row["duration_ms_sum"] += duration_ms or 0
            row["duration_ms_max"] = max(row["duration_ms_max"], duration_ms or 0)
        elif kind == Kind.STEP_ENTERED:
            if entries.get((process_id, step_id), event_id) < event_id:
                row["reentered"] += 1
        elif kind == Kind.TASK_COMPLETED and task_id in tasks:
            # Waiting (created → first claimed) versus working (→ completed), and the SLA.
            created_at, due_at = tasks[task_id]
            at = completed_at[event_id]
            claimed_at = first_claims.get(task_id)
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
    rollup: dict[tuple[int, int], dict[str, int]] = defaultdict(empty_row)
    for (d, _v, _s, c), figures in rows.items():
        target = rollup[(d, c)]
        for name in COUNTERS:
            target[name] += figures[name]
        target["duration_ms_max"] = max(target["duration_ms_max"], figures["duration_ms_max"])
    DailyWorkflowStat.objects.filter(day=day).delete()
    DailyWorkflowStat.objects.bulk_create(
        DailyWorkflowStat(day=day, definition_id=d, carpark_id=c, **figures) for (d, c), figures in rollup.items()
    )
    marker.events = (
        ProcessEvent.objects.filter(at__gte=start, at__lt=end).count()
        + ProcessEventArchive.objects.filter(at__gte=start, at__lt=end).count()
    )
    marker.computed_at = timezone.now()
    marker.save(update_fields=["events", "computed_at"])
    transaction.on_commit(_bump_stats_version)
    return len(rows)


def _bump_stats_version() -> None:
    """A new generation of stored figures: cached sums of the old one are never read again."""
    try:
        cache.incr(STATS_VERSION_KEY)
    except ValueError:  # not there yet
        cache.set(STATS_VERSION_KEY, clock.time_ns(), None)


def aggregate_pending(*, today: date | None = None, lookback_days: int = 3, backfill_days: int = 400) -> list[date]:
    """Aggregate yesterday and the ``lookback_days`` before it again (late events), plus any day of
    the last ``backfill_days`` that has history but no stored figures. Returns the days done."""
    today = today or timezone.localdate()
    wanted = {today - timedelta(days=n) for n in range(1, lookback_days + 1)}
    firsts = [
        m.objects.order_by("at").values_list("at", flat=True).first() for m in (ProcessEvent, ProcessEventArchive)
    ]
    earliest = min((at for at in firsts if at is not None), default=None)
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


def _caching() -> bool:
    return bool(getattr(settings, "MONITORING_CACHE", True))


def _live_rows(day: date) -> dict[Key, dict[str, int]]:
    """A day's figures computed from the history (today's briefly cached: the dashboard reloads often)."""
    start, end = day_bounds(day)
    if not _caching() or day != timezone.localdate():
        return compute_rows(start, end)
    # Today's period figures may lag by LIVE_CACHE_SECONDS; the live counts (running, overdue, …) never do.
    cache_key = f"monitoring:live:{connection.settings_dict['NAME']}:{day.isoformat()}"
    rows = cache.get(cache_key)
    if rows is None:
        rows = compute_rows(start, end)
        cache.set(cache_key, rows, LIVE_CACHE_SECONDS)
    return rows


def _stored(
    group: tuple[str, ...],
    day_from: date,
    day_to: date,
    definition_ids: set[int] | None,
    version_ids: set[int] | None,
    carpark_ids: set[int] | None,
    step_ids: set[str] | None,
) -> tuple[dict[tuple[Any, ...], dict[str, int]], set[date]]:
    """Sums of the stored days, and which days are stored."""
    result: dict[tuple[Any, ...], dict[str, int]] = defaultdict(empty_row)
    # Totals per day, workflow or car park come from the small roll-up table.
    coarse = step_ids is None and version_ids is None and set(group) <= {"day", "definition_id", "carpark_id"}
    table = DailyWorkflowStat if coarse else DailyStepStat
    stats = table.objects.filter(day__gte=day_from, day__lte=day_to)
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
    return dict(result), stored


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

    cache_key = ""
    if _caching():
        version = cache.get(STATS_VERSION_KEY)
        if version is None:  # never aggregated since the cache started: start a fresh generation
            cache.add(STATS_VERSION_KEY, clock.time_ns(), None)
            version = cache.get(STATS_VERSION_KEY)
        filters = (group, day_from, day_to, *(sorted(x) if x is not None else None for x in
                   (definition_ids, version_ids, carpark_ids, step_ids)))  # fmt: skip
        digest = hashlib.sha256(repr(filters).encode()).hexdigest()[:32]
        cache_key = f"monitoring:stored:{connection.settings_dict['NAME']}:{version}:{digest}"
        hit = cache.get(cache_key)
        if hit is not None:
            stored_sums, stored = hit
            for key, figures in stored_sums.items():
                result[key] = dict(figures)
    if not cache_key or hit is None:
        stored_sums, stored = _stored(group, day_from, day_to, definition_ids, version_ids, carpark_ids, step_ids)
        for key, figures in stored_sums.items():
            result[key] = dict(figures)
        if cache_key:
            cache.set(cache_key, (stored_sums, stored), STORED_CACHE_SECONDS)

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
