"""Benchmark: an invoicing run for 10,000 active contracts (ledger only), and PDF throughput.

Runs against PostgreSQL (DATABASE_URL) in a throwaway test database, so no data is touched:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/parkinghq .venv/bin/python bench/billing.py

Prints its figures and records them in docs/benchmarks.md (section ``billing``).
Target: the run takes at most 20 s on the project's 2-core machine.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parkinghq.settings.test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from bench._record import record  # noqa: E402

CONTRACTS = int(os.environ.get("BENCH_CONTRACTS", "10000"))
PDFS = int(os.environ.get("BENCH_PDFS", "40"))
TARGET_SECONDS = 20.0


def seed(contracts: int) -> None:
    """Customers (private and corporate), products at two VAT rates, vehicles, cards, active contracts."""
    from billing.models import PaymentMethod
    from carparks.models import CarPark, Contract, Customer, Product, Vehicle

    carparks = CarPark.objects.bulk_create(
        [CarPark(name=f"Bench car park {i}", code=f"bench-{i}", capacity=5000) for i in range(10)]
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
    # Every fifth customer is a company with five contracts; the others have one.
    customers, plan = [], []
    remaining, n = contracts, 0
    while remaining > 0:
        corporate = n % 5 == 0
        count = min(5 if corporate else 1, remaining)
        customers.append(
            Customer(
                kind=Customer.Kind.CORPORATE if corporate else Customer.Kind.PRIVATE,
                name=f"Bench customer {n}",
                email=f"bench{n}@example.com",
                street="Benchstraße 1",
                postcode="80331",
                city="München",
            )
        )
        plan.append(count)
        remaining -= count
        n += 1
    customers = Customer.objects.bulk_create(customers, batch_size=2000)
    PaymentMethod.objects.bulk_create(
        [
            PaymentMethod(
                customer=c, stripe_customer_id=f"cus_b{c.pk}", stripe_payment_method_id=f"pm_b{c.pk}", last4="4242"
            )
            for c in customers
        ],
        batch_size=2000,
    )
    vehicles, contract_rows = [], []
    index = 0
    for customer, count in zip(customers, plan, strict=True):
        for k in range(count):
            vehicles.append(Vehicle(customer=customer, plate=f"B{customer.pk}X{k}", cost_centre=f"CC-{k}"))
            product = products[index % len(products)]
            start = date(2026, 3, 1 + index % 28) if index % 10 == 0 else date(2025, 1, 1)
            contract_rows.append(
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
    contract_rows = Contract.objects.bulk_create(contract_rows, batch_size=2000)
    through = Contract.vehicles.through
    through.objects.bulk_create(
        [through(contract_id=c.pk, vehicle_id=v.pk) for c, v in zip(contract_rows, vehicles, strict=True)],
        batch_size=5000,
    )


def bench_run() -> tuple[float, object]:
    import workflows.services  # noqa: F401 - a worker has the engine loaded already
    from billing import services

    run = services.invoicing_run_create(period_start=date(2026, 3, 1))
    started = time.perf_counter()
    run = services.invoicing_run_execute(run=run, deliver=False)
    elapsed = time.perf_counter() - started
    return elapsed, run


def bench_rerun() -> float:
    from billing import services

    run = services.invoicing_run_create(period_start=date(2026, 3, 1))
    started = time.perf_counter()
    services.invoicing_run_execute(run=run, deliver=False)
    return time.perf_counter() - started


def bench_pdfs(count: int) -> tuple[float, float]:
    """Seconds for the first document (fonts load) and the mean of the rest, one process."""
    from billing.documents import invoice_documents_render
    from billing.models import Invoice

    invoices = list(Invoice.objects.order_by("-gross_total")[: count + 1])
    started = time.perf_counter()
    invoice_documents_render(invoice=invoices[0])
    first = time.perf_counter() - started
    started = time.perf_counter()
    for invoice in invoices[1:]:
        invoice_documents_render(invoice=invoice)
    return first, (time.perf_counter() - started) / max(1, len(invoices) - 1)


def main() -> None:
    from billing.models import Invoice, InvoiceLine

    setup_test_environment()
    settings.MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="bench-billing-media-"))
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        started = time.perf_counter()
        seed(CONTRACTS)
        seeded = time.perf_counter() - started
        elapsed, run = bench_run()
        rerun = bench_rerun()
        invoices, lines = Invoice.objects.count(), InvoiceLine.objects.count()
        first_pdf, per_pdf = bench_pdfs(PDFS)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    verdict = "meets" if elapsed <= TARGET_SECONDS else "MISSES"
    lines_md = [
        f"Invoicing run for {CONTRACTS:,} active contracts on PostgreSQL (ledger only: pro rata, VAT, "
        f"gap-free numbers, lines, exceptions; no PDFs), chunks of 500 customers per transaction.",
        "",
        "| measure | result |",
        "| --- | --- |",
        f"| invoicing run, {CONTRACTS:,} contracts → {invoices:,} invoices / {lines:,} lines | **{elapsed:.1f} s** "
        f"({CONTRACTS / elapsed:,.0f} contracts/s; target ≤ {TARGET_SECONDS:.0f} s: {verdict}) |",
        f"| idempotent re-run of the same period (bills nothing) | {rerun:.1f} s |",
        f"| invoice document, first in a worker (fonts load) | {first_pdf * 1000:.0f} ms |",
        f"| invoice document (Factur-X XML + XSD check + WeasyPrint PDF/A-3 + embedding), mean of {PDFS} | "
        f"{per_pdf * 1000:.0f} ms → {60 / per_pdf:,.0f} invoices/min per worker process |",
        "",
        f"Load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work shares "
        "the machine). "
        f"Seeding the data took {seeded:.1f} s (not part of the run). Run: `python bench/billing.py` "
        "(BENCH_CONTRACTS, BENCH_PDFS to change the sizes).",
    ]
    report = "\n".join(lines_md)
    print(report)
    record("billing", report)


if __name__ == "__main__":
    main()
