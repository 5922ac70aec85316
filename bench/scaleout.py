"""Scale-out of the engine against one PostgreSQL (issue 21).

For each configuration W×D: W real Celery worker processes (``celery worker --pool=solo -c 1``,
against Redis and the bench database) and D driver processes. The drivers start N processes between
them and do their user action (claim + complete the review, as the views do); the workers then run
everything else — a system step, a wait whose timer the beat tick fires (the bench sends the tick
task every ``--tick-every`` seconds, 1 by default, as beat does every 10 s in production, and the
workers run it), a second system step — to the end.

    start → review (user; drivers) → activate (system; workers) → cool off (wait 1 s; timer, workers)
          → notify (system; workers) → end

Measured per configuration: processes/s (N over the time until the last one completed), PostgreSQL's
committed transactions (pg_stat_database.xact_commit delta) and commits/s, lock waits (sampled every
0.1 s from pg_stat_activity: backends waiting on a lock, and ungranted rows in pg_locks), and CPU
(user + system seconds over the wall time, 100 % = one core) of the workers, the drivers and the
database's backends.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/phq_scale REDIS_URL=redis://127.0.0.1:6379/9 \
        .venv/bin/python bench/scaleout.py [--configs 1x1,2x2,4x4] [--processes 1000] [--record] [--keep]

The database ``<name>_scaleout_bench`` next to DATABASE_URL's is created, migrated and dropped; the
Redis database of REDIS_URL is the broker (purged before each configuration).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._db import bench_database  # noqa: E402
from bench._record import python_speed_ms  # noqa: E402

AGENT = "Back-office agent"
SPEC = {
    "key": "bench-scaleout",
    "name": "Bench scale-out",
    "variables": ["contract_id"],
    "steps": [
        {"id": "start", "type": "start", "next": "review"},
        {
            "id": "review",
            "type": "user",
            "name": "Review application",
            "role": AGENT,
            "outcomes": {"approve": "activate"},
        },
        {
            "id": "activate",
            "type": "system",
            "task": "bench.scaleout_activate",
            "retry": {"max_attempts": 3, "backoff": "PT5S"},
            "next": "cool_off",
        },
        {"id": "cool_off", "type": "wait", "duration": "PT1S", "next": "notify"},
        {
            "id": "notify",
            "type": "system",
            "task": "bench.scaleout_notify",
            "retry": {"max_attempts": 3, "backoff": "PT5S"},
            "next": "done",
        },
        {"id": "done", "type": "end", "result": "done"},
    ],
}


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parkinghq.settings.test")
    import django

    django.setup()
    import bench.scaleout_tasks  # noqa: F401  (registers the system steps)


def _driver(index: int, count: int, first: int, go, queue) -> None:  # type: ignore[no-untyped-def]
    """Start ``count`` processes and do each one's user action, one transaction per action."""
    _setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from workflows import services, signals
    from workflows.models import Task

    user = get_user_model().objects.get(username="bench-agent")
    services.can_work_on(user, Task(role=AGENT))
    created: list[int] = []
    signals.task_created.connect(lambda sender, task, **kw: created.append(task.pk), weak=False)
    connection.ensure_connection()
    go.wait()
    cpu, started = time.process_time(), time.perf_counter()
    for n in range(first, first + count):
        services.process_start(definition_key="bench-scaleout", variables={"contract_id": n})
        task_id = created.pop()
        services.task_claim_by_id(task_id=task_id, user=user)
        task = services.task_load(task_id)
        services.task_complete(task=task, user=user, outcome="approve")
    queue.put({"driver": index, "seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu})
    connection.close()


class Sampler(threading.Thread):
    """Every 0.1 s: lock waits in the bench database, and CPU seconds of the processes watched."""

    def __init__(self, dsn: str, database: str, groups: dict[str, list[int]]) -> None:
        super().__init__(daemon=True)
        self.dsn, self.database, self.groups = dsn, database, groups
        self.stop = threading.Event()
        self.samples = 0
        self.lock_waiting = 0  # sum over samples of backends waiting on a lock
        self.lock_max = 0
        self.ungranted = 0
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.backends: set[int] = set()

    def _cpu(self, pid: int) -> None:
        import psutil

        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return
        seconds = times.user + times.system
        self.first.setdefault(pid, seconds)
        self.last[pid] = seconds

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                rows = conn.execute(
                    "SELECT pid, wait_event_type FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    [self.database],
                ).fetchall()
                waiting = sum(1 for _, kind in rows if kind == "Lock")
                self.ungranted += conn.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE NOT l.granted AND a.datname = %s",
                    [self.database],
                ).fetchone()[0]
                self.samples += 1
                self.lock_waiting += waiting
                self.lock_max = max(self.lock_max, waiting)
                self.backends.update(pid for pid, _ in rows)
                for pid in [*self.backends, *(p for pids in self.groups.values() for p in pids)]:
                    self._cpu(pid)
                self.stop.wait(0.1)

    def cpu_seconds(self, pids) -> float:  # type: ignore[no-untyped-def]
        return sum(self.last.get(p, 0) - self.first.get(p, 0) for p in pids)


def _xact_commit(dsn: str, database: str) -> int:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [database]).fetchone()[0]


