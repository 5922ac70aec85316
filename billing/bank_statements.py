"""Bank statements Finance uploads (ISO 20022 camt.053 / camt.054): import, booking, the matching queue.

``statement_import`` refuses a file it cannot trust (not camt, malformed, another account, another
currency, imported before) with a message for Finance and writes nothing. Otherwise, in one
transaction, it stores the statement and its entries, matches every credit against the open invoices
(``billing.matching``) and books the matches; a credit nothing matched is *queued*: after the commit
it emits ``bank_credit.unmatched``, which starts the matching-queue workflow (a Finance task).

Booking a credit to an invoice happens under the invoice's row lock and the entry's: a ledger row
(``Payment``, charge, succeeded, method bank transfer) for at most the open amount, ``amount_paid``
raised, the invoice paid once nothing is open; the excess of an over-payment (or the whole credit for
an invoice already paid) becomes the customer's credit balance (``CustomerCredit``). An entry books
once: its status leaves *queued* in the same statement that books it, and the ledger row's
idempotency key names the entry.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max, Q, Sum
from django.utils import formats, timezone
from django.utils.translation import gettext

from billing.camt import CamtError, camt_parse
from billing.matching import OpenInvoice, match_entries
from billing.models import (
    ZERO,
    BankEntry,
    BankStatement,
    BillingException,
    CustomerCredit,
    Invoice,
    InvoiceEvent,
    Payment,
)
from billing.payment_options import PaymentOption
from billing.services import BillingError, _exceptions_resolve

logger = logging.getLogger(__name__)

UNMATCHED = "bank_credit.unmatched"
# Up to this many queued credits start their tasks right after the import; more are handed to a worker.
EMIT_INLINE_MAX = 100
BULK_BATCH = 2000
CURRENCY = "EUR"
OPEN_STATES = (Invoice.State.ISSUED, Invoice.State.OPEN)


class StatementRefused(BillingError):
    """The uploaded file is not imported; the message says why (nothing was written)."""


class EntryRefused(BillingError):
    """A manual match or ignore the entry cannot take (booked already, not a credit, a paid invoice…)."""


def iban_compact(value: str) -> str:
    return "".join(str(value or "").split()).upper()


def bank_accounts() -> list[str]:
    """The operator's accounts statements may be for: ``BILLING_BANK_ACCOUNTS``, else the invoice IBAN."""
    accounts = getattr(settings, "BILLING_BANK_ACCOUNTS", None) or [settings.BILLING_OPERATOR.get("iban", "")]
    if isinstance(accounts, str):
        accounts = accounts.split(",")
    return [iban_compact(item) for item in accounts if iban_compact(item)]


def _when_by(statement: BankStatement) -> dict[str, str]:
    user = statement.uploaded_by
    return {
        "file": statement.file_name or statement.statement_id,
        "when": formats.date_format(timezone.localtime(statement.created_at), "SHORT_DATETIME_FORMAT"),
        "who": (user.get_full_name() or user.username) if user else gettext("the system"),
    }


def _already(statement: BankStatement) -> StatementRefused:
    return StatementRefused(
        gettext(
            "This statement was imported already (file %(file)s, on %(when)s by %(who)s). Nothing was booked again."
        )
        % _when_by(statement)
    )


# --- import --------------------------------------------------------------------------------------


