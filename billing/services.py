"""Every write of the billing app: invoicing runs, numbering, credit notes, charges, refunds, webhooks.

Side effects (email, Celery, documents) leave a transaction only through ``transaction.on_commit``.
Stripe calls for a charge are made while the invoice row is locked, so two workers can never charge
one invoice twice; the ledger's partial unique constraint is the second guard.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language, gettext

from billing import bank_transfer, selectors, sepa
from billing.models import (
    BillingException,
    CreditNote,
    Dispute,
    Invoice,
    InvoiceEvent,
    InvoiceLine,
    InvoicingRun,
    NumberSeries,
    Payment,
    PaymentMethod,
    StripeEvent,
)
from billing.payment_options import PROVIDER_COLLECTED, PaymentOption
from billing.payment_setup import chargeable_method
from billing.proration import (
    ProRata,
    month_period,
    pro_rata,
    pro_rata_segments,
    split_gross,
    split_lines,
    vat_breakdown,
)
from billing.stripe_api import stripe_client, to_cents
from carparks.models import Contract, Customer

logger = logging.getLogger(__name__)

INVOICE_SERIES_PREFIX = "INV"
CREDIT_NOTE_SERIES_PREFIX = "CN"
CARD_SETUP_SALT = "billing.card-setup"
# The business events billing emits (workflows.events); the workflows bound to them decide what happens.
PAYMENT_FAILED = "payment.failed"
EXCEPTION_RAISED = "billing.exception_raised"
PERIOD_DUE = "invoicing.period_due"


class BillingError(Exception):
    """A billing operation that cannot be done as asked (shown to the user)."""


# --- numbering -----------------------------------------------------------------------------------


def number_allocate(*, key: str, count: int = 1) -> int:
    """Reserve ``count`` consecutive numbers of series ``key``; returns the first.

    Must run inside the transaction that stores the numbered documents: the series row stays locked
    until it commits, and a rollback gives the numbers back, so the series has no gaps.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("number_allocate must run inside a transaction")
    NumberSeries.objects.get_or_create(key=key)
    series = NumberSeries.objects.select_for_update().get(key=key)
    first = series.next_number
    series.next_number = first + count
    series.save(update_fields=["next_number"])
    return first


def _invoice_event(invoice: Invoice, from_state: str, note: str = "", actor: Any = None) -> InvoiceEvent:
    return InvoiceEvent(invoice=invoice, from_state=from_state, to_state=invoice.state, note=note, actor=actor)


def _address_snapshot(customer: Customer) -> dict[str, str]:
    return {
        "name": customer.name,
        "contact": customer.billing_contact,
        "street": customer.street,
        "postcode": customer.postcode,
        "city": customer.city,
        "country": customer.country,
        "vat_id": customer.vat_id,
        "email": customer.invoice_email,
    }


def _apply_totals(invoice: Invoice, lines: list[InvoiceLine]) -> None:
    """The invoice's totals and VAT breakdown; the lines' net and VAT are settled per rate first."""
    for line, (net, vat) in zip(lines, split_lines([(line.vat_rate, line.gross) for line in lines]), strict=True):
        line.net, line.vat = net, vat
    invoice.net_total = sum((line.net for line in lines), Decimal("0.00"))
    invoice.vat_total = sum((line.vat for line in lines), Decimal("0.00"))
    invoice.gross_total = sum((line.gross for line in lines), Decimal("0.00"))
    invoice.vat_breakdown = vat_breakdown([(line.vat_rate, line.net, line.vat, line.gross) for line in lines])


