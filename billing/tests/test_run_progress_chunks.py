"""Invoicing run progress for small runs: the run writes its progress per chunk of customers, and a run
smaller than one chunk is split into about 20 chunks (its page moves instead of jumping from 0 to 100 %),
while ``chunk_size`` stays the upper bound, so a large run writes no more often than before."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing import services
from billing.models import InvoicingRun
from billing.tests.factories import ContractFactory
from carparks.tests.factories import CustomerFactory, ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def customers():
    product = ProductFactory()

    def make(count: int) -> None:
        for customer in CustomerFactory.create_batch(count):
            ContractFactory(
                customer=customer, product=product, monthly_price=Decimal("80.00"), start_date=date(2000, 1, 1)
            )

    return make


@pytest.fixture
def chunks(monkeypatch):
    """Each chunk's size and the contracts the run reported done when the chunk began."""
    seen: list[tuple[int, int]] = []
    original = services._invoice_chunk

    def spy(run, chunk, *args, **kwargs):
        seen.append((len(chunk), InvoicingRun.objects.get(pk=run.pk).contracts_done))
        return original(run, chunk, *args, **kwargs)

    monkeypatch.setattr(services, "_invoice_chunk", spy)
    return seen


def test_a_run_smaller_than_a_chunk_reports_progress_in_about_20_steps(customers, chunks):
    customers(60)
    run = services.invoicing_run_execute(
        run=services.invoicing_run_create(period_start=date(2026, 3, 1)), deliver=False
    )
    assert run.state == InvoicingRun.State.DONE and run.contracts_done == 60
    assert [size for size, _ in chunks] == [3] * 20
    assert [done for _, done in chunks] == list(range(0, 60, 3))  # the page sees 0, 3, 6, … 57, then 60


def test_chunk_size_stays_the_upper_bound(customers, chunks):
    customers(60)
    run = services.invoicing_run_create(period_start=date(2026, 3, 1))
    services.invoicing_run_execute(run=run, chunk_size=2, deliver=False)
    assert [size for size, _ in chunks] == [2] * 30


def test_a_tiny_run_is_billed_one_customer_at_a_time(customers, chunks):
    customers(7)
    services.invoicing_run_execute(run=services.invoicing_run_create(period_start=date(2026, 3, 1)), deliver=False)
    assert [size for size, _ in chunks] == [1] * 7