def statement_import(*, data: bytes, file_name: str, user: Any = None) -> BankStatement:
    """Import one camt.053/camt.054 file: store it, match its credits, book them; refused files change nothing."""
    digest = hashlib.sha256(data).hexdigest()
    earlier = BankStatement.objects.select_related("uploaded_by").filter(file_sha256=digest).first()
    if earlier is not None:
        raise _already(earlier)
    try:
        parsed = camt_parse(data)
    except CamtError as exc:
        raise StatementRefused(str(exc)) from None
    account = iban_compact(parsed.account_iban)
    accounts = bank_accounts()
    if account not in accounts:
        raise StatementRefused(
            gettext(
                "The statement is for the account %(iban)s, which is not one of the operator's accounts "
                "(%(accounts)s). Upload the statement of the operator's account."
            )
            % {"iban": account or "—", "accounts": ", ".join(accounts)}
        )
    currencies = {parsed.currency} | {entry.currency for entry in parsed.entries}
    if currencies != {CURRENCY}:
        other = sorted(currencies - {CURRENCY}) or [parsed.currency or "—"]
        raise StatementRefused(
            gettext("The statement holds amounts in %(currency)s; only statements in EUR can be imported.")
            % {"currency": ", ".join(other)}
        )
    same = (
        BankStatement.objects.select_related("uploaded_by")
        .filter(account_iban=account, kind=parsed.kind, statement_id=parsed.statement_id[:35])
        .first()
    )
    if same is not None:
        raise _already(same)

    credits = [entry for entry in parsed.entries if entry.is_credit]
    booked_before = _booked_before(account, credits)
    with transaction.atomic():
        try:
            with transaction.atomic():
                statement = BankStatement.objects.create(
                    kind=parsed.kind,
                    message_id=parsed.message_id[:35],
                    statement_id=parsed.statement_id[:35],
                    account_iban=account,
                    currency=parsed.currency,
                    created_on=parsed.created_on,
                    from_date=parsed.from_date,
                    to_date=parsed.to_date,
                    file_name=(file_name or "")[:255],
                    file_sha256=digest,
                    entries_count=len(parsed.entries),
                    credits_count=len(credits),
                    credits_total=sum((entry.amount for entry in credits), ZERO),
                    uploaded_by=user if getattr(user, "pk", None) else None,
                )
        except IntegrityError:  # the same file at the same moment: the other upload won
            winner = (
                BankStatement.objects.select_related("uploaded_by")
                .filter(
                    Q(file_sha256=digest)
                    | Q(account_iban=account, kind=parsed.kind, statement_id=parsed.statement_id[:35])
                )
                .first()
            )
            raise (
                _already(winner) if winner else StatementRefused(gettext("This statement was imported already."))
            ) from None
        rows = [
            BankEntry(
                statement=statement,
                position=entry.position,
                is_credit=entry.is_credit,
                amount=entry.amount,
                currency=entry.currency,
                booking_date=entry.booking_date,
                value_date=entry.value_date,
                account_servicer_reference=entry.account_servicer_reference[:35],
                end_to_end_id=entry.end_to_end_id[:35],
                debtor_name=entry.debtor_name[:140],
                debtor_iban=iban_compact(entry.debtor_iban)[:34],
                remittance_unstructured=entry.remittance_unstructured,
                remittance_structured=entry.remittance_structured[:35],
                status=BankEntry.Status.QUEUED if entry.is_credit else BankEntry.Status.IGNORED,
                note="" if entry.is_credit else "Debit",
            )
            for entry in parsed.entries
        ]
        by_position = {row.position: row for row in rows}
        # A credit the bank reported before (a camt.054 notification, then the day's camt.053) is recorded
        # for the statement's completeness and booked no second time.
        for entry in credits:
            earlier = booked_before.get(_credit_key(entry))
            if earlier is not None:
                row = by_position[entry.position]
                row.status = BankEntry.Status.IGNORED
                row.note = f"Reported before in {earlier}: booked there, not again"[:500]
        credits = [entry for entry in credits if _credit_key(entry) not in booked_before]
        matches = match_entries(credits, open_invoices()) if credits else []
        plan = [(by_position[m.position], m.invoice_id, m.rule) for m in matches if m.invoice_id is not None]

        def entries_create() -> None:  # with the status the booking gave them: no second write
            if _insert_many(BankEntry, rows):
                ids = dict(BankEntry.objects.filter(statement=statement).values_list("position", "pk"))
                for row in rows:
                    row.pk = ids[row.position]

        if plan:
            _book_many(plan, user=user, write_entries=entries_create)
        else:
            entries_create()
        queued = [
            by_position[e.position].pk for e in credits if by_position[e.position].status == BankEntry.Status.QUEUED
        ]
        statement.matched_count = len(credits) - len(queued)
        statement.queued_count = len(queued)
        statement.save(update_fields=["matched_count", "queued_count"])
        transaction.on_commit(lambda: bank_credits_unmatched_dispatch(entry_ids=queued))
    return statement


def _credit_key(entry: Any) -> tuple[str, str, Decimal] | None:
    """What identifies one credit across the bank's files: its servicer reference, end-to-end id and amount."""
    reference = (entry.account_servicer_reference or "")[:35]
    if not reference:
        return None
    return (reference, (entry.end_to_end_id or "")[:35], Decimal(entry.amount))


