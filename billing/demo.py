"""Demo invoices (``manage.py demo_load``): last month billed and paid, this month issued.

Runs after ``carparks.demo``; without active contracts it does nothing. Idempotent: the invoicing
run bills no contract twice, and only still-open demo invoices of last month are marked paid.
No Stripe calls are made (last month counts as paid by bank transfer). One paid invoice is partly refunded
(a partial credit note and its refund, paid back by bank transfer), once.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils import timezone

from billing import services
from billing.models import Invoice
from billing.proration import previous_month
from carparks.models import Contract


def load(stdout: Any) -> None:
    if not Contract.objects.filter(state=Contract.State.ACTIVE).exists():
        stdout.write("billing.demo: no active contracts (load carparks.demo first); skipped")
        return
    today = timezone.localdate()
    last_month, _ = previous_month(today)
    runs = [
        services.invoicing_run_execute(run=services.invoicing_run_create(period_start=month), deliver=False)
        for month in (last_month, today)
    ]
    paid = 0
    for invoice in Invoice.objects.filter(period_start=last_month, state=Invoice.State.ISSUED).order_by("pk")[1:]:
        services.invoice_record_transfer(invoice=invoice, reference=f"DEMO-{invoice.display_number}")
        paid += 1
    refunded = _partial_refund(last_month)
    stdout.write(
        f"billing.demo: {sum(r.invoices_created for r in runs)} invoices issued, {paid} marked paid, "
        f"{refunded} partly refunded "
        f"({Invoice.objects.count()} in total)"
    )


def _partial_refund(period_start: Any) -> int:
    """Partly refund the first paid invoice of the month (the submission key makes a second load a no-op)."""
    invoice = Invoice.objects.filter(period_start=period_start, state=Invoice.State.PAID).order_by("pk").first()
    if invoice is None:
        return 0
    amount = min(Decimal("20.00"), (invoice.gross_total / 2).quantize(Decimal("0.01")))
    services.refund_issue(
        invoice=invoice,
        amount=amount,
        reason="Barrier out of order for two days: part of the month refunded.",
        key=f"demo-refund:{invoice.pk}",
    )
    return 1
