"""Cost growth with the size of the history (issue 21).

The history is filled to N finished processes (default 10⁴, 10⁵ and 10⁶; about ten history events
and one completed task each, so 10⁷ events at 10⁶), generated with INSERT … SELECT over
generate_series, ended over the last 400 days. At each size, warm:

- engine processes/s: bench/engine.py's driver (the views' claim/complete, the worker's system step,
  full history) in one driver process running ``--engine-processes`` season-contract processes;
- the task basket's p95 (Django test client, pooled connections): the queue, the done tab and the
  navigation badge of an agent who sees 200 of 1,000 open tasks and has completed one in 200 of the
  finished ones.

Then ``history_archive`` runs on the largest history (processes ended more than 90 days ago), with
its duration and rows/s, and the figures are measured once more on what stays live.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/phq_growth .venv/bin/python bench/growth.py \
        [--sizes 10000,100000,1000000] [--engine-processes 300] [--samples 100] [--record] [--keep]

The database ``<name>_growth_bench`` next to DATABASE_URL's is created, migrated and dropped.
Figures are printed; ``--record`` writes them into docs/benchmarks.md (only from a quiet machine).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._db import bench_database  # noqa: E402
from bench._record import python_speed_ms  # noqa: E402

AGENT = "Back-office agent"
OPEN_TASKS = 1000
EVENTS_PER_PROCESS = 10
# One finished process's history, as the engine writes it for bench/engine.py's shape.
KINDS = [
    ("process_started", ""),
    ("step_entered", "review"),
    ("task_created", "review"),
    ("task_claimed", "review"),
    ("task_completed", "review"),
    ("step_left", "review"),
    ("step_entered", "activate_credential"),
    ("system_attempt", "activate_credential"),
    ("step_left", "activate_credential"),
    ("process_completed", ""),
]
ARCHIVE_DAYS = 90


def _sql_array(values: list[str]) -> str:
    return "ARRAY[" + ",".join(f"'{v}'" for v in values) + "]"


def fill(target: int, version, agent, others: list[int]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Add finished processes (each with one completed task and ten events) until ``target`` of them."""
    from django.db import connection

    from bench.basket import insert_series
    from workflows.models import Process

    have = Process.objects.filter(state="completed", title__startswith="History ").count()
    add = target - have
    if add <= 0:
        return {}
    timings = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM workflows_process")
        base_p = cursor.fetchone()[0]
        cursor.execute("SELECT coalesce(max(id), 0) FROM workflows_task")
        base_t = cursor.fetchone()[0]
        # Process i ended (i * 7919 mod 400 days) minutes ago and took 40 minutes.
        ended = "now() - make_interval(mins => ((i::bigint * 7919) % (400 * 1440))::int)"  # bigint: i reaches 10⁶
        started = time.perf_counter()
        insert_series(
            cursor,
            "workflows_process",
            add,
            {
                "id": f"{base_p} + i",
                "definition_id": str(version.definition_id),
                "version_id": str(version.pk),
                "state": "'completed'",
                "current_step": "'approved'",
                "result": "'approved'",
                "step_seq": "4",
                "variables": "'{}'::jsonb",
                "title": "'History ' || i",
                "started_at": f"{ended} - interval '40 minutes'",
                "updated_at": ended,
                "ended_at": ended,
            },
        )
        timings["processes"] = time.perf_counter() - started
        started = time.perf_counter()
        others_sql = "ARRAY[" + ",".join(str(u) for u in others) + "]"
        insert_series(
            cursor,
            "workflows_task",
            add,
            {
                "id": f"{base_t} + i",
                "process_id": f"{base_p} + i",
                "step_id": "'review'",
                "step_seq": "1",
                "name": "'Review application'",
                "role": f"'{AGENT}'",
                "state": "'completed'",
                "outcome": "'approve'",
                "inputs": "'{}'::jsonb",
                "draft": "'{}'::jsonb",
                "due_at": f"{ended} + interval '2 days'",
                "created_at": f"{ended} - interval '39 minutes'",
                "claimed_at": f"{ended} - interval '30 minutes'",
                "completed_at": f"{ended} - interval '20 minutes'",
                "completed_by_id": f"CASE WHEN i % 200 = 0 THEN {agent.pk} ELSE ({others_sql})[1 + i % 20] END",
                "assignee_id": f"CASE WHEN i % 200 = 0 THEN {agent.pk} ELSE ({others_sql})[1 + i % 20] END",
            },
        )
        timings["tasks"] = time.perf_counter() - started
        started = time.perf_counter()
        kinds = _sql_array([k for k, _ in KINDS])
        steps = _sql_array([s for _, s in KINDS])
        n = EVENTS_PER_PROCESS
        # Event i is number (i - 1) % 10 of process (i - 1) / 10 + 1, four minutes after the one before.
        p = f"((i - 1) / {n} + 1)"
        j = f"((i - 1) % {n})"
        insert_series(
            cursor,
            "workflows_processevent",
            add * n,
            {
                "process_id": f"{base_p} + {p}",
                "kind": f"({kinds})[1 + {j}]",
                "step_id": f"({steps})[1 + {j}]",
                "task_id": f"CASE WHEN {j} BETWEEN 2 AND 4 THEN {base_t} + {p} ELSE NULL END",
                "actor_id": f"CASE WHEN {j} IN (3, 4) THEN ({others_sql})[1 + {p} % 20] ELSE NULL END",
                "at": f"now() - make_interval(mins => (({p}::bigint * 7919) % (400 * 1440))::int) "
                f"- interval '40 minutes' + make_interval(mins => 4 * {j})",
                "duration_ms": f"CASE WHEN {j} IN (4, 5, 8) THEN 600000 ELSE NULL END",
                "data": "'{}'::jsonb",
            },
        )
        timings["events"] = time.perf_counter() - started
        started = time.perf_counter()
        cursor.execute("VACUUM ANALYZE")
        timings["vacuum analyze"] = time.perf_counter() - started
    return timings