def invoice_finalise(*, invoice: Invoice, user: Any = None, issue_date: date | None = None) -> Invoice:
    """Give a draft invoice its number and issue it (locks the invoice and its number series)."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.state != Invoice.State.DRAFT:
            return invoice
        lines = list(invoice.lines.all())
        if not lines:
            raise BillingError(gettext("An invoice without lines cannot be issued."))
        issued_on = issue_date or timezone.localdate()
        _apply_totals(invoice, lines)
        InvoiceLine.objects.bulk_update(lines, ["net", "vat"])
        invoice.series = f"{INVOICE_SERIES_PREFIX}{issued_on.year}"
        invoice.number = number_allocate(key=invoice.series)
        invoice.issue_date = issued_on
        invoice.due_date = issued_on + timedelta(days=settings.BILLING_PAYMENT_TERMS_DAYS)
        invoice.billing_address = _address_snapshot(invoice.customer)
        bank_transfer.invoice_payment_fields(invoice, invoice.customer)  # the option and its RF reference
        invoice.issue()
        invoice.save()
        _invoice_event(invoice, Invoice.State.DRAFT, actor=user).save()
    return invoice


# --- the invoicing run ---------------------------------------------------------------------------


def _line_for(
    contract: selectors.BillableContract, period_start: date, period_end: date, share: ProRata | None = None
) -> InvoiceLine | None:
    """One line of the contract: ``share`` (a price segment), else the period at its own monthly price."""
    share = share or pro_rata(
        monthly_price=contract.monthly_price,
        period_start=period_start,
        period_end=period_end,
        start_date=contract.start_date,
        end_date=contract.end_date,
    )
    if share is None:
        return None
    net, vat = split_gross(share.gross, contract.vat_rate)
    vehicle_id, _, vehicle_cost_centre = contract.vehicles[0] if contract.vehicles else (None, "", "")
    plates = ", ".join(plate for _, plate, _ in contract.vehicles)
    description = f"{contract.product_name}, {contract.carpark_name}"
    if plates:
        description += f" ({plates})"
    return InvoiceLine(
        contract_id=contract.pk,
        vehicle_id=vehicle_id,
        cost_centre=contract.cost_centre or vehicle_cost_centre,
        description=description[:300],
        period_start=period_start,
        service_start=share.service_start,
        service_end=share.service_end,
        days=share.days,
        days_in_period=share.days_in_period,
        monthly_price=contract.monthly_price if share.monthly_price is None else share.monthly_price,
        vat_rate=contract.vat_rate,
        net=net,
        vat=vat,
        gross=share.gross,
    )


def contract_price_lists(contract_ids: list[int]) -> dict[int, list[tuple[date, date | None, Decimal]]]:
    """The product price list each contract follows (contract id → price periods); contracts left out
    pay their own ``monthly_price``.

    A contract's ``monthly_price`` is agreed at approval as the product's price that day. While it
    still equals the product's list price valid on that day (the approval, or the day the contract
    was created when it has no approval), the contract follows the price list: every day is billed
    at the product's price valid on it, so a price change reaches it from its first day. A price
    agreed otherwise (negotiated, or set before the list changed by hand) stays the contract's own.
    """
    from django.db.models import OuterRef, Subquery

    from carparks.models import ContractEvent
    from carparks.product_services import price_in, prices_of

    if not contract_ids:
        return {}
    approved = ContractEvent.objects.filter(contract=OuterRef("pk"), to_state=Contract.State.APPROVED).order_by(
        "-created_at"
    )
    rows = list(
        Contract.objects.filter(pk__in=contract_ids)
        .annotate(agreed_at=Subquery(approved.values("created_at")[:1]))
        .values_list("pk", "product_id", "product__monthly_price", "monthly_price", "created_at", "agreed_at")
    )
    periods = prices_of({row[1] for row in rows})
    result: dict[int, list[tuple[date, date | None, Decimal]]] = {}
    for pk, product_id, product_price, monthly_price, created_at, agreed_at in rows:
        product_periods = periods.get(product_id, [])
        agreed_on = timezone.localdate(agreed_at or created_at)
        if price_in(product_periods, agreed_on, product_price) != monthly_price:
            continue
        if not product_periods:
            result[pk] = [(date.min, None, product_price)]
        else:
            result[pk] = [(p.valid_from, p.valid_until, p.monthly_price) for p in product_periods]
    return result


def _lines_for(
    contract: selectors.BillableContract,
    period_start: date,
    period_end: date,
    prices: list[tuple[date, date | None, Decimal]] | None,
) -> list[InvoiceLine]:
    """The contract's lines for the period: one per price valid in it (``prices``: the list it
    follows), or one at its own agreed price (``prices`` is None)."""
    if prices is None:
        line = _line_for(contract, period_start, period_end)
        return [line] if line is not None else []
    shares = pro_rata_segments(
        prices=prices,
        period_start=period_start,
        period_end=period_end,
        start_date=contract.start_date,
        end_date=contract.end_date,
    )
    lines = []
    for share in shares:
        line = _line_for(contract, period_start, period_end, share=share)
        if line is not None:
            lines.append(line)
    return lines


def invoicing_run_create(*, period_start: date, user: Any = None) -> InvoicingRun:
    """A run confirmed by the system (the monthly schedule, a process step, the demo): queued, no preview.

    Finance starts runs with ``invoicing_run_preview_create`` and confirms them by hand instead.
    """
    start, end = month_period(period_start)
    return InvoicingRun.objects.create(
        period_start=start,
        period_end=end,
        started_by=user,
        state=InvoicingRun.State.QUEUED,
        confirmed_at=timezone.now(),
    )


def _state_in_prose(run: InvoicingRun) -> str:
    """The run's state inside a sentence: lower case in English ('done'), as labelled in German (nouns keep
    their capitals)."""
    label = str(run.get_state_display())
    return label if (get_language() or "en").startswith("de") else label.lower()


def invoicing_run_period_check(*, period_start: date, today: date | None = None) -> None:
    """Refuse a period Finance may not bill yet: the current or an earlier month, or the next month
    from ``BILLING_RUN_EARLY_DAYS`` days before it starts (raises BillingError naming the date)."""
    today = today or timezone.localdate()
    start, _ = month_period(period_start)
    this_month, _ = month_period(today)
    if start <= this_month:
        return
    next_month, _ = month_period(this_month + timedelta(days=32))
    early = settings.BILLING_RUN_EARLY_DAYS
    opens = next_month - timedelta(days=early)
    if start == next_month and today >= opens:
        return
    if start == next_month:
        raise BillingError(
            gettext(
                "%(month)s can be billed from %(opens)s (%(early)s days before it starts); "
                "choose %(this_month)s or an earlier month."
            )
            % {
                "month": f"{start:%m/%Y}",
                "opens": f"{opens:%d.%m.%Y}",
                "early": early,
                "this_month": f"{this_month:%m/%Y}",
            }
        )
    raise BillingError(
        gettext("%(month)s is too far ahead: bill %(this_month)s or an earlier month.")
        % {"month": f"{start:%m/%Y}", "this_month": f"{this_month:%m/%Y}"}
    )


def invoicing_run_preview_compute(*, period_start: date, period_end: date) -> dict[str, Any]:
    """What a run for the period would create now, without writing anything.

    It reads what the run reads (the billable contracts, the price lists they follow) in a few bulk
    queries and works out the same shares with the same proration code (without building the lines), so
    the preview agrees with the run:
    invoices (one per customer with a positive amount), lines, total gross, and how many of those
    customers would be charged by card (a saved card) or must pay by transfer.
    """
    contracts = selectors.billable_contract_terms(period_start=period_start, period_end=period_end)
    price_lists = contract_price_lists([contract[0] for contract in contracts])
    per_customer: dict[int, Decimal] = defaultdict(Decimal)
    lines = not_billed = 0
    for pk, customer_id, start_date, end_date, monthly_price in contracts:
        # The shares _lines_for makes its lines of (one per price segment, or one at the agreed price).
        prices = price_lists.get(pk)
        if prices is None:
            share = pro_rata(
                monthly_price=monthly_price,
                period_start=period_start,
                period_end=period_end,
                start_date=start_date,
                end_date=end_date,
            )
            shares = [share] if share is not None else []
        else:
            shares = pro_rata_segments(
                prices=prices,
                period_start=period_start,
                period_end=period_end,
                start_date=start_date,
                end_date=end_date,
            )
        if not shares:
            continue
        total = sum((share.gross for share in shares), Decimal("0.00"))
        if total <= 0 or any(share.gross < 0 for share in shares):  # the run's zero-amount rule
            not_billed += 1
            continue
        per_customer[customer_id] += total
        lines += len(shares)
    with_card = selectors.customers_with_payment_method(list(per_customer))
    gross = sum(per_customer.values(), Decimal("0.00"))
    by_card = sum((per_customer[c] for c in with_card if c in per_customer), Decimal("0.00"))
    return {
        "invoices": len(per_customer),
        "lines": lines,
        "gross_total": str(gross),
        "charged_by_card": len(with_card),
        "gross_by_card": str(by_card),
        "without_card": len(per_customer) - len(with_card),
        "not_billed_zero": not_billed,
        "computed_at": timezone.now().isoformat(),
    }


def invoicing_run_preview_create(
    *, period_start: date, user: Any, today: date | None = None, check_period: bool = True
) -> InvoicingRun:
    """Finance asks for a run: a ``preview`` that bills, emails and charges nothing until confirmed.

    The period must pass ``invoicing_run_period_check`` (``check_period=False`` only for the system's
    demo data; confirming checks it again). An open preview of the same month is refreshed and reused.
    """
    start, end = month_period(period_start)
    if check_period:
        invoicing_run_period_check(period_start=start, today=today)
    preview = invoicing_run_preview_compute(period_start=start, period_end=end)
    with transaction.atomic():
        run = (
            InvoicingRun.objects.select_for_update()
            .filter(period_start=start, state=InvoicingRun.State.PREVIEW)
            .order_by("-pk")
            .first()
        )
        if run is not None:
            run.preview = preview
            run.save(update_fields=["preview"])
            return run
        return InvoicingRun.objects.create(
            period_start=start, period_end=end, started_by=user, state=InvoicingRun.State.PREVIEW, preview=preview
        )


def invoicing_run_preview_refresh(*, run: InvoicingRun) -> InvoicingRun:
    """Work the preview out again (contracts, cards and prices may have changed since)."""
    preview = invoicing_run_preview_compute(period_start=run.period_start, period_end=run.period_end)
    with transaction.atomic():
        run = InvoicingRun.objects.select_for_update().get(pk=run.pk)
        if run.state != InvoicingRun.State.PREVIEW:
            raise BillingError(
                gettext("This run is %(state)s; its preview is kept as it was.") % {"state": _state_in_prose(run)}
            )
        run.preview = preview
        run.save(update_fields=["preview"])
    return run


def invoicing_run_confirm(*, run: InvoicingRun, user: Any, today: date | None = None) -> InvoicingRun:
    """Finance confirms a preview: it is queued once (the row lock makes a second confirmation fail)."""
    with transaction.atomic():
        run = InvoicingRun.objects.select_for_update().get(pk=run.pk)
        if run.state != InvoicingRun.State.PREVIEW:
            if run.confirmed_at:
                raise BillingError(gettext("This invoicing run is confirmed already; it was not queued again."))
            raise BillingError(
                gettext("This invoicing run is %(state)s; it was not queued again.") % {"state": _state_in_prose(run)}
            )
        invoicing_run_period_check(period_start=run.period_start, today=today)
        busy = (
            InvoicingRun.objects.filter(
                state__in=[InvoicingRun.State.QUEUED, InvoicingRun.State.RUNNING],
                created_at__gte=timezone.now() - timedelta(hours=1),  # an older one died with its worker
            )
            .exclude(pk=run.pk)
            .first()
        )
        if busy is not None:
            raise BillingError(
                gettext("The run for %(month)s is still in progress; confirm when it is done.")
                % {"month": f"{busy.period_start:%m/%Y}"}
            )
        run.state = InvoicingRun.State.QUEUED
        run.confirmed_by = user if getattr(user, "pk", None) else None
        run.confirmed_at = timezone.now()
        run.save(update_fields=["state", "confirmed_by", "confirmed_at"])
        run_id = run.pk
        transaction.on_commit(lambda: _queue_run(run_id))
    return run


def _queue_run(run_id: int) -> None:
    from billing import tasks

    tasks.invoicing_run_task.delay(run_id)


def invoicing_run_cancellable(run: InvoicingRun) -> bool:
    """Whether the run may still be cancelled: nothing of it has been issued (so nothing emailed or charged)."""
    if run.state in (InvoicingRun.State.DONE, InvoicingRun.State.CANCELLED):
        return False
    return not run.invoices.exclude(state=Invoice.State.DRAFT).exists()


def invoicing_run_cancel(*, run: InvoicingRun, user: Any) -> InvoicingRun:
    """Cancel a preview, or a confirmed run before its delivery phase (issuing, emailing, charging) starts.

    A run in progress stops at its next chunk (each chunk and the delivery phase lock the run row and
    check its state). The draft invoices it made are deleted: they have no number, were never sent
    or charged, and deleting them frees their contracts for the next run of the month, so nothing is
    lost; kept, they would mark those contracts as billed with invoices nobody sends.
    """
    with transaction.atomic():
        run = InvoicingRun.objects.select_for_update().get(pk=run.pk)
        if run.state == InvoicingRun.State.CANCELLED:
            raise BillingError(gettext("This invoicing run is cancelled already."))
        if not invoicing_run_cancellable(run):
            raise BillingError(
                gettext(
                    "This run has issued its invoices and is emailing and charging them: it can no longer be "
                    "cancelled. Reverse a single invoice with a credit note instead."
                )
            )
        drafts = Invoice.objects.filter(run=run, state=Invoice.State.DRAFT)
        deleted = drafts.count()
        InvoiceLine.objects.filter(invoice__in=drafts).delete()
        drafts.delete()
        run.state = InvoicingRun.State.CANCELLED
        run.cancelled_at = timezone.now()
        run.finished_at = run.finished_at or run.cancelled_at
        run.preview = {
            **(run.preview or {}),
            "cancelled_by": str(user) if getattr(user, "pk", None) else "system",
            "drafts_deleted": deleted,
        }
        run.save(update_fields=["state", "cancelled_at", "finished_at", "preview"])
    return run


def invoicing_run_execute(*, run: InvoicingRun, chunk_size: int = 500, deliver: bool = True) -> InvoicingRun:
    """Bill every due contract for the run's period: one invoice per customer, issued and numbered.

    Idempotent: contracts that already have a line for the period are skipped (and the unique
    constraint on lines would refuse a second one). Customers are processed in chunks, each in its
    own transaction under the invoice number series lock, so progress is visible while it runs; the
    chunks make draft invoices. Then the delivery phase (``_run_issue``) numbers and issues all of the
    run's drafts in one transaction and, with ``deliver``, queues their email and card charge. Each
    chunk and the delivery phase lock the run and stop when it was cancelled. A preview is refused
    (BillingError); a cancelled run is returned as it is.
    """
    period_start, period_end = run.period_start, run.period_end
    runnable = [InvoicingRun.State.QUEUED, InvoicingRun.State.RUNNING, InvoicingRun.State.FAILED]
    if not InvoicingRun.objects.filter(pk=run.pk, state__in=[*runnable, InvoicingRun.State.DONE]).update(
        state=InvoicingRun.State.RUNNING
    ):
        run.refresh_from_db()
        if run.state == InvoicingRun.State.PREVIEW:
            raise BillingError("This invoicing run is a preview: it bills nothing until Finance confirms it.")
        return run  # cancelled: nothing more to do
    try:
        contracts = selectors.billable_contracts(period_start=period_start, period_end=period_end)
        by_customer: dict[int, list[selectors.BillableContract]] = defaultdict(list)
        for contract in contracts:
            by_customer[contract.customer_id].append(contract)
        InvoicingRun.objects.filter(pk=run.pk).update(contracts_total=len(contracts))
        previous_start, _ = month_period(period_start - timedelta(days=1))
        previous_prices = dict(
            InvoiceLine.objects.filter(period_start=previous_start)
            .order_by("contract_id", "service_start")
            .values_list("contract_id", "monthly_price")
        )  # the price of each contract's last segment of the month before
        customer_ids = list(by_customer)
        # Progress is written per chunk: a small run gets about 20 chunks (so its page does not jump from
        # 0 to 100 %), a large one keeps ``chunk_size`` (so the number of writes stays bounded).
        step = max(1, min(chunk_size, len(customer_ids) // 20))
        going = True
        for offset in range(0, len(customer_ids), step):
            chunk = {cid: by_customer[cid] for cid in customer_ids[offset : offset + step]}
            going = _invoice_chunk(run, chunk, previous_prices, deliver=deliver)
            if not going:
                break  # cancelled between chunks
        if going and _run_issue(run, deliver=deliver):
            InvoicingRun.objects.filter(pk=run.pk, state=InvoicingRun.State.RUNNING).update(
                state=InvoicingRun.State.DONE, finished_at=timezone.now()
            )
    except Exception as exc:
        InvoicingRun.objects.filter(pk=run.pk, state=InvoicingRun.State.RUNNING).update(
            state=InvoicingRun.State.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        raise
    run.refresh_from_db()
    return run


def invoicing_period_due_emit(*, run: InvoicingRun, user: Any = None) -> Any:
    """Emit ``invoicing.period_due`` for the run the schedule made (once per period); returns the event.

    A workflow bound to it reviews this run (the ``billing.invoicing_run`` step finishes it if needed
    and reports its counts) instead of billing the month a second time.
    """
    from workflows.starting import event_emit

    return event_emit(
        name=PERIOD_DUE,
        payload={
            "run_id": run.pk,
            "period_start": run.period_start.isoformat(),
            "period_end": run.period_end.isoformat(),
        },
        business_object=run,
        event_id=f"{PERIOD_DUE}:{run.period_start.isoformat()}",
        user=user,
    )


def _invoice_chunk(
    run: InvoicingRun,
    chunk: dict[int, list[selectors.BillableContract]],
    previous_prices: dict[int, Decimal],
    *,
    deliver: bool,
) -> bool:
    """Make the chunk's draft invoices; False (and nothing written) when the run was cancelled."""
    period_start, period_end = run.period_start, run.period_end
    issued_on = timezone.localdate()
    series_key = f"{INVOICE_SERIES_PREFIX}{issued_on.year}"
    with transaction.atomic():
        # Taking the series lock first serialises concurrent runs; the re-check below then sees
        # every line a parallel run committed.
        NumberSeries.objects.get_or_create(key=series_key)
        NumberSeries.objects.select_for_update().get(key=series_key)
        # Then the run's row lock orders the chunk against a cancellation (which deletes the drafts).
        if InvoicingRun.objects.select_for_update().get(pk=run.pk).state != InvoicingRun.State.RUNNING:
            return False
        already = set(
            InvoiceLine.objects.filter(period_start=period_start, invoice__customer_id__in=list(chunk)).values_list(
                "contract_id", flat=True
            )
        )
        with_method = selectors.customers_with_payment_method(list(chunk))
        customers = Customer.objects.in_bulk(list(chunk))
        exceptions: list[BillingException] = []
        invoices: list[Invoice] = []
        invoice_lines: list[list[InvoiceLine]] = []
        price_lists = contract_price_lists([c.pk for cs in chunk.values() for c in cs if c.pk not in already])
        for customer_id, contracts in chunk.items():
            lines: list[InvoiceLine] = []
            for contract in contracts:
                if contract.pk in already:
                    continue
                follows_list = contract.pk in price_lists
                contract_lines = _lines_for(contract, period_start, period_end, price_lists.get(contract.pk))
                if not contract_lines:
                    continue
                total = sum((line.gross for line in contract_lines), Decimal("0.00"))
                if total <= 0 or any(line.gross < 0 for line in contract_lines):
                    exceptions.append(
                        _exception(
                            BillingException.Kind.ZERO_AMOUNT,
                            f"zero:{contract.pk}:{period_start}",
                            f"Contract {contract.pk} comes to {total} for {period_start:%m/%Y}; not billed.",
                            run,
                            customer_id=customer_id,
                            contract=contract,
                        )
                    )
                    continue
                previous = previous_prices.get(contract.pk)
                # A change of the product's price list is planned, not an exception.
                if not follows_list and previous is not None and previous != contract.monthly_price:
                    exceptions.append(
                        _exception(
                            BillingException.Kind.PRICE_CHANGED,
                            f"price:{contract.pk}:{period_start}",
                            f"Contract {contract.pk}: monthly price changed from {previous} to "
                            f"{contract.monthly_price} since the last period. Billed at the new price.",
                            run,
                            customer_id=customer_id,
                            contract=contract,
                        )
                    )
                lines.extend(contract_lines)
            if not lines:
                continue
            pays_by_transfer = customers[customer_id].payment_option == PaymentOption.BANK_TRANSFER
            if customer_id not in with_method and not pays_by_transfer:
                exceptions.append(
                    _exception(
                        BillingException.Kind.MISSING_PAYMENT_METHOD,
                        f"nopm:{customer_id}:{period_start}",
                        f"{customers[customer_id].name} has no saved card; the invoice for "
                        f"{period_start:%m/%Y} must be paid by bank transfer or a card link sent.",
                        run,
                        customer_id=customer_id,
                    )
                )
            invoice = Invoice(
                customer_id=customer_id,
                period_start=period_start,
                period_end=period_end,
                run=run,
                billing_address=_address_snapshot(customers[customer_id]),
                payment_option=customers[customer_id].payment_option,
            )  # a draft: the delivery phase numbers and issues it
            _apply_totals(invoice, lines)
            invoices.append(invoice)
            invoice_lines.append(lines)

        Invoice.objects.bulk_create(invoices)
        all_lines = []
        for invoice, lines in zip(invoices, invoice_lines, strict=True):
            for line in lines:
                line.invoice = invoice
                all_lines.append(line)
        InvoiceLine.objects.bulk_create(all_lines)
        known = set(
            BillingException.objects.filter(dedupe_key__in=[e.dedupe_key for e in exceptions]).values_list(
                "dedupe_key", flat=True
            )
        )
        created_exceptions = [e for e in exceptions if e.dedupe_key not in known]
        BillingException.objects.bulk_create(created_exceptions)
        billing_exceptions_emit(exceptions=created_exceptions)
        InvoicingRun.objects.filter(pk=run.pk).update(
            contracts_done=models_F("contracts_done") + sum(len(c) for c in chunk.values()),
            invoices_created=models_F("invoices_created") + len(invoices),
            lines_created=models_F("lines_created") + len(all_lines),
            exceptions_created=models_F("exceptions_created") + len(created_exceptions),
        )
    return True