def _booked_before(account: str, credits: Sequence[Any]) -> dict[Any, str]:
    """The credits of this file that an earlier file of the account holds already, with that file's name."""
    keys = {key for key in map(_credit_key, credits) if key is not None}
    references = sorted({key[0] for key in keys})
    found: dict[Any, str] = {}
    for offset in range(0, len(references), 5000):
        rows = BankEntry.objects.filter(
            statement__account_iban=account,
            is_credit=True,
            account_servicer_reference__in=references[offset : offset + 5000],
        ).values_list(
            "account_servicer_reference", "end_to_end_id", "amount", "statement__kind", "statement__statement_id"
        )
        for reference, end_to_end, amount, kind, statement_id in rows:
            key = (reference, end_to_end, Decimal(amount))
            if key in keys:
                found.setdefault(key, f"{BankStatement.Kind(kind).label} {statement_id}")
    return found


def open_invoices() -> list[OpenInvoice]:
    """Every invoice a transfer may pay (issued or open, something open), in one query."""
    rows = (
        Invoice.objects.filter(state__in=OPEN_STATES, gross_total__gt=F("amount_paid"))
        .order_by()
        .values_list(
            "pk", "series", "number", "payment_reference", "gross_total", "amount_paid", "currency", "customer__name"
        )
    )
    return [
        OpenInvoice(
            id=pk,
            number=f"{series}-{number:06d}",
            payment_reference=reference,
            amount_open=gross - paid,
            currency=currency,
            customer_name=name,
        )
        for pk, series, number, reference, gross, paid, currency, name in rows.iterator(chunk_size=5000)
    ]


# --- booking -------------------------------------------------------------------------------------


@dataclass
class _Booked:
    payments: list[Payment]
    credits: list[CustomerCredit]
    events: list[InvoiceEvent]
    paid: list[Invoice]
    amounts: list[Invoice]


