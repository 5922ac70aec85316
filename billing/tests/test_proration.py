from datetime import date
from decimal import Decimal

from billing.proration import month_period, pro_rata, split_gross

PRICE = Decimal("100.00")


def _share(start, end=None, month=date(2026, 1, 1), price=PRICE):
    period_start, period_end = month_period(month)
    return pro_rata(
        monthly_price=price, period_start=period_start, period_end=period_end, start_date=start, end_date=end
    )


def test_it_bills_a_full_month_at_exactly_the_monthly_price():
    share = _share(date(2025, 6, 15))
    assert (share.days, share.days_in_period, share.gross) == (31, 31, PRICE)


def test_it_bills_one_day_for_a_contract_starting_on_the_31st():
    share = _share(date(2026, 1, 31))
    assert (share.service_start, share.service_end, share.days) == (date(2026, 1, 31), date(2026, 1, 31), 1)
    assert share.gross == Decimal("3.23")  # 100 × 1/31


def test_it_divides_february_by_28_days():
    share = _share(date(2026, 2, 15), month=date(2026, 2, 1))
    assert (share.days, share.days_in_period) == (14, 28)
    assert share.gross == Decimal("50.00")


def test_it_divides_a_leap_year_february_by_29_days():
    share = _share(date(2028, 2, 15), month=date(2028, 2, 1))
    assert (share.days, share.days_in_period) == (15, 29)
    assert share.gross == Decimal("51.72")  # 100 × 15/29


def test_it_bills_up_to_and_including_a_mid_month_termination_date():
    share = _share(date(2025, 1, 1), end=date(2026, 4, 10), month=date(2026, 4, 1))
    assert (share.service_end, share.days, share.days_in_period) == (date(2026, 4, 10), 10, 30)
    assert share.gross == Decimal("33.33")


def test_it_bills_start_and_termination_in_the_same_month():
    share = _share(date(2026, 3, 31), end=date(2026, 3, 31), month=date(2026, 3, 1))
    assert share.days == 1


def test_it_bills_nothing_outside_the_contract():
    assert _share(date(2026, 2, 1)) is None
    assert _share(date(2025, 1, 1), end=date(2025, 12, 31)) is None


def test_it_splits_gross_into_net_and_vat_exactly():
    net, vat = split_gross(Decimal("119.00"), Decimal("19.00"))
    assert (net, vat) == (Decimal("100.00"), Decimal("19.00"))
    net, vat = split_gross(Decimal("3.23"), Decimal("7.00"))
    assert net + vat == Decimal("3.23") and net == Decimal("3.02")
