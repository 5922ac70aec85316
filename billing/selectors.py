"""Reads of the billing app that are more than a filter."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch, Q, QuerySet
from django.utils.translation import gettext_lazy

from billing.models import BillingException, Invoice, InvoiceLine, Payment, PaymentMethod
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


def _billable(period_start: date, period_end: date) -> QuerySet[Contract]:
    return Contract.objects.filter(_due(period_start, period_end)).exclude(invoice_lines__period_start=period_start)


def billable_contract_terms(
    *, period_start: date, period_end: date
) -> list[tuple[int, int, date, date | None, Decimal]]:
    """(pk, customer id, start, end, monthly price) of the contracts ``billable_contracts`` returns, in
    one light query: what the run's preview needs to work out the amounts."""
    return list(
        _billable(period_start, period_end)
        .order_by("customer_id", "pk")
        .values_list("pk", "customer_id", "start_date", "end_date", "monthly_price")
    )


def billable_contracts(*, period_start: date, period_end: date) -> list[BillableContract]:
    """Due contracts that have no invoice line for the period yet, ordered by customer."""
    due = _billable(period_start, period_end)
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
        kind=Payment.Kind.CHARGE,
        status__in=[Payment.Status.PENDING, Payment.Status.PROCESSING, Payment.Status.SUCCEEDED],
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


# --- the dunning overview ------------------------------------------------------------------------

DUNNING_EVENT = "payment.failed"
# Age buckets of the overview: (label, first day, last day or None).
DUNNING_AGE_BUCKETS = {
    "0-7": (gettext_lazy("up to 7 days"), 0, 7),
    "8-30": (gettext_lazy("8 to 30 days"), 8, 30),
    "31-60": (gettext_lazy("31 to 60 days"), 31, 60),
    "61+": (gettext_lazy("more than 60 days"), 61, None),
}
DUNNING_SORTS = {
    "age": ("-first_failure_at", "-pk"),  # age ascending: the newest failure first
    "-age": ("first_failure_at", "pk"),
    "amount": ("gross_total", "pk"),
    "-amount": ("-gross_total", "-pk"),
    "customer": ("customer__name", "pk"),
    "-customer": ("-customer__name", "-pk"),
    "due": ("due_date", "pk"),
    "-due": ("-due_date", "-pk"),
    "level": ("dunning_level_sort", "dunning_step", "pk"),
    "-level": ("-dunning_level_sort", "-dunning_step", "-pk"),
}


@dataclass
class DunningFilters:
    level: str = ""  # "r<n>" reminders sent, or "s<step id>" for a process that counts none
    age: str = ""  # a DUNNING_AGE_BUCKETS key
    amount_min: Decimal | None = None
    q: str = ""
    sort: str = "-age"


def open_dunnings(*, filters: DunningFilters | None = None, today: date | None = None) -> QuerySet[Invoice]:
    """Every open dunning: an invoice not paid or voided whose ``payment.failed`` event started a process
    that is still running (or suspended). Found through the business events, never a workflow's key, so
    the library's dunning counts as much as the built-in one.

    Each invoice carries ``dunning_process_id`` (the newest such process), ``first_failure_at`` (its first
    ``payment.failed``), ``dunning_step`` (the process's current step), ``dunning_reminders`` (the
    process's ``reminder_level`` variable, text; None when the workflow counts none) and
    ``dunning_level_sort`` (the reminders as a number, -1 when none are counted).
    """
    from django.contrib.contenttypes.models import ContentType
    from django.db.models import CharField, IntegerField, OuterRef, Subquery, Value
    from django.db.models.fields.json import KeyTextTransform
    from django.db.models.functions import Cast, Coalesce
    from django.utils import timezone

    from workflows.models import BusinessEvent, Process

    filters = filters or DunningFilters()
    today = today or timezone.localdate()
    events = BusinessEvent.objects.filter(
        name=DUNNING_EVENT, content_type=ContentType.objects.get_for_model(Invoice), object_id=OuterRef("pk")
    )
    running = events.filter(process__state__in=[Process.State.RUNNING, Process.State.SUSPENDED])
    process = Process.objects.filter(pk=OuterRef("dunning_process_id"))
    reminders = KeyTextTransform("reminder_level", "variables")
    qs = (
        Invoice.objects.filter(state__in=[Invoice.State.ISSUED, Invoice.State.OPEN])
        .annotate(
            dunning_process_id=Subquery(running.order_by("-emitted_at", "-pk").values("process_id")[:1]),
            first_failure_at=Subquery(events.order_by("emitted_at", "pk").values("emitted_at")[:1]),
        )
        .filter(dunning_process_id__isnull=False)
        .annotate(
            dunning_step=Subquery(process.values("current_step")[:1], output_field=CharField()),
            dunning_reminders=Subquery(process.annotate(r=reminders).values("r")[:1], output_field=CharField()),
        )
        .annotate(
            dunning_level_sort=Coalesce(
                Subquery(
                    process.filter(variables__reminder_level__regex=r"^[0-9]{1,6}$")
                    .annotate(n=Cast(reminders, IntegerField()))
                    .values("n")[:1],
                    output_field=IntegerField(),
                ),
                Value(-1),
            )
        )
        .select_related("customer")
    )
    level = filters.level
    if level.startswith("r") and level[1:].isdigit():
        qs = qs.filter(dunning_level_sort=int(level[1:]))
    elif level.startswith("s") and len(level) > 1:
        qs = qs.filter(dunning_level_sort=-1, dunning_step=level[1:])
    bucket = DUNNING_AGE_BUCKETS.get(filters.age)
    if bucket is not None:
        _, first_day, last_day = bucket
        qs = qs.filter(first_failure_at__date__lte=today - _days(first_day))
        if last_day is not None:
            qs = qs.filter(first_failure_at__date__gte=today - _days(last_day))
    if filters.amount_min is not None:
        qs = qs.filter(gross_total__gte=filters.amount_min)
    query = filters.q.strip()
    if query:
        match = Q(customer__name__icontains=query) | Q(customer__email__icontains=query)
        if query.isdigit():
            match |= Q(customer_id=int(query)) | Q(number=int(query))
        qs = qs.filter(match)
    return qs.order_by(*DUNNING_SORTS.get(filters.sort, DUNNING_SORTS["-age"]))


