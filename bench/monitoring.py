"""Monitoring at scale: 5,000,000 history events, dashboard server time and a monthly statement.

    .venv/bin/python bench/monitoring.py [--events 5000000] [--regenerate] [--requests 60]

Works in its own PostgreSQL database (``phq_monitoring_bench`` on the server of DATABASE_URL,
created if missing; set MONITORING_BENCH_DB to choose another). Two years of history for four
workflows in twenty car parks are generated with COPY (processes, tasks, events shaped exactly like
the engine writes them: step entered/left with durations, task created/claimed/completed, rework,
escalations, a few incidents; the last day still running). Then it measures:

- the daily aggregation of every day (what the nightly beat job does one day at a time),
- the dashboard's server time (Django test client in-process: middleware, queries, template) over
  several filters, p50/p95 — the target is p95 ≤ 300 ms; today's live figures are recomputed on
  every request (the 30-second cache is switched off), so this is the worst case,
- a monthly statement built from stored figures, and built cold (the month not aggregated yet),
  PDF included — the target is ≤ 10 s,

prints the figures and records them in docs/benchmarks.md (section ``monitoring``).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = os.environ.get("MONITORING_BENCH_DB", "phq_monitoring_bench")
_server = urlsplit(os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres")
os.environ["DATABASE_URL"] = urlunsplit((_server.scheme, _server.netloc, f"/{BENCH_DB}", "", ""))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parkinghq.settings.test")

DAYS = 730
EVENTS_PER_PROCESS = 16.9  # measured average of the shapes below; sizes the daily volume


def ensure_database() -> None:
    import psycopg

    admin = urlunsplit((_server.scheme, _server.netloc, "/postgres", "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone():
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def setup() -> None:
    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


SPEC_STEPS = [
    {"id": "start", "type": "start", "next": "review"},
    {
        "id": "review",
        "type": "user",
        "name": "Review",
        "role": "Back-office agent",
        "scope": "carpark",
        "due_in": "PT4H",
        "escalation": [{"after": "PT2H", "to": "Supervisor"}],
        "outcomes": {"approve": "check", "rework": "review", "reject": "rejected"},
    },
    {"id": "check", "type": "user", "name": "Check", "role": "Supervisor", "due_in": "P1D", "outcomes": {"ok": "done"}},
    {"id": "done", "type": "end", "result": "approved"},
    {"id": "rejected", "type": "end", "result": "rejected"},
]


def install_fixtures() -> tuple[list, list[int], list[int], list[int], list[int]]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from carparks.models import CarPark
    from workflows.services import definition_install

    versions = []
    for key, name in [
        ("bench-season", "Bench season contract"),
        ("bench-termination", "Bench termination"),
        ("bench-case", "Bench customer case"),
        ("bench-failed-payment", "Bench failed payment"),
    ]:
        versions.append(definition_install(spec={"key": key, "name": name, "category": "bench", "steps": SPEC_STEPS}))
    carparks = [
        CarPark.objects.get_or_create(code=f"bench-{n}", defaults={"name": f"Bench car park {n}"})[0].pk
        for n in range(20)
    ]
    user_model = get_user_model()

    def users(prefix: str, role: str, count: int) -> list[int]:
        group = Group.objects.get_or_create(name=role)[0]
        ids = []
        for n in range(count):
            user, created = user_model.objects.get_or_create(username=f"{prefix}{n}")
            if created:
                user.groups.add(group)
            ids.append(user.pk)
        return ids

    agents = users("bench-agent-", "Back-office agent", 30)
    supervisors = users("bench-supervisor-", "Supervisor", 6)
    finance = users("bench-finance-", "Finance", 1)
    return versions, carparks, agents, supervisors, finance


class Writer:
    """Rows for COPY, one text buffer per table, flushed in chunks."""

    COLUMNS = {
        "workflows_process": [
            "id",
            "definition_id",
            "version_id",
            "state",
            "current_step",
            "step_seq",
            "step_entered_at",
            "variables",
            "title",
            "scope_carpark_id",
            "waiting_for",
            "result",
            "started_at",
            "updated_at",
            "ended_at",
            "incident_open",
            "incident_step",
            "incident_error",
            "incident_at",
        ],  # fmt: skip
        "workflows_task": [
            "id",
            "process_id",
            "step_id",
            "step_seq",
            "name",
            "instructions",
            "role",
            "scope_carpark_id",
            "state",
            "due_at",
            "escalation_level",
            "outcome",
            "inputs",
            "comment",
            "created_at",
            "claimed_at",
            "completed_at",
            "assignee_id",
            "completed_by_id",
        ],  # fmt: skip
        "workflows_processevent": [
            "id",
            "process_id",
            "kind",
            "step_id",
            "task_id",
            "actor_id",
            "at",
            "duration_ms",
            "data",
        ],  # fmt: skip
    }

    def __init__(self, connection) -> None:
        self.connection = connection
        self.rows: dict[str, list[str]] = {table: [] for table in self.COLUMNS}
        self.counts = dict.fromkeys(self.COLUMNS, 0)
        self.extra = self._extra_columns()

    def _extra_columns(self) -> dict[str, list[tuple[str, str]]]:
        """NOT NULL columns without a default that this script does not know (added by later models)."""
        extra: dict[str, list[tuple[str, str]]] = {}
        with self.connection.cursor() as cursor:
            for table, known in self.COLUMNS.items():
                cursor.execute(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
                    "AND is_nullable = 'NO' AND column_default IS NULL",
                    [table],
                )
                filler = {"jsonb": "{}", "boolean": "f", "text": "", "character varying": ""}
                extra[table] = [(c, filler.get(t, "0")) for c, t in cursor.fetchall() if c not in known]
        return extra

    def add(self, table: str, values: list) -> None:
        values = values + [v for _, v in self.extra[table]]
        self.rows[table].append("\t".join(r"\N" if v is None else str(v) for v in values))
        if len(self.rows[table]) >= 200_000:
            self.flush(table)

    def flush(self, table: str | None = None) -> None:
        for name in [table] if table else list(self.rows):
            rows = self.rows[name]
            if not rows:
                continue
            columns = ", ".join(self.COLUMNS[name] + [c for c, _ in self.extra[name]])
            with self.connection.cursor() as cursor, cursor.copy(f"COPY {name} ({columns}) FROM STDIN") as copy:
                copy.write("\n".join(rows) + "\n")
            self.counts[name] += len(rows)
            self.rows[name] = []


def ts(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def generate(target_events: int) -> dict[str, int]:
    from django.db import connection

    versions, carparks, agents, supervisors, _ = install_fixtures()
    tables = ["workflows_processevent", "workflows_task", "workflows_process"]
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE workflows_processevent, workflows_task, workflows_timer, workflows_systemjob, "
            "workflows_process, monitoring_dailystepstat, monitoring_dailyworkflowstat, monitoring_aggregatedday, "
            "monitoring_statement CASCADE"
        )
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) AND indexname NOT LIKE %s",
            [tables, "%_pkey"],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
        cursor.execute("SET session_replication_role = replica")  # no FK triggers during the bulk load
    writer = Writer(connection.connection)
    rng = random.Random(2026)
    now = time.time()
    first_day = date.today() - timedelta(days=DAYS)
    per_day = target_events / EVENTS_PER_PROCESS / DAYS / (5 / 7 + 2 / 7 * 0.4)
    pid = tid = eid = 0
    events = 0

    def event(process: int, kind: str, step: str, at: float, task=None, actor=None, duration=None, data="{}"):
        nonlocal eid, events
        eid += 1
        events += 1
        writer.add("workflows_processevent", [eid, process, kind, step, task, actor, ts(at), duration, data])

    day = first_day
    while events < target_events:
        weekday = day.weekday() < 5
        volume = per_day * (1.0 if weekday else 0.4) * rng.uniform(0.85, 1.15)
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        for _ in range(int(volume)):
            if events >= target_events:
                break
            pid += 1
            version = versions[rng.randrange(len(versions))]
            carpark = carparks[rng.randrange(len(carparks))]
            t = midnight + rng.uniform(6 * 3600, 18 * 3600)
            started = t
            event(pid, "process_started", "", t)
            event(pid, "step_entered", "start", t)
            event(pid, "step_left", "start", t, duration=0)
            seq = 2
            state, current, result, ended = "completed", "", "", None
            rounds = 2 if rng.random() < 0.08 else 1
            outcome = "approve"
            for round_no in range(rounds):
                entered = t
                event(pid, "step_entered", "review", t)
                tid += 1
                task_id, role, level = tid, "Back-office agent", 0
                event(pid, "task_created", "review", t, task=task_id, data='{"role": "Back-office agent"}')
                wait = rng.lognormvariate(math.log(20 * 60), 0.9)
                work = rng.lognormvariate(math.log(12 * 60), 0.7)
                if t + wait > now:  # the most recent processes are still waiting in the basket
                    writer.add("workflows_task", [task_id, pid, "review", seq, "Review", "", role, carpark, "open",
                                                  ts(entered + 4 * 3600), 0, "", "{}", "", ts(entered), None, None,
                                                  None, None])  # fmt: skip
                    state, current = "running", "review"
                    break
                if rng.random() < 0.04:  # escalated after two hours, the supervisor finishes it
                    event(pid, "timer_fired", "review", t + 2 * 3600, task=task_id, data='{"kind": "escalation"}')
                    writer.add("workflows_task", [task_id, pid, "review", seq, "Review", "", role, carpark,
                                                  "escalated", ts(entered + 4 * 3600), 0, "", "{}", "", ts(entered),
                                                  None, None, None, None])  # fmt: skip
                    tid += 1
                    task_id, role, level = tid, "Supervisor", 1
                    event(pid, "task_escalated", "review", t + 2 * 3600, task=task_id,
                          data='{"to_role": "Supervisor", "level": 1}')  # fmt: skip
                    wait = 2 * 3600 + wait
                actor = agents[rng.randrange(len(agents))] if level == 0 else supervisors[0]
                claimed = t + wait
                event(pid, "task_claimed", "review", claimed, task=task_id, actor=actor)
                done = claimed + work
                outcome = "rework" if round_no + 1 < rounds else ("reject" if rng.random() < 0.1 else "approve")
                event(pid, "task_completed", "review", done, task=task_id, actor=actor,
                      duration=int((done - entered) * 1000), data=f'{{"outcome": "{outcome}"}}')  # fmt: skip
                writer.add("workflows_task", [task_id, pid, "review", seq, "Review", "", role, carpark, "completed",
                                              ts(entered + 4 * 3600), level, outcome, "{}", "", ts(entered),
                                              ts(claimed), ts(done), actor, actor])  # fmt: skip
                event(pid, "step_left", "review", done, duration=int((done - entered) * 1000))
                t = done
                seq += 1
            if state == "completed":
                if outcome == "approve":
                    entered = t
                    event(pid, "step_entered", "check", t)
                    tid += 1
                    event(pid, "task_created", "check", t, task=tid, data='{"role": "Supervisor"}')
                    actor = supervisors[rng.randrange(len(supervisors))]
                    claimed = t + rng.lognormvariate(math.log(45 * 60), 0.8)
                    done = claimed + rng.lognormvariate(math.log(5 * 60), 0.5)
                    if done > now:
                        writer.add("workflows_task", [tid, pid, "check", seq, "Check", "", "Supervisor", None, "open",
                                                      ts(entered + 86400), 0, "", "{}", "", ts(entered), None, None,
                                                      None, None])  # fmt: skip
                        state, current = "running", "check"
                    else:
                        event(pid, "task_claimed", "check", claimed, task=tid, actor=actor)
                        event(pid, "task_completed", "check", done, task=tid, actor=actor,
                              duration=int((done - entered) * 1000), data='{"outcome": "ok"}')  # fmt: skip
                        writer.add("workflows_task", [tid, pid, "check", seq + 1, "Check", "", "Supervisor", None,
                                                      "completed", ts(entered + 86400), 0, "ok", "{}", "",
                                                      ts(entered), ts(claimed), ts(done), actor, actor])  # fmt: skip
                        event(pid, "step_left", "check", done, duration=int((done - entered) * 1000))
                        t = done
                        end = "done"
                else:
                    end = "rejected"
                if state == "completed":
                    event(pid, "step_entered", end, t)
                    event(pid, "step_left", end, t, duration=0)
                    result = "approved" if end == "done" else "rejected"
                    event(pid, "process_completed", end, t, data=f'{{"result": "{result}"}}')
                    current, ended = end, t
            incident = state == "running" and rng.random() < 0.01
            if incident:
                event(pid, "incident_opened", current, t, data='{"error": "bench"}')
            writer.add("workflows_process", [
                pid, version.definition_id, version.pk, state, current, seq, ts(t), "{}", f"Bench #{pid}", carpark, "",
                result, ts(started), ts(ended or t), ts(ended) if ended else None, "t" if incident else "f",
                current if incident else "", "bench" if incident else "", ts(t) if incident else None,
            ])  # fmt: skip
        day += timedelta(days=1)
        if day > date.today():
            day = first_day  # volume too small for the target: go round again (more per day)
    writer.flush()
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = DEFAULT")
        for _, definition in indexes:
            cursor.execute(definition)
        for table in tables:
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            cursor.execute(f"ANALYZE {table}")
    return writer.counts


def timed(func, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = func(*args, **kwargs)
    return (time.perf_counter() - started) * 1000, result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--regenerate", action="store_true", help="generate the history again")
    parser.add_argument("--requests", type=int, default=60, help="dashboard requests to time")
    parser.add_argument("--reaggregate", action="store_true", help="aggregate every day again first")
    parser.add_argument("--no-record", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    setup()

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone
    from guardian.shortcuts import assign_perm

    import monitoring.aggregation as aggregation
    from carparks.models import CarPark
    from monitoring.models import AggregatedDay
    from monitoring.statements import period_for, statement_build
    from workflows.models import ProcessEvent

    settings.ALLOWED_HOSTS = ["*"]
    settings.MONITORING_CACHE = True  # as deployed (the test settings switch it off)
    have = ProcessEvent.objects.count()
    generated = ""
    if args.regenerate or have < args.events * 0.98:
        print(f"generating {args.events:,} history events in {BENCH_DB} …", flush=True)
        ms, counts = timed(generate, args.events)
        generated = (
            f"Generated {counts['workflows_processevent']:,} events, {counts['workflows_process']:,} processes and "
            f"{counts['workflows_task']:,} tasks with COPY in {ms / 1000:.0f} s."
        )
        print(generated, flush=True)
    events = ProcessEvent.objects.count()
    print(f"history: {events:,} events", flush=True)

    if args.reaggregate:
        AggregatedDay.objects.all().delete()
    fill_ms, filled = timed(aggregation.aggregate_pending, backfill_days=DAYS + 10)
    print(f"stored the figures of {len(filled)} days in {fill_ms / 1000:.1f} s")
    sample = [date.today() - timedelta(days=n) for n in range(2, 16)]  # what the nightly job does, 14 times
    agg_ms, _ = timed(lambda: [aggregation.aggregate_day(day) for day in sample])
    days = sample
    print(f"aggregating one day: {agg_ms / len(sample):.0f} ms (mean of {len(sample)} days)")

    users = get_user_model().objects
    finance = users.get(username="bench-finance-0")
    manager, _ = users.get_or_create(username="bench-manager")
    from django.contrib.auth.models import Group

    manager.groups.add(Group.objects.get_or_create(name="Car-park manager")[0])
    for carpark in CarPark.objects.filter(code__in=["bench-1", "bench-2", "bench-3"]):
        assign_perm("carparks.responsible_carpark", manager, carpark)
    central, restricted = Client(), Client()
    central.force_login(finance)
    restricted.force_login(manager)
    some_carpark = CarPark.objects.get(code="bench-1").pk
    variants = [
        ("default (30 days)", central, {}),
        ("90 days", central, {"period": "90"}),
        ("one year", central, {"period": "365"}),
        ("one workflow", central, {"workflow": "bench-season"}),
        ("one car park", central, {"carpark": some_carpark}),
        ("car-park manager", restricted, {}),
    ]
    for _, client, params in variants:  # warm-up
        assert client.get("/monitoring/", params).status_code == 200

    def run(label: str) -> tuple[dict[str, list[float]], list[float]]:
        times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        for n in range(args.requests):
            name, client, params = variants[n % len(variants)]
            ms, response = timed(client.get, "/monitoring/", params)
            assert response.status_code == 200
            times[name].append(ms)
        every = [t for values in times.values() for t in values]
        print(
            f"dashboard, {label}: {len(every)} requests, p50 {statistics.median(every):.0f} ms, "
            f"p95 {percentile(every, 0.95):.0f} ms, max {max(every):.0f} ms"
        )
        for name, values in times.items():
            print(f"  {name}: median {statistics.median(values):.0f} ms")
        return times, every

    # As deployed: today's period figures are cached for 30 s (the live counts are always live).
    times, every = run("as deployed")
    p50, p95 = statistics.median(every), percentile(every, 0.95)
    # Worst case: today's figures recomputed from the history on every request.
    settings.MONITORING_CACHE = False
    cold_times, cold = run("today recomputed on every request")
    cold_p50, cold_p95 = statistics.median(cold), percentile(cold, 0.95)
    settings.MONITORING_CACHE = True

    an_ms, response = timed(central.get, "/monitoring/analytics/", {"workflow": "bench-season", "period": "90"})
    assert response.status_code == 200
    from workflows.models import WorkflowVersion

    version_id = WorkflowVersion.objects.filter(definition__key="bench-season").order_by("-number")[0].pk
    hm_ms, response = timed(central.get, f"/monitoring/heatmap/{version_id}/data.json", {"period": "365"})
    assert response.status_code == 200
    print(
        f"analytics page (90 days, percentiles from raw events): {an_ms:.0f} ms; heatmap data (1 year): {hm_ms:.0f} ms"
    )

    day_from, day_to = period_for("monthly", timezone.localdate())
    statement_build(frequency="daily", day_from=day_to, day_to=day_to)  # fonts loaded once per process
    warm_ms, statement = timed(statement_build, frequency="monthly", day_from=day_from, day_to=day_to)
    AggregatedDay.objects.filter(day__gte=day_from, day__lte=day_to).delete()
    cold_ms, statement = timed(statement_build, frequency="monthly", day_from=day_from, day_to=day_to)
    month_events = statement.figures["totals"]["started"]
    print(
        f"monthly statement {day_from:%b %Y} ({month_events:,} processes started): {warm_ms / 1000:.2f} s from "
        f"stored figures, {cold_ms / 1000:.2f} s with the month not yet aggregated (PDF {len(statement.pdf):,} bytes)"
    )

    dash = f"p50 {p50:.0f} ms, **p95 {p95:.0f} ms**, max {max(every):.0f} ms"
    per_day = f"{agg_ms / max(1, len(days)):.0f} ms"
    rows = "\n".join(
        f"| {name} | {statistics.median(values):.0f} ms | {statistics.median(cold_times[name]):.0f} ms |"
        for name, values in times.items()
    )
    markdown = f"""