def _book_many(
    plan: Sequence[tuple[BankEntry, int, str]], *, user: Any = None, write_entries: Callable[[], None] | None = None
) -> None:
    """Book credits to invoices: every invoice locked once (in id order), the rows written in bulk.

    The entries must be locked by the caller and still queued, or be new: then ``write_entries`` creates
    them once their booking is known (their ledger rows need their ids).
    """
    if not plan:
        return
    actor = user if getattr(user, "pk", None) else None
    ids = sorted({invoice_id for _, invoice_id, _ in plan})
    invoices: dict[int, Invoice] = {}
    for offset in range(0, len(ids), 5000):
        chunk = ids[offset : offset + 5000]
        locked = (
            Invoice.objects.select_for_update()
            .filter(pk__in=chunk)
            .only("state", "series", "number", "customer_id", "currency", "gross_total", "amount_paid")
            .order_by("pk")
        )
        for invoice in locked:
            invoices[invoice.pk] = invoice
    attempts = dict(
        Payment.objects.filter(invoice_id__in=ids, kind=Payment.Kind.CHARGE)
        .values("invoice_id")
        .annotate(top=Max("attempt"))
        .values_list("invoice_id", "top")
    )
    now = timezone.now()
    done = _Booked([], [], [], [], [])
    paid_ids: set[int] = set()
    changed_ids: set[int] = set()
    for entry, invoice_id, rule in plan:
        invoice = invoices[invoice_id]
        entry.invoice, entry.rule, entry.matched_at, entry.matched_by = invoice, rule, now, actor
        open_amount = invoice.amount_open if invoice.state in OPEN_STATES else ZERO
        booked = min(entry.amount, open_amount)
        excess = entry.amount - booked
        if booked > 0:
            attempts[invoice_id] = attempts.get(invoice_id, 0) + 1
            done.payments.append(
                Payment(
                    invoice=invoice,
                    kind=Payment.Kind.CHARGE,
                    status=Payment.Status.SUCCEEDED,
                    method=PaymentOption.BANK_TRANSFER,
                    bank_entry=entry,
                    amount=booked,
                    currency=invoice.currency,
                    attempt=attempts[invoice_id],
                    reason=f"Bank transfer from {entry.debtor_name or 'an unknown payer'}"[:300],
                    created_by=actor,
                )
            )
            invoice.amount_paid += booked
            changed_ids.add(invoice_id)
            if invoice.amount_paid >= invoice.gross_total:
                paid_ids.add(invoice_id)
        if excess > 0:
            if booked > 0:
                why = f"Over-payment of invoice {invoice.display_number} (bank transfer)"
            elif invoice.state in OPEN_STATES:
                why = f"Transfer for invoice {invoice.display_number}, which was paid already"
            else:
                why = f"Transfer for invoice {invoice.display_number}, which is {invoice.state}"
            done.credits.append(
                CustomerCredit(
                    customer_id=invoice.customer_id,
                    amount=excess,
                    currency=entry.currency,
                    reason=why[:300],
                    bank_entry=entry,
                    invoice=invoice,
                    created_by=actor,
                )
            )
        if excess > 0:
            entry.status = BankEntry.Status.OVERPAID
        elif invoice.amount_paid < invoice.gross_total:
            entry.status = BankEntry.Status.PARTIAL
        else:
            entry.status = BankEntry.Status.MANUAL if rule == BankEntry.Rule.MANUAL else BankEntry.Status.MATCHED
    if write_entries is not None:
        write_entries()
    else:
        BankEntry.objects.bulk_update(
            [entry for entry, _, _ in plan],
            ["invoice", "rule", "status", "matched_at", "matched_by"],
            batch_size=BULK_BATCH,
        )
    for payment in done.payments:
        # The key names the entry: a second ledger row for one credit is refused by the database.
        payment.idempotency_key = f"bank-entry-{payment.bank_entry.pk}"
    _insert_many(Payment, done.payments)
    _insert_many(CustomerCredit, done.credits)
    partly = [invoices[pk] for pk in changed_ids - paid_ids]
    Invoice.objects.bulk_update(partly, ["amount_paid"], batch_size=BULK_BATCH)
    events = [
        InvoiceEvent(
            invoice=invoices[pk],
            from_state=invoices[pk].state,
            to_state=invoices[pk].state,
            note=f"Part paid by bank transfer: {invoices[pk].amount_paid} of {invoices[pk].gross_total} received",
            actor=actor,
        )
        for pk in sorted(changed_ids - paid_ids)
    ]
    if paid_ids:
        paid = sorted(paid_ids)
        for pk in paid:
            events.append(
                InvoiceEvent(
                    invoice=invoices[pk],
                    from_state=invoices[pk].state,
                    to_state=Invoice.State.PAID,
                    note="Paid: bank transfer",
                    actor=actor,
                )
            )
        Invoice.objects.filter(pk__in=paid).update(state=Invoice.State.PAID, paid_at=now, amount_paid=F("gross_total"))
        _exceptions_resolve(
            BillingException.objects.filter(invoice_id__in=paid), resolution="Invoice paid.", user=actor
        )
        transaction.on_commit(lambda: _after_payments(paid))
    _insert_many(InvoiceEvent, events)


def _insert_many(model: Any, objs: Sequence[Any]) -> bool:
    """Insert new rows in bulk. On PostgreSQL by COPY (a statement of 10,000 credits spends most of its time
    building INSERT statements otherwise), returning True: the objects get no ids, read them back if needed.
    Elsewhere (the SQLite of ``make run``) by ``bulk_create``, which sets the ids (False)."""
    if not objs:
        return False
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs, batch_size=BULK_BATCH)
        return False
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    relations = [f for f in fields if f.is_relation]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    sql = f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for obj in objs:
            for f in relations:  # a related object saved after it was assigned (the new entries)
                if getattr(obj, f.attname) is None and f.name in obj._state.fields_cache:
                    related = obj._state.fields_cache[f.name]
                    setattr(obj, f.attname, related.pk if related is not None else None)
            copy.write_row([f.pre_save(obj, True) for f in fields])
    return True


def _after_payments(invoice_ids: Iterable[int]) -> None:
    from billing import tasks

    for invoice_id in invoice_ids:
        tasks.payment_received.delay(invoice_id)


def _entry_locked(entry: BankEntry) -> BankEntry:
    locked = BankEntry.objects.select_for_update().select_related("statement").get(pk=entry.pk)
    if not locked.is_credit:
        raise EntryRefused(gettext("This entry is a debit; only credits are matched to invoices."))
    if locked.status != BankEntry.Status.QUEUED:
        raise EntryRefused(
            gettext("This credit is already %(status)s; it is booked only once.")
            % {"status": locked.get_status_display().lower()}
        )
    return locked


