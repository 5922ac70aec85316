"""A workflow's history as an IEEE 1849-2016 XES event log, streamed in bounded memory.

One **trace** per process of the workflow *started* in ``[start, end)`` (and, when given, scoped to some
car parks), in the order of the processes' ids. One **event** per step entry and per step exit:

=====================  ========================  ==========================================================
history (ProcessEvent)  ``lifecycle:transition``  other attributes
=====================  ========================  ==========================================================
``step_entered``        ``start``                 ``org:role`` when the step created a task
``step_left``           ``complete``              ``org:role``; ``org:resource`` = who completed the task
=====================  ========================  ==========================================================

``task_created`` and ``task_completed`` are not events of their own: they give the step's events the
task's role and the person who completed it. ``concept:name`` is the step's name in the process's version
(the step id is ``phq:step``), so the log's activities read as the diagram does.

Who sees people: :func:`sees_people`. Everyone else finds the task's role in ``org:resource`` too.

The log is written by hand with :func:`xml.sax.saxutils.quoteattr` (every value escaped, characters XML
1.0 forbids dropped), a batch of processes at a time: one query for the processes (keyset pagination by
id), one for their events; nothing else is held, so memory does not grow with the size of the log.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from xml.sax.saxutils import quoteattr

from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from accounts import roles
from workflows.models import Process, ProcessEvent, ProcessEventArchive, WorkflowDefinition

Kind = ProcessEvent.Kind
BATCH = 500
XES_VERSION = "1849-2016"
EXTENSIONS = (
    ("Concept", "concept", "http://www.xes-standard.org/concept.xesext"),
    ("Lifecycle", "lifecycle", "http://www.xes-standard.org/lifecycle.xesext"),
    ("Organizational", "org", "http://www.xes-standard.org/org.xesext"),
    ("Time", "time", "http://www.xes-standard.org/time.xesext"),
)
# Classifier names are xs:NCName in the standard's schema (no spaces).
CLASSIFIERS = (("Activity", "concept:name"), ("Activity_classifier", "concept:name lifecycle:transition"))
KINDS = (Kind.STEP_ENTERED, Kind.STEP_LEFT, Kind.TASK_CREATED, Kind.TASK_COMPLETED)
TRANSITION = {Kind.STEP_ENTERED: "start", Kind.STEP_LEFT: "complete"}
EPOCH = "1970-01-01T00:00:00.000+00:00"
# Characters XML 1.0 does not allow, even escaped.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class UnknownWorkflow(LookupError):
    """No workflow has the key asked for."""


def sees_people(user: Any) -> bool:
    """Usernames go into ``org:resource`` for the export from the command line (``user`` None) and for
    the staff who watch every process's history (Administrator, Supervisor, Workflow admin); Finance and
    car-park managers get the task's role instead of the person."""
    return user is None or roles.has_role(user, roles.SUPERVISOR, roles.WORKFLOW_ADMIN)


def _text(value: Any) -> str:
    return quoteattr(_INVALID_XML.sub("", str(value)))


def _attr(kind: str, key: str, value: Any) -> str:
    return f"<{kind} key={_text(key)} value={_text(value)}/>"


def _when(moment: datetime) -> str:
    """ISO 8601 with the offset of the portal's time zone, to the millisecond (xs:dateTime)."""
    return timezone.localtime(moment).isoformat(timespec="milliseconds")


def _step_names(definition: WorkflowDefinition) -> dict[int, dict[str, str]]:
    """{version id: {step id: step name}} for every version of the workflow (a migrated process's
    history may name steps of an earlier version)."""
    names: dict[int, dict[str, str]] = {}
    for pk, graph in definition.versions.order_by("-number").values_list("pk", "graph"):
        steps = (graph or {}).get("steps") or {}
        names[pk] = {sid: str(step.get("name") or sid) for sid, step in steps.items() if isinstance(step, dict)}
    return names


def _object_labels(ids: Iterable[int]) -> dict[int, str]:
    labels = {}
    for ct in ContentType.objects.filter(pk__in=set(ids)):
        model = ct.model_class()
        labels[ct.pk] = str(model._meta.verbose_name).capitalize() if model else f"{ct.app_label}.{ct.model}"
    return labels


def _header(definition: WorkflowDefinition, start: datetime, end: datetime) -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f"<log xes.version={_text(XES_VERSION)}>"]
    lines += [f"<extension name={_text(n)} prefix={_text(p)} uri={_text(u)}/>" for n, p, u in EXTENSIONS]
    lines.append(f'<global scope="trace">{_attr("string", "concept:name", "")}</global>')
    lines.append(
        '<global scope="event">'
        + _attr("string", "concept:name", "")
        + _attr("string", "lifecycle:transition", "complete")
        + _attr("date", "time:timestamp", EPOCH)
        + "</global>"
    )
    lines += [f"<classifier name={_text(n)} keys={_text(k)}/>" for n, k in CLASSIFIERS]
    lines += [
        _attr("string", "concept:name", definition.name),
        _attr("string", "lifecycle:model", "standard"),
        _attr("string", "phq:workflow", definition.key),
        _attr("date", "phq:started_from", _when(start)),
        _attr("date", "phq:started_before", _when(end)),
    ]
    return "\n".join(lines) + "\n"


