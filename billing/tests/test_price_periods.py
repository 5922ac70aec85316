"""Invoicing by the price valid in each period: one line per price segment of the month."""

from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.db import IntegrityError

from billing import services
from billing.models import BillingException, Invoice, InvoiceLine, PaymentMethod
from billing.proration import month_period, pro_rata_segments
from billing.tests.factories import ContractFactory
from carparks import product_services
from carparks import services as carpark_services
from carparks.models import Contract
from carparks.tests.factories import CorporateFactory, CustomerFactory, ProductFactory, approve_directly

pytestmark = pytest.mark.django_db
OLD, NEW = Decimal("90.00"), Decimal("99.00")


def _run(month):
    run = services.invoicing_run_create(period_start=month)
    return services.invoicing_run_execute(run=run, deliver=False)


def _card(customer):
    PaymentMethod.objects.create(
        customer=customer, stripe_customer_id="cus_x", stripe_payment_method_id=f"pm_{customer.pk}", last4="4242"
    )


def _product_with_change_on(day, **kwargs):
    product = ProductFactory(monthly_price=OLD, **kwargs)
    product_services.product_price_set(product=product, monthly_price=NEW, valid_from=day)
    return product


def _lines(contract, month):
    return list(
        InvoiceLine.objects.filter(contract=contract, period_start=month)
        .order_by("service_start")
        .values_list("service_start", "service_end", "days", "days_in_period", "monthly_price", "gross")
    )


# --- the pure split ------------------------------------------------------------------------------


def _segments(prices, start=date(2026, 1, 1), end=None, month=date(2026, 4, 1)):
    period_start, period_end = month_period(month)
    return pro_rata_segments(
        prices=prices, period_start=period_start, period_end=period_end, start_date=start, end_date=end
    )


def test_it_splits_a_month_where_the_price_changes():
    prices = [(date(2000, 1, 1), date(2026, 4, 14), OLD), (date(2026, 4, 15), None, NEW)]
    shares = _segments(prices)
    assert [(s.service_start.day, s.service_end.day, s.days, s.monthly_price, s.gross) for s in shares] == [
        (1, 14, 14, OLD, Decimal("42.00")),  # 90 × 14/30
        (15, 30, 16, NEW, Decimal("52.80")),  # 99 × 16/30
    ]


def test_a_whole_month_at_one_price_is_exactly_that_price_and_equal_prices_stay_one_share():
    prices = [(date(2000, 1, 1), date(2026, 3, 31), OLD), (date(2026, 4, 1), None, NEW)]
    assert [(s.days, s.gross) for s in _segments(prices)] == [(30, NEW)]
    same = [(date(2000, 1, 1), date(2026, 4, 9), OLD), (date(2026, 4, 10), None, OLD)]
    assert [(s.days, s.gross) for s in _segments(same)] == [(30, OLD)]
    ending = _segments(prices, end=date(2026, 4, 10), month=date(2026, 3, 1))
    assert [(s.days, s.gross) for s in ending] == [(31, OLD)]
    assert _segments(prices, start=date(2026, 5, 1)) == []


def test_a_contract_starting_after_the_change_pays_only_the_new_price():
    prices = [(date(2000, 1, 1), date(2026, 4, 14), OLD), (date(2026, 4, 15), None, NEW)]
    shares = _segments(prices, start=date(2026, 4, 20))
    assert [(s.service_start.day, s.days, s.monthly_price, s.gross) for s in shares] == [
        (20, 11, NEW, Decimal("36.30"))
    ]


# --- the invoicing run ---------------------------------------------------------------------------


@time_machine.travel("2026-03-02 06:00 +01:00", tick=False)
def test_a_month_with_a_mid_month_change_has_a_line_per_price_with_its_days():
    product = _product_with_change_on(date(2026, 4, 15))
    contract = ContractFactory(product=product, monthly_price=OLD)
    _card(contract.customer)

    run = _run(date(2026, 4, 1))

    assert run.lines_created == 2 and run.invoices_created == 1
    assert _lines(contract, date(2026, 4, 1)) == [
        (date(2026, 4, 1), date(2026, 4, 14), 14, 30, OLD, Decimal("42.00")),
        (date(2026, 4, 15), date(2026, 4, 30), 16, 30, NEW, Decimal("52.80")),
    ]
    invoice = Invoice.objects.get(customer=contract.customer)
    assert invoice.gross_total == Decimal("94.80")
    assert invoice.net_total + invoice.vat_total == invoice.gross_total
    assert invoice.net_total == Decimal("79.66")  # 94.80 / 1.19, rounded once for the rate
    assert not BillingException.objects.filter(kind="price_changed").exists()
    _run(date(2026, 4, 1))
    assert InvoiceLine.objects.filter(contract=contract).count() == 2


