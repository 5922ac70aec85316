"""Benchmark: the invoicing-run preview Finance sees before confirming a run, for 10,000 active contracts.

The preview reads what the run reads (billable contracts, the price lists they follow, saved cards)
and works out the same amounts without writing: invoices, lines, total gross, customers charged by
card. Target: at most 2 s for 10,000 contracts.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/phq_h5 .venv/bin/python bench/invoicing_preview.py \
        [--contracts 10000] [--repeat 5] [--record]

It works in a throw-away database ``<name>_preview_bench`` next to DATABASE_URL's (created, migrated,
filled with bulk inserts, dropped). ``--record`` writes the figures into docs/benchmarks.md
(section ``invoicing-preview``) with the machine and the date.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._db import on_scratch_database  # noqa: E402

TARGET_SECONDS = 2.0


class StatementCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        self.count += 1
        return execute(sql, params, many, context)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def seed(contracts: int, today: date) -> dict[str, int]:
    """10 car parks × 2 products (two VAT rates, half of them with a price change on the 15th of this
    month), every fifth customer a company with five contracts, two in three customers with a saved
    card, one contract in ten starting this month, all with a vehicle. Bulk inserts only."""
    from billing.models import PaymentMethod
    from carparks.models import CarPark, Contract, Customer, Product, ProductPrice, Vehicle

    month_start = today.replace(day=1)
    change = month_start + timedelta(days=14)
    carparks = CarPark.objects.bulk_create(
        [CarPark(name=f"Preview car park {i}", code=f"preview-{i}", capacity=5000) for i in range(10)]
    )
    products = Product.objects.bulk_create(
        [
            Product(
                carpark=cp,
                name=f"Season {i}",
                monthly_price=Decimal("119.00") if i % 2 else Decimal("89.00"),
                vat_rate=Decimal("19.00") if i % 5 else Decimal("7.00"),
                quota=100000,
            )
            for i, cp in enumerate(carparks * 2)
        ]
    )
    prices = []
    for i, product in enumerate(products):
        if i % 2:  # a new price from the 15th: the month is billed in two segments
            prices.append(
                ProductPrice(
                    product=product,
                    monthly_price=product.monthly_price,
                    valid_from=date(2000, 1, 1),
                    valid_until=change - timedelta(days=1),
                )
            )
            prices.append(ProductPrice(product=product, monthly_price=product.monthly_price + 10, valid_from=change))
        else:
            prices.append(
                ProductPrice(product=product, monthly_price=product.monthly_price, valid_from=date(2000, 1, 1))
            )
    ProductPrice.objects.filter(product__in=products).delete()
    ProductPrice.objects.bulk_create(prices)

    customers, plan, remaining, n = [], [], contracts, 0
    while remaining > 0:
        corporate = n % 5 == 0
        count = min(5 if corporate else 1, remaining)
        customers.append(
            Customer(
                kind=Customer.Kind.CORPORATE if corporate else Customer.Kind.PRIVATE,
                name=f"Preview customer {n}",
                email=f"preview{n}@example.com",
                street="Benchstraße 1",
                postcode="80331",
                city="München",
            )
        )
        plan.append(count)
        remaining -= count
        n += 1
    customers = Customer.objects.bulk_create(customers, batch_size=2000)
    carded = [c for i, c in enumerate(customers) if i % 3]
    PaymentMethod.objects.bulk_create(
        [
            PaymentMethod(
                customer=c, stripe_customer_id=f"cus_p{c.pk}", stripe_payment_method_id=f"pm_p{c.pk}", last4="4242"
            )
            for c in carded
        ],
        batch_size=2000,
    )
    vehicles, rows, index = [], [], 0
    for customer, count in zip(customers, plan, strict=True):
        for k in range(count):
            vehicles.append(Vehicle(customer=customer, plate=f"P{customer.pk}X{k}", cost_centre=f"CC-{k}"))
            product = products[index % len(products)]
            start = month_start + timedelta(days=index % 28) if index % 10 == 0 else date(2025, 1, 1)
            rows.append(
                Contract(
                    customer=customer,
                    product=product,
                    state=Contract.State.ACTIVE,
                    start_date=start,
                    monthly_price=product.monthly_price,
                )
            )
            index += 1
    vehicles = Vehicle.objects.bulk_create(vehicles, batch_size=2000)
    rows = Contract.objects.bulk_create(rows, batch_size=2000)
    through = Contract.vehicles.through
    through.objects.bulk_create(
        [through(contract_id=c.pk, vehicle_id=v.pk) for c, v in zip(rows, vehicles, strict=True)], batch_size=5000
    )
    return {"customers": len(customers), "carded": len(carded), "contracts": len(rows)}


def run(args: argparse.Namespace) -> dict:
    from django.db import connection
    from django.utils import timezone

    import workflows.services  # noqa: F401 - a web worker has the engine loaded already
    from billing import services
    from billing.proration import month_period

    today = timezone.localdate()
    start, end = month_period(today)
    started = time.perf_counter()
    seeded = seed(args.contracts, today)
    seed_seconds = time.perf_counter() - started

    timings, counter = [], StatementCounter()
    preview = {}
    for attempt in range(args.repeat):
        started = time.perf_counter()
        if attempt == 0:
            with connection.execute_wrapper(counter):
                preview = services.invoicing_run_preview_compute(period_start=start, period_end=end)
        else:
            preview = services.invoicing_run_preview_compute(period_start=start, period_end=end)
        timings.append(time.perf_counter() - started)
    started = time.perf_counter()
    run = services.invoicing_run_preview_create(period_start=start, user=None)
    create_seconds = time.perf_counter() - started
    return {
        "seeded": seeded,
        "seed_seconds": seed_seconds,
        "timings": timings,
        "statements": counter.count,
        "preview": preview,
        "create_seconds": create_seconds,
        "run_state": run.state,
        "period": f"{start:%m/%Y}",
    }


def markdown(figures: dict) -> str:
    timings = figures["timings"]
    first, median, worst = timings[0], statistics.median(timings), max(timings)
    verdict = "meets" if worst <= TARGET_SECONDS else "MISSES"
    preview = figures["preview"]
    seeded = figures["seeded"]
    return "\n".join(
        [
            "## Invoicing-run preview (`bench/invoicing_preview.py`)",
            "",
            f"Machine: {os.cpu_count()} cores (nproc), {cpu_model()}.",
            "",
            f"What Finance sees before confirming a run for {figures['period']}: {seeded['contracts']:,} active "
            f"contracts of {seeded['customers']:,} customers ({seeded['carded']:,} with a saved card), half of the "
            "products with a price change on the 15th (two lines each), one contract in ten starting this month.",
            "",
            "| measure | result |",
            "| --- | --- |",
            f"| preview, first call (cold caches) | **{first:.2f} s** |",
            f"| preview, median of {len(timings)} | {median:.2f} s (slowest {worst:.2f} s; "
            f"target ≤ {TARGET_SECONDS:.0f} s: {verdict}) |",
            f"| SQL statements per preview | {figures['statements']} |",
            f"| `invoicing_run_preview_create` (preview + the run row) | {figures['create_seconds']:.2f} s |",
            f"| preview figures | {preview['invoices']:,} invoices, {preview['lines']:,} lines, "
            f"{Decimal(preview['gross_total']):,.2f} € gross, {preview['charged_by_card']:,} customers charged "
            f"by card, {preview['without_card']:,} without a card |",
            "",
            f"Load average after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other sessions share the "
            f"machine). Seeding with bulk inserts took {figures['seed_seconds']:.1f} s (not measured). The "
            "preview works out each contract's shares with the run's own proration code after four bulk "
            "reads (no line objects, nothing written), so it equals what the run creates, price segments "
            "included.",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contracts", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--record", action="store_true", help="write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        print("bench/invoicing_preview.py needs DATABASE_URL to point at PostgreSQL", file=sys.stderr)
        return 2
    figures = on_scratch_database(url, "_preview_bench", lambda: run(args))
    report = markdown(figures)
    print(report)
    if args.record:
        from bench._record import record

        record("invoicing-preview", report)
    worst = max(figures["timings"])
    return 0 if worst <= TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