def _events(rows: list[tuple], names: dict[str, str], people: bool) -> list[dict[str, Any]]:
    """The XES events of one process from its history rows (kind, step, at, username, task role),
    in order. A task's role and completer are set on the events of the step entry they belong to."""
    out: list[dict[str, Any]] = []
    current: dict[str, dict[str, Any]] = {}  # step id → {"role", "resource"} of its latest entry
    for kind, step_id, at, username, role in rows:
        if kind == Kind.STEP_ENTERED:
            current[step_id] = entry = {}
            out.append({"step": step_id, "transition": "start", "at": at, "entry": entry})
        elif kind == Kind.TASK_CREATED:
            current.setdefault(step_id, {})["role"] = role
        elif kind == Kind.TASK_COMPLETED:
            entry = current.setdefault(step_id, {})
            entry["role"] = role or entry.get("role")
            entry["resource"] = (username if people else None) or entry["role"]
        elif kind == Kind.STEP_LEFT:
            out.append({"step": step_id, "transition": "complete", "at": at, "entry": current.get(step_id, {})})
    for event in out:
        event["name"] = names.get(event["step"], event["step"])
    return out


def _trace(process: dict[str, Any], events: list[dict[str, Any]], version: int, object_label: str | None) -> str:
    parts = [
        "<trace>",
        _attr("string", "concept:name", process["pk"]),
        _attr("string", "phq:title", process["title"]),
        _attr("int", "phq:version", version),
        _attr("string", "phq:state", process["state"]),
        _attr("string", "phq:result", process["result"]),
        _attr("date", "phq:started_at", _when(process["started_at"])),
    ]
    if process["ended_at"]:
        parts.append(_attr("date", "phq:ended_at", _when(process["ended_at"])))
    if object_label:
        parts.append(_attr("string", "phq:object", object_label))
    for event in events:
        parts.append("<event>")
        parts.append(_attr("string", "concept:name", event["name"]))
        parts.append(_attr("string", "lifecycle:transition", event["transition"]))
        parts.append(_attr("date", "time:timestamp", _when(event["at"])))
        parts.append(_attr("string", "phq:step", event["step"]))
        entry = event["entry"]
        if entry.get("role"):
            parts.append(_attr("string", "org:role", entry["role"]))
        if event["transition"] == "complete" and entry.get("resource"):
            parts.append(_attr("string", "org:resource", entry["resource"]))
        parts.append("</event>")
    parts.append("</trace>\n")
    return "".join(parts)


def processes_in(
    definition: WorkflowDefinition, start: datetime, end: datetime, carpark_ids: set[int] | None = None
) -> Any:
    """The processes a log of ``definition`` holds: started in ``[start, end)``, in the car parks given."""
    qs = Process.objects.filter(definition=definition, started_at__gte=start, started_at__lt=end)
    if carpark_ids is not None:
        qs = qs.filter(scope_carpark_id__in=carpark_ids)
    return qs


def xes_stream(
    definition_key: str,
    start: datetime,
    end: datetime,
    *,
    user: Any = None,
    carpark_ids: set[int] | None = None,
    batch: int = BATCH,
) -> Iterator[bytes]:
    """The XES document of the processes of workflow ``definition_key`` started in ``[start, end)``, in
    pieces of about ``batch`` processes. ``user`` decides whether people are named (:func:`sees_people`);
    ``carpark_ids`` limits the processes to those car parks (None: all). UnknownWorkflow for a bad key."""
    definition = WorkflowDefinition.objects.filter(key=definition_key).first()
    if definition is None:
        raise UnknownWorkflow(f"No workflow has the key “{definition_key}”.")
    return _stream(definition, start, end, sees_people(user), carpark_ids, batch)


def _stream(
    definition: WorkflowDefinition,
    start: datetime,
    end: datetime,
    people: bool,
    carpark_ids: set[int] | None,
    batch: int,
) -> Iterator[bytes]:
    yield _header(definition, start, end).encode()
    names = _step_names(definition)
    numbers = dict(definition.versions.values_list("pk", "number"))
    fallback: dict[str, str] = {}
    for version_names in reversed(list(names.values())):  # newest version's names win
        fallback.update(version_names)
    labels: dict[int, str] = {}
    processes = processes_in(definition, start, end, carpark_ids).order_by("pk")
    fields = ("pk", "version_id", "title", "state", "result", "started_at", "ended_at", "content_type_id", "object_id")
    last = 0
    while True:
        page = list(processes.filter(pk__gt=last).values(*fields)[:batch])
        if not page:
            break
        last = page[-1]["pk"]
        history: dict[int, list[tuple]] = {p["pk"]: [] for p in page}
        # The live history and the archive's (manage.py history_archive) in one ordered query.
        columns = ("process_id", "kind", "step_id", "at", "actor__username", "task__role", "id")
        live = ProcessEvent.objects.filter(process_id__in=list(history), kind__in=KINDS).values_list(*columns)
        archived = ProcessEventArchive.objects.filter(process_id__in=list(history), kind__in=KINDS).values_list(
            *columns
        )
        rows = live.order_by().union(archived.order_by(), all=True).order_by("process_id", "at", "id")
        for process_id, *row, _event_id in rows.iterator(chunk_size=5000):
            history[process_id].append(tuple(row))
        missing = {p["content_type_id"] for p in page if p["content_type_id"]} - set(labels)
        if missing:
            labels.update(_object_labels(missing))
        out = []
        for process in page:
            step_names = {**fallback, **names.get(process["version_id"], {})}
            label = None
            if process["content_type_id"]:
                label = f"{labels.get(process['content_type_id'], 'Object')} #{process['object_id']}"
            events = _events(history.pop(process["pk"]), step_names, people)
            out.append(_trace(process, events, numbers.get(process["version_id"], 0), label))
        yield "".join(out).encode()
    yield b"</log>\n"


def gzipped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The chunks as one gzip stream (``.xes.gz``), compressed as they come."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    for chunk in chunks:
        data = compressor.compress(chunk)
        if data:
            yield data
    yield compressor.flush()
