"""Load test (issue 10): locust, headless, against gunicorn on 127.0.0.1 with a real Celery worker.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/phq_load REDIS_URL=redis://127.0.0.1:6379/11 \
        .venv/bin/python bench/loadtest.py [--duration 2m] [--staff 50] [--api 5] [--record] [--keep]

(``make loadtest`` runs it for two minutes and records the figures.)

1. Creates the database ``<DATABASE_URL's name>_loadtest`` (dropped first if it exists), migrates it,
   loads the demo data (``demo_load``), adds ``--staff`` back-office agents (role "Back-office agent",
   responsible for every demo car park through ``carparks.responsible_carpark``, a password set),
   an API client with every scope, and a backlog of season applications waiting for review. The
   products' quotas are raised in this throw-away database so that applications get a place (and a
   review task) instead of joining the waitlist.
2. Starts gunicorn (``parkinghq.wsgi``, 127.0.0.1, a free port, 2 × cores workers) and a Celery worker,
   both with ``parkinghq.settings.test`` (DEBUG off, PostgreSQL, Redis) and ``WORKFLOWS_DISPATCH=true``,
   so the system steps after a review (approve, activate, …) run on the worker as in production.
   The bundled CPMS simulator runs too (the demo car parks are linked to it), on a free port.
   The API rate limit is raised for the run (rate limits are tested in the test suite, not here).
3. Runs locust headless (bench/locustfile.py): staff users log in through the login page (CSRF),
   open the basket, open a review task, claim it and complete it (approve or reject); API clients
   submit applications with an Idempotency-Key, replay one and read a contract's status.
4. Stops everything and fails (exit 1) on any failed request, any 5xx, any error in gunicorn's log or a
   worker that did not drain the approvals; prints p50/p95 per page/endpoint; ``--record`` writes
   them into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
PASSWORD = "load-test-password-1"
BACKLOG = 400


def _urls(url: str) -> tuple[str, str, str]:
    parsed = urlparse(url)
    name = f"{parsed.path.lstrip('/') or 'postgres'}_loadtest"
    return urlunparse(parsed._replace(path=f"/{name}")), urlunparse(parsed._replace(path="/postgres")), name


def _recreate_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prepare(staff: int) -> dict:
    """Migrate, demo data, staff users, API client, backlog. Runs in this process (Django set up here)."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from guardian.shortcuts import assign_perm

    from carparks import services
    from carparks.api.authentication import api_client_create
    from carparks.models import ApiClient, CarPark, Contract, Product
    from workflows.models import Task

    t0 = time.perf_counter()
    call_command("migrate", verbosity=0)
    call_command("demo_load", stdout=open(os.devnull, "w"))  # noqa: SIM115
    Product.objects.update(quota=100_000)
    carparks = list(CarPark.objects.filter(is_active=True))
    agents = Group.objects.get(name="Back-office agent")
    user_model = get_user_model()
    names = []
    for i in range(1, staff + 1):
        user, _ = user_model.objects.get_or_create(
            username=f"load{i:02d}", defaults={"first_name": "Load", "last_name": f"Agent {i:02d}"}
        )
        user.email = f"load{i:02d}@example.test"
        user.set_password(PASSWORD)
        user.save()
        user.groups.add(agents)
        for carpark in carparks:
            assign_perm("carparks.responsible_carpark", user, carpark)
        names.append(user.username)
    _, token = api_client_create(name="Load test partner", scopes=list(ApiClient.Scope.values))
    # Products with a waitlist queue every new application behind it (no review task): leave them out.
    products = list(
        Product.objects.filter(is_active=True, carpark__is_active=True)
        .exclude(contracts__state=Contract.State.WAITLISTED)
        .values_list("pk", flat=True)
    )
    for i in range(BACKLOG):
        customer = services.customer_find_or_create(
            kind="private", name=f"Backlog Customer {i}", email=f"backlog{i}@example.test"
        )
        services.contract_apply(
            customer=customer,
            product=Product.objects.get(pk=products[i % len(products)]),
            vehicles=[services.PlateInput(plate=f"BL{i:05d}")],
            start_date=date.today(),
        )
    config = {
        "staff": names,
        "password": PASSWORD,
        "token": token,
        "products": products,
        "staff_users": staff,
    }
    print(
        f"prepared in {time.perf_counter() - t0:.0f} s: {len(carparks)} car parks, {len(products)} products, "
        f"{staff} agents, {Task.objects.filter(state='open', name='Review application').count()} reviews waiting"
    )
    return config


