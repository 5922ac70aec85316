"""Benchmark of season parking on PostgreSQL (issue 4).

1. The demo loader (10 car parks, 200 customers, ~270 contracts, 40 cases, their processes).
2. N season applications through the REST API (token auth, validation, idempotency key, customer,
   contract, vehicles, the season-contract process and its review task), one at a time:
   latency percentiles and SQL statements per application.
3. Contention: T threads each submitting applications for one product with a small quota at once;
   throughput, and a check that the quota was never over-sold.
4. Load average before/after: {f["load_average_before"]} / {f["load_average_after"]} (other sessions' test
runs share the 2 cores, so a SQL round trip costs a few ms here; statement counts are the stable figure).

Back-office pages over the demo data: time and SQL statements of the list and detail pages.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/phq_carparks .venv/bin/python bench/carparks.py \
        [--applications 300] [--threads 8] [--record]

It works in a throw-away database ``<name>_bench`` next to DATABASE_URL's (created, migrated, dropped).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._db import on_scratch_database  # noqa: E402


class StatementCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        self.count += 1
        return execute(sql, params, many, context)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))], 1)


def run(args: argparse.Namespace) -> dict:
    from django.db import close_old_connections, connection
    from django.test import Client
    from django.test.utils import override_settings
    from rest_framework.test import APIClient

    from carparks import demo, services
    from carparks.api.authentication import api_client_create
    from carparks.models import ApiClient, CarPark, Contract, Customer, Product
    from workflows.sync import sync_definitions

    figures: dict = {"load_average_before": [round(x, 1) for x in os.getloadavg()]}
    sync_definitions()

    started = time.perf_counter()
    demo.load(io.StringIO())
    figures["demo_load_s"] = round(time.perf_counter() - started, 2)

    product = Product.objects.create(
        carpark=CarPark.objects.first(), name="Bench product", monthly_price=99, quota=args.applications + 10
    )
    _, token = api_client_create(name="bench", scopes=list(ApiClient.Scope.values))
    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    latencies, statements = [], []
    with override_settings(CARPARKS_API_RATE="1000000/minute"):
        for i in range(args.applications):
            body = {
                "product": product.pk,
                "customer": {"name": f"Bench {i}", "email": f"bench{i}@example.com"},
                "vehicles": [{"plate": f"BN {i}"}],
            }
            counter = StatementCounter()
            with connection.execute_wrapper(counter):
                t0 = time.perf_counter()
                response = api.post("/api/v1/applications/", body, format="json", HTTP_IDEMPOTENCY_KEY=f"k{i}")
                latencies.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 201, response.content
            statements.append(counter.count)
    figures["api_applications"] = args.applications
    figures["api_application_ms_p50"] = pct(latencies, 0.5)
    figures["api_application_ms_p95"] = pct(latencies, 0.95)
    figures["api_application_sql"] = round(statistics.mean(statements), 1)

    # Contention: all threads apply at once for a product with 5 places.
    scarce = Product.objects.create(carpark=CarPark.objects.first(), name="Scarce", monthly_price=99, quota=5)
    customers = list(Customer.objects.order_by("pk")[: args.threads * 10])
    barrier = threading.Barrier(args.threads)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            barrier.wait()
            for j in range(10):
                services.contract_apply(
                    customer=customers[index * 10 + j], product=scarce, vehicles=[f"SC {index} {j}"]
                )
        except BaseException as exc:
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - t0
    held = Contract.objects.filter(product=scarce, state__in=Contract.QUOTA_STATES).count()
    figures["contention_threads"] = args.threads
    figures["contention_applications"] = args.threads * 10
    figures["contention_applications_per_s"] = round(args.threads * 10 / wall, 1)
    figures["contention_places_held"] = held
    figures["contention_waitlisted"] = Contract.objects.filter(product=scarce, state="waitlisted").count()
    figures["contention_errors"] = len(errors)

    # Pages over the demo data (an administrator sees everything).
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    admin = get_user_model().objects.create_user("bench-admin")
    admin.groups.add(Group.objects.get_or_create(name="Supervisor")[0])
    from conftest import verify_two_factor

    client = Client()
    client.force_login(admin)
    verify_two_factor(client, admin)
    contract = Contract.objects.filter(state="active").order_by("pk").first()
    pages = {
        "car parks": "/carparks/",
        "car park": f"/carparks/{contract.product.carpark_id}/",
        "customers": "/carparks/customers/",
        "customer": f"/carparks/customers/{contract.customer_id}/",
        "contract": f"/carparks/contracts/{contract.pk}/",
        "cases": "/carparks/cases/",
        "search": "/carparks/search/?q=mu",
    }
    figures["pages"] = {}
    for label, url in pages.items():
        client.get(url)  # warm
        counter = StatementCounter()
        times = []
        with connection.execute_wrapper(counter):
            for _ in range(5):
                t0 = time.perf_counter()
                assert client.get(url).status_code == 200, url
                times.append((time.perf_counter() - t0) * 1000)
        figures["pages"][label] = {"ms_median": round(statistics.median(times), 1), "sql": counter.count // 5}
    figures["load_average_after"] = [round(x, 1) for x in os.getloadavg()]
    if held > 5 or errors:
        raise SystemExit(f"quota over-sold or errors: held={held} errors={errors[:3]}")
    return figures


def markdown(f: dict) -> str:
    p50 = f["api_application_ms_p50"]
    contention = (
        f"{f['contention_applications']} applications from {f['contention_threads']} threads, one product of 5 places"
    )
    rows = "\n".join(f"| {label} | {v['ms_median']} | {v['sql']} |" for label, v in f["pages"].items())
    return f"""## Season parking (carparks, `bench/carparks.py`)

| measure | value |
| --- | --- |
| demo load (10 car parks, 200 customers, contracts in every state, 40 cases, their processes) | {f["demo_load_s"]} s |
| REST application (token, validation, idempotency key, customer, contract, process), p50 | {p50} ms |
| same, p95 | {f["api_application_ms_p95"]} ms |
| SQL statements per application | {f["api_application_sql"]} |
| {contention} | {f["contention_applications_per_s"]} applications/s |
| places held afterwards (quota 5) / waitlisted | {f["contention_places_held"]} / {f["contention_waitlisted"]} |

Load average before/after: {f["load_average_before"]} / {f["load_average_after"]} (other sessions' test
runs share the 2 cores, so a SQL round trip costs a few ms here; statement counts are the stable figure).

Back-office pages over the demo data (supervisor, 5 requests each, test client in process):

| page | median ms | SQL statements |
| --- | --- | --- |
{rows}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--applications", type=int, default=300)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--record", action="store_true", help="write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        print("bench/carparks.py needs DATABASE_URL to point at PostgreSQL", file=sys.stderr)
        return 2
    figures = on_scratch_database(url, "_bench", lambda: run(args))
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    if args.record:
        from bench._record import record

        record("carparks", markdown(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
