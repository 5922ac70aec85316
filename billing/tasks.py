"""Celery tasks of the billing app: thin wrappers that load by id and call a service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from billing import exports, services
from billing.models import CreditNote, Invoice, InvoicingRun, PaymentMethod
from billing.payment_options import PaymentOption
from carparks.models import Customer

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def invoicing_run_task(run_id: int, deliver: bool = True) -> int:
    run = InvoicingRun.objects.get(pk=run_id)
    if run.state in (InvoicingRun.State.DONE, InvoicingRun.State.CANCELLED):
        return run.invoices_created
    if run.state == InvoicingRun.State.PREVIEW:
        logger.warning("invoicing run %s is a preview nobody confirmed; not run", run_id)
        return 0
    # A re-delivered message after a worker died resumes the run: billed contracts are skipped.
    return services.invoicing_run_execute(run=run, deliver=deliver).invoices_created


@shared_task
def invoicing_run_monthly() -> int:
    """Beat: on the first of the month, bill the month (in advance) for every active contract.

    The schedule's run is confirmed by the system (no preview: nobody waits to confirm it). Then
    ``invoicing.period_due`` tells the workflows the period's run exists (also when it failed: a
    review workflow resumes it).
    """
    run = services.invoicing_run_create(period_start=timezone.localdate())
    try:
        run = services.invoicing_run_execute(run=run)
    finally:
        services.invoicing_period_due_emit(run=run)
    return run.invoices_created


@shared_task(bind=True, acks_late=True, max_retries=5, default_retry_delay=60)
def invoice_deliver(self, invoice_id: int) -> str:  # noqa: ANN001
    """Render and email the invoice, then charge the saved card (each step happens once)."""
    invoice = Invoice.objects.select_related("customer").get(pk=invoice_id)
    try:
        services.invoice_send(invoice=invoice)
    except Exception as exc:  # rendering or SMTP trouble: retry later, the charge still goes ahead
        logger.exception("sending invoice %s failed", invoice_id)
        if self.request.retries < self.max_retries:
            raise self.retry(exc=exc) from exc
    if invoice.payment_option == PaymentOption.BANK_TRANSFER:
        return services.AWAITS_TRANSFER  # the customer transfers the money: nothing to charge
    if PaymentMethod.objects.filter(customer_id=invoice.customer_id, detached_at__isnull=True).exists():
        try:
            return services.invoice_charge(invoice=invoice).status
        except services.ChargeOutcomeUnknown as exc:
            # Stripe's answer was lost: the pending attempt is repeated with its stored key (sending is done).
            invoice_charge_task.apply_async((invoice_id,), countdown=60)
            return f"pending: {exc}"
    return "no_payment_method"


@shared_task(
    acks_late=True,
    autoretry_for=(services.ChargeOutcomeUnknown,),
    retry_backoff=60,
    retry_backoff_max=3600,
    max_retries=8,
)
def invoice_charge_task(invoice_id: int) -> str:
    """Charge once; a lost Stripe answer is retried with the attempt's stored key (the nightly
    reconciliation settles what is still pending after the last retry)."""
    return services.invoice_charge(invoice=Invoice.objects.get(pk=invoice_id)).status


@shared_task(acks_late=True, autoretry_for=(Exception,), max_retries=5, default_retry_delay=60)
def credit_note_render(credit_note_id: int) -> bool:
    return services.credit_note_send(credit_note=CreditNote.objects.get(pk=credit_note_id))


@shared_task(acks_late=True, autoretry_for=(Exception,), max_retries=5, default_retry_delay=30)
def payment_received(invoice_id: int) -> None:
    services.payment_received(invoice=Invoice.objects.select_related("customer").get(pk=invoice_id))


@shared_task(acks_late=True, autoretry_for=(Exception,), max_retries=5, default_retry_delay=30)
def payment_method_save_task(customer_id: int, setup_intent_id: str) -> int:
    customer = Customer.objects.get(pk=customer_id)
    return services.payment_method_save(customer=customer, setup_intent_id=setup_intent_id).pk


@shared_task
def accounting_export_nightly() -> list[int]:
    return [export.pk for export in exports.accounting_exports_nightly()]


@shared_task
def bank_transfers_overdue_daily() -> int:
    """Beat: ``payment.failed`` (method bank_transfer) once for each transfer invoice unpaid after its due date."""
    from billing.bank_transfer import bank_transfers_overdue_emit

    return bank_transfers_overdue_emit()


@shared_task
def stripe_reconcile_nightly() -> int:
    """Beat: compare yesterday's (UTC) Stripe balance transactions with the ledger; a Finance task per
    difference (idempotent per day)."""
    from datetime import timedelta

    from billing import reconciliation

    day = timezone.now().date() - timedelta(days=1)
    return len(reconciliation.stripe_reconcile_day(day=day))


@shared_task(acks_late=True, autoretry_for=(Exception,), max_retries=5, default_retry_delay=30)
def bank_credits_unmatched_task(entry_ids: list[int]) -> int:
    """Start the matching tasks of a big statement's queued credits (each once: the event id)."""
    from billing.bank_statements import bank_credits_unmatched_emit

    return bank_credits_unmatched_emit(entry_ids=entry_ids)
