"""Benchmark of Connect (issue 6): static and occupancy sync of 1,000 car parks from the simulator.

The CPMS simulator runs as its own process (``manage.py cpms_simulator`` on a free port, as
``make run`` starts it) and is read over real HTTP with the APDS 4 adapter; the sync writes to
PostgreSQL exactly as the nightly/5-minute jobs do (``connect.services.sync_static`` and
``sync_occupancy``). Target: the first static import plus an occupancy sync of 1,000 car parks
within 10 s.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/phq_connect .venv/bin/python bench/connect.py \
        [--carparks 1000] [--record] [--keep]

It works in a throw-away database ``<name>_bench`` next to DATABASE_URL's (created, migrated and
dropped).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._db import bench_database  # noqa: E402

TARGET_SECONDS = 10.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen) -> None:
    import requests

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the simulator exited before it answered")
        try:
            requests.get(f"{url}/_sim/state", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("the simulator did not answer within 30 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--carparks", type=int, default=1000)
    parser.add_argument("--record", action="store_true", help="write the figures to docs/benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/parkinghq")
    if not url.startswith(("postgres://", "postgresql://")):
        print("bench/connect.py needs DATABASE_URL to point at PostgreSQL", file=sys.stderr)
        return 2
    bench_url, admin_url, bench_name = bench_database(url)
    import psycopg

    with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_name}"')
        conn.execute(f'CREATE DATABASE "{bench_name}"')
    os.environ["DATABASE_URL"] = bench_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parkinghq.settings.test")
    port = _free_port()
    simulator = subprocess.Popen(
        [sys.executable, "manage.py", "cpms_simulator", "--port", str(port), "--carparks", str(args.carparks)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    sim_url = f"http://127.0.0.1:{port}"
    try:
        import django

        django.setup()
        import requests
        from django.core.management import call_command
        from django.db import connection

        from carparks.models import CarPark
        from connect import services
        from connect.models import CpmsConnection

        call_command("migrate", verbosity=0)
        _wait_for(sim_url, simulator)
        cpms = CpmsConnection(name="Bench simulator", code="bench", kind="apds", base_url=sim_url, timeout_seconds=30)
        cpms.set_secret("bench-token")
        cpms.save()

        figures: list[tuple[str, float, str]] = []

        def timed(label: str, call) -> float:  # type: ignore[no-untyped-def]
            queries = []

            def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
                queries.append(sql)
                return execute(sql, params, many, context)

            started = time.perf_counter()
            with connection.execute_wrapper(count):
                run = call()
            elapsed = time.perf_counter() - started
            counts = f"{run.created} created, {run.updated} updated, {run.unchanged} unchanged, {len(queries)} SQL"
            figures.append((label, elapsed, counts))
            print(f"{label:<42} {elapsed:7.2f} s   {counts}", flush=True)
            return elapsed

        first_static = timed("static import (creates)", lambda: services.sync_static(connection=cpms))
        first_occupancy = timed("occupancy sync", lambda: services.sync_occupancy(connection=cpms))
        timed("static sync again (unchanged)", lambda: services.sync_static(connection=cpms))
        for number in range(1, 11):
            requests.put(f"{sim_url}/_sim/places/SIM-{number:04d}", json={"capacity": 999}, timeout=5)
        timed("static sync, 10 car parks changed", lambda: services.sync_static(connection=cpms))
        timed("occupancy sync again", lambda: services.sync_occupancy(connection=cpms))
        total = first_static + first_occupancy
        carparks = CarPark.objects.count()
        verdict = "meets" if total <= TARGET_SECONDS else "MISSES"
        print(
            f"\n{carparks} car parks; first static import + occupancy sync: {total:.2f} s "
            f"({verdict} the {TARGET_SECONDS:.0f} s target)"
        )

        if args.record:
            from bench._record import record

            rows = "\n".join(f"| {label} | {elapsed:.2f} s | {counts} |" for label, elapsed, counts in figures)
            record(
                "connect",
                f"""## Connect: CPMS sync of {carparks} car parks (`bench/connect.py`)

The simulator (`manage.py cpms_simulator --carparks {args.carparks}`, its own process) is read over
HTTP with the APDS 4 adapter (pages of 250 places); writes go to PostgreSQL in one transaction per
run (bulk create/update), exactly as the beat jobs do. The machine is shared with other test
runs, so wall times vary by a factor of two or three between runs.

| run | wall time | result |
| --- | --- | --- |
{rows}

First static import + occupancy sync: **{total:.2f} s** for {carparks} car parks — {verdict} the
{TARGET_SECONDS:.0f} s target.
""",
            )
            print("recorded in docs/benchmarks.md (section connect)")
        connection.close()
        return 0 if total <= TARGET_SECONDS else 1
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
        if not args.keep:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{bench_name}"')


if __name__ == "__main__":
    sys.exit(main())
