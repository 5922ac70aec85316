"""Retention: ``manage.py history_archive --before DATE`` on PostgreSQL.

Ten processes finished on 2 March, one still running since then (a claimed task), one finished on
10 March; archived before 5 March. The events move in batches, exactly once, only for the ten;
the monitoring figures, the process page and the XES export read the same history afterwards.
"""

from __future__ import annotations

import io
import threading
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.urls import reverse

from accounts import roles
from monitoring.aggregation import aggregate_day, compute_rows, day_bounds, summed
from monitoring.models import DailyStepStat
from monitoring.selectors import process_summary, step_percentiles
from workflows import services
from workflows.archive import history_archive
from workflows.models import Process, ProcessEvent, ProcessEventArchive, Task, WorkflowVersion
from workflows.testing import install_definition
from workflows.xes import xes_stream

BERLIN = ZoneInfo("Europe/Berlin")
BEFORE = date(2026, 3, 5)
SPEC = {
    "key": "archive-claim",
    "name": "Archive claim review",
    "category": "tests",
    "steps": [
        {"id": "start", "type": "start", "next": "review"},
        {
            "id": "review",
            "type": "user",
            "name": "Review claim",
            "role": roles.AGENT,
            "due_in": "PT30M",
            "outcomes": {"approve": "approved", "reject": "rejected", "rework": "fix"},
        },
        {"id": "fix", "type": "user", "name": "Fix claim", "role": roles.AGENT, "outcomes": {"done": "review"}},
        {"id": "approved", "type": "end", "result": "approved"},
        {"id": "rejected", "type": "end", "result": "rejected"},
    ],
}
COLUMNS = ("id", "process_id", "kind", "step_id", "task_id", "actor_id", "at", "duration_ms", "data")


def at(day: str, hour: int, minute: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=BERLIN)


def advance(process: Process, user, now: datetime, outcome: str) -> datetime:  # type: ignore[no-untyped-def]
    """Claim the process's active task 5 minutes after ``now`` and complete it 5 minutes later."""
    task = Task.objects.get(process=process, state__in=Task.ACTIVE_STATES)
    if task.state == Task.State.OPEN:
        with time_machine.travel(now + timedelta(minutes=5), tick=False):
            services.task_claim(task=task, user=user)
        task.refresh_from_db()
    with time_machine.travel(now + timedelta(minutes=10), tick=False):
        services.task_complete(task=task, user=user, outcome=outcome)
    return now + timedelta(minutes=10)


def run(user, start: datetime, *outcomes: str, cancel: bool = False) -> Process:  # type: ignore[no-untyped-def]
    with time_machine.travel(start, tick=False):
        process = services.process_start(definition_key="archive-claim")
    now = start
    for outcome in outcomes:
        now = advance(process, user, now, outcome)
    if cancel:
        with time_machine.travel(now + timedelta(minutes=1), tick=False):
            services.process_cancel(process=process, user=user, reason="withdrawn")
    process.refresh_from_db()
    return process


@pytest.fixture
def world(make_user):  # type: ignore[no-untyped-def]
    install_definition(SPEC)
    agent = make_user("agent", roles.AGENT)
    old = [run(agent, at("2026-03-02", 8 + n), "approve") for n in range(5)]
    old += [run(agent, at("2026-03-02", 13 + n), "reject") for n in range(2)]
    old.append(run(agent, at("2026-03-02", 15), "rework", "done", "approve"))
    old.append(run(agent, at("2026-03-02", 16), "rework", "done", "rework", "done", "reject"))
    old.append(run(agent, at("2026-03-02", 17), cancel=True))
    running = run(agent, at("2026-03-02", 18))
    task = Task.objects.get(process=running)
    with time_machine.travel(at("2026-03-02", 18, 30), tick=False):
        services.task_claim(task=task, user=agent)
    recent = run(agent, at("2026-03-10", 9), "approve")
    assert all(p.state in ("completed", "cancelled") for p in old) and running.state == "running"
    return {"agent": agent, "old": old, "running": running, "recent": recent}


