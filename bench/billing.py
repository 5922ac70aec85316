"""Benchmark: an invoicing run for 10,000 active contracts (ledger only), and PDF throughput; matching a bank
statement of 10,000 credits against 100,000 open invoices.

Runs against PostgreSQL (DATABASE_URL) in a throwaway test database, so no data is touched:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/parkinghq .venv/bin/python bench/billing.py [invoicing|matching]

With no argument both parts run. Prints its figures and records them in docs/benchmarks.md (sections
``billing`` and ``billing-matching``; ``--no-record`` only prints).
Targets: the invoicing run takes at most 20 s on the project's 2-core machine; reading and matching the
statement (and importing it, where ``billing.bank_statements.statement_import`` exists) at most 10 s.
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
STATEMENT_ENTRIES = int(os.environ.get("BENCH_STATEMENT_ENTRIES", "10000"))
OPEN_INVOICES = int(os.environ.get("BENCH_OPEN_INVOICES", "100000"))
MATCHING_TARGET_SECONDS = 10.0


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


def invoicing_main(*, record_figures: bool = True) -> None:
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
    if record_figures:
        record("billing", report)


# --- statement matching ---------------------------------------------------------------------------


def statement_invoices(count: int):  # noqa: ANN201 - billing.matching.OpenInvoice list
    """``count`` open invoices of ``count // 5`` customers (five each), amounts spread like real ones."""
    from billing.matching import OpenInvoice
    from billing.tests.camt_factory import rf_reference

    return [
        OpenInvoice(
            id=i,
            number=f"INV2026-{i:06d}",
            payment_reference=rf_reference(f"2026{i:06d}"),
            amount_open=Decimal(20 * 100 + (i * 3701) % 50000) / 100,
            currency="EUR",
            customer_name=f"Bench Kunde {(i - 1) // 5} GmbH",
        )
        for i in range(1, count + 1)
    ]


def statement_bookings(invoices, entries: int):  # noqa: ANN001, ANN201
    """A day's credits: 60 % quote the invoice number (written in several ways), 15 % its RF reference,
    10 % the number with a typing error, 10 % no reference (amount and payer's name), 5 % nothing known."""
    from billing.tests.camt_factory import PAYER_IBANS, Booking

    bookings = []
    for k in range(entries):
        inv = invoices[(k * 7919) % len(invoices)]
        payer = {"iban": PAYER_IBANS[k % len(PAYER_IBANS)]}
        share = k % 20
        if share < 12:
            form = (inv.number, inv.number.replace("-", "").lower(), f"Rechnung {inv.number} Parken")[k % 3]
            booking = Booking(amount=inv.amount_open, remittance=[form], name=inv.customer_name, **payer)
        elif share < 15:
            booking = Booking(amount=inv.amount_open, structured_reference=inv.payment_reference, **payer)
        elif share < 17:
            typo = inv.number[:3] + inv.number[4] + inv.number[3] + inv.number[5:]  # year digits swapped
            booking = Booking(amount=inv.amount_open, remittance=[f"Rechnung {typo}"], name="Verwaltung Nord", **payer)
        elif share < 19:
            booking = Booking(
                amount=inv.amount_open,
                remittance=["Parken"],
                name=inv.customer_name.upper().replace(" GMBH", ""),
                **payer,
            )
        else:
            booking = Booking(amount=Decimal("13.37"), remittance=["Spende"], name="Unbekannt", **payer)
        bookings.append(booking)
    return bookings


def seed_open_invoices(invoices) -> None:  # noqa: ANN001
    """The open invoices in the database: issued, numbered, with their RF references and open amounts."""
    from billing.models import Invoice
    from carparks.models import Customer

    names = sorted({inv.customer_name for inv in invoices}, key=lambda n: int(n.split()[2]))
    customers = Customer.objects.bulk_create(
        [Customer(name=name, email=f"bench{k}@example.com") for k, name in enumerate(names)], batch_size=5000
    )
    by_name = {c.name: c.pk for c in customers}
    Invoice.objects.bulk_create(
        [
            Invoice(
                customer_id=by_name[inv.customer_name],
                period_start=date(2026, 11, 1),
                period_end=date(2026, 11, 30),
                state=Invoice.State.ISSUED,
                series="INV2026",
                number=inv.id,
                issue_date=date(2026, 12, 1),
                due_date=date(2026, 12, 15),
                net_total=inv.amount_open,
                gross_total=inv.amount_open,
                payment_option="bank_transfer",
                payment_reference=inv.payment_reference,
            )
            for inv in invoices
        ],
        batch_size=5000,
    )