def entry_book(*, entry: BankEntry, invoice: Invoice, rule: str, user: Any = None) -> BankEntry:
    """Book one queued credit to ``invoice`` (locks the entry, then the invoice); refused when booked already."""
    with transaction.atomic():
        locked = _entry_locked(entry)
        if invoice.currency != locked.currency:
            raise EntryRefused(
                gettext("Invoice %(number)s is in %(currency)s, the credit in %(credit)s.")
                % {"number": invoice.display_number, "currency": invoice.currency, "credit": locked.currency}
            )
        _book_many([(locked, invoice.pk, rule)], user=user)
        BankStatement.objects.filter(pk=locked.statement_id).update(
            matched_count=F("matched_count") + 1, queued_count=F("queued_count") - 1
        )
    return locked


def entry_match_manual(*, entry: BankEntry, invoice: Invoice, user: Any, cancel_task: bool = True) -> BankEntry:
    """Finance books a queued credit to the invoice it chose (the statement page or the basket task)."""
    if invoice.state == Invoice.State.DRAFT:
        raise EntryRefused(gettext("A draft invoice cannot be paid; choose an issued invoice."))
    booked = entry_book(entry=entry, invoice=invoice, rule=BankEntry.Rule.MANUAL, user=user)
    if cancel_task:
        _queue_task_cancel(booked, user=user, why=f"Matched by hand to invoice {invoice.display_number}")
    return booked


def entry_ignore(*, entry: BankEntry, reason: str, user: Any, cancel_task: bool = True) -> BankEntry:
    """Finance marks a queued credit as not an invoice payment (a refund of ours, a grant…), with a reason."""
    reason = (reason or "").strip()
    if not reason:
        raise EntryRefused(gettext("Say why this credit is not an invoice payment."))
    if "\x00" in reason:
        raise EntryRefused(gettext("The reason contains a character that cannot be stored."))
    with transaction.atomic():
        locked = _entry_locked(entry)
        locked.status = BankEntry.Status.IGNORED
        locked.note = reason[:500]
        locked.matched_by = user if getattr(user, "pk", None) else None
        locked.matched_at = timezone.now()
        locked.save(update_fields=["status", "note", "matched_by", "matched_at"])
        BankStatement.objects.filter(pk=locked.statement_id).update(queued_count=F("queued_count") - 1)
    if cancel_task:
        _queue_task_cancel(locked, user=user, why="Marked as not an invoice payment")
    return locked


def _queue_task_cancel(entry: BankEntry, *, user: Any, why: str) -> None:
    """The entry was settled outside its matching task: that process has nothing left to do."""
    from django.contrib.contenttypes.models import ContentType

    from workflows.models import Process
    from workflows.services import process_cancel

    processes = Process.objects.filter(
        content_type=ContentType.objects.get_for_model(BankEntry),
        object_id=entry.pk,
        state__in=[Process.State.RUNNING, Process.State.SUSPENDED],
    )
    for process in processes:
        process_cancel(process=process, user=user, reason=why[:200])


# --- the matching queue --------------------------------------------------------------------------


def bank_credits_unmatched_dispatch(*, entry_ids: Sequence[int]) -> None:
    """After an import commits: start the queued credits' tasks (a worker does it for a big statement)."""
    if not entry_ids:
        return
    if len(entry_ids) <= EMIT_INLINE_MAX:
        bank_credits_unmatched_emit(entry_ids=entry_ids)
        return
    from billing import tasks

    for offset in range(0, len(entry_ids), 500):
        tasks.bank_credits_unmatched_task.delay(list(entry_ids[offset : offset + 500]))


def bank_credits_unmatched_emit(*, entry_ids: Iterable[int]) -> int:
    """Emit ``bank_credit.unmatched`` once per queued credit (the event id makes a re-emit a no-op)."""
    from workflows.models import BusinessEvent
    from workflows.starting import event_emit

    started = 0
    entries = BankEntry.objects.filter(pk__in=list(entry_ids), status=BankEntry.Status.QUEUED).order_by("pk")
    for entry in entries:
        event = event_emit(
            name=UNMATCHED,
            payload={
                "entry_id": entry.pk,
                "statement_id": entry.statement_id,
                "amount": str(entry.amount),
                "currency": entry.currency,
                "booking_date": entry.booking_date.isoformat() if entry.booking_date else None,
                "debtor_name": entry.debtor_name[:2000],
                "debtor_iban": entry.debtor_iban,
                "remittance": (entry.remittance_structured or entry.remittance_unstructured)[:2000],
            },
            business_object=entry,
            event_id=f"{UNMATCHED}:{entry.pk}",
        )
        started += event.state == BusinessEvent.State.STARTED
    return started


