"""Nightly reconciliation of the ledger with Stripe's balance transactions of one day.

Stripe's balance transactions are what really moved on the account: ``charge`` / ``payment`` (a card
payment, ``source`` the charge), ``refund`` / ``payment_refund`` (``source`` the refund) and
``adjustment`` for disputes (``reporting_category`` ``dispute`` when funds are withdrawn,
``dispute_reversal`` when they are reinstated, ``source`` the dispute). Every one of them must match a
ledger row by its Stripe id and amount, and every ledger row of the day that Stripe moved money for
must have its transaction. Each difference becomes a ``reconciliation`` billing exception (a Finance
task through ``billing.exception_raised``), once per day and Stripe id, so running it again changes
nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import stripe
from django.db.models import Q
from django.utils import timezone

from billing import services
from billing.models import BillingException, Payment
from billing.stripe_api import stripe_client, to_cents

logger = logging.getLogger(__name__)

CHARGE_TYPES = ("charge", "payment")
REFUND_TYPES = ("refund", "payment_refund")
DISPUTE_CATEGORIES = ("dispute", "dispute_reversal")
# Transactions a little before or after the day still match the day's ledger rows (a charge written
# at 23:59:59 whose transaction Stripe dates 00:00:01); only the day's own ones are reported.
MARGIN = timedelta(hours=2)
# A card charge still pending after this long is settled from Stripe before comparing.
PENDING_AFTER = timedelta(minutes=15)


@dataclass(frozen=True)
class Difference:
    stripe_id: str
    message: str
    invoice_id: int | None = None
    customer_id: int | None = None


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def balance_transactions(*, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Stripe's balance transactions created in [start, end), as plain dicts (every page)."""
    params = {"created": {"gte": int(start.timestamp()), "lt": int(end.timestamp())}, "limit": 100}
    page = stripe_client().v1.balance_transactions.list(params=params)
    return [txn.to_dict() for txn in page.auto_paging_iter()]


def _ledger_key(txn: dict[str, Any]) -> tuple[str, str] | None:
    """(kind of ledger row, Stripe id) a transaction must match, or None for what the ledger does not hold
    (payouts, Stripe's fees, top-ups)."""
    source = services._stripe_id(txn.get("source"))
    kind, category = txn.get("type"), txn.get("reporting_category")
    if kind in CHARGE_TYPES:
        return Payment.Kind.CHARGE, source
    if kind in REFUND_TYPES:
        return Payment.Kind.REFUND, source
    if kind == "adjustment" and category in DISPUTE_CATEGORIES:
        return (Payment.Kind.CHARGEBACK if category == "dispute" else Payment.Kind.REVERSAL), source
    return None


def _row_for(kind: str, stripe_id: str) -> Payment | None:
    rows = Payment.objects.select_related("invoice")
    if kind == Payment.Kind.CHARGE:
        return rows.filter(kind=kind, stripe_charge_id=stripe_id).order_by("-pk").first()
    if kind == Payment.Kind.REFUND:
        return rows.filter(kind=kind, stripe_refund_id=stripe_id).first()
    label = "withdrawn" if kind == Payment.Kind.CHARGEBACK else "reinstated"
    return rows.filter(idempotency_key=f"stripe-dispute-{stripe_id}-{label}").first()


def _booked(row: Payment) -> bool:
    """Whether the ledger says money moved at Stripe for this row."""
    if row.kind == Payment.Kind.CHARGE:
        return row.status in services.PAID_CHARGE_STATUSES  # a returned charge's money did arrive first
    if row.kind == Payment.Kind.REFUND:
        return row.status in (Payment.Status.PENDING, Payment.Status.SUCCEEDED)
    return row.status == Payment.Status.SUCCEEDED