History: **{events:,} events** in PostgreSQL ({BENCH_DB}), two years, 4 workflows, 20 car parks. {generated}

| figure | result | target |
| --- | --- | --- |
| dashboard server time, {len(every)} requests over 6 filters | {dash} | p95 ≤ 300 ms |
| dashboard, today recomputed on every request | p50 {cold_p50:.0f} ms, p95 {cold_p95:.0f} ms | – |
| monthly statement ({day_from:%b %Y}), from stored daily figures, PDF included | **{warm_ms / 1000:.2f} s** | ≤ 10 s |
| monthly statement, month not aggregated yet (aggregates 1 month first) | {cold_ms / 1000:.2f} s | ≤ 10 s |
| aggregating one day's history (the nightly job), mean of {len(days)} days | {per_day} | – |
| analytics page, 90 days (p50/p90 from raw events) | {an_ms:.0f} ms | – |
| heatmap figures, one year | {hm_ms:.0f} ms | – |

Dashboard median per filter:

| filter | as deployed | today recomputed |
| --- | --- | --- |
{rows}

Server time is measured around Django's test client in the same process (middleware, queries,
template rendering; no network). "As deployed": the day-so-far figures of today are cached for 30 s
(the live counts — running, waiting, overdue, escalated, incidents, baskets — are always queried);
stored days come from the daily roll-ups (`DailyWorkflowStat`, `DailyStepStat`), whose sums are
cached until the next aggregation. Statements are built at 06:00 UTC, after the nightly aggregation
(00:20 UTC), so the "not aggregated yet" row is the fallback when that job did not run.
Load average on the shared 2-core machine during the run: {os.getloadavg()[0]:.1f}.
Run: `.venv/bin/python bench/monitoring.py` (add `--regenerate`
to build the history again).
"""
    if not args.no_record:
        from bench._record import record

        record("monitoring", markdown)
        print("recorded in docs/benchmarks.md (section monitoring)")


if __name__ == "__main__":
    main()