def open_tasks(version, agent) -> None:  # type: ignore[no-untyped-def]
    """1,000 running processes with an open review task each; 200 of them unscoped for the agent's role."""
    from django.db import connection

    from bench.basket import insert_series

    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM workflows_process")
        base = cursor.fetchone()[0]
        insert_series(
            cursor,
            "workflows_process",
            OPEN_TASKS,
            {
                "id": f"{base} + i",
                "definition_id": str(version.definition_id),
                "version_id": str(version.pk),
                "state": "'running'",
                "current_step": "'review'",
                "step_seq": "1",
                "variables": "'{}'::jsonb",
                "title": "'Open ' || i",
                "started_at": "now() - make_interval(mins => i)",
                "updated_at": "now()",
            },
        )
        cursor.execute("SELECT coalesce(max(id), 0) FROM workflows_task")
        base_t = cursor.fetchone()[0]
        insert_series(
            cursor,
            "workflows_task",
            OPEN_TASKS,
            {
                "id": f"{base_t} + i",
                "process_id": f"{base} + i",
                "step_id": "'review'",
                "step_seq": "1",
                "name": "'Review application'",
                "role": f"CASE WHEN i % 5 = 0 THEN '{AGENT}' ELSE 'Finance' END",
                "state": "'open'",
                "inputs": "'{}'::jsonb",
                "draft": "'{}'::jsonb",
                "due_at": "now() + make_interval(hours => (i % 96) - 24)",
                "priority": "1 + i % 4",
                "created_at": "now() - make_interval(mins => i)",
            },
        )


def engine_rate(count: int, first: int) -> dict:
    """bench/engine.py's driver in one fresh process (spawned: no connection shared with this one)."""
    from django.db import connections

    from bench import engine

    connections.close_all()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    proc = context.Process(target=engine._worker, args=(0, count, first, queue))
    wall = time.perf_counter()
    proc.start()
    result = queue.get()
    proc.join()
    wall = time.perf_counter() - wall
    return {
        "processes_per_s": round(count / result["seconds"], 1),
        "sql_per_process": round(result["statements"] / count, 2),
        "cpu_ms_per_process": round(result["cpu_seconds"] * 1000 / count, 2),
    }


def basket_p95(agent, samples: int) -> dict:  # type: ignore[no-untyped-def]
    from django.test import Client

    from bench.basket import measure

    client = Client()
    client.force_login(agent)
    pages = {"queue": "/basket/", "done": "/basket/?tab=done", "badge": "/basket/count/"}
    return {name: measure(client, url, samples) for name, url in pages.items()}


