"""Bank transfer on invoice: the invoice's structured reference, what the customer needs to pay, and the
reminder when the money has not come by the due date.

An invoice issued for a customer who pays by bank transfer carries an ISO 11649 RF creditor reference
derived from its number (``RF`` + two check digits + the series and number, e.g. ``INV2026-000133`` →
``RF22INV2026000133``). The PDF, the email and the Factur-X XML show it with the operator's IBAN and
BIC; the statement matcher finds the invoice by it (or by the plain invoice number).

Such an invoice is never sent to the payment provider. When it is still unpaid after its due date,
``bank_transfers_overdue_emit`` (daily, Celery beat) emits ``payment.failed`` with ``method``
``bank_transfer`` once per invoice; the workflow bound to that (``overdue-transfer``) sends the reminders.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from stdnum import iso11649
from stdnum.iso7064 import mod_97_10

from billing.models import BillingException, Invoice
from billing.payment_options import PaymentOption

logger = logging.getLogger(__name__)

OVERDUE_EVENT_SUFFIX = "transfer-overdue"


def creditor_reference(body: str) -> str:
    """The ISO 11649 RF creditor reference of ``body`` (its letters and digits, at most 21): ``RF`` +
    check digits + body. Raises ``ValueError`` for an empty or too long body."""
    body = re.sub(r"[^0-9A-Za-z]", "", body).upper()
    if not 1 <= len(body) <= 21:
        raise ValueError(f"an RF creditor reference holds 1 to 21 letters or digits, not {len(body)}")
    reference = f"RF{mod_97_10.calc_check_digits(body + 'RF')}{body}"
    return iso11649.validate(reference)


def invoice_creditor_reference(invoice: Invoice) -> str:
    """The RF reference of a numbered invoice: from its series and number (``INV2026-000133`` →
    ``RF…INV2026000133``)."""
    if invoice.number is None:
        raise ValueError("a draft invoice has no number to derive a reference from")
    return creditor_reference(f"{invoice.series}{invoice.number:06d}")


def reference_format(reference: str) -> str:
    """The reference in groups of four, as printed (``RF22 INV2 0260 0013 3``)."""
    return iso11649.format(reference) if reference.startswith("RF") else reference


def invoice_payment_fields(invoice: Invoice, customer: Any) -> list[str]:
    """Set the invoice's payment option from its customer and, for a bank transfer, its RF reference
    (the invoice must be numbered). Returns the fields changed, for ``save(update_fields=…)``."""
    invoice.payment_option = customer.payment_option or PaymentOption.CARD
    changed = ["payment_option"]
    if invoice.payment_option == PaymentOption.BANK_TRANSFER and invoice.number is not None:
        invoice.payment_reference = invoice_creditor_reference(invoice)
        changed.append("payment_reference")
    return changed


def run_references_assign(run_id: int) -> int:
    """Give the run's numbered bank-transfer invoices their RF reference (inside the issuing transaction)."""
    invoices = list(
        Invoice.objects.filter(
            run_id=run_id, payment_option=PaymentOption.BANK_TRANSFER, number__isnull=False, payment_reference=""
        ).only("pk", "series", "number")
    )
    for invoice in invoices:
        invoice.payment_reference = invoice_creditor_reference(invoice)
    Invoice.objects.bulk_update(invoices, ["payment_reference"], batch_size=2000)
    return len(invoices)


# --- what the customer needs to pay ------------------------------------------------------------


@dataclass(frozen=True)
class TransferInstructions:
    beneficiary: str
    iban: str
    bic: str
    amount: Decimal
    currency: str
    due_date: date | None
    reference: str  # what the customer quotes: the RF reference, else the invoice number
    reference_printed: str
    invoice_number: str
    qr_svg: str  # an EPC QR code ("GiroCode") as an SVG data URI, "" when none can be made

    @property
    def iban_printed(self) -> str:
        return " ".join(self.iban[i : i + 4] for i in range(0, len(self.iban), 4))


def transfer_instructions(invoice: Invoice) -> TransferInstructions | None:
    """What a bank-transfer invoice tells the customer; None for an invoice collected by the provider."""
    if invoice.payment_option != PaymentOption.BANK_TRANSFER or invoice.number is None:
        return None
    operator = settings.BILLING_OPERATOR
    reference = invoice.payment_reference or invoice.display_number
    amount = invoice.amount_open if invoice.amount_paid else invoice.gross_total
    iban = re.sub(r"\s", "", operator["iban"]).upper()
    return TransferInstructions(
        beneficiary=operator["name"],
        iban=iban,
        bic=operator.get("bic", ""),
        amount=amount,
        currency=invoice.currency,
        due_date=invoice.due_date,
        reference=reference,
        reference_printed=reference_format(reference),
        invoice_number=invoice.display_number,
        qr_svg=_epc_qr(operator["name"], iban, operator.get("bic", ""), amount, invoice, reference),
    )