def _start_workers(count: int, env: dict, logs: Path) -> list[subprocess.Popen]:
    workers = []
    for i in range(count):
        log = logs / f"worker-{i}.log"
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "parkinghq",
                    "worker",
                    "--pool=solo",
                    "--concurrency=1",
                    "-n",
                    f"scaleout{i}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel=INFO",
                    "--include=bench.scaleout_tasks",
                ],
                cwd=ROOT,
                env=env,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        )
    deadline = time.monotonic() + 120
    for i, worker in enumerate(workers):
        log = logs / f"worker-{i}.log"
        while " ready." not in log.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                _stop(workers)
                raise RuntimeError(f"worker {i} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
    return workers


def _stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()


def run_config(workers_n: int, drivers_n: int, processes: int, first: int, ctx: dict, tick_every: float) -> dict:
    from django.db import connections

    from parkinghq.celery import app
    from workflows.models import Process
    from workflows.tasks import tick

    app.control.purge()
    done_before = Process.objects.filter(state="completed").count()
    connections.close_all()
    workers = _start_workers(workers_n, ctx["env"], ctx["logs"])
    mp = multiprocessing.get_context("spawn")
    go, queue = mp.Event(), mp.Queue()
    share = [processes // drivers_n + (1 if i < processes % drivers_n else 0) for i in range(drivers_n)]
    drivers, start = [], first
    for i, count in enumerate(share):
        drivers.append(mp.Process(target=_driver, args=(i, count, start, go, queue), daemon=True))
        start += count
    for d in drivers:
        d.start()
    time.sleep(2)  # the drivers set Django up before the clock starts
    sampler = Sampler(ctx["admin"], ctx["database"], {"workers": [w.pid for w in workers]})
    sampler.groups["drivers"] = [d.pid for d in drivers]
    commits = _xact_commit(ctx["admin"], ctx["database"])
    sampler.start()
    time.sleep(0.3)
    started = time.perf_counter()
    go.set()
    deadline = time.monotonic() + max(120, processes)
    next_tick = 0.0
    completed = 0
    try:
        while True:
            now = time.monotonic()
            if now >= next_tick:
                tick.apply_async()  # the beat's tick; a worker runs it
                next_tick = now + tick_every
            completed = Process.objects.filter(state="completed").count() - done_before
            if completed >= processes or now > deadline:
                break
            time.sleep(0.05)
        wall = time.perf_counter() - started
        results = [queue.get(timeout=60) for _ in drivers]
        for d in drivers:
            d.join(30)
    finally:
        sampler.stop.set()
        sampler.join(5)
        _stop(workers)
        connections.close_all()
    commits = _xact_commit(ctx["admin"], ctx["database"]) - commits
    worker_pids = sampler.groups["workers"]
    driver_pids = sampler.groups["drivers"]
    return {
        "workers": workers_n,
        "drivers": drivers_n,
        "processes": processes,
        "completed": completed,
        "seconds": round(wall, 2),
        "processes_per_s": round(completed / wall, 1),
        "drivers_seconds": round(max(r["seconds"] for r in results), 2),
        "commits": commits,
        "commits_per_s": round(commits / wall),
        "commits_per_process": round(commits / max(1, completed), 1),
        "lock_waiting_avg": round(sampler.lock_waiting / max(1, sampler.samples), 2),
        "lock_waiting_max": sampler.lock_max,
        "ungranted_locks_avg": round(sampler.ungranted / max(1, sampler.samples), 2),
        "cpu_workers_pct": round(100 * sampler.cpu_seconds(worker_pids) / wall),
        "cpu_drivers_pct": round(100 * sampler.cpu_seconds(driver_pids) / wall),
        "cpu_postgres_pct": round(100 * sampler.cpu_seconds(sampler.backends) / wall),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="1x1,2x2,4x4", help="WORKERSxDRIVERS, comma-separated")
    parser.add_argument("--processes", type=int, default=1000, help="processes per configuration")
    parser.add_argument("--tick-every", type=float, default=1.0, help="seconds between timer ticks")
    parser.add_argument("--record", action="store_true", help="write the figures into docs/benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    try:
        configs = [tuple(int(n) for n in c.lower().split("x")) for c in args.configs.split(",") if c.strip()]
        assert configs and all(len(c) == 2 and min(c) >= 1 for c in configs)
    except (ValueError, AssertionError):
        parser.error(f"--configs “{args.configs}” is not a list like 1x1,2x2,4x4 (workers x drivers)")

    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/parkinghq")
    redis = os.environ.get("REDIS_URL", "")
    if not url.startswith(("postgres://", "postgresql://")) or not redis.startswith("redis://"):
        print("bench/scaleout.py needs DATABASE_URL (PostgreSQL) and REDIS_URL (the broker)", file=sys.stderr)
        return 2
    bench_url, admin_url, bench_name = bench_database(url, "_scaleout_bench")
    admin = admin_url.replace("postgres://", "postgresql://", 1)
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{bench_name}"')
    os.environ["DATABASE_URL"] = bench_url
    os.environ["WORKFLOWS_DISPATCH"] = "true"  # the drivers hand system steps to the broker
    # The workers keep their connections, as in docker-compose.yml (DATABASE_POOL): without it every
    # Celery task opens a new PostgreSQL connection, and that, not the engine, is what the curve shows.
    os.environ["DATABASE_POOL"] = "true"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "parkinghq.settings.test", "PYTHONPATH": str(ROOT)}
    logs = ROOT / "var" / "bench-scaleout"
    logs.mkdir(parents=True, exist_ok=True)
    speed_before, load_before = python_speed_ms(), os.getloadavg()[0]
    _setup_django()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connections

    rows = []
    try:
        call_command("migrate", verbosity=0)
        from workflows.services import definition_install

        definition_install(spec=SPEC)
        agent = get_user_model().objects.create_user("bench-agent", first_name="Bench")
        agent.groups.add(Group.objects.get_or_create(name=AGENT)[0])
        ctx = {"env": env, "logs": logs, "admin": admin, "database": bench_name}
        first = 0
        for workers_n, drivers_n in configs:
            figures = run_config(workers_n, drivers_n, args.processes, first, ctx, args.tick_every)
            first += args.processes
            rows.append(figures)
            print(json.dumps(figures), flush=True)
    finally:
        if not args.keep:
            connections.close_all()
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{bench_name}" WITH (FORCE)')

    lines = [
        f"`bench/scaleout.py --configs {args.configs} --processes {args.processes}`: W Celery workers "
        "(`--pool=solo -c 1` each) run the system steps and the timer ticks, D driver processes start the "
        "processes and do the user action; one PostgreSQL, Redis as the broker; every process keeps its "
        "connections (`DATABASE_POOL=true`, as docker-compose.yml runs them); a timer tick every "
        f"{args.tick_every} s. Shape: start → review (user) → "
        "activate (system) → cool off (wait 1 s, timer) → notify (system) → end.",
        "",
        "| workers × drivers | processes/s | commits/s | commits per process | backends waiting on a lock "
        "(avg / max) | ungranted locks (avg) | CPU workers | CPU drivers | CPU PostgreSQL |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['workers']} × {r['drivers']} | {r['processes_per_s']} | {r['commits_per_s']:,} "
            f"| {r['commits_per_process']} | {r['lock_waiting_avg']} / {r['lock_waiting_max']} "
            f"| {r['ungranted_locks_avg']} | {r['cpu_workers_pct']} % | {r['cpu_drivers_pct']} % "
            f"| {r['cpu_postgres_pct']} % |"
        )
    lines += [
        "",
        "CPU: user + system seconds over the wall time (100 % = one core fully busy). Reference loop (2 M "
        f"additions in Python) before → after: {speed_before} → {python_speed_ms()} ms; load average before → "
        f"after: {load_before:.1f} → {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
    ]
    text = "\n".join(lines)
    print(text)
    incomplete = [r for r in rows if r["completed"] < r["processes"]]
    if incomplete:
        print(f"not every process completed: {incomplete}", file=sys.stderr)
        return 1
    if args.record:
        from bench._record import record

        record("scaleout", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