def bench_statement_import(data: bytes) -> tuple[float, object] | None:
    """The whole import (parse, store, match against the open invoices in the database, book, and the
    after-commit hand-over of follow-up tasks), if the portal has it.

    The tasks go to an in-memory broker of this process: none reaches a real worker, which would look
    for the throw-away database's invoices in its own."""
    try:
        from billing import bank_statements
    except ImportError:
        return None
    if not hasattr(bank_statements, "statement_import"):
        return None
    from parkinghq.celery import app

    def fresh_pools() -> None:  # what Celery does after a fork: the next task opens a new connection
        app._pool = None
        app.amqp._producer_pool = None

    broker = app.conf.broker_url
    app.conf.broker_url = "memory://"
    fresh_pools()
    try:
        started = time.perf_counter()
        statement = bank_statements.statement_import(data=data, file_name="bench-camt053.xml")
        elapsed = time.perf_counter() - started
    finally:
        app.conf.broker_url = broker
        fresh_pools()
    return elapsed, statement


def matching_main(*, record_figures: bool = True) -> None:
    from collections import Counter

    from bench._record import python_speed_ms
    from billing.camt import camt_parse
    from billing.matching import match_entries
    from billing.tests.camt_factory import camt053_write

    speed = python_speed_ms()
    invoices = statement_invoices(OPEN_INVOICES)
    data = camt053_write(statement_bookings(invoices, STATEMENT_ENTRIES), statement_id="BENCH-2026-12-01")

    started = time.perf_counter()
    statement = camt_parse(data)
    parsed = time.perf_counter() - started
    started = time.perf_counter()
    matches = match_entries(statement.entries, invoices)
    matched = time.perf_counter() - started
    rules = Counter(m.rule or "queued" for m in matches)

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        started = time.perf_counter()
        seed_open_invoices(invoices)
        seeded = time.perf_counter() - started
        imported = bench_statement_import(data)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    total = parsed + matched
    verdict = "meets" if total <= MATCHING_TARGET_SECONDS else "MISSES"
    rows = [
        f"A camt.053 statement of {STATEMENT_ENTRIES:,} credits ({len(data) / 1e6:.1f} MB, written by "
        f"`billing/tests/camt_factory.py`) against {OPEN_INVOICES:,} open invoices: 60 % quote the invoice "
        "number, 15 % its RF reference, 10 % the number with a typing error, 10 % only amount and name, "
        "5 % nothing known.",
        "",
        "| measure | result |",
        "| --- | --- |",
        f"| (a) parse the file (`camt_parse`, defusedxml) | {parsed:.2f} s |",
        f"| (b) match the credits (`match_entries`, indexes built included) | {matched:.2f} s |",
        f"| (a) + (b) | **{total:.2f} s** (target ≤ {MATCHING_TARGET_SECONDS:.0f} s: {verdict}) |",
        "| matched by rule | " + ", ".join(f"{rule} {count:,}" for rule, count in sorted(rules.items())) + " |",
    ]
    if imported is None:
        rows.append("| (c) whole import on PostgreSQL | not measured: `statement_import` not in this version |")
    else:
        seconds, stored = imported
        verdict_c = "meets" if seconds <= MATCHING_TARGET_SECONDS else "MISSES"
        rows.append(
            f"| (c) whole import on PostgreSQL (`statement_import`: parse, store {stored.entries_count:,} entries, "
            f"read the open invoices, match, book {stored.matched_count:,}, queue {stored.queued_count:,}, hand the "
            "follow-up tasks to the broker) | "
            f"**{seconds:.2f} s** (target ≤ {MATCHING_TARGET_SECONDS:.0f} s: {verdict_c}) |"
        )
    rows += [
        "",
        f"Python reference loop: {speed} ms; load average while measuring: {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores. Seeding {OPEN_INVOICES:,} open invoices took {seeded:.1f} s (not timed). "
        "Run: `python bench/billing.py matching` (BENCH_STATEMENT_ENTRIES, BENCH_OPEN_INVOICES to change the sizes).",
    ]
    report = "\n".join(rows)
    print(report)
    if record_figures:
        record("billing-matching", report)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    record_figures = "--no-record" not in sys.argv
    parts = args or ["invoicing", "matching"]
    if "invoicing" in parts:
        invoicing_main(record_figures=record_figures)
    if "matching" in parts:
        matching_main(record_figures=record_figures)


if __name__ == "__main__":
    main()