def differences(*, day: date, transactions: list[dict[str, Any]]) -> list[Difference]:
    """Compare the day's ledger rows with Stripe's transactions (fetched with the margin around the day)."""
    start, end = _day_bounds(day)
    found: list[Difference] = []
    matched: set[int] = set()
    for txn in transactions:
        key = _ledger_key(txn)
        if key is None:
            continue
        kind, stripe_id = key
        created = datetime.fromtimestamp(int(txn.get("created") or 0), tz=UTC)
        row = _row_for(kind, stripe_id)
        if row is not None:
            matched.add(row.pk)
        if not start <= created < end:
            continue
        cents, currency = int(txn.get("amount") or 0), str(txn.get("currency") or "").upper()
        what = f"Stripe's {txn.get('type')} {stripe_id} of {Decimal(cents) / 100:.2f} {currency} ({txn.get('id')})"
        if row is None:
            found.append(Difference(stripe_id, f"{what} is not in the ledger."))
            continue
        ours = to_cents(row.signed_amount)
        if ours != cents or not _booked(row):
            found.append(
                Difference(
                    stripe_id,
                    f"{what} differs from the ledger's {row.get_kind_display().lower()} #{row.pk} of invoice "
                    f"{row.invoice.display_number}: {row.signed_amount} {row.currency}, {row.status}.",
                    row.invoice_id,
                    row.invoice.customer_id,
                )
            )
    # Ledger rows of the day that say Stripe moved money, without a transaction.
    rows = (
        Payment.objects.select_related("invoice")
        .filter(created_at__gte=start, created_at__lt=end)
        .filter(
            Q(kind=Payment.Kind.CHARGE, status__in=services.PAID_CHARGE_STATUSES) & ~Q(stripe_charge_id="")
            | Q(kind=Payment.Kind.REFUND, status__in=[Payment.Status.PENDING, Payment.Status.SUCCEEDED])
            & ~Q(stripe_refund_id="")
        )
        .exclude(pk__in=matched)
    )
    for row in rows:
        stripe_id = row.stripe_refund_id if row.kind == Payment.Kind.REFUND else row.stripe_charge_id
        found.append(
            Difference(
                stripe_id,
                f"The ledger's {row.get_kind_display().lower()} #{row.pk} of invoice {row.invoice.display_number} "
                f"({row.signed_amount} {row.currency}, {stripe_id}) has no balance transaction at Stripe.",
                row.invoice_id,
                row.invoice.customer_id,
            )
        )
    return found


def pending_charges_settle(*, now: datetime | None = None) -> int:
    """Settle card charges left pending (an answer lost and no retry since): each is asked of Stripe
    through its stored key and metadata, so one that Stripe made is recorded once."""
    now = now or timezone.now()
    settled = 0
    pending = Payment.objects.filter(
        kind=Payment.Kind.CHARGE, status=Payment.Status.PENDING, created_at__lt=now - PENDING_AFTER
    ).exclude(payment_method=None)
    for payment in pending.select_related("invoice"):
        try:
            result = services.invoice_charge(invoice=payment.invoice)
        except (services.BillingError, stripe.StripeError) as exc:
            logger.warning("pending charge %s could not be settled: %s", payment.pk, exc)
            continue
        settled += result.status != "pending"
    return settled


def stripe_reconcile_day(*, day: date, transactions: list[dict[str, Any]] | None = None) -> list[BillingException]:
    """Reconcile one day (UTC): pending charges are settled first, then every difference becomes a
    Finance task, once per day and Stripe id. Returns the day's reconciliation exceptions."""
    pending_charges_settle()
    if transactions is None:
        start, end = _day_bounds(day)
        transactions = balance_transactions(start=start - MARGIN, end=end + MARGIN)
    items = []
    for diff in differences(day=day, transactions=transactions):
        items.append(
            services.billing_exception_raise(
                kind=BillingException.Kind.RECONCILIATION,
                key=f"reconcile:{day.isoformat()}:{diff.stripe_id}"[:200],
                message=f"Reconciliation of {day.isoformat()}: {diff.message}",
                customer_id=diff.customer_id,
                invoice=services.Invoice.objects.filter(pk=diff.invoice_id).first() if diff.invoice_id else None,
            )
        )
    logger.info("Stripe reconciliation of %s: %d difference(s)", day, len(items))
    return items