# --- reading -------------------------------------------------------------------------------------


def entry_suggestions(entry: BankEntry, *, limit: int = 8) -> list[Invoice]:
    """Open invoices that may be what the credit pays: the payer's name, the amount, a similar reference."""
    base = Invoice.objects.filter(state__in=OPEN_STATES).select_related("customer")
    found: dict[int, Invoice] = {}
    words = [word for word in entry.debtor_name.replace(",", " ").split() if len(word) > 2][:4]
    name_q = Q()
    for word in words:
        name_q |= Q(customer__name__icontains=word)
    queries = [base.filter(gross_total=F("amount_paid") + entry.amount)]
    if words:
        queries.insert(0, base.filter(name_q))
    text = f"{entry.remittance_structured} {entry.remittance_unstructured}".upper()
    for token in text.replace("/", " ").replace(",", " ").split():
        digits = "".join(ch for ch in token if ch.isdigit())
        if len(digits) >= 4:
            queries.append(base.filter(number=int(digits[-6:])))
    for query in queries:
        for invoice in query.order_by("-issue_date", "-pk")[:limit]:
            found.setdefault(invoice.pk, invoice)
            if len(found) >= limit:
                return list(found.values())
    return list(found.values())


def customer_credit_balance(customer: Any) -> Decimal:
    total = CustomerCredit.objects.filter(customer=customer).aggregate(total=Sum("amount"))["total"]
    return total or ZERO


def invoice_find(text: str) -> Invoice | None:
    """The issued invoice a number names (``INV2026-000133``, without the dash, lower case or the bare counter)."""
    compact = "".join(str(text or "").split()).upper().replace("-", "")
    if not compact:
        return None
    digits = len(compact) - len(compact.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    series, number = compact[:digits], compact[digits:]
    # The series is letters then the year: INV2026 + 000133.
    if len(number) > 6:
        series, number = series + number[:-6], number[-6:]
    if not number.isdigit():
        return None
    invoices = Invoice.objects.filter(number=int(number)).exclude(state=Invoice.State.DRAFT)
    if series:
        invoices = invoices.filter(series=series)
    return invoices.select_related("customer").first() if invoices.count() == 1 else None


def entry_task_summary(entry: BankEntry) -> list[dict[str, Any]]:
    """What the basket task shows about a credit: its facts, a problem with the last choice, the suggestions."""
    from django.urls import reverse

    from parkinghq.templatetags.portal import money

    items: list[dict[str, Any]] = [
        {"label": gettext("Amount"), "text": money(entry.amount, entry.currency), "detail": "", "url": None},
        {
            "label": gettext("Booked on"),
            "text": formats.date_format(entry.booking_date, "SHORT_DATE_FORMAT") if entry.booking_date else "—",
            "detail": "",
            "url": None,
        },
        {"label": gettext("Payer"), "text": entry.debtor_name or "—", "detail": entry.debtor_iban, "url": None},
        {
            "label": gettext("Reference"),
            "text": entry.remittance_structured or entry.remittance_unstructured or "—",
            "detail": "",
            "url": None,
        },
    ]
    if entry.status == BankEntry.Status.QUEUED and entry.note:
        items.append({"label": gettext("Last attempt"), "text": entry.note, "detail": "", "url": None})
    if entry.status != BankEntry.Status.QUEUED:
        items.append({"label": gettext("Status"), "text": entry.get_status_display(), "detail": "", "url": None})
        return items
    for invoice in entry_suggestions(entry):
        items.append(
            {
                "label": gettext("Suggested invoice"),
                "text": f"{invoice.display_number} · {invoice.customer.name}",
                "detail": gettext("open %(amount)s") % {"amount": money(invoice.amount_open, invoice.currency)},
                "url": reverse("billing:invoice-detail", args=[invoice.pk]),
            }
        )
    return items