def _counts() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT state, count(*) FROM carparks_contract GROUP BY state")
        contracts = dict(cur.fetchall())
        cur.execute("SELECT state, count(*) FROM workflows_task GROUP BY state")
        tasks = dict(cur.fetchall())
    return {"contracts": contracts, "tasks": tasks}


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stats(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _loadavg() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="2m", help="locust --run-time (default 2m)")
    parser.add_argument("--staff", type=int, default=50, help="concurrent back-office agents (default 50)")
    parser.add_argument("--api", type=int, default=5, help="concurrent API clients (default 5)")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1), help="gunicorn workers")
    parser.add_argument("--record", action="store_true", help="write the figures into docs/benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the load-test database")
    args = parser.parse_args()

    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/parkinghq")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    db_url, admin_url, db_name = _urls(base_url)
    _recreate_database(admin_url, db_name)

    sim_port = _free_port()
    env = dict(os.environ)
    env.update(
        CPMS_SIMULATOR_URL=f"http://127.0.0.1:{sim_port}",
        DJANGO_SETTINGS_MODULE="parkinghq.settings.test",
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        DEBUG="false",
        CARPARKS_API_RATE="100000/minute",
        PYTHONUNBUFFERED="1",
    )
    # This process prepares the data without dispatching anything; the servers dispatch.
    os.environ.update(env, WORKFLOWS_DISPATCH="false")
    env["WORKFLOWS_DISPATCH"] = "true"

    import redis

    redis.Redis.from_url(redis_url).flushdb()  # no stale tasks or throttle counters from earlier runs

    tmp = Path(tempfile.mkdtemp(prefix="phq-loadtest-"))
    config = _prepare(args.staff)
    config["api_users"] = args.api
    (tmp / "config.json").write_text(json.dumps(config))
    env["LOADTEST_CONFIG"] = str(tmp / "config.json")
    before = _counts()

    port = _free_port()
    host = f"http://127.0.0.1:{port}"
    web = worker = cpms = None
    failures: list[str] = []
    load = []
    web_out = (tmp / "web.log").open("w")
    try:
        web = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "parkinghq.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
                "--timeout",
                "60",
                "--error-logfile",
                str(tmp / "gunicorn.log"),
                "--access-logfile",
                str(tmp / "access.log"),
            ],
            cwd=ROOT,
            env=env,
            stdout=web_out,
            stderr=subprocess.STDOUT,
        )
        # The demo car parks are linked to the bundled CPMS simulator: approvals push credentials to it.
        cpms = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "cpms_simulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(sim_port),
                "--carparks",
                "0",
                "--from-database",
                "simulator",
            ],
            cwd=ROOT,
            env=env,
            stdout=web_out,
            stderr=subprocess.STDOUT,
        )
        worker = subprocess.Popen(
            [
                str(BIN / "celery"),
                "-A",
                "parkinghq",
                "worker",
                "--concurrency=2",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=WARNING",
                "--logfile",
                str(tmp / "worker.log"),
            ],
            cwd=ROOT,
            env=env,
        )
        _wait_http(f"{host}/accounts/login/", web)
        print(f"gunicorn ({args.workers} workers) on {host}, Celery worker up; load average {_loadavg()}")
        load.append(_loadavg())
        locust = subprocess.run(
            [
                str(BIN / "locust"),
                "-f",
                str(ROOT / "bench" / "locustfile.py"),
                "--headless",
                "--host",
                host,
                "--users",
                str(args.staff + args.api),
                "--spawn-rate",
                "10",
                "--run-time",
                args.duration,
                "--stop-timeout",
                "15",
                "--csv",
                str(tmp / "locust"),
                "--only-summary",
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
        )
        load.append(_loadavg())
        if locust.returncode != 0:
            failures.append(f"locust exited with {locust.returncode}")
        # Let the worker finish the system steps of the last reviews.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _pending_system_steps():
            time.sleep(1)
        if _pending_system_steps():
            failures.append(f"{_pending_system_steps()} approvals/rejections still waiting for the worker")
    finally:
        _stop(web)
        _stop(worker)
        _stop(cpms)

    after = _counts()
    rows = _stats(tmp / "locust_stats.csv")
    for row in _stats(tmp / "locust_failures.csv"):
        failures.append(f"{row['Method']} {row['Name']}: {row['Error']} ×{row['Occurrences']}")
    if (tmp / "locust_exceptions.csv").exists():
        for row in _stats(tmp / "locust_exceptions.csv"):
            failures.append(f"exception ×{row['Count']}: {row['Message']}")
    access = (tmp / "access.log").read_text() if (tmp / "access.log").exists() else ""
    server_errors = len(re.findall(r'" 5\d\d ', access))
    if server_errors:
        failures.append(f"{server_errors} responses with status 5xx in gunicorn's access log")
    web_out.close()
    log = (tmp / "gunicorn.log").read_text() + (tmp / "web.log").read_text()
    if "Traceback" in log or "[ERROR]" in log:
        failures.append(f"errors in gunicorn's logs ({tmp / 'gunicorn.log'}, {tmp / 'web.log'})")
    wlog = (tmp / "worker.log").read_text() if (tmp / "worker.log").exists() else ""
    if "Traceback" in wlog:
        failures.append(f"errors in the Celery worker's log ({tmp / 'worker.log'})")

    markdown = _markdown(rows, before, after, args, load)
    print(markdown)
    if failures:
        print("\nFAILED:\n- " + "\n- ".join(failures), file=sys.stderr)
        print(f"(logs kept in {tmp})", file=sys.stderr)
    elif args.record:
        from bench._record import record

        record("loadtest", markdown)
        print("recorded in docs/benchmarks.md")
    from django.db import connections

    connections.close_all()
    if not args.keep:
        _drop_database(admin_url, db_name)
    return 1 if failures else 0


def _pending_system_steps() -> int:
    """Reviewed contracts whose system steps (approve, activate, CPMS push, reject) are still to run."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM workflows_process WHERE state = 'running' AND current_step IN "
            "('approve_contract', 'activate_contract', 'push_credentials', 'reject_contract')"
        )
        return cur.fetchone()[0]


def _markdown(rows: list[dict[str, str]], before: dict, after: dict, args: argparse.Namespace, load: list[str]) -> str:
    lines = [
        f"`make loadtest`: {args.staff} back-office agents working their baskets and {args.api} API clients "
        f"submitting season applications for {args.duration}, locust (headless) against gunicorn "
        f"({args.workers} sync workers) on 127.0.0.1 with a Celery worker (2 processes) running the system "
        "steps and the CPMS simulator taking the credentials of approved contracts; PostgreSQL and Redis "
        "on the same machine. Think time 1–3 s between a user's steps. "
        "Times in ms, measured by locust (client side, including the HTTP round trip).",
        "",
        "| Page / endpoint | Requests | Failures | p50 | p95 | max | req/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row["Name"] == "Aggregated" or row["Type"] == "INFO":
            continue
        lines.append(
            f"| {row['Type']} {row['Name']} | {row['Request Count']} | {row['Failure Count']} | "
            f"{row['50%']} | {row['95%']} | {float(row['Max Response Time']):.0f} | "
            f"{float(row['Requests/s']):.1f} |"
        )
    total = next((r for r in rows if r["Name"] == "Aggregated"), None)
    if total:
        lines.append(
            f"| **all** | {total['Request Count']} | {total['Failure Count']} | {total['50%']} | {total['95%']} | "
            f"{float(total['Max Response Time']):.0f} | {float(total['Requests/s']):.1f} |"
        )
    lost = next((r["Request Count"] for r in rows if r["Type"] == "INFO"), "0")
    done_before = before["tasks"].get("completed", 0)
    done_after = after["tasks"].get("completed", 0)
    contracts = ", ".join(f"{k} {v}" for k, v in sorted(after["contracts"].items()))
    lines += [
        "",
        f"Reviews completed during the run: {done_after - done_before}; claims lost to a colleague "
        f"(answered with a message, not an error): {lost}. Contracts afterwards: {contracts}.",
        f"Load average (1/5/15 min) at the start: {load[0] if load else '?'}; at the end: {load[-1] if load else '?'}.",
    ]
    # The run itself (locust, gunicorn, the worker) drives the load up; only a load above the number
    # of cores before it started says that other work shared the machine.
    if load and float(load[0].split(" / ")[0]) > (os.cpu_count() or 1):
        lines.append(
            "The machine (2 cores) was shared with other work when this measurement started "
            "(load average above the number of cores), so the figures are pessimistic."
        )
    if total and float(total["50%"]) > 1000:
        lines.append(
            f"The server was saturated: {float(total['Requests/s']):.1f} requests/s in all, well below the "
            "~1 request/s per user that the think time would allow with fast answers, so these times are mostly "
            f"waiting for one of the {args.workers} gunicorn workers on a busy CPU;"
            " what the pages cost on their own is in the sections measured without concurrency (e.g. the basket above)."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