@time_machine.travel("2026-03-02 06:00 +01:00", tick=False)
def test_a_full_month_before_the_change_bills_the_old_price_and_the_month_after_the_new():
    product = _product_with_change_on(date(2026, 4, 15))
    contract = ContractFactory(product=product, monthly_price=OLD)

    _run(date(2026, 3, 1))
    _run(date(2026, 5, 1))

    assert _lines(contract, date(2026, 3, 1)) == [(date(2026, 3, 1), date(2026, 3, 31), 31, 31, OLD, OLD)]
    assert _lines(contract, date(2026, 5, 1)) == [(date(2026, 5, 1), date(2026, 5, 31), 31, 31, NEW, NEW)]


@time_machine.travel("2026-03-02 06:00 +01:00", tick=False)
def test_a_contract_with_its_own_agreed_price_keeps_it_across_a_change():
    product = _product_with_change_on(date(2026, 4, 15))
    negotiated = ContractFactory(product=product, monthly_price=Decimal("80.00"))

    _run(date(2026, 4, 1))

    assert _lines(negotiated, date(2026, 4, 1)) == [
        (date(2026, 4, 1), date(2026, 4, 30), 30, 30, Decimal("80.00"), Decimal("80.00"))
    ]


@time_machine.travel("2026-03-02 06:00 +01:00", tick=False)
def test_a_contract_approved_at_the_list_price_follows_the_list():
    product = ProductFactory(monthly_price=OLD, quota=5)
    contract = carpark_services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["M PR 1"])
    contract = carpark_services.contract_activate(contract=approve_directly(contract))
    assert contract.monthly_price == OLD
    # Approved before the change was planned: a later list change still reaches it.
    product_services.product_price_set(product=product, monthly_price=NEW, valid_from=date(2026, 4, 15))
    lowered = ContractFactory(product=product, monthly_price=OLD)
    Contract.objects.filter(pk=lowered.pk).update(monthly_price=Decimal("85.00"))

    _run(date(2026, 4, 1))

    assert [line[4] for line in _lines(contract, date(2026, 4, 1))] == [OLD, NEW]
    assert [line[4] for line in _lines(lowered, date(2026, 4, 1))] == [Decimal("85.00")]


@time_machine.travel("2026-03-02 06:00 +01:00", tick=False)
def test_a_corporate_invoice_with_price_segments_keeps_en16931_vat_rounding():
    company = CorporateFactory()
    product = ProductFactory(monthly_price=Decimal("99.00"))
    product_services.product_price_set(product=product, monthly_price=Decimal("109.00"), valid_from=date(2026, 4, 11))
    for _ in range(50):
        ContractFactory(customer=company, product=product, monthly_price=Decimal("99.00"))

    _run(date(2026, 4, 1))

    invoice = Invoice.objects.get(customer=company)
    lines = list(invoice.lines.all())
    assert len(lines) == 100
    assert {line.gross for line in lines} == {Decimal("33.00"), Decimal("72.67")}  # 99 × 10/30, 109 × 20/30
    [rate] = invoice.vat_breakdown
    net = sum(line.net for line in lines)
    assert Decimal(rate["net"]) == net == invoice.net_total
    assert abs(net * Decimal("0.19") - invoice.vat_total) <= Decimal("0.01")
    assert invoice.net_total + invoice.vat_total == invoice.gross_total == Decimal("5283.50")


def test_the_database_allows_a_line_per_segment_but_not_two_for_the_same_days():
    contract = ContractFactory()
    invoice = Invoice.objects.create(
        customer=contract.customer, period_start=date(2026, 4, 1), period_end=date(2026, 4, 30)
    )
    values = {
        "invoice": invoice, "contract": contract, "description": "x", "period_start": date(2026, 4, 1),
        "service_start": date(2026, 4, 1), "service_end": date(2026, 4, 14), "days": 14, "days_in_period": 30,
        "monthly_price": 1, "vat_rate": 19, "net": 1, "vat": 0, "gross": 1,
    }  # fmt: skip
    InvoiceLine.objects.create(**values)
    InvoiceLine.objects.create(**{**values, "service_start": date(2026, 4, 15), "service_end": date(2026, 4, 30)})
    with pytest.raises(IntegrityError):
        InvoiceLine.objects.create(**values)
