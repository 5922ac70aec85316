"""System tasks the billing processes name (failed-payment) and that any process may use.

Each is idempotent for its ``ctx.idempotency_key``: a re-delivered job charges, emails or
suspends nothing twice.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext

from billing import services
from billing.models import BillingException, Invoice, InvoicingRun, Payment
from carparks.models import Contract, Customer
from workflows.registry import PermanentError, SystemTaskContext, system_task


def _invoice(ctx: SystemTaskContext) -> Invoice:
    obj = ctx.business_object
    invoice_id = obj.pk if isinstance(obj, Invoice) else ctx.variables.get("invoice_id")
    try:
        return Invoice.objects.select_related("customer").get(pk=invoice_id)
    except (Invoice.DoesNotExist, ValueError, TypeError):
        raise PermanentError(f"invoice {invoice_id!r} does not exist") from None


def _customer(ctx: SystemTaskContext) -> Customer:
    obj = ctx.business_object
    if isinstance(obj, Customer):
        return obj
    if isinstance(obj, Contract | Invoice):
        return obj.customer
    try:
        return Customer.objects.get(pk=ctx.variables.get("customer_id"))
    except (Customer.DoesNotExist, ValueError, TypeError):
        raise PermanentError("the process names no customer (business object or customer_id)") from None


@system_task(
    "billing.invoicing_run",
    reads=["period_start", "run_id", "invoicing_run_id"],
    writes=["invoicing_run_id", "invoices_created"],
    description="Bill every active contract for the month (pro rata); one invoice per customer. Started by "
    "invoicing.period_due, it reviews the schedule's run (finishing it if it stopped) instead of billing twice; "
    "run again, it bills what the earlier run left out.",
)
def invoicing_run(ctx: SystemTaskContext) -> dict[str, Any]:
    run = _run_of_event(ctx)
    if run is None:
        raw = ctx.variables.get("period_start")
        period = date.fromisoformat(raw) if raw else None
        run = services.invoicing_run_create(period_start=period or timezone.localdate())
    if run.state == InvoicingRun.State.RUNNING:
        raise RuntimeError(f"invoicing run {run.pk} is still running; its counts are read when it has finished")
    if run.state != InvoicingRun.State.DONE:
        run = services.invoicing_run_execute(run=run)  # resumes: contracts already billed are skipped
    if run.state != InvoicingRun.State.DONE:
        raise RuntimeError(run.error or "invoicing run failed")
    return {"invoicing_run_id": run.pk, "invoices_created": run.invoices_created}


def _run_of_event(ctx: SystemTaskContext) -> InvoicingRun | None:
    """The run ``invoicing.period_due`` named, the first time the step runs (not when Finance asks again)."""
    if ctx.variables.get("invoicing_run_id"):
        return None
    obj = ctx.business_object
    run_id = obj.pk if isinstance(obj, InvoicingRun) else ctx.variables.get("run_id")
    if not run_id:
        return None
    try:
        return InvoicingRun.objects.get(pk=run_id)
    except (InvoicingRun.DoesNotExist, ValueError, TypeError):
        raise PermanentError(f"invoicing run {run_id!r} does not exist") from None


@system_task(
    "billing.charge_invoice",
    reads=["invoice_id"],
    writes=["paid", "charge_status", "charge_attempts"],
    description="Charge the invoice to the customer's saved card off-session (once per step). When Stripe's "
    "answer is lost the step fails and is retried; the retry repeats the same attempt with its stored key.",
)
def charge_invoice(ctx: SystemTaskContext) -> dict[str, Any]:
    # services.ChargeOutcomeUnknown is deliberately not a PermanentError: the engine retries the step
    # with back-off, and invoice_charge reuses the pending ledger row and its idempotency key.
    invoice = _invoice(ctx)
    done = Payment.objects.filter(invoice=invoice, kind=Payment.Kind.CHARGE, job_key=ctx.idempotency_key).first()
    if done is None:
        result = services.invoice_charge(invoice=invoice, start_dunning=False)
        if result.payment is not None and not result.payment.job_key:
            Payment.objects.filter(pk=result.payment.pk, job_key="").update(job_key=ctx.idempotency_key)
        status = result.status
    else:
        status = done.status
    invoice.refresh_from_db()
    attempts = Payment.objects.filter(invoice=invoice, kind=Payment.Kind.CHARGE).count()
    return {"paid": invoice.state == Invoice.State.PAID, "charge_status": status, "charge_attempts": attempts}


@system_task(
    "billing.send_invoice",
    reads=["invoice_id"],
    writes=["invoice_sent"],
    description="Render the invoice PDF with its Factur-X e-invoice and email it to the customer.",
)
def send_invoice(ctx: SystemTaskContext) -> dict[str, Any]:
    invoice = _invoice(ctx)
    if invoice.state == Invoice.State.DRAFT:
        raise PermanentError(f"invoice {invoice.pk} is a draft")
    services.invoice_send(invoice=invoice)
    return {"invoice_sent": True}


@system_task(
    "billing.setup_payment_link",
    reads=["customer_id", "contract_id"],
    writes=["card_link_sent"],
    description="Email the customer a link to save a card for recurring payments (Stripe SetupIntent).",
)
def setup_payment_link(ctx: SystemTaskContext) -> dict[str, Any]:
    customer = _customer(ctx)
    sent = services.card_link_send(customer=customer, key=f"card-link:{ctx.idempotency_key}")
    return {"card_link_sent": sent or True}


@system_task(
    "billing.send_payment_reminder",
    reads=["invoice_id", "reminder_level"],
    writes=["reminder_level"],
    description="Email a payment reminder for the invoice with a link to update the card.",
)
def send_payment_reminder(ctx: SystemTaskContext) -> dict[str, Any]:
    invoice = _invoice(ctx)
    level = int(ctx.variables.get("reminder_level") or 0) + 1
    if invoice.state in (Invoice.State.PAID, Invoice.State.VOID):
        return {"reminder_level": level - 1}
    services.payment_reminder_send(invoice=invoice, level=level, key=f"reminder:{ctx.idempotency_key}")
    return {"reminder_level": level}


@system_task(
    "billing.suspend_contracts",
    reads=["invoice_id"],
    writes=["suspended_contracts"],
    description="Suspend the unpaid invoice's contracts and revoke their credentials.",
)
def suspend_contracts(ctx: SystemTaskContext) -> dict[str, Any]:
    invoice = _invoice(ctx)
    if invoice.state == Invoice.State.PAID:
        return {"suspended_contracts": []}
    suspended = services.dunning_suspend_contracts(
        invoice=invoice, reason=f"Invoice {invoice.display_number} unpaid after reminders."
    )
    # contract_suspend deactivates the credentials and signals Connect, which revokes them in the CPMS.
    return {"suspended_contracts": suspended}


@system_task(
    "billing.reactivate_contracts",
    reads=["invoice_id"],
    writes=["reactivated_contracts"],
    description="Reactivate the contracts suspended for an invoice that is now paid.",
)
def reactivate_contracts(ctx: SystemTaskContext) -> dict[str, Any]:
    invoice = _invoice(ctx)
    reactivated = services.dunning_reactivate_contracts(
        invoice=invoice, reason=f"Invoice {invoice.display_number} paid."
    )
    return {"reactivated_contracts": reactivated}


@system_task(
    "billing.exception_resolve",
    reads=["exception_id", "resolution"],
    writes=["exception_resolved"],
    description="Record Finance's resolution of a billing exception.",
)
def exception_resolve(ctx: SystemTaskContext) -> dict[str, Any]:
    obj = ctx.business_object
    exception_id = obj.pk if isinstance(obj, BillingException) else ctx.variables.get("exception_id")
    item = BillingException.objects.filter(pk=exception_id).first()
    if item is None:
        raise PermanentError(f"billing exception {exception_id!r} does not exist")
    services.billing_exception_resolve(
        exception=item, user=None, resolution=str(ctx.variables.get("resolution") or "Resolved."), cancel_tasks=False
    )
    return {"exception_resolved": True}


@system_task(
    "billing.refund_issue",
    reads=["invoice_id", "refund_amount", "refund_reason", "resolution", "subject", "case_id"],
    writes=["refund_id", "refund_status", "refunded_amount", "credit_note_number"],
    description="Refund the invoice (variable invoice_id) by refund_amount, or everything still refundable when "
    "no amount is given: a credit note and the card refund through Stripe, once per step. A process that names "
    "no invoice and no amount refunds nothing.",
)
def refund_issue(ctx: SystemTaskContext) -> dict[str, Any]:
    from decimal import Decimal, InvalidOperation

    from billing import selectors

    raw = ctx.variables.get("refund_amount")
    obj = ctx.business_object
    if not isinstance(obj, Invoice) and not ctx.variables.get("invoice_id"):
        if raw not in (None, ""):
            raise PermanentError("a refund amount is given but the process names no invoice (invoice_id)")
        return {"refund_id": None, "refund_status": "none", "refunded_amount": "0.00", "credit_note_number": ""}
    invoice = _invoice(ctx)
    refund = Payment.objects.filter(invoice=invoice, kind=Payment.Kind.REFUND, job_key=ctx.idempotency_key).first()
    if refund is None:
        if raw in (None, ""):
            amount = selectors.invoice_refundable(invoice)
            if amount <= 0:
                return {"refund_id": None, "refund_status": "none", "refunded_amount": "0.00", "credit_note_number": ""}
        else:
            try:
                amount = Decimal(str(raw))
            except InvalidOperation:
                raise PermanentError(f"refund_amount {raw!r} is not an amount") from None
        case_id, subject = ctx.variables.get("case_id"), ctx.variables.get("subject")
        reason = (
            ctx.variables.get("refund_reason")
            or ctx.variables.get("resolution")
            or (f"Customer case #{case_id}: {subject}" if case_id else "")
            or f"Refund decided in process #{ctx.process.pk}"
        )
        try:
            refund = services.refund_issue(invoice=invoice, amount=amount, reason=str(reason), key=ctx.idempotency_key)
        except services.BillingError as exc:
            raise PermanentError(str(exc)) from None
    refund = services.refund_send(refund=refund)
    if refund.status == Payment.Status.FAILED:
        raise PermanentError(f"refund of {refund.amount} {refund.currency} failed: {refund.failure_message}")
    if refund.status == Payment.Status.PENDING and not refund.stripe_refund_id:
        raise RuntimeError("Stripe could not be reached; the refund is recorded and is sent again on the next attempt")
    note = refund.credit_notes.first()
    return {
        "refund_id": refund.pk,
        "refund_status": refund.status,
        "refunded_amount": str(refund.amount),
        "credit_note_number": note.display_number if note else "",
    }


def _bank_entry(ctx: SystemTaskContext) -> Any:
    from billing.models import BankEntry

    obj = ctx.business_object
    entry_id = obj.pk if isinstance(obj, BankEntry) else ctx.variables.get("entry_id")
    entry = BankEntry.objects.select_related("invoice").filter(pk=entry_id).first()
    if entry is None:
        raise PermanentError(f"bank statement entry {entry_id!r} does not exist")
    return entry


def _bank_problem(entry: Any, text: Any) -> dict[str, Any]:
    """A choice the credit cannot take: noted on the entry (the task shows it) and the task comes back."""
    from billing.models import BankEntry

    text = str(text)
    BankEntry.objects.filter(pk=entry.pk, status=BankEntry.Status.QUEUED).update(note=text[:500])
    return {"bank_credit_settled": False, "bank_credit_problem": text}


@system_task(
    "billing.bank_credit_match",
    reads=["entry_id", "invoice_number"],
    writes=["bank_credit_settled", "bank_credit_problem", "invoice_id"],
    description="Book the queued bank credit to the invoice Finance named (invoice_number): paid, part paid, or "
    "the excess as the customer's credit balance. A number that names no invoice sends the task back with a note.",
)
def bank_credit_match(ctx: SystemTaskContext) -> dict[str, Any]:
    from billing import bank_statements
    from billing.models import BankEntry

    entry = _bank_entry(ctx)
    if entry.status != BankEntry.Status.QUEUED:  # settled already (this step before, or the statement page)
        return {"bank_credit_settled": True, "bank_credit_problem": "", "invoice_id": entry.invoice_id}
    number = str(ctx.variables.get("invoice_number") or "").strip()
    if not number:
        return _bank_problem(
            entry, gettext("Name the invoice the credit pays (its number), or choose “not an invoice payment”.")
        )
    invoice = bank_statements.invoice_find(number)
    if invoice is None:
        return _bank_problem(
            entry,
            gettext("No issued invoice has the number “%(number)s”. Check the number and try again.")
            % {"number": number[:40]},
        )
    try:
        bank_statements.entry_match_manual(entry=entry, invoice=invoice, user=None, cancel_task=False)
    except bank_statements.EntryRefused as exc:
        return _bank_problem(entry, str(exc))
    return {"bank_credit_settled": True, "bank_credit_problem": "", "invoice_id": invoice.pk}


@system_task(
    "billing.bank_credit_ignore",
    reads=["entry_id", "reason"],
    writes=["bank_credit_settled", "bank_credit_problem"],
    description="Mark the queued bank credit as not an invoice payment, with Finance's reason. Without a reason "
    "the task comes back with a note.",
)
def bank_credit_ignore(ctx: SystemTaskContext) -> dict[str, Any]:
    from billing import bank_statements
    from billing.models import BankEntry

    entry = _bank_entry(ctx)
    if entry.status != BankEntry.Status.QUEUED:
        return {"bank_credit_settled": True, "bank_credit_problem": ""}
    try:
        bank_statements.entry_ignore(
            entry=entry, reason=str(ctx.variables.get("reason") or ""), user=None, cancel_task=False
        )
    except bank_statements.EntryRefused as exc:
        return _bank_problem(entry, str(exc))
    return {"bank_credit_settled": True, "bank_credit_problem": ""}


# --- SEPA Direct Debit: the returned-debit workflow (billing/sepa.py) ---------------------------------


@system_task(
    "billing.send_returned_debit_notice",
    reads=["invoice_id", "failure"],
    writes=["returned_debit_notified"],
    description="Email the customer that their direct debit for the invoice came back, with the bank's reason, "
    "and what happens next.",
)
def send_returned_debit_notice(ctx: SystemTaskContext) -> dict[str, Any]:
    from billing import sepa

    invoice = _invoice(ctx)
    if invoice.state in (Invoice.State.PAID, Invoice.State.VOID):
        return {"returned_debit_notified": False}
    sent = sepa.returned_debit_notice_send(
        invoice=invoice, reason=str(ctx.variables.get("failure") or ""), key=f"returned-debit:{ctx.idempotency_key}"
    )
    return {"returned_debit_notified": sent or True}


@system_task(
    "billing.switch_to_bank_transfer",
    reads=["invoice_id"],
    writes=["switched_to_transfer"],
    description="Collect the unpaid invoice by bank transfer instead of direct debit: the customer's payment "
    "option becomes bank transfer and the invoice is sent again with the IBAN and transfer reference.",
)
def switch_to_bank_transfer(ctx: SystemTaskContext) -> dict[str, Any]:
    from billing import sepa

    invoice = _invoice(ctx)
    if not invoice.is_payable:
        return {"switched_to_transfer": False}
    sepa.invoice_switch_to_transfer(invoice=invoice, key=ctx.idempotency_key)
    return {"switched_to_transfer": True}
