"""Retention: the history of long-finished processes moves to ``ProcessEventArchive``.

``history_archive(before=DATE)`` moves the events of processes that finished (completed or
cancelled) before DATE out of the live history table, in batches. On PostgreSQL each batch is one
statement, so one short transaction::

    WITH moved AS (DELETE FROM live WHERE id IN (SELECT id … LIMIT n FOR UPDATE SKIP LOCKED) RETURNING …)
    INSERT INTO archive (…) SELECT … FROM moved

It locks only the event rows it moves (rows another transaction holds are skipped and left for the
next run) and never a process row, so the engine advancing running processes is not held up. A
crash between batches leaves every event in exactly one of the two tables; running it again moves
what is left and nothing twice. Other databases (SQLite under ``make run``) get the same batches
through the ORM in one transaction each.

Only the events move. They are about ten rows per process and the one per-step table read by time
range across all processes (monitoring's daily figures, the XES export), so their number is what
makes the live table's reads grow. Tasks, timers and system jobs stay: one to a few rows per
process, read by process or through indexes on their active states only (the basket's partial
indexes, pending timers, queued jobs), so finished rows cost storage but no time.

Readers of the history read both tables: ``process_events`` (the process and task pages,
``process_show``), the XES export, and monitoring — ``compute_rows`` (re-aggregating a day gives the
same figures after archiving), step-duration percentiles, the rework count and the drill-down lists.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as day_start

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext

from workflows.models import Process, ProcessEvent, ProcessEventArchive

FINISHED = (Process.State.COMPLETED, Process.State.CANCELLED)
# Finished processes looked at per round; their events then move in batches of ``batch_size``.
PROCESS_CHUNK = 1000


@dataclass
class ArchiveBatch:
    number: int
    events: int
    total: int
    seconds: float


@dataclass
class ArchiveResult:
    before: date
    cutoff: datetime
    processes: int = 0  # finished processes before the cutoff that still had live history
    events: int = 0  # events moved (with dry_run: that would move)
    batches: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    batch_sizes: list[int] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def cutoff_for(before: date) -> datetime:
    """The start of ``before`` in the portal's time zone: processes that ended earlier are archived."""
    return timezone.make_aware(datetime.combine(before, day_start.min), timezone.get_current_timezone())


def finished_before(cutoff: datetime):  # type: ignore[no-untyped-def]
    """Processes whose history may move: completed or cancelled, and ended before ``cutoff``."""
    return Process.objects.filter(state__in=FINISHED, ended_at__lt=cutoff)


def _columns() -> list[str]:
    live = [f.column for f in ProcessEvent._meta.concrete_fields]
    archived = {f.column for f in ProcessEventArchive._meta.concrete_fields}
    if set(live) != archived:  # a new history column needs its archive column (and a migration)
        raise RuntimeError(f"history and archive columns differ: {sorted(set(live) ^ archived)}")
    return live


def _move_postgresql(process_ids: list[int], limit: int) -> int:
    columns = ", ".join(f'"{c}"' for c in _columns())
    live, archive = ProcessEvent._meta.db_table, ProcessEventArchive._meta.db_table
    sql = (
        f'WITH moved AS (DELETE FROM "{live}" WHERE id IN ('  # noqa: S608 (table names from model meta)
        f'SELECT id FROM "{live}" WHERE process_id = ANY(%s) ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) '
        f"RETURNING {columns}) "
        f'INSERT INTO "{archive}" ({columns}) SELECT {columns} FROM moved'
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [process_ids, limit])
        return cursor.rowcount


def _move_orm(process_ids: list[int], limit: int) -> int:
    names = [f.attname for f in ProcessEvent._meta.concrete_fields]
    with transaction.atomic():
        rows = list(ProcessEvent.objects.filter(process_id__in=process_ids).order_by("id").values(*names)[:limit])
        if not rows:
            return 0
        ProcessEventArchive.objects.bulk_create(ProcessEventArchive(**row) for row in rows)
        ProcessEvent.objects.filter(id__in=[row["id"] for row in rows]).delete()
        return len(rows)


def history_archive(
    *,
    before: date,
    batch_size: int = 5000,
    dry_run: bool = False,
    progress: Callable[[ArchiveBatch], None] | None = None,
) -> ArchiveResult:
    """Move the history of processes finished before ``before`` to the archive, ``batch_size`` events
    per transaction. ``dry_run`` only counts. ``progress`` hears of every batch committed."""
    if batch_size < 1:
        raise ValueError("The batch size must be at least 1.")
    if before > timezone.localdate():
        raise ValueError(
            gettext("The date %(date)s is in the future; archive only what has finished.")
            % {"date": before.isoformat()}
        )
    cutoff = cutoff_for(before)
    result = ArchiveResult(before=before, cutoff=cutoff, dry_run=dry_run)
    move = _move_postgresql if connection.vendor == "postgresql" else _move_orm
    started = time.perf_counter()
    processes = finished_before(cutoff).order_by("pk").values_list("pk", flat=True)
    # Start at the oldest process that still has live history (one look into the (process, at)
    # index): a monthly run does not walk again through the years already archived.
    oldest = ProcessEvent.objects.order_by("process_id").values_list("process_id", flat=True).first()
    last = (oldest or 0) - 1
    while oldest is not None:
        chunk = list(processes.filter(pk__gt=last)[:PROCESS_CHUNK])
        if not chunk:
            break
        last = chunk[-1]
        if dry_run:
            counts = dict(
                ProcessEvent.objects.filter(process_id__in=chunk)
                .values_list("process_id")
                .annotate(n=Count("id"))
                .order_by()
            )
            result.processes += len(counts)
            events = sum(counts.values())
            result.events += events
            result.batches += -(-events // batch_size)
            continue
        with_history = set(
            ProcessEvent.objects.filter(process_id__in=chunk).order_by().values_list("process_id", flat=True).distinct()
        )
        if not with_history:
            continue
        result.processes += len(with_history)
        ids = sorted(with_history)
        while True:
            batch_started = time.perf_counter()
            moved = move(ids, batch_size)
            if not moved:
                break
            result.batches += 1
            result.events += moved
            result.batch_sizes.append(moved)
            if progress is not None:
                progress(ArchiveBatch(result.batches, moved, result.events, time.perf_counter() - batch_started))
            if moved < batch_size:  # these processes are done (or their rest is locked: next run)
                break
    result.seconds = time.perf_counter() - started
    return result


def process_events(process: Process) -> list:
    """A process's whole history, live and archived, oldest first (with actor and task loaded)."""
    live = list(process.events.select_related("actor", "task").order_by("at", "id"))
    if not process.is_finished:  # only finished processes are ever archived
        return live
    archived = list(
        ProcessEventArchive.objects.filter(process=process).select_related("actor", "task").order_by("at", "id")
    )
    if not archived:
        return live
    return sorted([*archived, *live], key=lambda e: (e.at, e.pk))