def _epc_qr(name: str, iban: str, bic: str, amount: Decimal, invoice: Invoice, reference: str) -> str:
    """The EPC069-12 QR code a banking app scans (EUR only, amount 0.01–999,999,999.99)."""
    if invoice.currency != "EUR" or not Decimal("0.01") <= amount <= Decimal("999999999.99"):
        return ""
    try:
        from segno import helpers

        structured = reference if reference.startswith("RF") else None
        qr = helpers.make_epc_qr(
            name=name[:70],
            iban=iban,
            amount=amount,
            reference=structured,
            text=None if structured else reference[:140],
            bic=bic or None,
        )
        return qr.svg_data_uri(scale=3, border=2)
    except (ImportError, ValueError) as exc:  # a bad operator IBAN or name: the text still says it all
        logger.warning("no EPC QR code for invoice %s: %s", invoice.pk, exc)
        return ""


# --- overdue transfers -------------------------------------------------------------------------


def overdue_transfers(today: date | None = None) -> Any:
    """Bank-transfer invoices still unpaid after their due date whose lateness was not reported yet."""
    from django.contrib.contenttypes.models import ContentType
    from django.db.models import Exists, OuterRef

    from workflows.models import BusinessEvent

    today = today or timezone.localdate()
    reported = BusinessEvent.objects.filter(
        content_type=ContentType.objects.get_for_model(Invoice),
        object_id=OuterRef("pk"),
        event_id__endswith=f":{OVERDUE_EVENT_SUFFIX}",
    )
    return (
        Invoice.objects.filter(
            payment_option=PaymentOption.BANK_TRANSFER,
            state__in=[Invoice.State.ISSUED, Invoice.State.OPEN],
            due_date__lt=today,
        )
        .exclude(Exists(reported))
        .order_by("due_date", "pk")
    )


def bank_transfer_overdue_start(*, invoice: Invoice, user: Any = None) -> Any:
    """Emit ``payment.failed`` (method ``bank_transfer``) for an overdue transfer invoice, once.

    The invoice becomes open (its payment is late). The event id names the invoice, so a second call
    (tomorrow's check, a re-delivered job) emits nothing new. Returns the BusinessEvent, or None when the
    invoice is not overdue (paid, voided, or not a transfer invoice).
    """
    from billing.services import PAYMENT_FAILED, _invoice_event, billing_exception_raise
    from workflows.models import BusinessEvent
    from workflows.starting import event_emit

    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)
        if (
            invoice.payment_option != PaymentOption.BANK_TRANSFER
            or not invoice.is_payable
            or invoice.due_date is None
            or invoice.due_date >= timezone.localdate()
        ):
            return None
        event_id = f"{PAYMENT_FAILED}:{invoice.pk}:{OVERDUE_EVENT_SUFFIX}"
        if BusinessEvent.objects.filter(event_id=event_id).exists():
            return None
        if invoice.state == Invoice.State.ISSUED:
            invoice.mark_open()
            invoice.save(update_fields=["state"])
            _invoice_event(
                invoice, Invoice.State.ISSUED, note=f"Bank transfer overdue since {invoice.due_date:%Y-%m-%d}"
            ).save()
        event = event_emit(
            name=PAYMENT_FAILED,
            payload={
                "invoice_id": invoice.pk,
                "invoice_number": invoice.display_number,
                "customer_id": invoice.customer_id,
                "amount": str(invoice.amount_open),
                "failure": f"No bank transfer received by {invoice.due_date:%Y-%m-%d}.",
                "method": PaymentOption.BANK_TRANSFER.value,
                "failure_code": "transfer_overdue",
                "due_date": invoice.due_date.isoformat(),
                "payment_reference": invoice.payment_reference or invoice.display_number,
            },
            business_object=invoice,
            event_id=event_id,
            user=user,
        )
        if event.state != BusinessEvent.State.STARTED:
            logger.warning("overdue transfer %s started no process (%s): Finance is told", invoice.pk, event.state)
            billing_exception_raise(
                kind=BillingException.Kind.CHARGE_FAILED,
                key=f"transfer-overdue:{invoice.pk}",
                message=f"No bank transfer for invoice {invoice.display_number} by {invoice.due_date:%Y-%m-%d}.",
                customer_id=invoice.customer_id,
                invoice=invoice,
            )
    return event


def bank_transfers_overdue_emit(*, today: date | None = None, limit: int = 5000) -> int:
    """The daily check: ``payment.failed`` for each overdue transfer invoice not reported yet."""
    started = 0
    for invoice in overdue_transfers(today)[:limit]:
        if bank_transfer_overdue_start(invoice=invoice) is not None:
            started += 1
    return started
