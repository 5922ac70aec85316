"""Demo invoices (``manage.py demo_load``): last month billed and paid, this month issued.

Runs after ``carparks.demo``; without active contracts it does nothing. Idempotent: the invoicing
run bills no contract twice, and only still-open demo invoices of last month are marked paid.
No Stripe calls are made (last month counts as paid by bank transfer). One paid invoice is partly refunded
(a partial credit note and its refund, paid back by bank transfer), once. Two of this month's invoices are
in dunning at different levels (a declined card recorded without Stripe), and next month's run waits in
preview for Finance.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
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
    mandates = _sepa_mandates()
    runs = [
        services.invoicing_run_execute(run=services.invoicing_run_create(period_start=month), deliver=False)
        for month in (last_month, today)
    ]
    paid = 0
    for invoice in Invoice.objects.filter(period_start=last_month, state=Invoice.State.ISSUED).order_by("pk")[1:]:
        services.invoice_record_transfer(invoice=invoice, reference=f"DEMO-{invoice.display_number}")
        paid += 1
    refunded = _partial_refund(last_month)
    dunnings = _open_dunnings(today)
    preview = _run_in_preview(today)
    stdout.write(
        f"billing.demo: {sum(r.invoices_created for r in runs)} invoices issued, {paid} marked paid, "
        f"{refunded} partly refunded, {mandates} SEPA mandates "
        f"({Invoice.objects.count()} in total); {dunnings} open dunnings; "
        f"a run for {preview.period_start:%m/%Y} waits in preview"
    )


def _sepa_mandates() -> int:
    """A SEPA Direct Debit account with an accepted mandate for each demo customer paying by direct debit
    (stored as the mandate page would store it, without calling Stripe: the demo charges nobody)."""
    from billing.models import PaymentMethod
    from billing.payment_options import PaymentOption
    from carparks.models import Customer

    without = Customer.objects.filter(payment_option=PaymentOption.SEPA_DEBIT).exclude(
        payment_methods__kind=PaymentMethod.Kind.SEPA_DEBIT
    )
    now = timezone.now()
    methods = [
        PaymentMethod(
            customer=customer,
            kind=PaymentMethod.Kind.SEPA_DEBIT,
            stripe_customer_id=f"cus_demo_{customer.pk}",
            stripe_payment_method_id=f"pm_demo_sepa_{customer.pk}",
            last4=f"{3000 + customer.pk % 1000:04d}",
            bank_code="37040044",
            country="DE",
            mandate_reference=f"PHQ-DEMO-{customer.pk:06d}",
            mandate_text=f"By signing this mandate form, you authorise {settings.BILLING_OPERATOR['name']} to send "
            "instructions to your bank to debit your account in accordance with those instructions.",
            mandate_accepted_at=now - timedelta(days=40),
            mandate_acceptance={"type": "offline", "ip_address": "", "user_agent": ""},
        )
        for customer in without
    ]
    PaymentMethod.objects.bulk_create(methods)
    return len(methods)


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


DEMO_DECLINE = "demo-declined-"


def _open_dunnings(today: Any) -> int:
    """Two of this month's invoices whose card was declined (customers without a saved card, so no Stripe
    call): their payment.failed starts the dunning process; the first waits after its first reminder, the
    second, declined four days earlier, after its second. Once: a second load finds the declined payments."""
    from billing.models import Payment, PaymentMethod

    if Payment.objects.filter(idempotency_key__startswith=DEMO_DECLINE).exists():
        return Payment.objects.filter(idempotency_key__startswith=DEMO_DECLINE).count()
    with_card = PaymentMethod.objects.filter(detached_at__isnull=True).values("customer_id")
    invoices = list(
        Invoice.objects.filter(period_start=today.replace(day=1), state=Invoice.State.ISSUED, payment_option="card")
        .exclude(customer_id__in=with_card)
        .order_by("pk")[:2]
    )
    for level, invoice in enumerate(invoices, start=1):
        payment = Payment.objects.create(
            invoice=invoice,
            amount=invoice.gross_total,
            status=Payment.Status.FAILED,
            idempotency_key=f"{DEMO_DECLINE}{invoice.pk}",
            failure_code="card_declined",
            failure_message="Your card was declined.",
        )
        invoice.mark_open()
        invoice.save(update_fields=["state"])
        process = services.dunning_start(invoice=invoice, payment=payment)
        if getattr(process, "current_step", None) is None:
            continue  # no workflow bound to payment.failed: Finance got a billing exception instead
        _run_steps(process)
        if level == 2:
            _wait_over(process, earlier=timedelta(days=4))
    return len(invoices)


def _run_steps(process: Any) -> None:
    """Run the process's queued system steps now (what the worker would do in a moment)."""
    from workflows import engine
    from workflows.models import SystemJob

    for _ in range(5):
        jobs = list(
            SystemJob.objects.filter(process=process, state=SystemJob.State.QUEUED).values_list("pk", flat=True)
        )
        if not jobs:
            return
        for job_id in jobs:
            engine.execute_job(job_id)


def _wait_over(process: Any, *, earlier: Any) -> None:
    """As if the failure was ``earlier`` ago: the first wait is over, the card retried, the second reminder sent."""
    from workflows import engine
    from workflows.models import BusinessEvent, Timer

    now = timezone.now()
    BusinessEvent.objects.filter(process=process).update(emitted_at=now - earlier)
    Timer.objects.filter(process=process, state=Timer.State.PENDING).update(due_at=now)
    engine.fire_due_timers(now)
    _run_steps(process)


def _run_in_preview(today: Any) -> Any:
    """Next month's run waiting in preview for Finance to confirm (confirming opens a few days before it starts)."""
    from billing.models import InvoicingRun
    from billing.proration import month_period

    next_month, _ = month_period(today.replace(day=1) + timedelta(days=32))
    run = InvoicingRun.objects.filter(period_start=next_month, state=InvoicingRun.State.PREVIEW).first()
    return run or services.invoicing_run_preview_create(period_start=next_month, user=None, check_period=False)