def snapshot(model, process_ids) -> dict[int, tuple]:  # type: ignore[no-untyped-def]
    rows = model.objects.filter(process_id__in=process_ids).values_list(*COLUMNS)
    return {row[0]: row for row in rows}


def ids(processes) -> list[int]:  # type: ignore[no-untyped-def]
    return [p.pk for p in processes]


@pytest.mark.django_db
def test_finished_processes_move_in_batches_exactly_once(world):
    old = ids(world["old"])
    before = snapshot(ProcessEvent, old)
    assert len(before) > 60
    sizes = []

    result = history_archive(before=BEFORE, batch_size=3, progress=lambda batch: sizes.append(batch.events))

    assert result.events == len(before) and result.processes == 10
    assert result.batches == len(sizes) >= len(before) // 3 and max(sizes) == 3
    assert snapshot(ProcessEvent, old) == {}
    assert snapshot(ProcessEventArchive, old) == before  # same ids, same values

    again = history_archive(before=BEFORE, batch_size=3)
    assert (again.events, again.batches, again.processes) == (0, 0, 0)
    assert snapshot(ProcessEventArchive, old) == before


@pytest.mark.django_db(transaction=True)
def test_a_run_that_dies_between_batches_leaves_every_event_in_exactly_one_table(world):
    old = ids(world["old"])
    before = snapshot(ProcessEvent, old)

    def die(batch) -> None:  # type: ignore[no-untyped-def]
        if batch.number == 3:
            raise KeyboardInterrupt  # the operator's Ctrl-C, or the container stopped

    with pytest.raises(KeyboardInterrupt):
        history_archive(before=BEFORE, batch_size=4, progress=die)

    live, archived = snapshot(ProcessEvent, old), snapshot(ProcessEventArchive, old)
    assert len(archived) == 12 and not set(live) & set(archived)
    assert {**live, **archived} == before
    assert history_archive(before=BEFORE, batch_size=4).events == len(before) - 12
    assert snapshot(ProcessEventArchive, old) == before and snapshot(ProcessEvent, old) == {}


@pytest.mark.django_db
def test_a_running_process_and_one_finished_after_the_date_keep_their_history(world):
    kept = ids([world["running"], world["recent"]])
    live = snapshot(ProcessEvent, kept)
    assert {row[1] for row in live.values()} == set(kept)

    history_archive(before=BEFORE, batch_size=4)

    assert snapshot(ProcessEvent, kept) == live
    assert not ProcessEventArchive.objects.filter(process_id__in=kept).exists()
    # The running process goes on afterwards: its history stays in one piece in the live table.
    advance(world["running"], world["agent"], at("2026-03-12", 9), "approve")
    world["running"].refresh_from_db()
    assert world["running"].state == "completed"
    assert not ProcessEventArchive.objects.filter(process_id=world["running"].pk).exists()


@pytest.mark.django_db
def test_the_state_decides_not_an_end_time_a_running_process_should_not_have(world):
    """A running or suspended process is never archived, even when its row carries an end time
    (edited by hand in the technical administration, restored from a backup)."""
    running = world["running"]
    Process.objects.filter(pk=running.pk).update(ended_at=at("2026-03-02", 19))
    suspended = run(world["agent"], at("2026-03-02", 20))
    Process.objects.filter(pk=suspended.pk).update(state="suspended", ended_at=at("2026-03-02", 21))
    kept = snapshot(ProcessEvent, ids([running, suspended]))

    history_archive(before=BEFORE, batch_size=50)

    assert snapshot(ProcessEvent, ids([running, suspended])) == kept
    assert not ProcessEventArchive.objects.filter(process_id__in=ids([running, suspended])).exists()


