"""Pure calculations: billing periods, pro-rata days and VAT splits (no database)."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
HUNDRED = Decimal("100")


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def month_period(day: date) -> tuple[date, date]:
    """The calendar month containing ``day`` as (first day, last day)."""
    last = calendar.monthrange(day.year, day.month)[1]
    return day.replace(day=1), day.replace(day=last)


def previous_month(day: date) -> tuple[date, date]:
    return month_period(day.replace(day=1) - timedelta(days=1))


@dataclass(frozen=True)
class ProRata:
    service_start: date
    service_end: date
    days: int
    days_in_period: int
    gross: Decimal
    monthly_price: Decimal | None = None


def pro_rata(
    *, monthly_price: Decimal, period_start: date, period_end: date, start_date: date, end_date: date | None
) -> ProRata | None:
    """Bill the days of [start_date, end_date] (both inclusive) that fall in the period.

    A full month costs exactly the monthly price; a part month costs price × days ÷ days of that
    month (so 1 day of February 2028 is 1/29). ``None`` when the contract has no day in the period.
    """
    service_start = max(start_date, period_start)
    service_end = min(end_date, period_end) if end_date else period_end
    if service_end < service_start:
        return None
    days = (service_end - service_start).days + 1
    days_in_period = (period_end - period_start).days + 1
    gross = money(monthly_price) if days == days_in_period else money(monthly_price * days / days_in_period)
    return ProRata(service_start, service_end, days, days_in_period, gross)


PricePeriods = Sequence[tuple[date, date | None, Decimal]]


def price_at(prices: PricePeriods, day: date) -> Decimal:
    """The price of ``prices`` ((valid_from, valid_until or None, monthly price), oldest first) on ``day``.

    Before the first period the first price counts; in a gap, the last price that started before it.
    """
    current = prices[0][2]
    for valid_from, valid_until, price in prices:
        if valid_from > day:
            break
        current = price
        if valid_until is None or day <= valid_until:
            return price
    return current


def pro_rata_segments(
    *, prices: PricePeriods, period_start: date, period_end: date, start_date: date, end_date: date | None
) -> list[ProRata]:
    """``pro_rata`` split where the price changes: one share per price valid in the billed days.

    Each share costs its own price × its days ÷ days of the month (a share that is the whole month
    costs exactly its price), so a month with a change on the 15th bills 14 days at the old price
    and the rest at the new one. Neighbouring days with the same price stay one share. Empty when
    the contract has no day in the period.
    """
    whole = pro_rata(
        monthly_price=Decimal("0"),
        period_start=period_start,
        period_end=period_end,
        start_date=start_date,
        end_date=end_date,
    )
    if whole is None:
        return []
    if not prices:
        raise ValueError("pro_rata_segments needs at least one price")
    prices = sorted(prices, key=lambda p: p[0])
    first, last = whole.service_start, whole.service_end
    starts = {first}
    for valid_from, valid_until, _price in prices:
        if first < valid_from <= last:
            starts.add(valid_from)
        if valid_until is not None and first < valid_until + timedelta(days=1) <= last:
            starts.add(valid_until + timedelta(days=1))
    bounds = sorted(starts)
    pieces: list[tuple[date, date, Decimal]] = []
    for index, begin in enumerate(bounds):
        end = bounds[index + 1] - timedelta(days=1) if index + 1 < len(bounds) else last
        price = price_at(prices, begin)
        if pieces and pieces[-1][2] == price:
            pieces[-1] = (pieces[-1][0], end, price)
        else:
            pieces.append((begin, end, price))
    shares = []
    for begin, end, price in pieces:
        days = (end - begin).days + 1
        gross = money(price) if days == whole.days_in_period else money(price * days / whole.days_in_period)
        shares.append(ProRata(begin, end, days, whole.days_in_period, gross, price))
    return shares


def split_gross(gross: Decimal, vat_rate: Decimal) -> tuple[Decimal, Decimal]:
    """(net, vat) of a gross amount at ``vat_rate`` percent; net + vat == gross exactly."""
    net = money(gross * HUNDRED / (HUNDRED + vat_rate))
    return net, gross - net


def split_lines(lines: list[tuple[Decimal, Decimal]]) -> list[tuple[Decimal, Decimal]]:
    """(net, vat) of each (vat_rate, gross) line, with VAT worked out once per rate.

    Prices are gross. Rounding each line's VAT on its own lets the invoice's VAT drift from
    "taxable amount × rate" by up to half a cent per line (50 contracts at 99.00 and 19 % drift by
    0.19), which EN 16931 (BR-S-09) does not allow. So per rate: the taxable amount is the gross sum
    split once, the line nets are its cents shared out by largest remainder (they add up to it, as
    BR-S-08 wants), and each line's VAT is its gross minus its net. Gross amounts never change, and
    the VAT of every rate is within one cent of taxable amount × rate, however many lines there are.
    """
    result: list[tuple[Decimal, Decimal]] = [(Decimal("0.00"), Decimal("0.00"))] * len(lines)
    by_rate: dict[Decimal, list[int]] = {}
    for index, (rate, _gross) in enumerate(lines):
        by_rate.setdefault(rate, []).append(index)
    for rate, indexes in by_rate.items():
        exact = [lines[i][1] * HUNDRED / (HUNDRED + rate) for i in indexes]
        nets = [money(value) for value in exact]
        total_net = money(sum((lines[i][1] for i in indexes), Decimal("0")) * HUNDRED / (HUNDRED + rate))
        cents = int((total_net - sum(nets, Decimal("0"))) / CENT)
        # Give the missing cents to the lines rounded down furthest (take surplus ones from those
        # rounded up furthest); |cents| never exceeds half the number of lines.
        order = sorted(range(len(indexes)), key=lambda k: exact[k] - nets[k], reverse=cents > 0)
        for k in order[: abs(cents)]:
            nets[k] += CENT if cents > 0 else -CENT
        for k, i in enumerate(indexes):
            result[i] = (nets[k], lines[i][1] - nets[k])
    return result


def vat_breakdown(lines: list[tuple[Decimal, Decimal, Decimal, Decimal]]) -> list[dict[str, str]]:
    """Group (vat_rate, net, vat, gross) lines by rate: one entry per rate, amounts as strings."""
    groups: dict[Decimal, list[Decimal]] = {}
    for rate, net, vat, gross in lines:
        total = groups.setdefault(rate, [Decimal("0"), Decimal("0"), Decimal("0")])
        total[0] += net
        total[1] += vat
        total[2] += gross
    return [
        {"rate": str(rate), "net": str(money(n)), "vat": str(money(v)), "gross": str(money(g))}
        for rate, (n, v, g) in sorted(groups.items())
    ]
