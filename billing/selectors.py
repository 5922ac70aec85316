"""Reads of the billing app that are more than a filter."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from billing.models import BillingException, Invoice, Payment, PaymentMethod
from carparks.models import Contract


def _due(period_start: date, period_end: date) -> Q:
    overlaps = Q(start_date__lte=period_end) & (Q(end_date__isnull=True) | Q(end_date__gte=period_start))
    states = Q(state=Contract.State.ACTIVE) | Q(state=Contract.State.TERMINATED, end_date__gte=period_start)
    return overlaps & states


def contracts_due_for_invoicing(*, period_start: date, period_end: date) -> QuerySet[Contract]:
    """Contracts with at least one billable day in the period.

    Active contracts, plus contracts already terminated whose last day falls in the period (they
    used the car park until then). Suspended contracts are not billed.
    """
    return (
        Contract.objects.filter(_due(period_start, period_end))
        .select_related("product__carpark", "customer")
        .prefetch_related(Prefetch("vehicles", to_attr="vehicle_list"))
        .order_by("customer_id", "pk")
    )


@dataclass(slots=True)
class BillableContract:
    """What the invoicing run needs of a contract (plain values: 10,000 of them load fast)."""

    pk: int
    customer_id: int
    start_date: date
    end_date: date | None
    monthly_price: Decimal
    cost_centre: str
    product_name: str
    vat_rate: Decimal
    carpark_name: str
    vehicles: list[tuple[int, str, str]] = field(default_factory=list)  # (id, plate, cost centre)


def billable_contracts(*, period_start: date, period_end: date) -> list[BillableContract]:
    """Due contracts that have no invoice line for the period yet, ordered by customer."""
    due = Contract.objects.filter(_due(period_start, period_end)).exclude(invoice_lines__period_start=period_start)
    rows = [
        BillableContract(*row)
        for row in due.order_by("customer_id", "pk").values_list(
            "pk",
            "customer_id",
            "start_date",
            "end_date",
            "monthly_price",
            "cost_centre",
            "product__name",
            "product__vat_rate",
            "product__carpark__name",
        )
    ]
    by_pk = {row.pk: row for row in rows}
    through = Contract.vehicles.through.objects.filter(contract_id__in=due.values("pk"))
    for contract_id, vehicle_id, plate, cost_centre in through.order_by("vehicle__plate").values_list(
        "contract_id", "vehicle_id", "vehicle__plate", "vehicle__cost_centre"
    ):
        if contract_id in by_pk:
            by_pk[contract_id].vehicles.append((vehicle_id, plate, cost_centre))
    return rows


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


def invoice_refundable(invoice: Invoice) -> Decimal:
    """What can still be refunded for an invoice: its succeeded payments less its pending and succeeded
    refunds (a failed refund frees its amount again)."""
    from django.db.models import Sum

    totals = {
        kind: total or Decimal("0.00")
        for kind, total in Payment.objects.filter(invoice_id=invoice.pk)
        .filter(
            Q(kind=Payment.Kind.CHARGE, status=Payment.Status.SUCCEEDED)
            | Q(kind=Payment.Kind.REFUND, status__in=[Payment.Status.PENDING, Payment.Status.SUCCEEDED])
        )
        .values("kind")
        .annotate(total=Sum("amount"))
        .values_list("kind", "total")
    }
    paid = totals.get(Payment.Kind.CHARGE, Decimal("0.00"))
    return max(paid - totals.get(Payment.Kind.REFUND, Decimal("0.00")), Decimal("0.00"))


def open_exceptions() -> QuerySet[BillingException]:
    return BillingException.objects.filter(resolved_at__isnull=True).select_related("customer", "contract", "invoice")


def processes_about(obj: Any) -> list[Any]:
    """Workflow processes about ``obj`` (e.g. dunning for an invoice), newest first; [] without the engine."""
    try:
        from django.contrib.contenttypes.models import ContentType

        from workflows.models import Process
    except ImportError:
        return []
    return list(
        Process.objects.filter(content_type=ContentType.objects.get_for_model(obj), object_id=obj.pk)
        .select_related("definition")
        .order_by("-started_at")
    )