def _run_issue(run: InvoicingRun, *, deliver: bool) -> bool:
    """The delivery phase: number and issue every draft of the run in one transaction (gap-free, under
    the series lock), then, after the commit, queue each invoice's email and card charge. From here on
    the run can no longer be cancelled. False when it was cancelled before."""
    from django.db import connection

    issued_on = timezone.localdate()
    series_key = f"{INVOICE_SERIES_PREFIX}{issued_on.year}"
    with transaction.atomic():
        NumberSeries.objects.get_or_create(key=series_key)
        series = NumberSeries.objects.select_for_update().get(key=series_key)  # always before the run's lock
        if InvoicingRun.objects.select_for_update().get(pk=run.pk).state != InvoicingRun.State.RUNNING:
            return False
        ids = list(
            Invoice.objects.filter(run_id=run.pk, state=Invoice.State.DRAFT).order_by("pk").values_list("pk", flat=True)
        )
        if not ids:
            return True
        first = series.next_number
        table = Invoice._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"""UPDATE {table} AS i SET state = %s, series = %s, number = %s + d.n - 1, issue_date = %s,
                       due_date = %s
                    FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM {table}
                          WHERE run_id = %s AND state = %s) AS d
                    WHERE i.id = d.id""",  # noqa: S608 - the table name is ours
                [
                    Invoice.State.ISSUED,
                    series_key,
                    first,
                    issued_on,
                    issued_on + timedelta(days=settings.BILLING_PAYMENT_TERMS_DAYS),
                    run.pk,
                    Invoice.State.DRAFT,
                ],
            )
        series.next_number = first + len(ids)
        series.save(update_fields=["next_number"])
        bank_transfer.run_references_assign(run.pk)  # the RF reference of each bank-transfer invoice
        InvoiceEvent.objects.bulk_create(
            [
                InvoiceEvent(
                    invoice_id=pk, from_state=Invoice.State.DRAFT, to_state=Invoice.State.ISSUED, note="Invoicing run"
                )
                for pk in ids
            ],
            batch_size=2000,
        )
        if deliver:
            transaction.on_commit(lambda: _queue_delivery(ids))
    return True


def models_F(name: str):  # noqa: ANN201, N802 - short alias for F()
    from django.db.models import F

    return F(name)


def _exception(
    kind: str,
    key: str,
    message: str,
    run: InvoicingRun | None,
    *,
    customer_id: int | None = None,
    contract: selectors.BillableContract | None = None,
    invoice: Invoice | None = None,
) -> BillingException:
    return BillingException(
        kind=kind,
        dedupe_key=key,
        message=message,
        run=run,
        customer_id=customer_id,
        contract_id=contract.pk if contract else None,
        invoice=invoice,
    )


def billing_exception_raise(
    *, kind: str, key: str, message: str, customer_id: int | None = None, invoice: Invoice | None = None
) -> BillingException:
    exc, created = BillingException.objects.get_or_create(
        dedupe_key=key, defaults={"kind": kind, "message": message, "customer_id": customer_id, "invoice": invoice}
    )
    if created:
        billing_exceptions_emit(exceptions=[exc])
    return exc


def billing_exceptions_emit(*, exceptions: list[BillingException], user: Any = None) -> int:
    """Emit ``billing.exception_raised`` per new exception; returns how many started a process.

    The workflow bound to the event gives Finance a task; the Finance page lists the exceptions either way,
    and an event nothing started waits on the events page to be replayed.
    """
    from workflows.models import BusinessEvent
    from workflows.starting import event_emit

    started = 0
    for item in exceptions:
        event = event_emit(
            name=EXCEPTION_RAISED,
            payload={
                "exception_id": item.pk,
                "kind": item.kind,
                "message": item.message[:2000],
                "customer_id": item.customer_id,
                "invoice_id": item.invoice_id,
            },
            business_object=item,
            event_id=f"{EXCEPTION_RAISED}:{item.pk}",
            user=user,
        )
        started += event.state == BusinessEvent.State.STARTED
    return started


def _exceptions_resolve(queryset: Any, *, resolution: str, user: Any = None, cancel_tasks: bool = True) -> int:
    """Mark open exceptions resolved; their Finance tasks are cancelled (nothing left to do)."""
    ids = list(queryset.filter(resolved_at__isnull=True).values_list("pk", flat=True))
    if not ids:
        return 0
    BillingException.objects.filter(pk__in=ids, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolved_by=user, resolution=resolution[:2000]
    )
    if cancel_tasks:
        from django.contrib.contenttypes.models import ContentType

        from workflows.models import Process
        from workflows.services import process_cancel

        processes = Process.objects.filter(
            content_type=ContentType.objects.get_for_model(BillingException),
            object_id__in=ids,
            state=Process.State.RUNNING,
        )
        for process in processes:
            process_cancel(process=process, user=user, reason=f"Exception resolved: {resolution}"[:200])
    return len(ids)


def billing_exception_resolve(
    *, exception: BillingException, user: Any, resolution: str = "", cancel_tasks: bool = True
) -> BillingException:
    _exceptions_resolve(
        BillingException.objects.filter(pk=exception.pk),
        resolution=resolution or "Resolved.",
        user=user,
        cancel_tasks=cancel_tasks,
    )
    exception.refresh_from_db()
    return exception


def _queue_delivery(invoice_ids: list[int]) -> None:
    from billing import tasks

    for invoice_id in invoice_ids:
        tasks.invoice_deliver.delay(invoice_id)


# --- credit notes --------------------------------------------------------------------------------


def credit_note_issue(*, invoice: Invoice, reason: str, user: Any = None) -> CreditNote:
    """Reverse an issued invoice in full: a numbered credit note, and the invoice becomes void."""
    if not reason.strip():
        raise BillingError(gettext("Give a reason for the credit note."))
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.state == Invoice.State.DRAFT:
            raise BillingError(gettext("A draft invoice has nothing to reverse."))
        if invoice.credit_notes.filter(is_partial=True).exists():
            raise BillingError(
                gettext("Invoice %(number)s is partly credited already; refund what is left instead.")
                % {"number": invoice.display_number}
            )
        if invoice.state == Invoice.State.VOID or CreditNote.objects.filter(invoice=invoice).exists():
            raise BillingError(gettext("Invoice %(number)s is already reversed.") % {"number": invoice.display_number})

        issued_on = timezone.localdate()
        series = f"{CREDIT_NOTE_SERIES_PREFIX}{issued_on.year}"
        note = CreditNote.objects.create(
            invoice=invoice,
            series=series,
            number=number_allocate(key=series),
            issue_date=issued_on,
            reason=reason.strip(),
            net_total=invoice.net_total,
            vat_total=invoice.vat_total,
            gross_total=invoice.gross_total,
            vat_breakdown=invoice.vat_breakdown,
            created_by=user,
        )
        from_state = invoice.state
        invoice.void()
        invoice.save(update_fields=["state"])
        _invoice_event(
            invoice, from_state, note=f"Reversed by credit note {note.display_number}: {reason}", actor=user
        ).save()
        transaction.on_commit(lambda: _queue_credit_note_documents(note.pk))
    return note


def _queue_credit_note_documents(credit_note_id: int) -> None:
    from billing import tasks

    tasks.credit_note_render.delay(credit_note_id)


# --- Stripe customers and cards ------------------------------------------------------------------


