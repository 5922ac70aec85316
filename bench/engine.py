"""Benchmark of the workflow engine on PostgreSQL (issue 3).

N processes of the season-contract shape — start → user task "review application" (1 in 10
rejected → end) → decision → system task "activate credential" → user task "confirm payment
setup" → end — driven end to end with one transaction per user action exactly as the views do it
(the claim view calls services.task_claim_by_id; the complete view loads the task with
services.task_load, then calls task_complete), system steps
executed by the very code the Celery worker runs (workflows.engine.execute_job, handed the job id
the broker message would carry), full history on.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/phq_engine .venv/bin/python bench/engine.py \
        [--processes 2000] [--workers 2] [--json FILE] [--record] [--peer]

It works in a throw-away database ``<name>_bench`` next to DATABASE_URL's (created, migrated and
dropped). SQL statements are counted with ``connection.execute_wrapper`` in every worker.

``--peer`` then runs the same shape on django-viewflow 2.4.0 with one driver process
(bench/peer_viewflow/run.py, in its own venv ``var/peer-venv``, made on first use) and adds its figures
and the ratio of processes/s; compare with ``--workers 1``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._db import bench_database  # noqa: E402
from bench._record import python_speed_ms  # noqa: E402

SPEC = {
    "key": "bench-season",
    "name": "Bench season contract",
    "variables": ["deposit", "contract_id"],
    "steps": [
        {"id": "start", "type": "start", "next": "review"},
        {
            "id": "review",
            "type": "user",
            "name": "Review application",
            "role": "Back-office agent",
            "due_in": "P2D",
            "escalation": [{"after": "PT0S", "to": "Supervisor"}],
            "inputs": [
                {"name": "note", "type": "text"},
                {"name": "deposit_ok", "type": "bool", "required": True},
            ],
            "outcomes": {"approve": "needs_deposit", "reject": "rejected"},
        },
        {
            "id": "needs_deposit",
            "type": "decision",
            "branches": [{"when": "deposit > 0", "next": "activate_credential"}],
            "default": "activate_credential",
        },
        {
            "id": "activate_credential",
            "type": "system",
            "task": "bench.activate_credential",
            "retry": {"max_attempts": 3, "backoff": "PT30S"},
            "next": "confirm_payment",
        },
        {
            "id": "confirm_payment",
            "type": "user",
            "name": "Confirm payment setup",
            "role": "Back-office agent",
            "outcomes": {"done": "approved"},
        },
        {"id": "approved", "type": "end", "result": "approved"},
        {"id": "rejected", "type": "end", "result": "rejected"},
    ],
}


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parkinghq.settings.test")
    import django

    django.setup()
    from workflows.registry import system_task

    @system_task("bench.activate_credential", reads=["contract_id"], writes=["credential_id"])
    def activate_credential(ctx):  # type: ignore[no-untyped-def]
        return {"credential_id": f"C-{ctx.variables.get('contract_id')}"}


PHASES = ("start", "claim", "complete", "system step", "timers")
TIMER_SWEEP_EVERY = 20  # processes between two sweeps for due timers (the beat's tick)


def _worker(index: int, count: int, first: int, queue) -> None:  # type: ignore[no-untyped-def]
    _setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from workflows import engine, services, signals
    from workflows.models import Task

    user = get_user_model().objects.get(username="bench-agent")
    services.can_work_on(user, Task(role="Back-office agent"))  # the request's role cache, as in a view

    created: list[int] = []
    dispatched: list[int] = []
    signals.task_created.connect(lambda sender, task, **kw: created.append(task.pk), weak=False)
    engine.dispatch_jobs = lambda jobs: dispatched.extend(job.pk for job in jobs)  # the broker

    # Per phase: driver CPU (time.process_time) and wall time; inside every phase, the wall time and
    # driver CPU spent in database calls (statements and commits: the round trips, PostgreSQL's work
    # and psycopg's own Python).
    phases = {name: [0.0, 0.0] for name in PHASES}
    in_db = [0, 0.0, 0.0]  # statements, wall, cpu
    clock, cpu_clock = time.perf_counter, time.process_time

    import psycopg

    def timed(method):  # type: ignore[no-untyped-def]
        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            wall, cpu = clock(), cpu_clock()
            try:
                return method(*args, **kwargs)
            finally:
                in_db[1] += clock() - wall
                in_db[2] += cpu_clock() - cpu

        return call

    def counter(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        in_db[0] += 1
        return timed(execute)(sql, params, many, context)

    # commits: Django's at the end of an atomic block, and the pipeline's closing Sync that carries
    # a flush's statement and COMMIT in one round trip (workflows.engine.one_statement)
    psycopg.Connection.commit = timed(psycopg.Connection.commit)
    psycopg.Pipeline.__exit__ = timed(psycopg.Pipeline.__exit__)

    def phase(name: str, action, *args, **kwargs):  # type: ignore[no-untyped-def]
        wall, cpu = clock(), cpu_clock()
        result = action(*args, **kwargs)
        totals = phases[name]
        totals[0] += cpu_clock() - cpu
        totals[1] += clock() - wall
        return result

    def user_task(outcome: str, inputs: dict | None = None) -> None:
        task_id = created.pop()
        phase("claim", services.task_claim_by_id, task_id=task_id, user=user)  # the claim view (right checked in SQL)

        def complete() -> None:  # the complete view: loads the task, completes it
            services.task_complete(task=services.task_load(task_id), user=user, outcome=outcome, inputs=inputs)

        phase("complete", complete)

    tasks_done = 0
    connection.ensure_connection()  # connect before the clock starts
    began = time.time()
    cpu = time.process_time()
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        for n in range(first, first + count):
            variables = {"deposit": n % 3 * 50, "contract_id": n}
            phase("start", services.process_start, definition_key="bench-season", variables=variables)
            if n % 10 == 0:
                user_task("reject", {"deposit_ok": False})
                tasks_done += 1
            else:
                user_task("approve", {"deposit_ok": True, "note": "ok"})
                phase("system step", engine.execute_job, dispatched.pop())  # what run_system_step does in the worker
                user_task("done")
                tasks_done += 2
            if n % TIMER_SWEEP_EVERY == 0:
                phase("timers", engine.fire_due_timers)  # the beat's sweep
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    ended = time.time()
    connection.close()
    queue.put(
        {
            "worker": index,
            "processes": count,
            "tasks": tasks_done,
            "statements": in_db[0],
            "seconds": elapsed,
            "began": began,
            "ended": ended,
            "cpu_seconds": cpu,
            "db_seconds": in_db[1],
            "db_cpu_seconds": in_db[2],
            "phases": phases,
        }
    )


PEER_VENV = ROOT / "var" / "peer-venv"


def run_peer(processes: int, url: str | None = None) -> dict:
    """The viewflow peer's figures for ``processes`` processes (bench/peer_viewflow/run.py, one driver process).
    Its venv holds our pinned Django and psycopg and django-viewflow 2.4.0 (AGPL: never a dependency of ours)."""
    python, installed = PEER_VENV / "bin" / "python", PEER_VENV / "requirements.txt"
    pins = dict(re.findall(r"^(Django|psycopg)==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M))
    requirements = [f"django=={pins['Django']}", "django-viewflow==2.4.0", f"psycopg[binary]=={pins['psycopg']}"]
    if not installed.exists() or installed.read_text().split() != requirements:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
        installed.write_text("\n".join(requirements) + "\n")
    env = {**os.environ, "DATABASE_URL": url or os.environ["DATABASE_URL"]}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    command = [str(python), str(ROOT / "bench" / "peer_viewflow" / "run.py"), "--processes", str(processes)]
    speed_before = python_speed_ms()
    out = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    return {**json.loads(out), "python_loop_ms_before_after": [speed_before, python_speed_ms()]}


def _commits(admin_url: str, name: str) -> int:
    """Transactions PostgreSQL committed in database ``name`` (pg_stat_database), read afresh."""
    import psycopg

    with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [name]).fetchone()
    return int(row[0]) if row else 0


def _breakdown(results: list[dict], processes: int) -> dict:
    """Per process, in ms: each phase's driver CPU and wall time, and the database calls inside them
    (wall; the driver's CPU in them is psycopg's Python; the rest is waiting for PostgreSQL)."""
    per = 1000 / processes
    out: dict = {}
    for name in PHASES:
        cpu = sum(r["phases"][name][0] for r in results)
        wall = sum(r["phases"][name][1] for r in results)
        out[name] = {"cpu": round(cpu * per, 3), "wall": round(wall * per, 3)}
    db_wall = sum(r["db_seconds"] for r in results)
    db_cpu = sum(r["db_cpu_seconds"] for r in results)
    out["database calls"] = {"wall": round(db_wall * per, 3), "driver cpu": round(db_cpu * per, 3)}
    out["waiting for PostgreSQL"] = round((db_wall - db_cpu) * per, 3)
    return out


def _record(args: argparse.Namespace, figures: dict) -> None:
    """Write the figures into docs/benchmarks.md: one section per number of driver processes."""
    from bench._record import record

    workers = figures["workers"]
    load_before, load_after = figures["load_average_before"][0], figures["load_average_after"][0]
    loop_before, loop_after = figures["python_loop_ms_before_after"]
    ok_rate = "met" if figures["processes_per_s"] >= 150 else "**missed**"
    ok_sql = "met" if figures["sql_per_process"] <= 25 else "**missed**"
    peer, peer_rows = figures.get("peer"), ""
    if peer:
        ok_ratio = "met" if figures["ratio"] >= 4 else "**missed**"
        peer_loop = " → ".join(str(v) for v in peer.get("python_loop_ms_before_after", []))
        peer_rows = (
            f"\n| peer django-viewflow 2.4.0, 1 driver process: processes/s | {peer['processes_per_s']} | |"
            f"\n| peer: SQL statements per process | {peer['sql_per_process']} | |"
            f"\n| peer: driver CPU per process | {peer['driver_cpu_ms_per_process']} ms | |"
            f"\n| peer: reference loop before → after its run | {peer_loop} ms | |"
            f"\n| **engine ({workers} driver process{'es' if workers > 1 else ''}) ÷ peer (1), processes/s** | "
            f"**{figures['ratio']}** | {'≥ 4 (' + ok_ratio + ')' if workers == 1 else ''} |"
        )
    per = figures["per_process_ms"]
    cpu_ms, waiting = figures["driver_cpu_ms_per_process"], per["waiting for PostgreSQL"]
    phases = "\n".join(f"| {name} | {per[name]['cpu']} | {per[name]['wall']} |" for name in PHASES)
    name = f"engine-{workers}-driver{'s' if workers > 1 else ''}"
    record(
        name,
        f"""
