import random
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from billing.proration import month_period, pro_rata, split_gross, split_lines

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


def _drift(lines: list[tuple[Decimal, Decimal]], split: list[tuple[Decimal, Decimal]]) -> dict[Decimal, Decimal]:
    """Per rate: |VAT − round(taxable amount × rate)|, the quantity EN 16931's BR-S-09 checks."""
    drift = {}
    for rate in {rate for rate, _ in lines}:
        net = sum(n for (r, _), (n, _) in zip(lines, split, strict=True) if r == rate)
        vat = sum(v for (r, _), (_, v) in zip(lines, split, strict=True) if r == rate)
        drift[rate] = abs(vat - (net * rate / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    return drift


def test_vat_is_worked_out_per_rate_so_many_lines_do_not_drift():
    lines = [(Decimal("19.00"), Decimal("99.00"))] * 50
    # Line by line, each 99.00 splits into 83.19 + 15.81: 50 lines give VAT 790.50 on 4,159.50,
    # 0.19 more than 19 % of 4,159.50 (790.31).
    assert split_gross(Decimal("99.00"), Decimal("19.00")) == (Decimal("83.19"), Decimal("15.81"))
    split = split_lines(lines)
    assert sum(n for n, _ in split) == Decimal("4159.66")  # 4,950.00 / 1.19, rounded once
    assert sum(v for _, v in split) == Decimal("790.34")
    assert _drift(lines, split) == {Decimal("19.00"): Decimal("0.00")}
    assert all(net + vat == Decimal("99.00") for net, vat in split)
    assert {net for net, _ in split} == {Decimal("83.19"), Decimal("83.20")}  # the cents shared out


def test_split_lines_keeps_every_gross_and_stays_within_a_cent_for_mixed_rates():
    rng = random.Random(7)
    for _ in range(300):
        lines = [
            (rng.choice([Decimal("19.00"), Decimal("7.00"), Decimal("0.00")]), Decimal(rng.randint(1, 60000)) / 100)
            for _ in range(rng.randint(1, 120))
        ]
        split = split_lines(lines)
        for (rate, gross), (net, vat) in zip(lines, split, strict=True):
            assert net + vat == gross
            assert abs(net - split_gross(gross, rate)[0]) <= Decimal("0.01")  # each line near its own split
        assert all(drift <= Decimal("0.01") for drift in _drift(lines, split).values()), lines
        assert all(vat == 0 for (rate, _), (_, vat) in zip(lines, split, strict=True) if rate == 0)
