"""The engine's core: advancing a process through its compiled graph inside one transaction.

Internal to the workflows app: other apps call :mod:`workflows.services`. A :class:`Run` collects
every row a transaction writes (events, tasks, timers, jobs) and writes each kind with one
``bulk_create``; signals and Celery dispatches go out only after commit.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

# Hot paths take the connection once (connections[DEFAULT_DB_ALIAS]) instead of using the
# django.db.connection proxy, which looks it up again on every attribute access.
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import F
from django.dispatch import Signal
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from workflows import signals
from workflows.compiler import CompiledGraph, graph_for_version, step_label
from workflows.durations import add_duration, duration_seconds
from workflows.errors import (
    DefinitionNotFound,
    EscalationNotPossible,
    ExpressionError,
    TaskNotAvailable,
    WorkflowError,
)
from workflows.expressions import evaluate
from workflows.models import Process, ProcessEvent, SystemJob, Task, Timer, WorkflowDefinition, WorkflowVersion

log = logging.getLogger(__name__)
MAX_STEPS_PER_RUN = 500
_UNSET = object()
Kind = ProcessEvent.Kind


def jsonable(value: Any) -> Any:
    """Variables are JSON: dates become ISO strings, decimals numbers, model instances their pk."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "_meta") and hasattr(value, "pk"):
        return value.pk
    return str(value)


# The engine's hot paths write their statements by hand on PostgreSQL (one round trip where the
# ORM needs several); everywhere else, and with HAND_WRITTEN off, they use the ORM. The tests run
# the same processes both ways and compare the rows (workflows/tests/test_engine_sql.py).
HAND_WRITTEN = True


def hand_written(connection: Any) -> bool:
    return HAND_WRITTEN and connection.vendor == "postgresql"


class Run:
    """The writes of one transaction that advances processes."""

    def __init__(self, actor: Any = None, now: datetime | None = None):
        self.actor = actor
        self.now = now or timezone.now()
        self.events: list[PendingEvent] = []
        self.tasks: list[Task] = []
        self.timers: list[Timer] = []
        self.jobs: list[SystemJob] = []
        self.new_processes: list[Process] = []
        self.dirty: dict[int, tuple[Process, set[str]]] = {}
        self.after: list[tuple[Signal, type, dict[str, Any]]] = []
        self.dispatch: list[SystemJob] = []
        self.updates: list[tuple[str, list[Any]]] = []

    # -- collecting -------------------------------------------------------------------------
    def event(
        self,
        process: Process | int,
        kind: str,
        step_id: str = "",
        *,
        task: Task | None = None,
        data: dict[str, Any] | None = None,
        duration_ms: int | None = None,
        actor: Any = _UNSET,
    ) -> None:
        who = self.actor if actor is _UNSET else actor
        self.events.append(
            PendingEvent(process, kind, step_id, task, getattr(who, "pk", None), self.now, duration_ms, data or {})
        )

    def touch(self, process: Process, *fields: str) -> None:
        if process.pk is None:
            return
        entry = self.dirty.setdefault(id(process), (process, set()))
        entry[1].update(fields)

    def signal(self, sig: Signal, sender: type, **kwargs: Any) -> None:
        self.after.append((sig, sender, kwargs))

    def update(self, model: type, pk: int, values: dict[str, Any]) -> None:
        """UPDATE one row by primary key when the run is flushed (on PostgreSQL in the same
        statement as the history rows)."""
        connection = connections[DEFAULT_DB_ALIAS]

        if not hand_written(connection):
            model.objects.filter(pk=pk).update(**values)
            return
        self.updates.append(update_sql(model, pk, values))

    # -- writing ----------------------------------------------------------------------------
    def flush(self, *, last: bool = False, guard: tuple[Process, tuple[str, list[Any]]] | None = None) -> bool:
        """Write everything collected.

        On PostgreSQL all of it is one statement (:func:`one_statement`): new rows, the row UPDATEs
        (processes, a job) and the history rows as data-modifying CTEs of each other. Outside a
        transaction that statement commits by itself, with no BEGIN and COMMIT round trips. What
        it cannot write at once (several new processes, as a call activity makes) goes row kind by
        row kind, inside a transaction.

        ``last``: nothing follows in the caller's transaction. If that is the outermost one, the
        statement and its COMMIT then go to PostgreSQL together (one round trip).

        ``guard``: (process, action). Write only if the process's row is still the version it was
        read in (no lock was taken) and ``action`` (a one-row UPDATE ending in its WHERE clause: a
        task's completion, a job's success) changes its row, all in one statement outside any
        transaction (see :func:`advance_unlocked`). Returns False, having written nothing, if not."""
        connection = connections[DEFAULT_DB_ALIAS]

        if guard is not None:  # advance_unlocked checked that this can be one statement here
            if not one_statement(self, connection, guard=guard):
                return False
        elif not (hand_written(connection) and ONE_STATEMENT and one_statement(self, connection, last=last)):
            with transaction.atomic(savepoint=False):
                self._flush_by_kind(connection)
        for process, fields in self.dirty.values():
            if "state" in fields:
                process._update_initial_state()
        after, dispatch = list(self.after), list(self.dispatch)
        if after or dispatch:
            transaction.on_commit(lambda: _after_commit(after, dispatch))
        self.events, self.tasks, self.timers, self.jobs, self.new_processes = [], [], [], [], []
        self.dirty, self.after, self.dispatch, self.updates = {}, [], [], []
        return True

    def _flush_by_kind(self, connection: Any) -> None:
        for process in self.new_processes:  # one by one: a sub-process refers to its parent
            insert_rows([process])
        updates = self.updates
        dirty = list(self.dirty.values())
        if hand_written(connection) and len({p.pk for p, _ in dirty}) == len(dirty):
            # (a statement must not update one row twice: two copies of a process go one by one)
            updates += [process_update_sql(process, fields) for process, fields in dirty]
        else:
            for process, fields in self.dirty.values():
                save_process(process, fields)
        if self.tasks:
            insert_rows(self.tasks)
        if self.jobs:
            for job in self.jobs:
                job.idempotency_key = f"{job.process.pk}:{job.step_id}:{job.step_seq}"
            insert_rows(self.jobs)
        if self.timers:
            insert_rows(self.timers)
        if self.events:
            insert_events(self.events, updates)
        elif updates:
            with connection.cursor() as cursor:
                for sql, params in updates:
                    cursor.execute(sql, params)


class PendingEvent(NamedTuple):
    """A history row waiting for the transaction's single INSERT."""

    process: Process | int
    kind: str
    step_id: str
    task: Task | None
    actor_id: int | None
    at: datetime
    duration_ms: int | None
    data: dict[str, Any]

    @property
    def process_id(self) -> int:
        return self.process if isinstance(self.process, int) else self.process.pk