def stripe_customer_ensure(*, customer: Customer) -> str:
    """The customer's Stripe id, creating the Stripe customer once (a conditional update settles races)."""
    if customer.stripe_customer_id:
        return customer.stripe_customer_id
    created = stripe_client().v1.customers.create(
        params={"email": customer.invoice_email, "name": customer.name, "metadata": {"customer_id": str(customer.pk)}},
        # Stable per customer: a create whose answer was lost, repeated within Stripe's 24 hours, returns
        # the customer it made instead of a second one.
        options={"idempotency_key": f"customer-{customer.pk}-{customer.created_at:%Y%m%d%H%M%S}"},
    )
    updated = Customer.objects.filter(pk=customer.pk, stripe_customer_id="").update(stripe_customer_id=created.id)
    if not updated:
        customer.refresh_from_db(fields=["stripe_customer_id"])
        return customer.stripe_customer_id
    customer.stripe_customer_id = created.id
    return created.id


def card_setup_token(*, customer: Customer) -> str:
    return signing.dumps({"customer": customer.pk}, salt=CARD_SETUP_SALT)


def card_setup_customer(*, token: str) -> Customer:
    try:
        data = signing.loads(token, salt=CARD_SETUP_SALT, max_age=settings.BILLING_CARD_LINK_MAX_AGE_DAYS * 86400)
    except signing.BadSignature as exc:
        raise BillingError(gettext("This link is invalid or has expired. Ask us for a new one.")) from exc
    return Customer.objects.get(pk=data["customer"])


def card_setup_link(*, customer: Customer) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("billing:card-setup", args=[card_setup_token(customer=customer)])


def setup_intent_create(*, customer: Customer, token: str = "") -> Any:
    """A SetupIntent for saving a card for later off-session charges.

    Its idempotency key is stable per card-link attempt: the link (``token``) and the cards saved so
    far. Opening the link again (a reload, a lost answer) within Stripe's 24 hours gives the same
    SetupIntent instead of a new one each time; once a card is saved, the next attempt gets a new one.
    """
    stripe_id = stripe_customer_ensure(customer=customer)
    saved = PaymentMethod.objects.filter(customer=customer).count()
    link = hashlib.sha256(token.encode()).hexdigest()[:16] if token else "direct"
    return stripe_client().v1.setup_intents.create(
        params={
            "customer": stripe_id,
            "usage": "off_session",
            "payment_method_types": ["card"],
            "metadata": {"customer_id": str(customer.pk)},
        },
        options={"idempotency_key": f"setup-{customer.pk}-{link}-{saved + 1}"},
    )


def payment_method_save(*, customer: Customer, setup_intent_id: str) -> PaymentMethod:
    """Record the card a succeeded SetupIntent saved, and make it the customer's default."""
    client = stripe_client()
    intent = client.v1.setup_intents.retrieve(setup_intent_id)
    stripe_id = stripe_customer_ensure(customer=customer)
    if intent.customer != stripe_id:
        raise BillingError(gettext("This card setup does not belong to this customer."))
    if intent.status != "succeeded" or not intent.payment_method:
        raise BillingError(gettext("The card was not saved; please try again."))
    pm_id = intent.payment_method if isinstance(intent.payment_method, str) else intent.payment_method.id
    method = client.v1.payment_methods.retrieve(pm_id)
    if not getattr(method, "customer", None):
        method = client.v1.payment_methods.attach(pm_id, params={"customer": stripe_id})
    card = method.card
    with transaction.atomic():
        Customer.objects.select_for_update().get(pk=customer.pk)
        existing = PaymentMethod.objects.filter(stripe_payment_method_id=pm_id).first()
        if existing:
            return existing
        PaymentMethod.objects.filter(customer=customer, is_default=True).update(is_default=False)
        saved = PaymentMethod.objects.create(
            customer=customer,
            stripe_customer_id=stripe_id,
            stripe_payment_method_id=pm_id,
            stripe_setup_intent_id=setup_intent_id,
            brand=card.brand or "",
            last4=card.last4 or "",
            exp_month=int(card.exp_month) if card.exp_month else None,
            exp_year=int(card.exp_year) if card.exp_year else None,
            is_default=True,
        )
        _exceptions_resolve(
            BillingException.objects.filter(customer=customer, kind=BillingException.Kind.MISSING_PAYMENT_METHOD),
            resolution=f"Card {saved} saved by the customer.",
        )
    return saved


# --- charges -------------------------------------------------------------------------------------


@dataclass
class ChargeResult:
    payment: Payment | None
    status: str  # "succeeded", "failed", "pending", "no_payment_method", "not_payable", "awaits_transfer"

    @property
    def paid(self) -> bool:
        return self.status == "succeeded"


#: The charge status of an invoice paid by bank transfer: nothing is charged, the money comes by transfer.
AWAITS_TRANSFER = "awaits_transfer"

#: Charges whose money reached the provider: succeeded, or succeeded and later taken back by the customer's
#: bank (returned; only succeeded ones are the invoice's live charge).
PAID_CHARGE_STATUSES = (Payment.Status.SUCCEEDED, Payment.Status.RETURNED)


class ChargeOutcomeUnknown(BillingError):
    """Stripe was asked to charge but its answer never arrived: it may have charged.

    The attempt stays pending in the ledger with the idempotency key it sent; charging again (the
    engine's retry of the step, a re-delivered job) repeats the same request and so records Stripe's
    one answer. Callers must retry later, never record a failure.
    """


def invoice_charge(*, invoice: Invoice, user: Any = None, start_dunning: bool = True) -> ChargeResult:
    """Charge the invoice's gross total to the customer's saved card, off-session, at most once.

    Two steps, so that no answer from Stripe can be lost unnoticed:

    1. The attempt's ledger row (``Payment``, pending) and its idempotency key are committed *before*
       Stripe is called (``_charge_attempt``). The key is random per attempt and only ever read back
       from the row, never worked out again.
    2. Under the invoice lock the row is settled: by the PaymentIntent it names, else by the one
       Stripe already made for it (found through its ``payment_id`` metadata, which still works after
       Stripe's 24-hour key window), else by creating the PaymentIntent with the row's key.

    When Stripe's answer is lost (network, timeout, a 5xx after the client's own retries), the row
    stays pending and :class:`ChargeOutcomeUnknown` is raised: a retry of the same attempt reuses the
    row and its key, so Stripe answers with the PaymentIntent it made, and the ledger records it once.
    """
    if Invoice.objects.filter(pk=invoice.pk, payment_option=PaymentOption.BANK_TRANSFER).exists():
        # Paid by the customer's own transfer: never sent to the card or SEPA provider.
        return ChargeResult(None, AWAITS_TRANSFER)
    prepared = _charge_attempt(invoice=invoice, user=user)
    if isinstance(prepared, ChargeResult):
        return prepared
    payment, reused = prepared
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)
        payment = Payment.objects.select_related("payment_method").get(pk=payment.pk)
        if payment.status != Payment.Status.PENDING:
            # A parallel job or a webhook settled it while we waited for the lock.
            return ChargeResult(payment, payment.status)
        try:
            intent = _charge_intent_known(payment) if reused or payment.stripe_payment_intent_id else None
            if intent is None and not invoice.is_payable:
                payment.status = Payment.Status.FAILED
                payment.failure_message = f"Not charged: invoice {invoice.display_number} is {invoice.state}."
                payment.save()
                return ChargeResult(payment, "not_payable")
            failure: tuple[str, str] | None = None
            if intent is None:
                intent = _charge_intent_create(invoice, payment)
            if intent is None:  # the card was declined with no PaymentIntent to show
                status, failure = "failed", (payment.failure_code, payment.failure_message)
            else:
                payment.stripe_payment_intent_id = intent.id
                payment.stripe_charge_id = _charge_id(intent) or payment.stripe_charge_id
                status = intent.status
                error = getattr(intent, "last_payment_error", None)
                if status != "succeeded" and error:
                    failure = (getattr(error, "code", "") or "", getattr(error, "message", "") or "")
        except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as exc:
            logger.warning(
                "charge of invoice %s: Stripe's answer was lost (%s); the attempt stays pending", invoice.pk, exc
            )
            raise ChargeOutcomeUnknown(
                f"Stripe's answer to the charge of invoice {invoice.display_number} was lost; "
                "the attempt is kept and repeated with the same key."
            ) from exc
        return _charge_settle(invoice, payment, status, failure, user=user, start_dunning=start_dunning)


def _charge_attempt(*, invoice: Invoice, user: Any) -> ChargeResult | tuple[Payment, bool]:
    """Commit the attempt's pending ledger row with its key before Stripe is called.

    Returns the row and whether it was there already (an earlier attempt that may have reached
    Stripe), or the final result when there is nothing to charge.
    """
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)
        # A charged-back debit is ``returned``, not live: its reopened invoice is debited again below.
        live = selectors.live_charge(invoice)
        if live is not None and live.status == Payment.Status.SUCCEEDED:
            return ChargeResult(live, "succeeded")
        if live is not None and live.status == Payment.Status.PROCESSING:
            return ChargeResult(live, "processing")  # a direct debit under way: never a second one
        if live is not None:
            return live, True
        if not invoice.is_payable:
            return ChargeResult(None, "not_payable")
        # The saved method of the invoice's option (card or SEPA Direct Debit); a SEPA account without an
        # accepted mandate is never chosen (PaymentMethod.is_chargeable).
        kind = invoice.payment_option if invoice.payment_option in PROVIDER_COLLECTED else PaymentOption.CARD
        method = chargeable_method(invoice.customer_id, kind)
        if method is None:
            what = "saved card" if kind == PaymentOption.CARD else "SEPA account with an accepted mandate"
            billing_exception_raise(
                kind=BillingException.Kind.MISSING_PAYMENT_METHOD,
                key=f"nopm-charge:{invoice.pk}",
                message=f"Invoice {invoice.display_number} cannot be charged: {invoice.customer} has no {what}.",
                customer_id=invoice.customer_id,
                invoice=invoice,
            )
            return ChargeResult(None, "no_payment_method")
        attempt = invoice.payments.filter(kind=Payment.Kind.CHARGE).count() + 1
        payment = Payment.objects.create(
            invoice=invoice,
            kind=Payment.Kind.CHARGE,
            amount=invoice.gross_total,
            currency=invoice.currency,
            attempt=attempt,
            # Random per attempt, so two databases (a copy, a test system) never share a key at Stripe.
            idempotency_key=f"invoice-{invoice.pk}-charge-{attempt}-{secrets.token_hex(6)}",
            payment_method=method,
            method=method.kind,
            created_by=user,
        )
    return payment, False


def _charge_intent_known(payment: Payment) -> Any:
    """The PaymentIntent Stripe already made for this ledger row, if any.

    By its stored id; else through the customer's charges since the row was written, whose
    PaymentIntent carries the row's ``payment_id`` metadata. Listing is consistent at once (Stripe's
    search is not) and works whether or not Stripe still remembers the idempotency key. A PaymentIntent
    that made no charge moved no money, so creating one again cannot charge twice.
    """
    client = stripe_client()
    if payment.stripe_payment_intent_id:
        return client.v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
    method = payment.payment_method
    if method is None:
        return None
    since = int(payment.created_at.timestamp()) - 300
    charges = client.v1.charges.list(
        params={"customer": method.stripe_customer_id, "created": {"gt": since}, "limit": 100}
    )
    for charge in charges.auto_paging_iter():
        intent_id = _stripe_id(getattr(charge, "payment_intent", None))
        if not intent_id:
            continue
        intent = client.v1.payment_intents.retrieve(intent_id)
        metadata = intent.to_dict().get("metadata") or {}
        if metadata.get("payment_id") == str(payment.pk):
            return intent
    return None