@pytest.mark.django_db
def test_the_monitoring_figures_are_the_same_after_archiving(world):
    start, end = day_bounds(date(2026, 3, 2))
    rows = compute_rows(start, end)
    totals = {name: sum(r[name] for r in rows.values()) for name in ("completed", "cancelled", "reentered")}
    assert totals == {"completed": 9, "cancelled": 1, "reentered": 4}  # a real story, not zeros
    assert sum(r["wait_ms_sum"] for r in rows.values()) > 0 and sum(r["sla_due"] for r in rows.values()) > 0
    group = ("day", "definition_id", "step_id")
    live = summed(group, date(2026, 3, 1), date(2026, 3, 11))
    aggregate_day(date(2026, 3, 2))
    stored = sorted(DailyStepStat.objects.values_list(*[f.name for f in DailyStepStat._meta.fields][1:]))

    history_archive(before=BEFORE, batch_size=5)

    assert compute_rows(start, end) == rows  # the day computed again from the history
    assert summed(group, date(2026, 3, 1), date(2026, 3, 11)) == live  # stored days and live days
    aggregate_day(date(2026, 3, 2))  # the beat aggregating the day again (late events)
    assert sorted(DailyStepStat.objects.values_list(*[f.name for f in DailyStepStat._meta.fields][1:])) == stored


@pytest.mark.django_db
def test_the_monitoring_pages_percentiles_rework_and_drill_down_read_the_archive(world, client, login, make_user):
    versions = list(WorkflowVersion.objects.filter(definition__key="archive-claim"))
    day_from, day_to = date(2026, 3, 1), date(2026, 3, 11)
    login(client, make_user("boss", roles.SUPERVISOR))
    url = reverse("monitoring:processes")
    statuses = ("started", "completed", "cancelled", "entered", "rework", "tasks_completed", "sla_met", "sla_missed")

    def figures() -> dict:
        drill = {}
        for status in statuses:
            page = client.get(
                url, {"period": "custom", "day_from": "2026-03-01", "day_to": "2026-03-11", "status": status}
            )
            assert page.status_code == 200
            drill[status] = sorted(p.pk for p in page.context["page"].paginator.object_list)
        return {
            "percentiles": step_percentiles({v.pk for v in versions}, day_from, day_to),
            "summary": process_summary(versions, day_from, day_to),
            "drill": drill,
        }

    before = figures()
    assert before["summary"]["reworked_processes"] == 2 and len(before["drill"]["rework"]) == 2
    assert before["percentiles"]["review"]["max"] > 0 and len(before["drill"]["completed"]) == 10

    history_archive(before=BEFORE)

    assert figures() == before