def insert_events(events: list[PendingEvent], updates: list[tuple[str, list[Any]]] | None = None) -> None:
    """Append history rows with one INSERT. On PostgreSQL the statement is written directly (the
    ORM's per-field preparation of ~25 rows per process was the engine's largest CPU cost), and
    ``updates`` (single-row UPDATEs of distinct rows) run as data-modifying CTEs of it."""
    connection = connections[DEFAULT_DB_ALIAS]

    if not hand_written(connection):
        for sql, params in updates or []:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
        ProcessEvent.objects.bulk_create(
            [
                ProcessEvent(
                    process_id=e.process_id,
                    kind=e.kind,
                    step_id=e.step_id,
                    task_id=e.task.pk if e.task is not None else None,
                    actor_id=e.actor_id,
                    at=e.at,
                    duration_ms=e.duration_ms,
                    data=e.data,
                )
                for e in events
            ]
        )
        return
    updates = updates or []
    params: list[Any] = [value for _, update_params in updates for value in update_params]
    # One array per column, whatever the number of rows: the statement's text stays the same, so
    # psycopg converts it once and PostgreSQL runs one prepared plan.
    params.extend(
        (
            [e.process_id for e in events],
            [e.kind for e in events],
            [e.step_id for e in events],
            [e.task.pk if e.task is not None else None for e in events],
            [e.actor_id for e in events],
            [e.at for e in events],
            [e.duration_ms for e in events],
            [json.dumps(e.data, cls=DjangoJSONEncoder) for e in events],
        )
    )
    ctes = ", ".join(f"u{i} AS ({update})" for i, (update, _) in enumerate(updates))
    sql = (
        (f"WITH {ctes} " if ctes else "") + f'INSERT INTO "{ProcessEvent._meta.db_table}" '  # noqa: S608 (table name from model meta)
        '("process_id", "kind", "step_id", "task_id", "actor_id", "at", "duration_ms", "data") '
        f"SELECT * FROM unnest({_event_arrays(connection)})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


_EVENT_ARRAYS = ""


def _event_arrays(connection: Any) -> str:
    """``%b::<type>[]`` for each inserted column of the history table, from the model's fields."""
    global _EVENT_ARRAYS
    if not _EVENT_ARRAYS:
        names = ("process", "kind", "step_id", "task", "actor", "at", "duration_ms", "data")
        fields = [ProcessEvent._meta.get_field(name) for name in names]
        types = [f.rel_db_type(connection) if f.is_relation else f.db_type(connection) for f in fields]
        # %b: psycopg sends the arrays in binary (no per-element quoting in Python)
        _EVENT_ARRAYS = ", ".join(f"%b::{t.split('(')[0]}[]" for t in types)
    return _EVENT_ARRAYS


def update_sql(model: type, pk: int, values: dict[str, Any]) -> tuple[str, list[Any]]:
    """The SQL and parameters of an UPDATE of one row's fields by primary key."""
    connection = connections[DEFAULT_DB_ALIAS]

    assignments, params = [], []
    for name, value in values.items():
        field = model._meta.get_field(name)
        assignments.append(f'"{field.column}" = %s')
        params.append(field.get_db_prep_save(value, connection))
    params.append(pk)
    return f'UPDATE "{model._meta.db_table}" SET {", ".join(assignments)} WHERE "id" = %s', params  # noqa: S608


_INSERT_FIELDS: dict[type, list[Any]] = {}


def insert_rows(objs: list[Any]) -> None:
    """INSERT new rows of one model in one statement and set their primary keys (like bulk_create,
    without the ORM's per-object machinery on PostgreSQL)."""
    connection = connections[DEFAULT_DB_ALIAS]

    model = type(objs[0])
    if not hand_written(connection):
        model.objects.bulk_create(objs)
        return
    fields = _insert_fields(model)
    params: list[Any] = []
    for obj in objs:
        for field in fields:
            if field.is_relation and getattr(obj, field.attname) is None:
                related = obj._state.fields_cache.get(field.name)
                if related is not None:
                    setattr(obj, field.attname, related.pk)
            params.append(field.get_db_prep_save(field.pre_save(obj, True), connection))
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    columns = ", ".join(f'"{f.column}"' for f in fields)
    sql = (
        f'INSERT INTO "{model._meta.db_table}" ({columns}) VALUES '  # noqa: S608 (names from model meta)
        + ", ".join([row] * len(objs))
        + ' RETURNING "id"'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [r[0] for r in cursor.fetchall()]
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias


# The switch exists for the tests that compare one_statement's rows with the ORM's (bulk_create).
ONE_STATEMENT = True


def one_statement(
    run: Run, connection: Any, *, last: bool = False, guard: tuple[Process, tuple[str, list[Any]]] | None = None
) -> bool:
    """Write a run's new rows, row UPDATEs and history rows with ONE statement (PostgreSQL).

    Each new process, task, job and timer is a data-modifying CTE ``INSERT … RETURNING "id"``; a row
    that refers to another new row of the run takes its id by ``(SELECT "id" FROM <cte>)``, so
    nothing waits for an id to come back. The UPDATEs and the history INSERT are CTEs too; the
    statement returns the new ids. Foreign keys are checked at commit, after every CTE ran.
    Returns False, having written nothing, for what it does not cover (more than one new process,
    one process updated twice): the caller then writes row kind by row kind.

    With ``guard`` (see :meth:`Run.flush`) the first CTE locks the process row only if it is still
    the version read (``xmin``), the second runs the guard's UPDATE only then, and every other CTE
    writes only if that UPDATE did: False if it did not, with nothing written."""
    if len(run.new_processes) > 1:
        return False
    dirty = list(run.dirty.values())
    if len({p.pk for p, _ in dirty}) != len(dirty):
        return False
    if not (run.new_processes or run.tasks or run.jobs or run.timers or run.events or run.updates or dirty or guard):
        return True
    only_if = " WHERE EXISTS (SELECT 1 FROM g)" if guard else ""
    names: dict[int, str] = {}  # id() of a new row → its CTE
    ctes: list[str] = []
    params: list[Any] = []
    new_rows: list[tuple[Any, str]] = []
    groups = (("p", run.new_processes), ("t", run.tasks), ("j", run.jobs), ("m", run.timers))
    for prefix, objs in groups:
        for index, obj in enumerate(objs):
            name = f"n{prefix}{index}"
            values = _new_row_values(obj, names, params, connection)
            if values is None:
                return False
            table = type(obj)._meta.db_table
            columns = ", ".join(f'"{f.column}"' for f in _insert_fields(type(obj)))
            ctes.append(
                f'{name} AS (INSERT INTO "{table}" ({columns}) SELECT {values} '  # noqa: S608 (names from model meta)
                f'FROM json_populate_record(NULL::"{table}", %s::json) r{only_if} RETURNING "id")'
            )
            names[id(obj)] = name
            new_rows.append((obj, name))
    updates = run.updates + [process_update_sql(process, fields) for process, fields in dirty]
    update_params = [value for _, values in updates for value in values]
    also = " AND EXISTS (SELECT 1 FROM g)" if guard else ""
    ctes = [f"u{i} AS ({sql}{also})" for i, (sql, _) in enumerate(updates)] + ctes  # noqa: S608 (by update_sql)
    params = update_params + params
    results = [_id_of(name) for _, name in new_rows]
    if guard:
        process, (action, action_params) = guard
        ctes = [
            f'lp AS (SELECT 1 FROM "{Process._meta.db_table}" WHERE "id" = %s AND "xmin"::text = %s FOR UPDATE)',  # noqa: S608
            f"g AS ({action} AND EXISTS (SELECT 1 FROM lp) RETURNING 1)",  # noqa: S608 (made by update_sql)
            *ctes,
        ]
        params = [process.pk, process._row_version, *action_params, *params]
        results.insert(0, "(SELECT count(*) FROM g)")
    if run.events:
        ctes.append(_events_cte(run.events, names, params, connection, only_if))
    sql = f"WITH {', '.join(ctes)} SELECT " + (", ".join(results) or "1")
    with connection.cursor() as cursor:
        if last and _outermost(connection):
            # The statement and COMMIT in one round trip: both queued in psycopg's pipeline mode,
            # sent with its closing Sync. Django's commit at the end of the atomic block then finds
            # the transaction committed and only runs the on_commit callbacks; a failed COMMIT
            # raises here, and the block rolls back.
            with connection.wrap_database_errors, connection.connection.pipeline():
                cursor.execute(sql, params)
                connection.connection.execute("COMMIT")
        else:
            cursor.execute(sql, params)
        ids = cursor.fetchone() if results else ()
    if guard:
        if not ids[0]:
            return False  # the process changed, or the action's row was not as required: nothing written
        ids = ids[1:]
    for (obj, _), pk in zip(new_rows, ids, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias
    for obj, _ in new_rows:  # foreign keys to rows that had no id yet
        for field in _insert_fields(type(obj)):
            if field.is_relation and getattr(obj, field.attname) is None:
                related = obj._state.fields_cache.get(field.name)
                if related is not None:
                    setattr(obj, field.attname, related.pk)
    for job in run.jobs:
        job.idempotency_key = f"{job.process_id}:{job.step_id}:{job.step_seq}"
    return True


def _outermost(connection: Any) -> bool:
    """Inside one atomic block only, which has not failed: its transaction ends when it exits."""
    return (
        connection.in_atomic_block
        and len(connection.atomic_blocks) == 1
        and not connection.savepoint_ids
        and not connection.needs_rollback
    )


def _id_of(cte: str) -> str:
    return f'(SELECT "id" FROM {cte})'  # noqa: S608 (CTE names made by one_statement)


def _insert_fields(model: type) -> list[Any]:
    fields = _INSERT_FIELDS.get(model)
    if fields is None:
        fields = _INSERT_FIELDS[model] = [f for f in model._meta.concrete_fields if not f.primary_key]
    return fields


def _new_row_values(obj: Any, names: dict[int, str], params: list[Any], connection: Any) -> str | None:
    """The SELECT list of a new row for :func:`one_statement`: the row goes as ONE parameter, a JSON
    object read by ``json_populate_record`` as ``r`` (one value to send instead of one per column,
    and a statement text that stays the same, so psycopg converts it once and PostgreSQL plans it
    once). A reference to a new row written before it takes that row's id from its CTE. None if it
    refers to a new row that is not written before it in the statement."""
    select, row = [], {}
    for field, column, auto in _row_plan(type(obj)):
        if field.is_relation and getattr(obj, field.attname) is None:
            related = obj._state.fields_cache.get(field.name)
            if related is not None:
                if related.pk is None:
                    name = names.get(id(related))
                    if name is None:
                        return None
                    select.append(_id_of(name))
                    continue
                setattr(obj, field.attname, related.pk)
        if field.attname == "idempotency_key" and isinstance(obj, SystemJob):
            process = obj._state.fields_cache.get("process")
            if obj.process_id is None and process is not None:  # the job of a process started in this run
                row[field.column] = f":{obj.step_id}:{obj.step_seq}"
                select.append(f"{_id_of(names[id(process)])}::text || {column}")
                continue
            obj.idempotency_key = f"{obj.process_id}:{obj.step_id}:{obj.step_seq}"
        # JSON columns hold the value itself, None (SQL NULL) included, as the field stores it
        row[field.column] = field.pre_save(obj, True) if auto else getattr(obj, field.attname)
        select.append(column)
    params.append(json.dumps(row, default=_json_scalar))
    return ", ".join(select)


@functools.cache
def _row_plan(model: type) -> list[tuple[Any, str, bool]]:
    """Per inserted field: the field, its column as ``r."<column>"`` and whether its value comes from
    ``pre_save`` (auto_now and auto_now_add dates)."""
    return [
        (f, f'r."{f.column}"', bool(getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)))
        for f in _insert_fields(model)
    ]


def _json_scalar(value: Any) -> str:
    if isinstance(value, datetime | date | Decimal | UUID):
        return value.isoformat() if isinstance(value, datetime | date) else str(value)
    raise TypeError(f"{type(value).__name__} cannot be written by one_statement")


_EVENT_RECORD = ""


def _events_cte(
    events: list[PendingEvent], names: dict[int, str], params: list[Any], connection: Any, only_if: str = ""
) -> str:
    """The history INSERT as a CTE of :func:`one_statement`: all rows as ONE parameter, a JSON array
    read by ``json_to_recordset``; an event of the run's new process or of a new task holds NULL or
    -(k + 1) in place of the id and takes the new row's id from its CTE."""
    global _EVENT_RECORD
    if not _EVENT_RECORD:
        fields = [ProcessEvent._meta.get_field(n) for n in ("process", "task", "actor", "at", "duration_ms")]
        p, t, a, at, d = (f.rel_db_type(connection) if f.is_relation else f.db_type(connection) for f in fields)
        _EVENT_RECORD = f"p {p}, k text, s text, t {t}, a {a}, at {at}, d {d}, data jsonb"
    new_tasks: list[str] = []
    rows = []
    for e in events:
        process = e.process if isinstance(e.process, int) else e.process.pk  # None: the run's new process
        task = e.task
        if task is None:
            task_id = None
        elif task.pk is not None:
            task_id = task.pk
        else:
            new_tasks.append(names[id(task)])
            task_id = -len(new_tasks)
        rows.append(
            {"p": process, "k": e.kind, "s": e.step_id, "t": task_id, "a": e.actor_id, "at": e.at.isoformat(),
             "d": e.duration_ms, "data": e.data}
        )  # fmt: skip
    params.append(json.dumps(rows, cls=DjangoJSONEncoder))
    new_process = [name for name in names.values() if name.startswith("np")]
    process = f"COALESCE(x.p, {_id_of(new_process[0])})" if new_process else "x.p"
    if new_tasks:
        ids = ", ".join(_id_of(name) for name in new_tasks)
        task = f"CASE WHEN x.t < 0 THEN (ARRAY[{ids}])[-x.t] ELSE x.t END"
    else:
        task = "x.t"
    return (
        f'ev AS (INSERT INTO "{ProcessEvent._meta.db_table}" '  # noqa: S608 (table name from model meta)
        '("process_id", "kind", "step_id", "task_id", "actor_id", "at", "duration_ms", "data") '
        f"SELECT {process}, x.k, x.s, {task}, x.a, x.at, x.d, x.data "
        f"FROM json_to_recordset(%s::json) AS x({_EVENT_RECORD}){only_if})"
    )


def _after_commit(after: list[tuple[Signal, type, dict[str, Any]]], dispatch: list[SystemJob]) -> None:
    if dispatch:
        dispatch_jobs(dispatch)
    for sig, sender, kwargs in after:
        try:
            sig.send(sender=sender, **kwargs)
        except Exception:  # a receiver's bug must not break the engine's caller after commit
            log.exception("workflow signal receiver failed")


def signal_after_commit(sig: Signal, sender: type, **kwargs: Any) -> None:
    """Send ``sig`` once the current transaction commits (at once in autocommit mode)."""
    transaction.on_commit(lambda: _after_commit([(sig, sender, kwargs)], []))


def dispatch_jobs(jobs: list[SystemJob]) -> None:
    """Hand jobs to Celery. A lost message is harmless: the beat tick re-sends stale queued jobs."""
    if not getattr(settings, "WORKFLOWS_DISPATCH", True):
        return
    from workflows.tasks import run_system_step

    for job in jobs:
        try:
            run_system_step.apply_async(
                args=[job.pk],
                soft_time_limit=max(1, int(job.timeout_seconds)),
                time_limit=max(1, int(job.timeout_seconds)) + 30,
            )
        except Exception:
            log.exception("could not send system job %s to the broker; the beat tick will retry", job.pk)


# -- process helpers ---------------------------------------------------------------------------
def published_version(key: str) -> WorkflowVersion:
    """The latest published version of ``key`` (only its id, definition, number and state loaded)."""
    connection = connections[DEFAULT_DB_ALIAS]

    if hand_written(connection):
        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT v."id", v."definition_id", v."number", v."state" FROM "{WorkflowVersion._meta.db_table}" v '  # noqa: S608
                f'JOIN "{WorkflowDefinition._meta.db_table}" d ON d."id" = v."definition_id" '
                'WHERE d."key" = %s AND v."state" = %s ORDER BY v."number" DESC LIMIT 1',
                [key, WorkflowVersion.State.PUBLISHED],
            )
            row = cursor.fetchone()
        version = (
            WorkflowVersion.from_db(connection.alias, ["id", "definition_id", "number", "state"], list(row))
            if row
            else None
        )
    else:
        version = (
            WorkflowVersion.objects.filter(definition__key=key, state=WorkflowVersion.State.PUBLISHED)
            .only("id", "definition_id", "number", "state")
            .order_by("-number")
            .first()
        )
    if version is None:
        raise DefinitionNotFound(f"There is no published workflow with the key {key!r}.")
    return version


def new_process(
    run: Run,
    version: WorkflowVersion,
    *,
    business_object: Any = None,
    variables: dict[str, Any] | None = None,
    started_by: Any = None,
    parent: Process | None = None,
) -> Process:
    process = Process(
        definition_id=version.definition_id,
        version=version,
        variables=jsonable(variables or {}),
        started_by=started_by,
        started_at=run.now,
        parent=parent,
        parent_step_seq=parent.step_seq if parent else None,
    )
    if business_object is not None:
        from django.contrib.contenttypes.models import ContentType

        process.content_type = ContentType.objects.get_for_model(business_object)
        process.object_id = business_object.pk
        carpark_id = getattr(business_object, "workflow_carpark_id", None)
        process.scope_carpark_id = int(carpark_id) if carpark_id is not None else None
        title = getattr(business_object, "workflow_title", None)
        process.title = str(title if title is not None else business_object)[:200]
        process._business_object_cache = business_object
    run.new_processes.append(process)
    run.event(process, Kind.PROCESS_STARTED, data={"version": version.number})
    return process


def lock_process(process_id: int) -> Process:
    """Load a process with a row lock (SELECT … FOR UPDATE) for the rest of the transaction."""
    connection = connections[DEFAULT_DB_ALIAS]

    if not hand_written(connection):
        return Process.objects.select_for_update().get(pk=process_id)
    processes = rows_of(Process)
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT {processes.columns()} FROM "{Process._meta.db_table}" WHERE "id" = %s FOR UPDATE',  # noqa: S608
            [process_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise Process.DoesNotExist(f"process #{process_id} does not exist")
    return processes.build(row, connection)


def lock_process_and_update(process_id: int, update: tuple[str, list[Any]], *, version_id: int) -> tuple[Process, bool]:
    """Lock a process (as :func:`lock_process`) and, only if it is running on ``version_id``, run
    ``update`` (a one-row UPDATE ending in its WHERE clause), in one statement on PostgreSQL. The
    process row is locked first, as everywhere else. Returns the process and whether the UPDATE
    changed its row."""
    connection = connections[DEFAULT_DB_ALIAS]

    processes = rows_of(Process)
    sql, params = update
    with connection.cursor() as cursor:
        cursor.execute(
            f'WITH p AS (SELECT {processes.columns()} FROM "{Process._meta.db_table}" WHERE "id" = %s FOR UPDATE), '  # noqa: S608 (names from model meta)
            f'u AS ({sql} AND EXISTS (SELECT 1 FROM p WHERE p."state" = %s AND p."version_id" = %s) RETURNING 1) '
            f"SELECT p.*, (SELECT count(*) FROM u) FROM p",
            [process_id, *params, Process.State.RUNNING, version_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise Process.DoesNotExist(f"process #{process_id} does not exist")
    return processes.build(row[:-1], connection), bool(row[-1])


def load_task(task_id: int) -> Task | None:
    """A task for an action (claim, complete) with its process, in one statement. On PostgreSQL the
    process carries the version of its row as read (``_row_version``, PostgreSQL's ``xmin``), so
    a completion can be written without locking first if the row is still that version (see
    :func:`one_statement`'s ``guard``)."""
    connection = connections[DEFAULT_DB_ALIAS]

    if not hand_written(connection):
        return Task.objects.filter(pk=task_id).select_related("process").first()
    tasks, processes = rows_of(Task), rows_of(Process)
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT {tasks.columns("t")}, {processes.columns("p")}, p."xmin"::text FROM "{Task._meta.db_table}" t '  # noqa: S608 (names from model meta)
            f'JOIN "{Process._meta.db_table}" p ON p."id" = t."process_id" WHERE t."id" = %s',
            [task_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    task = tasks.build(row[: tasks.width], connection)
    task.process = processes.build(row[tasks.width : -1], connection)
    task.process._row_version = row[-1]
    return task


def claim_task(task_id: int, user_id: int, condition: str, params: list[Any], now: datetime) -> Task | None:
    """open → claimed for ``user_id`` if the task matches ``condition`` (an SQL condition on the
    task's columns with its ``params``: the user's right, see services.work_condition), with its
    history row, returning the task (as :func:`load_task`); None if nothing was claimed. One
    statement on PostgreSQL."""
    connection = connections[DEFAULT_DB_ALIAS]

    sql = (
        f'WITH claimed AS (UPDATE "{Task._meta.db_table}" SET "state" = %s, "assignee_id" = %s, "claimed_at" = %s '  # noqa: S608 (names from model meta and work_condition)
        f'WHERE "id" = %s AND "state" = %s AND {condition} RETURNING {rows_of(Task).columns()}), '
        f'event AS (INSERT INTO "{ProcessEvent._meta.db_table}" '
        f'("process_id", "kind", "step_id", "task_id", "actor_id", "at", "duration_ms", "data") '
        f'SELECT "process_id", %s, "step_id", "id", %s, %s, NULL, \'{{}}\'::jsonb FROM claimed) '
        f'SELECT claimed.*, p."version_id", p."state" FROM claimed JOIN "{Process._meta.db_table}" p '
        f'ON p."id" = claimed."process_id"'
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [Task.State.CLAIMED, user_id, now, task_id, Task.State.OPEN, *params, Kind.TASK_CLAIMED, user_id, now],
        )
        row = cursor.fetchone()
    return task_with_process(row, connection) if row is not None else None


def execute_update(update: tuple[str, list[Any]]) -> int:
    """Run an UPDATE made by :func:`update_sql`; the number of rows it changed."""
    sql, params = update
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def task_with_process(row: Any, connection: Any) -> Task:
    """A task from a row of its columns (in :func:`rows_of` order) followed by its process's
    ``version_id`` and ``state``; ``task.process`` holds only those (and the id)."""
    task = rows_of(Task).build(row[:-2], connection)
    task.process = Process.from_db(connection.alias, ["id", "version_id", "state"], [task.process_id, *row[-2:]])
    return task


def process_update_sql(process: Process, fields: set[str]) -> tuple[str, list[Any]]:
    """The UPDATE of a locked process's changed fields (and ``updated_at``)."""
    process.updated_at = timezone.now()
    names = sorted(fields | {"updated_at"})
    return update_sql(
        Process, process.pk, {name: getattr(process, Process._meta.get_field(name).attname) for name in names}
    )


def save_process(process: Process, fields: set[str]) -> None:
    """Write the changed fields of a locked process with one UPDATE."""
    connection = connections[DEFAULT_DB_ALIAS]

    if not hand_written(connection):
        process.updated_at = timezone.now()
        process.save(update_fields=sorted(fields | {"updated_at"}))
        return
    sql, params = process_update_sql(process, fields)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    if "state" in fields:
        process._update_initial_state()


def _set_step(run: Run, process: Process, step_id: str) -> None:
    process.current_step = step_id
    process.step_seq += 1
    process.step_entered_at = run.now
    run.touch(process, "current_step", "step_seq", "step_entered_at")
    run.event(process, Kind.STEP_ENTERED, step_id)


def leave_step(run: Run, process: Process, data: dict[str, Any] | None = None) -> None:
    duration = None
    if process.step_entered_at:
        duration = int((run.now - process.step_entered_at).total_seconds() * 1000)
    run.event(process, Kind.STEP_LEFT, process.current_step, data=data, duration_ms=duration)


def set_variables(run: Run, process: Process, values: dict[str, Any], *, source: str = "") -> None:
    if not values:
        return
    values = jsonable(values)
    changed = {k: v for k, v in values.items() if process.variables.get(k, _UNSET) != v}
    if not changed:
        return
    process.variables = {**process.variables, **changed}
    run.touch(process, "variables")
    run.event(
        process,
        Kind.VARIABLES_CHANGED,
        process.current_step,
        data={"source": source, "names": sorted(changed)},
    )


def open_incident(run: Run, process: Process, error: str) -> None:
    process.incident_open = True
    process.incident_step = process.current_step
    process.incident_error = error[:4000]
    process.incident_at = run.now
    run.touch(process, "incident_open", "incident_step", "incident_error", "incident_at")
    run.event(process, Kind.INCIDENT_OPENED, process.current_step, data={"error": error[:2000]})
    run.signal(signals.incident_opened, Process, process=process)


def close_incident(run: Run, process: Process) -> None:
    process.incident_open = False
    process.incident_error = ""
    run.touch(process, "incident_open", "incident_error")


# -- advancing ---------------------------------------------------------------------------------
def enter(run: Run, process: Process, graph: CompiledGraph, step_id: str) -> None:
    """Enter ``step_id`` and keep going until the process waits (task, job, timer, message) or ends."""
    for _ in range(MAX_STEPS_PER_RUN):
        step = graph.step(step_id)
        _set_step(run, process, step_id)
        kind = step["type"]
        if kind == "start":
            nxt = step["next"]
        elif kind == "end":
            leave_step(run, process)
            finish(run, process, result=step.get("result", ""))
            return
        elif kind == "user":
            create_task(run, process, step)
            return
        elif kind == "system":
            create_job(run, process, step)
            return
        elif kind == "decision":
            try:
                nxt = decide(run, process, graph, step)
            except ExpressionError as exc:
                open_incident(run, process, f"Decision '{step_id}': {exc}")
                return
        elif kind == "wait":
            if start_wait(run, process, step):
                return
            nxt = step["next"]
        elif kind == "call":
            start_call(run, process, step)
            return
        else:  # pragma: no cover - the compiler rejects unknown kinds
            raise WorkflowError(f"step '{step_id}' has unknown type {kind!r}")
        leave_step(run, process)
        step_id = nxt
    open_incident(run, process, f"More than {MAX_STEPS_PER_RUN} steps in one go; stopped at '{step_id}'.")


def decide(run: Run, process: Process, graph: CompiledGraph, step: dict[str, Any]) -> str:
    for index, branch in enumerate(step["branches"]):
        value = evaluate(graph.conditions[(step["id"], index)], process.variables, now=run.now)
        if not isinstance(value, bool):
            raise ExpressionError(f"the condition {branch['when']!r} gave {value!r}, not true or false")
        if value:
            run.event(process, Kind.DECISION, step["id"], data={"branch": index + 1, "when": branch["when"]})
            return branch["next"]
    run.event(process, Kind.DECISION, step["id"], data={"branch": "default"})
    return step["default"]


def create_task(run: Run, process: Process, step: dict[str, Any]) -> Task:
    due_at = add_duration(run.now, step["due_in"]) if step.get("due_in") else None
    task = Task(
        process=process,
        step_id=step["id"],
        step_seq=process.step_seq,
        name=step.get("name") or step["id"],
        instructions=step.get("instructions", ""),
        role=step["role"],
        scope_carpark_id=process.scope_carpark_id if step.get("scope") == "carpark" else None,
        due_at=due_at,
        priority=step.get("priority", Task.Priority.NORMAL),
        created_at=run.now,
    )
    run.tasks.append(task)
    run.event(process, Kind.TASK_CREATED, step["id"], task=task, data={"role": task.role})
    schedule_escalation(run, process, step, task, level=1)
    timeout = step.get("timeout")
    if timeout:
        # Belongs to the step, not to this task: escalated copies stay under the same deadline.
        step_timer(
            run, process, Timer.Kind.TASK_TIMEOUT, step["id"], add_duration(run.now, timeout["after"]),
            data={"next": timeout["next"]}, task=task,
        )  # fmt: skip
    run.signal(signals.task_created, Task, task=task)
    return task


def step_timer(
    run: Run,
    process: Process,
    kind: str,
    step_id: str,
    due_at: datetime,
    *,
    data: dict[str, Any] | None = None,
    task: Task | None = None,
) -> None:
    """A timer for the step the process is on now (stale, and cancelled when it fires, once it has left)."""
    run.timers.append(
        Timer(
            process=process,
            task=task,
            kind=kind,
            step_id=step_id,
            step_seq=process.step_seq,
            due_at=due_at,
            data=data or {},
            created_at=run.now,
        )
    )


def schedule_escalation(run: Run, process: Process, step: dict[str, Any], task: Task, *, level: int) -> None:
    chain = step.get("escalation") or []
    if level > len(chain):
        return
    base = task.due_at or run.now
    step_timer(
        run, process, Timer.Kind.ESCALATION, step["id"], add_duration(base, chain[level - 1]["after"]),
        data={"level": level, "to": chain[level - 1]["to"]}, task=task,
    )  # fmt: skip


def escalate(run: Run, process: Process, graph: CompiledGraph, task: Task, *, reason: str) -> Task:
    """Mark ``task`` escalated and create its copy for the next role in the chain (inputs kept)."""
    step = graph.step(task.step_id)
    chain = step.get("escalation") or []
    level = task.escalation_level + 1
    if level <= len(chain):
        target = chain[level - 1]["to"]
    elif not chain and level == 1:
        target = getattr(settings, "WORKFLOWS_DEFAULT_ESCALATION_ROLE", "Supervisor")
    else:
        raise EscalationNotPossible(f"Task '{task.name}' is already at its last escalation level ({task.role}).")
    updated = Task.objects.filter(pk=task.pk, state__in=Task.ACTIVE_STATES).update(state=Task.State.ESCALATED)
    if not updated:
        raise TaskNotAvailable(f"Task '{task.name}' is no longer open, so it cannot be escalated.")
    task.__dict__["state"] = Task.State.ESCALATED
    new = Task(
        process=process,
        step_id=task.step_id,
        step_seq=task.step_seq,
        name=task.name,
        instructions=task.instructions,
        role=target,
        scope_carpark_id=task.scope_carpark_id,
        due_at=task.due_at,
        priority=task.priority,
        escalation_level=level,
        escalated_from=task,
        inputs=dict(task.inputs or {}),
        created_at=run.now,
    )
    run.tasks.append(new)
    run.event(
        process,
        Kind.TASK_ESCALATED,
        task.step_id,
        task=new,
        data={"from_task": task.pk, "from_role": task.role, "to_role": target, "level": level, "reason": reason},
    )
    schedule_escalation(run, process, step, new, level=level + 1)
    run.signal(signals.task_escalated, Task, task=new, previous=task, reason=reason)
    return new


def create_job(run: Run, process: Process, step: dict[str, Any]) -> SystemJob:
    job = SystemJob(
        process=process,
        step_id=step["id"],
        step_seq=process.step_seq,
        task_name=step["task"],
        max_attempts=step["retry"]["max_attempts"],
        backoff_seconds=duration_seconds(step["retry"]["backoff"]),
        timeout_seconds=duration_seconds(step["timeout"]),
        run_after=run.now,
        created_at=run.now,
    )
    run.jobs.append(job)
    run.dispatch.append(job)
    return job


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None and (day := parse_date(value)) is not None:
            parsed = datetime(day.year, day.month, day.day)
        if parsed is not None and timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed)
        return parsed
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.get_current_timezone())
    return None


def start_wait(run: Run, process: Process, step: dict[str, Any]) -> bool:
    """Set up a wait; False when it is already over (an until date in the past)."""
    sid = step["id"]
    if step.get("duration"):
        due = add_duration(run.now, step["duration"])
    elif step.get("until_variable"):
        name = step["until_variable"]
        due = _as_datetime(process.variables.get(name))
        if due is None:
            open_incident(
                run,
                process,
                f"Wait '{sid}': variable '{name}' must hold a date or date-time, not {process.variables.get(name)!r}.",
            )
            return True
        if due <= run.now:
            return False
    else:
        process.waiting_for = step["message"]
        run.touch(process, "waiting_for")
        timeout = step.get("timeout")
        if timeout:
            step_timer(
                run, process, Timer.Kind.MESSAGE_TIMEOUT, sid, add_duration(run.now, timeout["after"]),
                data={"next": timeout["next"], "message": step["message"]},
            )  # fmt: skip
        return True
    step_timer(run, process, Timer.Kind.WAIT, sid, due)
    return True


def start_call(run: Run, process: Process, step: dict[str, Any]) -> None:
    try:
        version = published_version(step["definition"])
    except DefinitionNotFound as exc:
        open_incident(run, process, f"Call '{step['id']}': {exc}")
        return
    child = new_process(
        run,
        version,
        business_object=process.business_object if process.content_type_id else None,
        variables=dict(process.variables),
        started_by=run.actor,
        parent=process,
    )
    child._parent_in_run = process
    run.event(process, Kind.SUBPROCESS_STARTED, step["id"], data={"definition": step["definition"]})
    enter(run, child, graph_for_version(version.pk), graph_for_version(version.pk).start)


def finish(run: Run, process: Process, *, result: str) -> None:
    process.complete(result=result)
    process.waiting_for = ""
    run.touch(process, "state", "result", "ended_at", "waiting_for")
    run.event(process, Kind.PROCESS_COMPLETED, process.current_step, data={"result": result})
    run.signal(signals.process_finished, Process, process=process)
    if process.parent_id or getattr(process, "_parent_in_run", None):
        parent = getattr(process, "_parent_in_run", None) or lock_process(process.parent_id)
        if parent.state != Process.State.RUNNING or parent.step_seq != process.parent_step_seq:
            return
        graph = graph_for_version(parent.version_id)
        step = graph.step(parent.current_step)
        values = dict(process.variables.items())
        values[f"{step['id']}_result"] = result
        set_variables(run, parent, values, source=f"sub-process {process.pk or ''}".strip())
        leave_step(run, parent, data={"result": result})
        enter(run, parent, graph, step["next"])


def send_after(run: Run, signal: Signal, sender: type, **kwargs: Any) -> None:
    run.signal(signal, sender, **kwargs)


# -- system steps ------------------------------------------------------------------------------
class RowReader:
    """A model's concrete fields, their column list and value converters, worked out once: builds
    instances from rows of hand-written SELECTs the way a queryset does."""

    def __init__(self, model: type) -> None:
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [f.attname for f in self.fields]
        self.converters = [(i, f.from_db_value) for i, f in enumerate(self.fields) if hasattr(f, "from_db_value")]
        self.width = len(self.fields)

    @functools.cache  # noqa: B019 (one reader per model, for the life of the process)
    def columns(self, alias: str = "") -> str:
        prefix = f"{alias}." if alias else ""
        return ", ".join(f'{prefix}"{f.column}"' for f in self.fields)

    def build(self, values: Any, db_connection: Any) -> Any:
        values = list(values)
        for i, convert in self.converters:
            if values[i] is not None:
                values[i] = convert(values[i], None, db_connection)
        return self.model.from_db(db_connection.alias, self.attnames, values)


@functools.cache
def rows_of(model: type) -> RowReader:
    return RowReader(model)


def take_job(job_id: int, now: datetime) -> SystemJob | None:
    """Mark a queued, due job running (attempts + 1) and load it with its process.

    One conditional UPDATE decides who runs the job; on PostgreSQL it also returns the job and
    its process in the same statement.
    """
    connection = connections[DEFAULT_DB_ALIAS]

    if not hand_written(connection):
        taken = SystemJob.objects.filter(pk=job_id, state=SystemJob.State.QUEUED, run_after__lte=now).update(
            state=SystemJob.State.RUNNING, attempts=F("attempts") + 1, started_at=now
        )
        return SystemJob.objects.select_related("process").get(pk=job_id) if taken else None
    jobs, processes = rows_of(SystemJob), rows_of(Process)
    columns = f'{jobs.columns("j")}, {processes.columns("p")}, p."xmin"::text'
    job_table, process_table = SystemJob._meta.db_table, Process._meta.db_table
    sql = (
        f'WITH j AS (UPDATE "{job_table}" SET "state" = %s, "attempts" = "attempts" + 1, "started_at" = %s '  # noqa: S608 (table names from model meta)
        f'WHERE "id" = %s AND "state" = %s AND "run_after" <= %s RETURNING *) '
        f'SELECT {columns} FROM j JOIN "{process_table}" p ON p."id" = j."process_id"'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [SystemJob.State.RUNNING, now, job_id, SystemJob.State.QUEUED, now])
        row = cursor.fetchone()
    if row is None:
        return None
    job = jobs.build(row[: jobs.width], connection)
    job.process = processes.build(row[jobs.width : -1], connection)
    job.process._row_version = row[-1]  # as in load_task: a success may be written without a lock
    return job


def execute_job(job_id: int) -> str:
    """Run one queued system job: the code the Celery worker runs and the test helper calls.

    Returns what happened: "skipped" (not queued / not due / already taken), "stale",
    "succeeded", "retrying" or "failed".
    """
    from workflows.registry import PermanentError, SystemTaskContext, get_task

    now = timezone.now()
    job = take_job(job_id, now)
    if job is None:
        return "skipped"
    process = job.process
    if process.state == Process.State.SUSPENDED:
        SystemJob.objects.filter(pk=job_id).update(state=SystemJob.State.QUEUED, attempts=F("attempts") - 1)
        return "skipped"
    if process.state != Process.State.RUNNING or process.step_seq != job.step_seq:
        SystemJob.objects.filter(pk=job_id).update(state=SystemJob.State.CANCELLED, finished_at=now)
        return "stale"

    error: str | None = None
    permanent = False
    result: dict[str, Any] | None = None
    started = time.monotonic()
    try:
        registered = get_task(job.task_name)
        ctx = SystemTaskContext(
            process=process,
            step_id=job.step_id,
            variables=dict(process.variables),
            idempotency_key=job.idempotency_key,
            attempt=job.attempts,
        )
        result = registered.func(ctx)
        if result is not None and not isinstance(result, dict):
            raise PermanentError(f"system task {job.task_name} returned {type(result).__name__}, not a dict")
    except PermanentError as exc:
        error, permanent = f"{type(exc).__name__}: {exc}", True
    except KeyError as exc:
        error, permanent = str(exc.args[0] if exc.args else exc), True
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    elapsed_ms = int((time.monotonic() - started) * 1000)
    if error is None:

        def succeeded() -> Run:
            run = Run()
            _job_succeeded(run, job, process, graph_for_version(process.version_id), result, elapsed_ms)
            return run

        def only_if_running(run: Run) -> tuple[str, list[Any]]:
            sql, params = update_sql(SystemJob, job.pk, _job_success(result, run.now))
            return sql + ' AND "state" = %s', [*params, SystemJob.State.RUNNING]

        if advance_unlocked(process, succeeded, only_if_running):
            return "succeeded"

    with transaction.atomic():
        process = lock_process(process.pk)
        if process.state == Process.State.SUSPENDED and error is None:
            SystemJob.objects.filter(pk=job_id).update(state=SystemJob.State.QUEUED, attempts=F("attempts") - 1)
            return "skipped"
        if process.state != Process.State.RUNNING or process.step_seq != job.step_seq:
            SystemJob.objects.filter(pk=job_id).update(state=SystemJob.State.CANCELLED, finished_at=timezone.now())
            return "stale"
        run = Run()
        graph = graph_for_version(process.version_id)
        step = graph.step(job.step_id)
        attempt_data: dict[str, Any] = {"task": job.task_name, "attempt": job.attempts, "ok": error is None}
        if error is None:
            run.update(SystemJob, job_id, _job_success(result, run.now))
            _job_succeeded(run, job, process, graph, result, elapsed_ms)
            outcome = "succeeded"
        else:
            attempt_data["error"] = error[:2000]
            run.event(process, Kind.SYSTEM_ATTEMPT, job.step_id, data=attempt_data, duration_ms=elapsed_ms)
            if not permanent and job.attempts < job.max_attempts:
                delay = min(job.backoff_seconds * (2 ** (job.attempts - 1)), 3600.0)
                run_after = run.now + timedelta(seconds=delay)
                SystemJob.objects.filter(pk=job_id).update(
                    state=SystemJob.State.QUEUED, run_after=run_after, last_error=error
                )
                job.run_after = run_after
                if delay <= 0:
                    run.dispatch.append(job)
                else:
                    run.timers.append(
                        Timer(
                            process=process,
                            job=job,
                            kind=Timer.Kind.RETRY,
                            step_id=job.step_id,
                            step_seq=job.step_seq,
                            due_at=run_after,
                            data={"attempt": job.attempts + 1},
                            created_at=run.now,
                        )
                    )
                outcome = "retrying"
            else:
                SystemJob.objects.filter(pk=job_id).update(
                    state=SystemJob.State.FAILED, finished_at=run.now, last_error=error
                )
                tries = f"after {job.attempts} attempt{'s' if job.attempts != 1 else ''}"
                where = f"“{step_label(job.step_id, step.get('name'))}” ({job.step_id}, {job.task_name})"
                open_incident(run, process, f"System step {where} failed {tries}: {error}")
                outcome = "failed"
        run.flush(last=True)
    return outcome


def _job_success(result: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    return {"state": SystemJob.State.SUCCEEDED, "finished_at": now, "result": jsonable(result), "last_error": ""}


def _job_succeeded(
    run: Run, job: SystemJob, process: Process, graph: CompiledGraph, result: dict[str, Any] | None, elapsed_ms: int
) -> None:
    """The attempt's history and the process moved on past the step, collected in ``run``."""
    data = {"task": job.task_name, "attempt": job.attempts, "ok": True}
    run.event(process, Kind.SYSTEM_ATTEMPT, job.step_id, data=data, duration_ms=elapsed_ms)
    set_variables(run, process, result or {}, source=job.task_name)
    leave_step(run, process)
    enter(run, process, graph, graph.step(job.step_id)["next"])


def advance_unlocked(
    process: Process, build: Callable[[], Run], action: Callable[[Run], tuple[str, list[Any]]]
) -> bool:
    """Move ``process`` on without a lock or a transaction of its own (PostgreSQL, outside a caller's
    transaction): ``build`` collects the move in a Run from the process as it was read (its row
    version, ``xmin``, read with it), and one statement writes it only if the row is still that
    version and ``action(run)`` (a one-row UPDATE ending in its WHERE clause: the task's completion,
    the job's success) changes its row (:meth:`Run.flush`'s guard). False, with nothing written
    and the process as read, where that does not hold or the move read the database (a call
    activity, a parent to resume): the caller then takes the locked way."""
    connection = connections[DEFAULT_DB_ALIAS]
    if (
        getattr(process, "_row_version", None) is None
        or connection.in_atomic_block
        or not (hand_written(connection) and ONE_STATEMENT)
    ):
        return False
    read_as, reads = process.__dict__.copy(), []

    def counting(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        reads.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counting):
        run = build()
    if not reads and run.flush(guard=(process, action(run))):
        return True
    process.__dict__.clear()
    process.__dict__.update(read_as)
    return False


# -- timers ------------------------------------------------------------------------------------
def fire_timer(run: Run, timer: Timer) -> bool | None:
    """Fire one locked timer; True when it took effect, False when stale, None to keep it pending."""
    process = lock_process(timer.process_id)
    if process.state == Process.State.SUSPENDED:
        return None  # stays pending until the process is resumed
    if process.state != Process.State.RUNNING:
        return False
    graph = graph_for_version(process.version_id)
    if timer.kind == Timer.Kind.RETRY:
        job = SystemJob.objects.filter(pk=timer.job_id, state=SystemJob.State.QUEUED).first()
        if job is None:
            return False
        run.dispatch.append(job)
        return True
    if timer.step_seq != process.step_seq:
        return False
    if timer.kind == Timer.Kind.ESCALATION:
        task = Task.objects.filter(pk=timer.task_id, state__in=Task.ACTIVE_STATES).first()
        if task is None:
            return False
        run.event(process, Kind.TIMER_FIRED, timer.step_id, task=task, data={"kind": timer.kind})
        try:
            escalate(run, process, graph, task, reason="overdue")
        except (EscalationNotPossible, TaskNotAvailable):
            return False
        return True
    run.event(process, Kind.TIMER_FIRED, timer.step_id, data={"kind": timer.kind})
    step = graph.step(timer.step_id)
    if timer.kind == Timer.Kind.WAIT:
        leave_step(run, process)
        enter(run, process, graph, step["next"])
        return True
    if timer.kind not in (Timer.Kind.MESSAGE_TIMEOUT, Timer.Kind.TASK_TIMEOUT):
        return False
    # A timeout ends the step and takes its own path (the timer names it; a process migrated since
    # has a timer of its new version).
    following = timer.data.get("next") or step["timeout"]["next"]
    if timer.kind == Timer.Kind.MESSAGE_TIMEOUT:
        process.waiting_for = ""
        run.touch(process, "waiting_for")
    else:
        _cancel_step_tasks(run, process, timer, next_step=graph.step(following).get("name", following))
    leave_step(run, process, data={"timeout": True})
    enter(run, process, graph, following)
    return True


def _cancel_step_tasks(run: Run, process: Process, timer: Timer, *, next_step: str) -> None:
    """Cancel the open tasks of the timer's step (escalated copies included). The process row is
    locked and still on this step: a completion that won the race has moved step_seq on (the timer
    is then stale); one that comes after finds its task cancelled."""
    open_tasks = list(Task.objects.filter(process_id=process.pk, step_seq=timer.step_seq, state__in=Task.ACTIVE_STATES))
    Task.objects.filter(pk__in=[t.pk for t in open_tasks]).update(state=Task.State.CANCELLED)
    for task in open_tasks:
        task.__dict__["state"] = Task.State.CANCELLED
        run.event(process, Kind.TASK_CANCELLED, timer.step_id, task=task, data={"reason": "timeout"})
        run.signal(signals.task_timed_out, Task, task=task, next_step=next_step)


def fire_due_timers(now: datetime | None = None, *, batch: int = 50) -> int:
    """Fire every due timer; each is taken with SELECT … FOR UPDATE SKIP LOCKED, so concurrent
    tickers never fire one twice. Returns how many timers took effect."""
    fired = 0
    now = now or timezone.now()
    seen: set[int] = set()
    while True:
        with transaction.atomic():
            timers = list(
                Timer.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(state=Timer.State.PENDING, due_at__lte=now)
                .exclude(process__state=Process.State.SUSPENDED)
                .exclude(pk__in=seen)
                .order_by("due_at", "id")[:batch]
            )
            if not timers:
                return fired
            for timer in timers:
                seen.add(timer.pk)
                run = Run(now=now)
                try:
                    with transaction.atomic():
                        effective = fire_timer(run, timer)
                        run.flush()
                except Exception:
                    log.exception("timer %s failed to fire; it stays pending", timer.pk)
                    continue
                if effective is None:
                    continue
                Timer.objects.filter(pk=timer.pk).update(
                    state=Timer.State.FIRED if effective else Timer.State.CANCELLED, fired_at=run.now
                )
                fired += int(effective)


def recover_jobs(now: datetime | None = None, *, stale_after: float = 120.0) -> int:
    """Re-send queued jobs whose message may be lost; re-queue running jobs whose worker died."""
    now = now or timezone.now()
    requeued = 0
    for job in SystemJob.objects.filter(state=SystemJob.State.RUNNING).only("id", "started_at", "timeout_seconds")[
        :200
    ]:
        deadline = (job.started_at or now) + timedelta(seconds=job.timeout_seconds + stale_after)
        if deadline < now:
            requeued += SystemJob.objects.filter(pk=job.pk, state=SystemJob.State.RUNNING).update(
                state=SystemJob.State.QUEUED, last_error="the worker did not finish in time; queued again"
            )
    stale = list(
        SystemJob.objects.filter(
            state=SystemJob.State.QUEUED,
            run_after__lte=now - timedelta(seconds=stale_after),
            process__state=Process.State.RUNNING,
        )[:500]
    )
    if stale:
        dispatch_jobs(stale)
    return requeued + len(stale)