def _charge_intent_create(invoice: Invoice, payment: Payment) -> Any:
    """Create and confirm the off-session PaymentIntent with the row's key; a decline returns its intent.

    ``payment_method_types=["card"]``: since API version 2023-08-16 a PaymentIntent without it gets
    automatic payment methods, whose redirect-based methods need a ``return_url`` on confirmation. We
    only ever charge the saved card, off-session, so we say so instead of relying on the default.
    """
    method = payment.payment_method
    params = {
        "amount": to_cents(payment.amount),
        "currency": payment.currency.lower(),
        "customer": method.stripe_customer_id,
        "payment_method": method.stripe_payment_method_id,
        "payment_method_types": ["card"],
        "off_session": True,
        "confirm": True,
        "metadata": {"invoice_id": str(invoice.pk), "payment_id": str(payment.pk)},
    }
    if method.kind == PaymentMethod.Kind.SEPA_DEBIT:
        params.update(sepa.debit_params(method))  # sepa_debit with its mandate; stays processing for days
    try:
        return stripe_client().v1.payment_intents.create(
            params=params,
            options={"idempotency_key": payment.idempotency_key},
        )
    except stripe.CardError as exc:
        error = exc.error
        intent_obj = getattr(error, "payment_intent", None) if error else None
        if intent_obj is not None:
            payment.stripe_payment_intent_id = intent_obj.id
        payment.failure_code = (getattr(error, "code", "") or "card_error")[:100]
        payment.failure_message = (exc.user_message or str(exc))[:500]
        return None


def _charge_id(intent: Any) -> str:
    charge = getattr(intent, "latest_charge", None)
    if charge is None:
        return ""
    return charge if isinstance(charge, str) else getattr(charge, "id", "")


def _charge_settle(
    invoice: Invoice,
    payment: Payment,
    status: str,
    failure: tuple[str, str] | None,
    *,
    user: Any,
    start_dunning: bool,
) -> ChargeResult:
    """Write a charge's outcome to the ledger (caller holds the invoice lock)."""
    if status == "succeeded":
        payment.status = Payment.Status.SUCCEEDED
        payment.save()
        _invoice_paid(invoice, payment, user=user)
        return ChargeResult(payment, "succeeded")
    if status == "processing":
        # A direct debit: the bank answers in days, by payment_intent.succeeded or payment_failed.
        payment.status = Payment.Status.PROCESSING
        payment.save()
        return ChargeResult(payment, "processing")
    if status == "requires_capture":
        payment.save()
        return ChargeResult(payment, "pending")
    payment.status = Payment.Status.FAILED
    payment.failure_code, payment.failure_message = failure or ("", f"Payment {status}")
    payment.failure_message = payment.failure_message[:500]
    payment.save()
    if status == "requires_action" and payment.stripe_payment_intent_id:
        # Off-session 3-D Secure: the customer must act; cancel so the intent does not linger.
        try:
            stripe_client().v1.payment_intents.cancel(payment.stripe_payment_intent_id)
        except stripe.StripeError:
            logger.warning("could not cancel payment intent %s", payment.stripe_payment_intent_id)
    _invoice_payment_failed(invoice, payment, user=user, start_dunning=start_dunning)
    return ChargeResult(payment, "failed")


def _invoice_paid(invoice: Invoice, payment: Payment, *, user: Any = None) -> None:
    if invoice.state not in (Invoice.State.ISSUED, Invoice.State.OPEN):
        return
    from_state = invoice.state
    invoice.mark_paid()
    invoice.paid_at = timezone.now()
    invoice.amount_paid = max(invoice.amount_paid, invoice.gross_total)
    invoice.save(update_fields=["state", "paid_at", "amount_paid"])
    label = "direct debit" if payment.method == PaymentOption.SEPA_DEBIT else "card"
    how = f"{label} ({payment.stripe_payment_intent_id})" if payment.stripe_payment_intent_id else payment.reason
    _invoice_event(invoice, from_state, note=f"Paid: {how}", actor=user).save()
    _exceptions_resolve(BillingException.objects.filter(invoice=invoice), resolution="Invoice paid.", user=user)
    invoice_id = invoice.pk
    transaction.on_commit(lambda: _after_payment(invoice_id))


def _after_payment(invoice_id: int) -> None:
    from billing import tasks

    tasks.payment_received.delay(invoice_id)


def _invoice_payment_failed(invoice: Invoice, payment: Payment, *, user: Any, start_dunning: bool) -> None:
    if invoice.state == Invoice.State.ISSUED:
        invoice.mark_open()
        invoice.save(update_fields=["state"])
        _invoice_event(
            invoice,
            Invoice.State.ISSUED,
            note=f"{'Direct debit' if payment.method == PaymentOption.SEPA_DEBIT else 'Card payment'} failed: "
            f"{payment.failure_message}",
            actor=user,
        ).save()
    if start_dunning:
        dunning_start(invoice=invoice, payment=payment, user=user)


def dunning_start(*, invoice: Invoice, payment: Payment | None = None, user: Any = None) -> Any:
    """Emit ``payment.failed`` for the invoice's failed charge; the workflow bound to it does the dunning.

    Once per failed payment (the event id), and not while a process an earlier ``payment.failed`` of
    this invoice started still runs (its own retries fail too). The invoice row is locked for the check
    and the start, so failures reported at the same moment start one dunning, not one each. When the
    event starts nothing (no workflow bound, or an incident), Finance gets a billing exception as
    before. Returns the process started, the billing exception, or None when dunning is already under way.
    """
    with transaction.atomic():
        Invoice.objects.select_for_update().filter(pk=invoice.pk).first()
        return _dunning_start_locked(invoice, payment, user)


def _dunning_start_locked(invoice: Invoice, payment: Payment | None, user: Any) -> Any:
    from workflows.models import BusinessEvent
    from workflows.starting import event_emit

    if _dunning_running(invoice):
        return None
    payload: dict[str, Any] = {
        "invoice_id": invoice.pk,
        "invoice_number": invoice.display_number,
        "customer_id": invoice.customer_id,
        "amount": str(invoice.gross_total),
        "failure": payment.failure_message if payment else "",
        # Always said, so the workflows bound by method (card, SEPA, transfer) can tell: the failed payment's
        # method, else (dunning started by hand) how the invoice is collected.
        "method": (payment.method if payment is not None else "") or invoice.payment_option or PaymentOption.CARD,
    }
    if payment is not None:
        payload["payment_id"] = payment.pk
        payload["failure_code"] = payment.failure_code
    event = event_emit(
        name=PAYMENT_FAILED,
        payload=payload,
        business_object=invoice,
        event_id=f"{PAYMENT_FAILED}:{invoice.pk}:{payment.pk if payment else 'none'}",
        user=user,
    )
    if event.state == BusinessEvent.State.STARTED:
        return event.process
    logger.warning("payment.failed for invoice %s started no process (%s): Finance is told", invoice.pk, event.state)
    return billing_exception_raise(
        kind=BillingException.Kind.CHARGE_FAILED,
        key=f"charge-failed:{invoice.pk}",
        message=f"Card payment for invoice {invoice.display_number} failed"
        + (f": {payment.failure_message}" if payment and payment.failure_message else "."),
        customer_id=invoice.customer_id,
        invoice=invoice,
    )


def _dunning_running(invoice: Invoice) -> bool:
    """Whether a process that an earlier ``payment.failed`` of this invoice started is still running."""
    from django.contrib.contenttypes.models import ContentType

    from workflows.models import BusinessEvent, Process

    return BusinessEvent.objects.filter(
        name=PAYMENT_FAILED,
        content_type=ContentType.objects.get_for_model(Invoice),
        object_id=invoice.pk,
        process__state__in=[Process.State.RUNNING, Process.State.SUSPENDED],
    ).exists()


def invoice_record_transfer(*, invoice: Invoice, reference: str, user: Any = None) -> Payment:
    """Record that the invoice was paid by bank transfer (outside Stripe): a ledger row, invoice paid."""
    if not reference.strip():
        raise BillingError(gettext("Give the bank reference of the transfer."))
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if not invoice.is_payable:
            raise BillingError(
                gettext("Invoice %(number)s is %(state)s.")
                % {"number": invoice.display_number, "state": _state_in_prose(invoice)}
            )
        if selectors.live_charge(invoice) is not None:
            raise BillingError(gettext("A card payment for this invoice is in progress or done."))
        attempt = invoice.payments.filter(kind=Payment.Kind.CHARGE).count() + 1
        payment = Payment.objects.create(
            invoice=invoice,
            kind=Payment.Kind.CHARGE,
            status=Payment.Status.SUCCEEDED,
            amount=invoice.gross_total,
            currency=invoice.currency,
            attempt=attempt,
            idempotency_key=f"invoice-{invoice.pk}-transfer-{attempt}",
            method=PaymentOption.BANK_TRANSFER,
            reason=f"Bank transfer: {reference.strip()}"[:300],
            created_by=user,
        )
        _invoice_paid(invoice, payment, user=user)
    return payment


# --- refunds -------------------------------------------------------------------------------------


