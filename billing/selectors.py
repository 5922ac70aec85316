"""Reads of the billing app that are more than a filter."""

from __future__ import annotations

from datetime import date

from django.db.models import Q, QuerySet

from billing.models import BillingException, Invoice, Payment, PaymentMethod
from carparks.models import Contract


def contracts_due_for_invoicing(*, period_start: date, period_end: date) -> QuerySet[Contract]:
    """Contracts with at least one billable day in the period.

    Active contracts, plus contracts already terminated whose last day falls in the period (they
    used the car park until then). Suspended contracts are not billed.
    """
    overlaps = Q(start_date__lte=period_end) & (Q(end_date__isnull=True) | Q(end_date__gte=period_start))
    states = Q(state=Contract.State.ACTIVE) | Q(state=Contract.State.TERMINATED, end_date__gte=period_start)
    return (
        Contract.objects.filter(overlaps & states)
        .select_related("product__carpark", "customer")
        .prefetch_related("vehicles")
        .order_by("customer_id", "pk")
    )


def default_payment_method(customer_id: int) -> PaymentMethod | None:
    return PaymentMethod.objects.filter(customer_id=customer_id, detached_at__isnull=True, is_default=True).first()


def customers_with_payment_method(customer_ids: list[int]) -> set[int]:
    return set(
        PaymentMethod.objects.filter(customer_id__in=customer_ids, detached_at__isnull=True).values_list(
            "customer_id", flat=True
        )
    )


def live_charge(invoice: Invoice) -> Payment | None:
    return invoice.payments.filter(
        kind=Payment.Kind.CHARGE, status__in=[Payment.Status.PENDING, Payment.Status.SUCCEEDED]
    ).first()


def refundable_amount(payment: Payment):  # noqa: ANN201 - Decimal
    from django.db.models import Sum

    refunded = Payment.objects.filter(
        invoice_id=payment.invoice_id,
        kind=Payment.Kind.REFUND,
        stripe_payment_intent_id=payment.stripe_payment_intent_id,
        status__in=[Payment.Status.PENDING, Payment.Status.SUCCEEDED],
    ).aggregate(total=Sum("amount"))["total"]
    return payment.amount - (refunded or 0)


def open_exceptions() -> QuerySet[BillingException]:
    return BillingException.objects.filter(resolved_at__isnull=True).select_related("customer", "contract", "invoice")