def _days(count: int):  # noqa: ANN202 - timedelta
    from datetime import timedelta

    return timedelta(days=count)


def dunning_levels(queryset: QuerySet[Invoice]) -> list[tuple[str, str]]:
    """The levels present in ``queryset`` (an ``open_dunnings`` result) as (filter value, label)."""
    seen = set(queryset.order_by().values_list("dunning_level_sort", "dunning_step").distinct())
    reminders = sorted({n for n, _ in seen if n >= 0})
    steps = sorted({step for n, step in seen if n < 0 and step})
    return [(f"r{n}", f"{n} reminder{'s' if n != 1 else ''} sent") for n in reminders] + [
        (f"s{step}", f"At step {step}") for step in steps
    ]


@dataclass
class DunningRow:
    invoice: Invoice
    process: Any
    level: str
    reminders: int | None
    step_id: str
    step_name: str
    next_at: Any  # datetime of the step's timer or task due time, or None
    next_what: str
    age_days: int
    overdue_days: int | None


def dunning_rows(invoices: list[Invoice], *, today: date | None = None) -> list[DunningRow]:
    """The overview's rows for ``invoices`` (annotated by ``open_dunnings``): level, next step and when,
    read for all of them at once (processes, pending timers, open tasks: three queries)."""
    from django.db.models import Min
    from django.utils import timezone

    from workflows.compiler import graph_for_version
    from workflows.models import Process, Task, Timer

    today = today or timezone.localdate()
    ids = [invoice.dunning_process_id for invoice in invoices]
    processes = Process.objects.in_bulk(ids)
    timers = dict(
        Timer.objects.filter(process_id__in=ids, state=Timer.State.PENDING)
        .exclude(kind=Timer.Kind.ESCALATION)
        .values("process_id")
        .annotate(due=Min("due_at"))
        .values_list("process_id", "due")
    )
    tasks: dict[int, tuple[Any, str]] = {}
    for process_id, due_at, name in (
        Task.objects.filter(process_id__in=ids, state__in=Task.ACTIVE_STATES)
        .order_by("process_id", "due_at")
        .values_list("process_id", "due_at", "name")
    ):
        tasks.setdefault(process_id, (due_at, name))
    rows = []
    for invoice in invoices:
        process = processes.get(invoice.dunning_process_id)
        step_id = getattr(invoice, "dunning_step", "") or ""
        step_name = step_id
        if process is not None and step_id:
            try:
                step = graph_for_version(process.version_id).steps.get(step_id) or {}
            except Exception:  # noqa: BLE001 - an unreadable graph still lists the invoice
                step = {}
            named = step.get("name") or ""
            step_name = named if named and named != step_id else step_id.replace("_", " ").capitalize()
        reminders = invoice.dunning_level_sort if invoice.dunning_level_sort >= 0 else None
        level = f"{reminders} reminder{'s' if reminders != 1 else ''} sent" if reminders is not None else step_name
        next_at, next_what = None, ""
        if process is not None and process.pk in tasks:
            next_at, task_name = tasks[process.pk]
            next_what = f"Task: {task_name}"
        elif process is not None and process.pk in timers:
            next_at, next_what = timers[process.pk], "Timer"
        if process is not None and process.state == Process.State.SUSPENDED:
            next_what = "Process suspended"
        first = invoice.first_failure_at
        age = (today - timezone.localdate(first)).days if first else 0
        overdue = (today - invoice.due_date).days if invoice.due_date and invoice.due_date < today else None
        rows.append(
            DunningRow(invoice, process, level, reminders, step_id, step_name, next_at, next_what, max(age, 0), overdue)
        )
    return rows


def invoices_for_client(client: Any, qs: QuerySet | None = None) -> QuerySet:
    """Invoices a REST API client may read: those billing a contract it may see, and those of a customer
    it may see (``carparks.access``); everything else is 404 to it."""
    from carparks.access import contracts_for_client, customers_for_client

    qs = Invoice.objects.all() if qs is None else qs
    billed = InvoiceLine.objects.filter(contract__in=contracts_for_client(client).values("pk")).values("invoice_id")
    return qs.filter(Q(pk__in=billed) | Q(customer__in=customers_for_client(client).values("pk")))