class RefundError(BillingError):
    """A refund the ledger refuses; ``field`` names the input at fault (``amount`` or ``reason``)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


REFUND_REASON_MAX = 1000


def refund_issue(*, invoice: Invoice, amount: Decimal, reason: str, user: Any = None, key: str = "") -> Payment:
    """Pay back part or all of what the customer paid for an invoice: the one refund path.

    In one transaction under the invoice lock: a numbered credit note for the amount (its VAT split
    per rate in proportion to the invoice's VAT breakdown; the whole paid amount credits the invoice
    in full and voids it) and the refund's ledger row (pending), which the credit note names. A credit
    note whose refund failed (or a reversal of a paid invoice) is paid back again when the same amount
    is refunded, instead of crediting twice. After the commit the refund goes to Stripe with the ledger
    row's idempotency key (``refund_send``); its status follows Stripe's answer and the refund webhooks.
    A payment made by bank transfer is paid back the same way and recorded as refunded at once.

    ``key`` (a system step's idempotency key, a form's submission key) makes a repeated call return the
    refund it made instead of refunding again. Returns the refund's ledger row.
    """
    reason = (reason or "").replace("\x00", "").strip()
    if not reason:
        raise RefundError(gettext("Give a reason for the refund (printed on the credit note)."), field="reason")
    if len(reason) > REFUND_REASON_MAX:
        raise RefundError(
            gettext("Keep the reason to %(limit)s characters.") % {"limit": f"{REFUND_REASON_MAX:,}"}, field="reason"
        )
    try:
        amount = Decimal(amount)
    except (ArithmeticError, TypeError, ValueError):
        raise RefundError("Enter the amount as a number, for example 12.50.", field="amount") from None
    if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        raise RefundError("Enter the amount in euros and cents, for example 12.50.", field="amount")
    if amount <= 0:
        raise RefundError("The refund amount must be more than 0.", field="amount")
    key = (key or "")[:200]
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if key:
            done = Payment.objects.filter(invoice=invoice, kind=Payment.Kind.REFUND, job_key=key).first()
            if done is not None:
                transaction.on_commit(lambda: refund_send(refund=done))
                return done
        if invoice.state == Invoice.State.DISPUTED:
            raise RefundError(
                f"Invoice {invoice.display_number} is disputed by the customer's bank, and Stripe refunds no disputed "
                "payment: answer the dispute in the Stripe Dashboard instead.",
                field="amount",
            )
        charge = (
            invoice.payments.filter(kind=Payment.Kind.CHARGE, status=Payment.Status.SUCCEEDED).order_by("pk").last()
        )
        if charge is None:
            raise RefundError(
                f"Invoice {invoice.display_number} is not paid, so there is nothing to refund.", field="amount"
            )
        refundable = selectors.invoice_refundable(invoice)
        if amount > refundable:
            raise RefundError(
                f"At most {refundable} {invoice.currency} can still be refunded for invoice {invoice.display_number}.",
                field="amount",
            )
        notes = list(invoice.credit_notes.select_related("refund").order_by("pk"))
        note = next(
            (
                n
                for n in notes
                if n.gross_total == amount and (n.refund is None or n.refund.status == Payment.Status.FAILED)
            ),
            None,
        )
        if note is None:
            credited = sum((n.gross_total for n in notes), Decimal("0.00"))
            if credited + amount > invoice.gross_total:
                waiting = [n for n in notes if n.refund is None or n.refund.status == Payment.Status.FAILED]
                hint = (
                    f" Pay back {waiting[0].display_number} by refunding exactly {waiting[0].gross_total}."
                    if waiting
                    else ""
                )
                raise RefundError(
                    f"Credit notes already cover {credited} of the invoice's {invoice.gross_total} "
                    f"{invoice.currency}; at most {invoice.gross_total - credited} can be credited.{hint}",
                    field="amount",
                )
            full = not notes and amount == invoice.gross_total
            note = _credit_note_create(invoice, amount=amount, full=full, reason=reason, user=user)
        number = Payment.objects.filter(invoice=invoice, kind=Payment.Kind.REFUND).count() + 1
        by_card = bool(charge.stripe_payment_intent_id)
        refund = Payment.objects.create(
            invoice=invoice,
            kind=Payment.Kind.REFUND,
            status=Payment.Status.PENDING if by_card else Payment.Status.SUCCEEDED,
            amount=amount,
            currency=charge.currency,
            attempt=number,
            idempotency_key=f"payment-{charge.pk}-refund-{number}",
            job_key=key,
            stripe_payment_intent_id=charge.stripe_payment_intent_id,
            stripe_charge_id=charge.stripe_charge_id,
            reason=(reason if by_card else f"Bank transfer back: {reason}")[:300],
            created_by=user,
        )
        note.refund = refund
        note.save(update_fields=["refund"])
        how = "to the card" if by_card else "by bank transfer"
        _invoice_event(
            invoice,
            invoice.state,
            note=f"Refund of {amount} {refund.currency} {how} ({note.display_number}): {reason}",
            actor=user,
        ).save()
        if by_card:
            transaction.on_commit(lambda: refund_send(refund=refund))
    refund.refresh_from_db()
    return refund


def _credit_note_create(invoice: Invoice, *, amount: Decimal, full: bool, reason: str, user: Any) -> CreditNote:
    """A numbered credit note for ``amount`` of the (locked) invoice; a full one voids the invoice."""
    issued_on = timezone.localdate()
    series = f"{CREDIT_NOTE_SERIES_PREFIX}{issued_on.year}"
    if full:
        totals = (invoice.net_total, invoice.vat_total, invoice.gross_total, invoice.vat_breakdown)
    else:
        totals = credit_split(invoice.vat_breakdown, amount)
    note = CreditNote.objects.create(
        invoice=invoice,
        is_partial=not full,
        series=series,
        number=number_allocate(key=series),
        issue_date=issued_on,
        reason=reason,
        net_total=totals[0],
        vat_total=totals[1],
        gross_total=totals[2],
        vat_breakdown=totals[3],
        created_by=user,
    )
    if full and invoice.state != Invoice.State.VOID:
        from_state = invoice.state
        invoice.void()
        invoice.save(update_fields=["state"])
        _invoice_event(
            invoice, from_state, note=f"Credited in full by credit note {note.display_number}: {reason}", actor=user
        ).save()
    note_id = note.pk
    transaction.on_commit(lambda: _queue_credit_note_documents(note_id))
    return note


def credit_split(breakdown: list[dict[str, str]], amount: Decimal) -> tuple[Decimal, Decimal, Decimal, list]:
    """(net, VAT, gross, VAT breakdown) of crediting ``amount`` gross of an invoice with ``breakdown``.

    The amount is shared over the VAT rates in proportion to their gross (cents by largest remainder, so
    the shares add up to the amount); each rate's share is then split into taxable amount and VAT once,
    as on the invoice (``split_lines``), so the credit note keeps EN 16931's rules on its own.
    """
    from billing.proration import CENT

    groups = [(Decimal(g["rate"]), Decimal(g["gross"])) for g in breakdown if Decimal(g["gross"])]
    total = sum((gross for _, gross in groups), Decimal("0"))
    if not groups or total <= 0:
        raise RefundError("The invoice has no amounts to credit.", field="amount")
    exact = [amount * gross / total for _, gross in groups]
    shares = [value.quantize(CENT, rounding="ROUND_DOWN") for value in exact]
    cents = int((amount - sum(shares, Decimal("0"))) / CENT)
    for k in sorted(range(len(groups)), key=lambda k: exact[k] - shares[k], reverse=True)[:cents]:
        shares[k] += CENT
    parts = [(rate, share) for (rate, _), share in zip(groups, shares, strict=True) if share]
    split = split_lines(parts)
    rows = [(rate, net, vat, share) for (rate, share), (net, vat) in zip(parts, split, strict=True)]
    net_total = sum((row[1] for row in rows), Decimal("0.00"))
    vat_total = sum((row[2] for row in rows), Decimal("0.00"))
    return net_total, vat_total, amount, vat_breakdown(rows)


def refund_send(*, refund: Payment) -> Payment:
    """Send a pending refund to Stripe once and record Stripe's answer (under the invoice lock).

    The idempotency key is the ledger row's; a refund that already has its Stripe id, or is no longer
    pending, is left as it is. Stripe refusing the refund marks it failed (its amount is free again
    and its credit note waits to be paid back); when Stripe cannot be reached it stays pending and is
    sent again by the next attempt (the system step's retry, or *Send again* on the invoice page).
    """
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=refund.invoice_id)
        refund = Payment.objects.get(pk=refund.pk)
        if (
            refund.kind != Payment.Kind.REFUND
            or refund.status != Payment.Status.PENDING
            or refund.stripe_refund_id
            or not refund.stripe_payment_intent_id
        ):
            return refund
        try:
            result = stripe_client().v1.refunds.create(
                params={
                    "payment_intent": refund.stripe_payment_intent_id,
                    "amount": to_cents(refund.amount),
                    "metadata": {"invoice_id": str(invoice.pk), "payment_id": str(refund.pk)},
                },
                options={"idempotency_key": refund.idempotency_key},
            )
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            logger.warning("refund %s not sent to Stripe yet: %s", refund.pk, exc)
            return refund
        except stripe.StripeError as exc:
            if getattr(exc, "http_status", None) and exc.http_status >= 500:
                logger.warning("refund %s not sent to Stripe yet: %s", refund.pk, exc)
                return refund
            refund.status = Payment.Status.FAILED
            refund.failure_code = (getattr(exc, "code", "") or "refund_refused")[:100]
            refund.failure_message = f"Stripe refused the refund: {exc.user_message or exc}"[:500]
            refund.save()
            _invoice_event(invoice, invoice.state, note=refund.failure_message).save()
            return refund
        refund.stripe_refund_id = result.id
        refund.status = _REFUND_STATUS.get(str(result.status), Payment.Status.PENDING)
        refund.save()
    return refund


def refund_create(*, payment: Payment, amount: Decimal, reason: str, user: Any = None, key: str = "") -> Payment:
    """Refund (part of) a succeeded charge: ``refund_issue`` for the charge's invoice, sent to Stripe at once."""
    if payment.kind != Payment.Kind.CHARGE or payment.status != Payment.Status.SUCCEEDED:
        raise RefundError("Only a succeeded payment can be refunded.", field="amount")
    refund = refund_issue(invoice=payment.invoice, amount=amount, reason=reason, user=user, key=key)
    return refund_send(refund=refund)


# --- webhooks ------------------------------------------------------------------------------------


def stripe_event_process(*, event: Any) -> str:
    """Process one verified Stripe event exactly once (its id is stored in the same transaction)."""
    data = event.to_dict() if hasattr(event, "to_dict") else dict(event)
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = StripeEvent.objects.create(event_id=data["id"], type=data.get("type", ""), payload=data)
        except IntegrityError:
            return "duplicate"
        obj = (data.get("data") or {}).get("object") or {}
        handler = _EVENT_HANDLERS.get(record.type)
        result = handler(obj) if handler else "ignored"
        record.result = result[:200]
        record.save(update_fields=["result"])
    return result


def _payment_for_intent(obj: dict[str, Any]) -> tuple[Invoice | None, Payment | None]:
    """The invoice (locked) and ledger row a PaymentIntent belongs to: by its id, else by its metadata."""
    metadata = obj.get("metadata") or {}
    intent_id = str(obj.get("id") or "")
    known = intent_id and Payment.objects.filter(kind=Payment.Kind.CHARGE, stripe_payment_intent_id=intent_id).first()
    invoice_id = known.invoice_id if known else metadata.get("invoice_id")
    if not invoice_id or not str(invoice_id).isdigit():
        return None, None
    invoice = Invoice.objects.select_for_update().filter(pk=int(invoice_id)).first()
    if invoice is None:
        return None, None
    payment = Payment.objects.filter(
        invoice=invoice, kind=Payment.Kind.CHARGE, stripe_payment_intent_id=intent_id
    ).first()
    if payment is None:
        payment_id = metadata.get("payment_id")
        if payment_id and str(payment_id).isdigit():
            payment = Payment.objects.filter(
                pk=int(payment_id), invoice=invoice, kind=Payment.Kind.CHARGE, stripe_payment_intent_id=""
            ).first()
    return invoice, payment


def _intent_amount(obj: dict[str, Any]) -> Decimal:
    cents = obj.get("amount_received") or obj.get("amount") or 0
    return (Decimal(int(cents)) / 100).quantize(Decimal("0.01"))


def _on_intent_succeeded(obj: dict[str, Any]) -> str:
    invoice, payment = _payment_for_intent(obj)
    if invoice is None:
        return _unmatched_payment(obj, "names no invoice of ours")
    if payment is None:
        return _intent_record(invoice, obj)
    if payment.status in PAID_CHARGE_STATUSES:
        # Succeeded, or succeeded and since taken back (returned): a late copy never makes it live again.
        return "already recorded"
    payment.status = Payment.Status.SUCCEEDED
    payment.stripe_payment_intent_id = obj.get("id", "")
    payment.stripe_charge_id = payment.stripe_charge_id or _charge_id_from_dict(obj)
    payment.failure_code = payment.failure_message = ""
    payment.save()
    _invoice_paid(invoice, payment)
    return f"invoice {invoice.display_number} paid"


def _intent_record(invoice: Invoice, obj: dict[str, Any]) -> str:
    """Record a succeeded PaymentIntent of the invoice that has no ledger row (its row was lost, or it
    was made outside the portal): once, by its key ``stripe-intent-<id>``. When the invoice already holds
    a live charge, the customer paid twice: the money is not booked twice, Finance is told instead."""
    intent_id = str(obj.get("id") or "")
    amount = _intent_amount(obj)
    if Payment.objects.filter(idempotency_key=f"stripe-intent-{intent_id}").exists():
        return "already recorded"
    live = selectors.live_charge(invoice)
    if live is not None:
        return _unmatched_payment(
            obj, f"is for invoice {invoice.display_number}, which already holds the charge #{live.pk} ({live.status})"
        )
    payment = Payment.objects.create(
        invoice=invoice,
        kind=Payment.Kind.CHARGE,
        status=Payment.Status.SUCCEEDED,
        amount=amount,
        currency=str(obj.get("currency") or invoice.currency).upper(),
        attempt=invoice.payments.filter(kind=Payment.Kind.CHARGE).count() + 1,
        idempotency_key=f"stripe-intent-{intent_id}",
        stripe_payment_intent_id=intent_id,
        stripe_charge_id=_charge_id_from_dict(obj),
        reason="Recorded from Stripe's payment_intent.succeeded (no ledger row)",
    )
    if amount != invoice.gross_total:
        _unmatched_payment(obj, f"paid {amount} for invoice {invoice.display_number} of {invoice.gross_total}")
    if invoice.is_payable:
        _invoice_paid(invoice, payment)
        return f"invoice {invoice.display_number} paid (recorded from Stripe)"
    _invoice_event(invoice, invoice.state, note=f"Card payment {intent_id} recorded from Stripe").save()
    return f"payment recorded for invoice {invoice.display_number} ({invoice.state})"


def _unmatched_payment(obj: dict[str, Any], why: str) -> str:
    """Money Stripe took that the ledger cannot place: a Finance task (``billing.exception_raised``)."""
    intent_id = str(obj.get("id") or "")
    amount = _intent_amount(obj)
    currency = str(obj.get("currency") or "eur").upper()
    metadata = obj.get("metadata") or {}
    invoice_id = metadata.get("invoice_id")
    invoice = Invoice.objects.filter(pk=int(invoice_id)).first() if str(invoice_id or "").isdigit() else None
    billing_exception_raise(
        kind=BillingException.Kind.UNMATCHED_PAYMENT,
        key=f"stripe-unmatched:{intent_id}",
        message=f"Stripe took {amount} {currency} (payment {intent_id}, customer {obj.get('customer') or '?'}) "
        f"that {why}. Find where it belongs, then record it or refund it in Stripe.",
        customer_id=invoice.customer_id if invoice else None,
        invoice=invoice,
    )
    return f"unmatched payment {intent_id}: Finance told"


def _on_intent_processing(obj: dict[str, Any]) -> str:
    """``payment_intent.processing``: a direct debit was sent to the bank; the ledger row waits (once)."""
    invoice, payment = _payment_for_intent(obj)
    if invoice is None or payment is None:
        return "processing payment intent of no ledger row of ours (nothing changed)"
    if payment.status != Payment.Status.PENDING:
        return f"already {payment.status}"
    payment.status = Payment.Status.PROCESSING
    payment.stripe_payment_intent_id = obj.get("id", "")
    payment.stripe_charge_id = payment.stripe_charge_id or _charge_id_from_dict(obj)
    payment.save()
    return f"invoice {invoice.display_number}: direct debit processing"


def _on_intent_failed(obj: dict[str, Any]) -> str:
    invoice, payment = _payment_for_intent(obj)
    if invoice is None:
        return "failed payment intent of no invoice of ours (no money moved)"
    if payment is None:
        error = obj.get("last_payment_error") or {}
        _invoice_event(
            invoice,
            invoice.state,
            note=f"Stripe reports a failed card payment {obj.get('id', '')} the ledger did not start: "
            f"{error.get('message') or 'failed'}"[:1000],
        ).save()
        return f"failed payment intent noted on invoice {invoice.display_number}"
    if payment.status not in (Payment.Status.PENDING, Payment.Status.PROCESSING):
        return f"already {payment.status}"
    error = obj.get("last_payment_error") or {}
    payment.status = Payment.Status.FAILED
    payment.stripe_payment_intent_id = obj.get("id", "")
    payment.failure_code = (error.get("code") or "")[:100]
    payment.failure_message = (error.get("message") or "Payment failed")[:500]
    payment.save()
    _invoice_payment_failed(invoice, payment, user=None, start_dunning=True)
    return f"invoice {invoice.display_number} payment failed"


# --- disputes (chargebacks) ----------------------------------------------------------------------


def _dispute_for(obj: dict[str, Any]) -> tuple[Dispute | None, str]:
    """The dispute row of a Stripe Dispute object, created on first sight (invoice locked)."""
    dispute_id = _stripe_id(obj.get("id"))
    intent_id, charge_id = _stripe_id(obj.get("payment_intent")), _stripe_id(obj.get("charge"))
    # A returned debit's later dispute events (funds_withdrawn, closed) name the charge it returned.
    charges = Payment.objects.filter(kind=Payment.Kind.CHARGE, status__in=PAID_CHARGE_STATUSES)
    charge = (intent_id and charges.filter(stripe_payment_intent_id=intent_id).first()) or (
        charge_id and charges.filter(stripe_charge_id=charge_id).first()
    )
    if not dispute_id or not charge:
        amount = (Decimal(int(obj.get("amount") or 0)) / 100).quantize(Decimal("0.01"))
        billing_exception_raise(
            kind=BillingException.Kind.DISPUTE,
            key=f"dispute-unmatched:{dispute_id or charge_id}",
            message=f"Stripe reports a dispute {dispute_id} of {amount} {str(obj.get('currency') or '').upper()} "
            f"on charge {charge_id or intent_id or '?'}, which is not a paid charge in the ledger.",
        )
        return None, "dispute of an unknown charge: Finance told"
    invoice = Invoice.objects.select_for_update().get(pk=charge.invoice_id)
    due = (obj.get("evidence_details") or {}).get("due_by")
    dispute, created = Dispute.objects.get_or_create(
        stripe_dispute_id=dispute_id,
        defaults={
            "invoice": invoice,
            "payment": charge,
            "amount": (Decimal(int(obj.get("amount") or 0)) / 100).quantize(Decimal("0.01")),
            "currency": str(obj.get("currency") or charge.currency).upper(),
            "reason": str(obj.get("reason") or "")[:100],
            "status": str(obj.get("status") or "")[:40],
            "evidence_due_by": datetime.fromtimestamp(int(due), tz=UTC) if due else None,
        },
    )
    if created and charge.method == PaymentOption.SEPA_DEBIT:
        # A returned direct debit: not contestable; the invoice is open again and the returned-debit
        # workflow (payment.failed, method sepa_debit) follows it up.
        sepa.sepa_chargeback(invoice=invoice, dispute=dispute)
    elif created:
        if invoice.state != Invoice.State.DISPUTED and invoice.state != Invoice.State.VOID:
            from_state = invoice.state
            invoice.mark_disputed()
            invoice.save(update_fields=["state"])
            _invoice_event(
                invoice, from_state, note=f"Card payment disputed ({dispute.reason or 'no reason'}, {dispute_id})"
            ).save()
        due_text = f" Evidence is due by {dispute.evidence_due_by:%Y-%m-%d}." if dispute.evidence_due_by else ""
        billing_exception_raise(
            kind=BillingException.Kind.DISPUTE,
            key=f"dispute:{dispute_id}",
            message=f"The card payment of invoice {invoice.display_number} ({dispute.amount} {dispute.currency}) "
            f"is disputed: {dispute.reason or 'no reason given'}. Answer it in the Stripe Dashboard.{due_text}",
            customer_id=invoice.customer_id,
            invoice=invoice,
        )
    return dispute, "dispute recorded" if created else "dispute known"


def _dispute_funds(dispute: Dispute, obj: dict[str, Any]) -> list[str]:
    """Book the dispute's balance transactions: funds withdrawn (chargeback) and reinstated (reversal)."""
    booked = []
    for txn in obj.get("balance_transactions") or []:
        if not isinstance(txn, dict):
            continue
        cents = int(txn.get("amount") or 0)
        kind, label = (Payment.Kind.CHARGEBACK, "withdrawn") if cents < 0 else (Payment.Kind.REVERSAL, "reinstated")
        if not cents:
            continue
        _, created = Payment.objects.get_or_create(
            idempotency_key=f"stripe-dispute-{dispute.stripe_dispute_id}-{label}",
            defaults={
                "invoice": dispute.invoice,
                "kind": kind,
                "status": Payment.Status.SUCCEEDED,
                "amount": (Decimal(abs(cents)) / 100).quantize(Decimal("0.01")),
                "currency": str(txn.get("currency") or dispute.currency).upper(),
                "stripe_payment_intent_id": dispute.payment.stripe_payment_intent_id,
                "stripe_charge_id": dispute.payment.stripe_charge_id,
                "reason": f"Dispute {dispute.stripe_dispute_id}: funds {label}",
            },
        )
        if created:
            booked.append(f"funds {label}")
            _invoice_event(
                dispute.invoice,
                dispute.invoice.state,
                note=f"Dispute {dispute.stripe_dispute_id}: {abs(cents) / 100:.2f} {dispute.currency} {label}",
            ).save()
    return booked


def _on_dispute(obj: dict[str, Any]) -> str:
    """``charge.dispute.created`` / ``updated`` / ``funds_withdrawn`` / ``funds_reinstated``."""
    dispute, result = _dispute_for(obj)
    if dispute is None:
        return result
    dispute.status = str(obj.get("status") or dispute.status)[:40]
    dispute.save(update_fields=["status", "updated_at"])
    return "; ".join([result, *_dispute_funds(dispute, obj)])


def _on_dispute_closed(obj: dict[str, Any]) -> str:
    """Won (or an inquiry closed without a chargeback): the invoice is paid again. Lost: it stays
    disputed and Finance decides (collect the money another way, or reverse the invoice)."""
    dispute, result = _dispute_for(obj)
    if dispute is None:
        return result
    status = str(obj.get("status") or "")
    dispute.status, dispute.closed_at = status[:40], dispute.closed_at or timezone.now()
    dispute.save(update_fields=["status", "closed_at", "updated_at"])
    booked = _dispute_funds(dispute, obj)
    invoice = dispute.invoice
    invoice.refresh_from_db()
    if status in ("won", "warning_closed") and invoice.state == Invoice.State.DISPUTED:
        invoice.dispute_won()
        invoice.save(update_fields=["state"])
        _invoice_event(invoice, Invoice.State.DISPUTED, note=f"Dispute {dispute.stripe_dispute_id} {status}").save()
        _exceptions_resolve(
            BillingException.objects.filter(dedupe_key=f"dispute:{dispute.stripe_dispute_id}"),
            resolution=f"Dispute {status} at Stripe.",
        )
    elif status == "lost" and dispute.payment.method == PaymentOption.SEPA_DEBIT:
        # A returned debit is always "lost": the invoice is open again and its workflow already runs.
        _invoice_event(
            invoice, invoice.state, note=f"Dispute {dispute.stripe_dispute_id} closed (debit returned)"
        ).save()
    elif status == "lost":
        _invoice_event(invoice, invoice.state, note=f"Dispute {dispute.stripe_dispute_id} lost").save()
        billing_exception_raise(
            kind=BillingException.Kind.DISPUTE,
            key=f"dispute-lost:{dispute.stripe_dispute_id}",
            message=f"The dispute of invoice {invoice.display_number} is lost: {dispute.amount} {dispute.currency} "
            "went back to the customer's bank. Collect it another way or reverse the invoice with a credit note.",
            customer_id=invoice.customer_id,
            invoice=invoice,
        )
    return "; ".join([f"dispute {status}", *booked])


def _charge_id_from_dict(obj: dict[str, Any]) -> str:
    charge = obj.get("latest_charge")
    if isinstance(charge, dict):
        return charge.get("id", "")
    return charge or ""


def _on_setup_succeeded(obj: dict[str, Any]) -> str:
    customer_id = (obj.get("metadata") or {}).get("customer_id")
    if not customer_id or not str(customer_id).isdigit():
        return "setup intent without customer"
    customer = Customer.objects.filter(pk=int(customer_id)).first()
    if customer is None:
        return "unknown customer"
    if (obj.get("metadata") or {}).get("kind") == PaymentOption.SEPA_DEBIT:
        return "SEPA mandate: saved by the mandate page with its acceptance"
    if PaymentMethod.objects.filter(stripe_setup_intent_id=obj.get("id", "")).exists():
        return "card already saved"
    transaction.on_commit(lambda: _queue_card_save(customer.pk, obj.get("id", "")))
    return "card save queued"


def _queue_card_save(customer_id: int, setup_intent_id: str) -> None:
    from billing import tasks

    tasks.payment_method_save_task.delay(customer_id, setup_intent_id)


_REFUND_STATUS = {
    "succeeded": Payment.Status.SUCCEEDED,
    "failed": Payment.Status.FAILED,
    "canceled": Payment.Status.FAILED,
}


def _stripe_id(value: Any) -> str:
    """An id field of a Stripe object, whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def _refund_reconcile(refund: dict[str, Any]) -> str:
    """Bring the ledger in line with one Stripe refund: a portal refund's later outcome, or a refund
    made outside the portal (in the Stripe Dashboard), recorded once against its invoice."""
    refund_id = _stripe_id(refund.get("id"))
    intent_id, charge_id = _stripe_id(refund.get("payment_intent")), _stripe_id(refund.get("charge"))
    if not refund_id or not (intent_id or charge_id):
        return "refund without charge"
    charges = Payment.objects.filter(kind=Payment.Kind.CHARGE, status__in=PAID_CHARGE_STATUSES)
    charge = (intent_id and charges.filter(stripe_payment_intent_id=intent_id).first()) or (
        charge_id and charges.filter(stripe_charge_id=charge_id).first()
    )
    if not charge:
        return "refund of an unknown charge"
    # The invoice lock orders us after a portal refund still in its transaction (refund_send).
    invoice = Invoice.objects.select_for_update().get(pk=charge.invoice_id)
    status = _REFUND_STATUS.get(str(refund.get("status") or ""), Payment.Status.PENDING)
    known = Payment.objects.filter(kind=Payment.Kind.REFUND, stripe_refund_id=refund_id).first()
    ours = str((refund.get("metadata") or {}).get("payment_id") or "")
    if known is None and ours.isdigit():
        # A portal refund whose Stripe answer we have not stored yet (refund_send): the same ledger row.
        known = Payment.objects.filter(
            pk=int(ours), invoice=invoice, kind=Payment.Kind.REFUND, stripe_refund_id=""
        ).first()
        if known is not None:
            known.stripe_refund_id = refund_id
            known.save(update_fields=["stripe_refund_id", "updated_at"])
    if known is not None:
        if known.status == status:
            return "refund already recorded"
        if known.status != Payment.Status.PENDING and status == Payment.Status.PENDING:
            return f"refund already {known.status}"
        known.status = status
        known.save(update_fields=["status", "updated_at"])
        if status == Payment.Status.FAILED:
            _invoice_event(invoice, invoice.state, f"Refund of {known.amount} {known.currency} failed in Stripe").save()
        return f"refund {status}"
    amount = (Decimal(int(refund.get("amount") or 0)) / 100).quantize(Decimal("0.01"))
    number = Payment.objects.filter(invoice=invoice, kind=Payment.Kind.REFUND).count() + 1
    reason = "Refunded in Stripe" + (f" ({refund['reason']})" if refund.get("reason") else "")
    Payment.objects.create(
        invoice=invoice,
        kind=Payment.Kind.REFUND,
        status=status,
        amount=amount,
        currency=str(refund.get("currency") or charge.currency).upper(),
        attempt=number,
        idempotency_key=f"stripe-refund-{refund_id}",
        stripe_payment_intent_id=charge.stripe_payment_intent_id,
        stripe_charge_id=charge.stripe_charge_id,
        stripe_refund_id=refund_id,
        reason=reason[:300],
    )
    _invoice_event(invoice, invoice.state, f"{reason}: {amount} {charge.currency} ({refund_id})").save()
    return f"refund of {amount} recorded for invoice {invoice.display_number}"


def _on_charge_refunded(obj: dict[str, Any]) -> str:
    """``charge.refunded`` does not list the refunds in current API versions: read them from Stripe."""
    charge_id = _stripe_id(obj.get("id"))
    if not charge_id:
        return "charge without id"
    try:
        refunds = stripe_client().v1.refunds.list(params={"charge": charge_id, "limit": 100})
    except stripe.StripeError as exc:
        # Raising rolls the event back; Stripe delivers it again later.
        raise BillingError(f"Could not read the refunds of {charge_id} from Stripe: {exc}") from exc
    results = [_refund_reconcile(refund.to_dict()) for refund in refunds]
    return "; ".join(results) or "no refunds"


_EVENT_HANDLERS = {
    "payment_intent.succeeded": _on_intent_succeeded,
    "payment_intent.payment_failed": _on_intent_failed,
    "payment_intent.processing": _on_intent_processing,
    "setup_intent.succeeded": _on_setup_succeeded,
    "refund.created": _refund_reconcile,
    "refund.updated": _refund_reconcile,
    "refund.failed": _refund_reconcile,
    "charge.refund.updated": _refund_reconcile,
    "charge.refunded": _on_charge_refunded,
    "charge.dispute.created": _on_dispute,
    "charge.dispute.updated": _on_dispute,
    "charge.dispute.funds_withdrawn": _on_dispute,
    "charge.dispute.funds_reinstated": _on_dispute,
    "charge.dispute.closed": _on_dispute_closed,
}


# --- contract consequences of dunning ------------------------------------------------------------


def invoice_contracts(invoice: Invoice) -> list[Contract]:
    ids = invoice.lines.values_list("contract_id", flat=True)
    return list(Contract.objects.filter(pk__in=list(ids)))


def dunning_suspend_contracts(*, invoice: Invoice, reason: str) -> list[int]:
    """Suspend the invoice's active contracts (and revoke their credentials when Connect offers it)."""
    from carparks import services as carpark_services

    suspended = []
    for contract in invoice_contracts(invoice):
        if contract.state != Contract.State.ACTIVE:
            continue
        carpark_services.contract_suspend(contract=contract, reason=reason)
        suspended.append(contract.pk)
    return suspended


def dunning_reactivate_contracts(*, invoice: Invoice, reason: str) -> list[int]:
    from carparks import services as carpark_services

    reactivated = []
    for contract in invoice_contracts(invoice):
        if contract.state != Contract.State.SUSPENDED:
            continue
        carpark_services.contract_reactivate(contract=contract, reason=reason)
        reactivated.append(contract.pk)
    return reactivated


# --- emails to the customer ----------------------------------------------------------------------


def _email_once(
    *,
    key: str,
    template: str,
    to: str,
    context: dict[str, Any],
    invoice: Invoice | None = None,
    attachments: tuple = (),
    language: str | None = None,
) -> bool:
    """Send an email at most once for ``key`` (the SentEmail row and the send share one transaction),
    written in ``language`` (the customer's), whoever sends it: a worker has no request language."""
    from django.utils import translation

    from billing.models import SentEmail
    from parkinghq.emails import send_email

    if not to:
        return False
    with transaction.atomic():
        try:
            with transaction.atomic():
                SentEmail.objects.create(key=key, template=template, to=to, invoice=invoice)
        except IntegrityError:
            return False
        with translation.override(language or settings.LANGUAGE_CODE):
            send_email(template=template, to=[to], context=context, attachments=attachments)
    return True


def invoice_send(*, invoice: Invoice, key: str | None = None) -> bool:
    """Email the invoice PDF (with its embedded e-invoice) to the customer, once."""
    from billing.documents import invoice_documents_render

    invoice = invoice_documents_render(invoice=invoice)
    with invoice.pdf.open("rb") as handle:
        pdf = handle.read()
    sent = _email_once(
        key=key or f"invoice:{invoice.pk}",
        template="billing_invoice",
        to=invoice.customer.invoice_email,
        context={
            "invoice": invoice,
            "customer": invoice.customer,
            "operator": settings.BILLING_OPERATOR,
            "transfer": bank_transfer.transfer_instructions(invoice),
            "sepa": sepa.prenotification(invoice),
        },
        invoice=invoice,
        attachments=((f"{invoice.display_number}.pdf", pdf, "application/pdf"),),
        language=invoice.customer.language,
    )
    if sent:
        Invoice.objects.filter(pk=invoice.pk, emailed_at__isnull=True).update(emailed_at=timezone.now())
    return sent


def credit_note_send(*, credit_note: CreditNote) -> bool:
    from billing.documents import credit_note_documents_render

    credit_note = credit_note_documents_render(credit_note=credit_note)
    with credit_note.pdf.open("rb") as handle:
        pdf = handle.read()
    invoice = credit_note.invoice
    return _email_once(
        key=f"credit-note:{credit_note.pk}",
        template="billing_credit_note",
        to=invoice.customer.invoice_email,
        context={"credit_note": credit_note, "invoice": invoice, "operator": settings.BILLING_OPERATOR},
        invoice=invoice,
        attachments=((f"{credit_note.display_number}.pdf", pdf, "application/pdf"),),
        language=invoice.customer.language,
    )


def payment_reminder_send(*, invoice: Invoice, level: int, key: str) -> bool:
    """A friendly reminder that the card payment failed, with a link to save a new card (for an invoice
    paid by bank transfer: that the transfer has not arrived, with the IBAN and reference)."""
    transfer = bank_transfer.transfer_instructions(invoice)
    return _email_once(
        key=key,
        template="billing_transfer_reminder" if transfer else "billing_payment_reminder",
        to=invoice.customer.invoice_email,
        context={
            "invoice": invoice,
            "level": level,
            "card_link": "" if transfer else card_setup_link(customer=invoice.customer),
            "transfer": transfer,
            "operator": settings.BILLING_OPERATOR,
        },
        invoice=invoice,
        language=invoice.customer.language,
    )


def card_link_send(*, customer: Customer, key: str) -> bool:
    return _email_once(
        key=key,
        template="billing_card_link",
        to=customer.invoice_email,
        context={
            "customer": customer,
            "card_link": card_setup_link(customer=customer),
            "operator": settings.BILLING_OPERATOR,
        },
        language=customer.language,
    )


def payment_received(*, invoice: Invoice) -> None:
    """After an invoice is paid: the receipt, and the news for a waiting dunning process."""
    _email_once(
        key=f"receipt:{invoice.pk}",
        template="billing_payment_received",
        to=invoice.customer.invoice_email,
        context={"invoice": invoice, "operator": settings.BILLING_OPERATOR},
        invoice=invoice,
        language=invoice.customer.language,
    )
    try:
        from workflows.services import message_send
    except ImportError:
        return
    message_send(name="payment.succeeded", business_object=invoice, payload={"invoice_id": invoice.pk})