`bench/engine.py --processes {args.processes} --workers {workers}{" --peer" if peer else ""}` on PostgreSQL (local, 2
cores shared by the bench's {workers} driver process{"es" if workers > 1 else ""} and the server).

| figure | value | target |
| --- | --- | --- |
| processes/s | {figures["processes_per_s"]} | ≥ 150 ({ok_rate}) |{peer_rows}
| tasks/s | {figures["tasks_per_s"]} | |
| SQL statements per process (views' task loads and history included) | {figures["sql_per_process"]} | ≤ 25 ({ok_sql}) |
| transactions committed per process (pg_stat_database; read-only ones included) | {figures["commits_per_process"]} | |
| rows stored per process (process, tasks, events, jobs, timers) | {figures["rows_per_process"]} | |
| history events per process | {figures["events_per_process"]} | |
| driving time for {args.processes} processes (first start to last end) | {figures["seconds"]} s | |
| driver CPU per process (all Python: services, engine, ORM, psycopg) | {cpu_ms} ms | |
| of which in database calls (psycopg and Django's cursor) | {per["database calls"]["driver cpu"]} ms | |
| waiting for PostgreSQL per process (database calls' wall less the driver's CPU in them) | {waiting} ms | |
| machine load average before → after (1 min) | {load_before:.1f} → {load_after:.1f} | |
| reference loop (2 M additions in Python) before → after | {loop_before} → {loop_after} ms | |

Per process, by phase (ms; summed over the driver processes; the timer sweep runs once per
{TIMER_SWEEP_EVERY} processes and finds none due in this shape, whose escalations fall due after two days):

| phase | driver CPU | wall |
| --- | --- | --- |
{phases}
""",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="OS processes driving processes in parallel")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--record", action="store_true", help="write the figures into docs/benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--peer", action="store_true", help="then run the viewflow 2.4 peer (one driver process)")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/parkinghq")
    if not url.startswith(("postgres://", "postgresql://")):
        print("bench/engine.py needs DATABASE_URL to point at PostgreSQL", file=sys.stderr)
        return 2
    bench_url, admin_url, bench_name = bench_database(url)
    load_before = list(os.getloadavg())
    speed_before = python_speed_ms()
    import psycopg

    with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_name}"')
        conn.execute(f'CREATE DATABASE "{bench_name}"')
    os.environ["DATABASE_URL"] = bench_url
    try:
        _setup_django()
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.core.management import call_command
        from django.db import connection, connections

        call_command("migrate", verbosity=0)
        from workflows.models import Process, ProcessEvent, SystemJob, Task, Timer
        from workflows.services import definition_install

        definition_install(spec=SPEC)
        agent = get_user_model().objects.create_user("bench-agent", first_name="Bench")
        agent.groups.add(Group.objects.get_or_create(name="Back-office agent")[0])
        connections.close_all()
        commits_before = _commits(admin_url, bench_name)

        workers = max(1, args.workers)
        share = [args.processes // workers + (1 if i < args.processes % workers else 0) for i in range(workers)]
        queue = multiprocessing.get_context("fork").Queue()
        procs, first = [], 0
        for i, count in enumerate(share):
            proc = multiprocessing.get_context("fork").Process(target=_worker, args=(i, count, first, queue))
            proc.start()
            procs.append(proc)
            first += count
        results = [queue.get() for _ in procs]
        for proc in procs:
            proc.join()
        # processes/s counts the driving loops only (first start to last end), as the peer's does
        wall = max(r["ended"] for r in results) - min(r["began"] for r in results)
        commits = _commits(admin_url, bench_name) - commits_before

        completed = Process.objects.filter(state="completed").count()
        rows = sum(m.objects.count() for m in (Process, Task, ProcessEvent, SystemJob, Timer))
        events = ProcessEvent.objects.count()
        connection.close()
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{bench_name}" WITH (FORCE)')

    total_tasks = sum(r["tasks"] for r in results)
    total_sql = sum(r["statements"] for r in results)
    figures = {
        "processes": args.processes,
        "workers": workers,
        "completed": completed,
        "seconds": round(wall, 2),
        "processes_per_s": round(args.processes / wall, 1),
        "tasks_per_s": round(total_tasks / wall, 1),
        "sql_per_process": round(total_sql / args.processes, 2),
        "rows_per_process": round(rows / args.processes, 2),
        "events_per_process": round(events / args.processes, 2),
        "driver_cpu_ms_per_process": round(sum(r["cpu_seconds"] for r in results) * 1000 / args.processes, 2),
        "per_process_ms": _breakdown(results, args.processes),
        "commits_per_process": round(commits / args.processes, 2),
        "python_loop_ms_before_after": [speed_before, python_speed_ms()],
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
    }
    if args.peer:
        figures["peer"] = run_peer(args.processes, url)
        figures["ratio"] = round(figures["processes_per_s"] / figures["peer"]["processes_per_s"], 2)
    print(json.dumps(figures, indent=2))
    if completed != args.processes:
        print(f"only {completed} of {args.processes} processes completed", file=sys.stderr)
        return 1
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    if args.record:
        _record(args, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