def measure_all(label: str, args, agent, first: int) -> dict:  # type: ignore[no-untyped-def]
    from workflows.models import Process, ProcessEvent, ProcessEventArchive

    figures = {
        "label": label,
        "finished": Process.objects.filter(state="completed").count(),
        "events": ProcessEvent.objects.count(),
        "archived": ProcessEventArchive.objects.count(),
    }
    figures["engine"] = engine_rate(args.engine_processes, first)
    figures["basket"] = basket_p95(agent, args.samples)
    print(
        f"{label}: {figures['finished']:,} finished, {figures['events']:,} live events — engine "
        f"{figures['engine']['processes_per_s']} processes/s, {figures['engine']['sql_per_process']} SQL/process; "
        f"basket p95 queue {figures['basket']['queue']['p95']:.1f} ms, done {figures['basket']['done']['p95']:.1f} ms",
        flush=True,
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="finished processes, comma-separated")
    parser.add_argument("--engine-processes", type=int, default=300, help="processes the engine runs per size")
    parser.add_argument("--samples", type=int, default=100, help="requests per basket page and size")
    parser.add_argument("--batch-size", type=int, default=5000, help="history_archive's batch size")
    parser.add_argument("--record", action="store_true", help="write the figures into docs/benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    try:
        sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip())
    except ValueError:
        parser.error(f"--sizes “{args.sizes}” is not a list of numbers (e.g. 10000,100000)")
    if not sizes or sizes[0] < 1:
        parser.error("--sizes needs at least one size of 1 or more")

    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/parkinghq")
    if not url.startswith(("postgres://", "postgresql://")):
        print("bench/growth.py needs DATABASE_URL to point at PostgreSQL", file=sys.stderr)
        return 2
    bench_url, admin_url, bench_name = bench_database(url, "_growth_bench")
    admin = admin_url.replace("postgres://", "postgresql://", 1)
    load_before = os.getloadavg()[0]
    speed_before = python_speed_ms()
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{bench_name}"')
    os.environ["DATABASE_URL"] = bench_url
    os.environ.setdefault("DATABASE_POOL", "true")
    from bench import engine

    engine._setup_django()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone

    settings.ALLOWED_HOSTS = ["*"]
    settings.WORKFLOWS_DISPATCH = False
    rows, archive = [], {}
    try:
        call_command("migrate", verbosity=0)
        from workflows.archive import history_archive
        from workflows.services import definition_install

        version = definition_install(spec=engine.SPEC)
        users = get_user_model()
        agent = users.objects.create_user("bench-agent", first_name="Bench")
        agent.groups.add(Group.objects.get_or_create(name=AGENT)[0])
        others = [u.pk for u in users.objects.bulk_create(users(username=f"bench-user-{n}") for n in range(20))]
        open_tasks(version, agent)
        first = 0
        for size in sizes:
            started = time.perf_counter()
            timings = fill(size, version, agent, others)
            print(f"filled to {size:,}: {json.dumps({k: round(v, 1) for k, v in timings.items()})}", flush=True)
            rows.append(measure_all(f"{size:,}", args, agent, first) | {"fill_s": time.perf_counter() - started})
            first += args.engine_processes
        before = timezone.localdate() - timedelta(days=ARCHIVE_DAYS)
        result = history_archive(before=before, batch_size=args.batch_size)
        archive = {
            "before": before.isoformat(),
            "events": result.events,
            "processes": result.processes,
            "batches": result.batches,
            "seconds": round(result.seconds, 1),
            "rows_per_s": round(result.rows_per_second),
        }
        print(f"history_archive --before {before}: {json.dumps(archive)}", flush=True)
        with connections["default"].cursor() as cursor:
            cursor.execute("VACUUM ANALYZE workflows_processevent")
        rows.append(measure_all(f"{sizes[-1]:,}, archived", args, agent, first))
        connections.close_all()
    finally:
        if not args.keep:
            connections.close_all()
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{bench_name}" WITH (FORCE)')

    speed_after = python_speed_ms()
    lines = [
        f"`bench/growth.py --sizes {','.join(str(s) for s in sizes)} --engine-processes {args.engine_processes} "
        f"--samples {args.samples}`: the history filled with N finished processes (ten events and one completed "
        "task each, ended over the last 400 days, INSERT … SELECT over generate_series), then, warm, bench/engine.py's "
        "driver in one process and the basket pages (Django test client, pooled connections) of an agent who sees "
        "200 of 1,000 open tasks and completed one finished task in 200.",
        "",
        "| finished processes | live history events | archived events | engine processes/s | SQL per process "
        "| basket queue p95 ms | done tab p95 ms | badge p95 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        b = r["basket"]
        lines.append(
            f"| {r['label']} | {r['events']:,} | {r['archived']:,} | {r['engine']['processes_per_s']} "
            f"| {r['engine']['sql_per_process']} | {b['queue']['p95']:.1f} | {b['done']['p95']:.1f} "
            f"| {b['badge']['p95']:.1f} |"
        )
    lines += [
        "",
        f"`history_archive --before {archive.get('before')}` (processes ended more than {ARCHIVE_DAYS} days ago) "
        f"on the largest history: {archive.get('events', 0):,} events of {archive.get('processes', 0):,} processes "
        f"in {archive.get('batches', 0):,} batches of {args.batch_size}, {archive.get('seconds')} s, "
        f"{archive.get('rows_per_s', 0):,} rows/s.",
        "",
        f"Reference loop (2 M additions in Python) before → after: {speed_before} → {speed_after} ms; load "
        f"average before → after: {load_before:.1f} → {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.record:
        from bench._record import record

        record("growth", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