@pytest.mark.django_db
def test_the_process_page_and_the_xes_export_show_an_archived_process(world, client, login, make_user):
    process = world["old"][7]  # the one with rework
    history = [e.pk for e in services.process_history(process)]
    log = b"".join(xes_stream("archive-claim", at("2026-03-01", 0), at("2026-03-11", 0)))
    login(client, make_user("boss", roles.SUPERVISOR))

    history_archive(before=BEFORE)

    assert not process.events.exists()
    assert [e.pk for e in services.process_history(process)] == history
    assert b"".join(xes_stream("archive-claim", at("2026-03-01", 0), at("2026-03-11", 0))) == log
    page = client.get(reverse("workflows:process-detail", args=[process.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert text.count("Fix claim") >= 2 and "Task completed" in text
    out = io.StringIO()
    call_command("process_show", str(process.pk), stdout=out)
    assert out.getvalue().count("task_completed") == 3


@pytest.mark.django_db
def test_the_portable_path_moves_the_same_rows(world, monkeypatch):
    """The ORM batches ``make run``'s SQLite uses, run here on PostgreSQL."""
    old = ids(world["old"])
    before = snapshot(ProcessEvent, old)
    monkeypatch.setattr(connection, "vendor", "sqlite")

    result = history_archive(before=BEFORE, batch_size=7)

    assert result.events == len(before) and result.batches >= len(before) // 7
    assert snapshot(ProcessEventArchive, old) == before and snapshot(ProcessEvent, old) == {}
    assert snapshot(ProcessEvent, ids([world["running"], world["recent"]]))
    assert history_archive(before=BEFORE, batch_size=7).events == 0


@pytest.mark.django_db
def test_the_command_reports_batches_and_a_dry_run_changes_nothing(world):
    total = ProcessEvent.objects.filter(process__in=world["old"]).count()
    out = io.StringIO()
    call_command("history_archive", "--before", "2026-03-05", "--batch-size", "50", "--dry-run", stdout=out)
    assert f"Dry run: {total} events of 10 processes" in out.getvalue()
    assert ProcessEvent.objects.filter(process__in=world["old"]).count() == total
    assert not ProcessEventArchive.objects.exists()

    out = io.StringIO()
    call_command("history_archive", "--before", "2026-03-05", "--batch-size", "50", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("batch 1: 50 events moved")
    assert lines[-1].startswith(f"Moved {total} events of 10 processes finished before 2026-03-05 in ")
    assert ProcessEventArchive.objects.count() == total

    for bad, message in (
        (["--before", "5.3.2026"], "not a date: use YYYY-MM-DD"),
        (["--before", "2026-03-05", "--batch-size", "0"], "too small"),
        (["--before", "2999-01-01"], "in the future"),
    ):
        with pytest.raises(CommandError, match=message):
            call_command("history_archive", *bad)
    assert ProcessEventArchive.objects.count() == total


def _in_thread(work):  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, errors


@pytest.mark.django_db(transaction=True)
def test_locked_rows_are_skipped_not_waited_for_and_moved_by_the_next_run(world):
    """The engine holds a running process's row and an event row of a finished one is locked by
    another transaction: the archive waits for neither (a lock timeout would fail it) and leaves
    the locked event for the next run."""
    split = world["old"][0]
    locked_event = ProcessEvent.objects.filter(process=split).order_by("id")[3]
    total = ProcessEvent.objects.filter(process__in=world["old"]).count()
    history = [e.pk for e in services.process_history(split)]
    log = b"".join(xes_stream("archive-claim", at("2026-03-01", 0), at("2026-03-11", 0)))
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic():
            Process.objects.select_for_update().get(pk=world["running"].pk)
            list(ProcessEvent.objects.select_for_update().filter(pk=locked_event.pk))
            holding.set()
            release.wait(30)

    thread, errors = _in_thread(hold)
    assert holding.wait(10)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        started = time.perf_counter()
        first = history_archive(before=BEFORE, batch_size=4)
        assert time.perf_counter() - started < 2
    finally:
        release.set()
        thread.join(10)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert not errors
    assert first.events == total - 1
    assert ProcessEvent.objects.filter(process__in=world["old"]).get().pk == locked_event.pk
    # Its process's history is split between the tables until the next run, and reads in order.
    assert [e.pk for e in services.process_history(split)] == history
    assert b"".join(xes_stream("archive-claim", at("2026-03-01", 0), at("2026-03-11", 0))) == log

    second = history_archive(before=BEFORE, batch_size=4)
    assert second.events == 1 and ProcessEventArchive.objects.count() == total


@pytest.mark.django_db(transaction=True)
def test_a_process_advancing_while_the_archive_runs_is_neither_blocked_nor_lost(world):
    agent, running = world["agent"], world["running"]
    total = ProcessEvent.objects.filter(process__in=world["old"]).count()
    live_before = ProcessEvent.objects.filter(process=running).count()
    batches: list[int] = []
    moving = threading.Event()

    def archive() -> None:
        def slow(batch) -> None:  # type: ignore[no-untyped-def]
            batches.append(batch.events)
            moving.set()
            time.sleep(0.01)

        history_archive(before=BEFORE, batch_size=1, progress=slow)

    thread, errors = _in_thread(archive)
    assert moving.wait(10)
    steps = 0
    now = at("2026-03-12", 9)
    for outcome in ("rework", "done", "rework", "done", "approve"):
        started = time.perf_counter()
        now = advance(running, agent, now, outcome)
        assert time.perf_counter() - started < 2  # not held up by the archive
        steps += 1
    still_archiving = thread.is_alive()
    thread.join(60)
    assert not errors and not thread.is_alive()
    assert still_archiving, "the archive should still have been running while the process advanced"

    running.refresh_from_db()
    assert running.state == "completed" and steps == 5
    assert ProcessEvent.objects.filter(process=running).count() > live_before + 10
    assert not ProcessEventArchive.objects.filter(process=running).exists()
    assert sum(batches) == total == ProcessEventArchive.objects.count()
