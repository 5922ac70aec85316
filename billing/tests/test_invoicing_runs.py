"""Guard rails on invoicing runs: the period Finance may bill, a preview that bills nothing, an explicit
confirmation (queued once), and cancellation until the run's invoices are issued and go out."""

import threading
import time
from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.db import connection, transaction
from django.urls import reverse

from billing import services, tasks
from billing.models import Invoice, InvoicingRun, NumberSeries, Payment, PaymentMethod
from billing.tests.factories import ContractFactory
from carparks.models import Contract
from carparks.tests.factories import CorporateFactory, CustomerFactory

TODAY = "2026-12-04 10:00 +01:00"


def card_for(customer):
    return PaymentMethod.objects.create(
        customer=customer,
        stripe_customer_id=f"cus_{customer.pk}",
        stripe_payment_method_id=f"pm_{customer.pk}",
        brand="visa",
        last4="4242",
    )


def billable_month():
    """Five customers: two with a card (one a company with two contracts, one joining mid-month), three
    without (one of them terminated mid-month); a suspended contract that is not billed."""
    company = CorporateFactory()
    card_for(company)
    ContractFactory(customer=company, monthly_price=Decimal("99.00"))
    ContractFactory(customer=company, monthly_price=Decimal("49.50"), start_date=date(2026, 11, 16))
    carded = CustomerFactory()
    card_for(carded)
    ContractFactory(customer=carded, monthly_price=Decimal("119.00"))
    ContractFactory(monthly_price=Decimal("89.00"))
    ContractFactory(monthly_price=Decimal("75.00"), state=Contract.State.TERMINATED, end_date=date(2026, 11, 10))
    ContractFactory(monthly_price=Decimal("60.00"), state=Contract.State.SUSPENDED)


# --- the period --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("today", "period", "allowed"),
    [
        ("2026-12-04", date(2026, 12, 1), True),  # the current month
        ("2026-12-04", date(2026, 11, 1), True),  # past months
        ("2026-12-04", date(2025, 1, 1), True),
        ("2026-12-04", date(2027, 1, 1), False),  # next month, 28 days ahead
        ("2026-12-26", date(2027, 1, 1), False),  # 6 days before it starts
        ("2026-12-27", date(2027, 1, 1), True),  # 5 days before it starts (BILLING_RUN_EARLY_DAYS)
        ("2026-12-31", date(2027, 1, 1), True),
        ("2026-12-31", date(2027, 2, 1), False),  # the month after next, never
    ],
)
def test_it_allows_past_and_current_months_and_the_next_one_only_within_the_early_days(today, period, allowed):
    check = lambda: services.invoicing_run_period_check(period_start=period, today=date.fromisoformat(today))  # noqa: E731
    if allowed:
        check()
    else:
        with pytest.raises(services.BillingError):
            check()


@pytest.mark.django_db
def test_it_reads_the_early_days_from_the_setting(settings):
    settings.BILLING_RUN_EARLY_DAYS = 10
    services.invoicing_run_period_check(period_start=date(2027, 1, 1), today=date(2026, 12, 22))
    with pytest.raises(services.BillingError, match="from 22.12.2026"):
        services.invoicing_run_period_check(period_start=date(2027, 1, 1), today=date(2026, 12, 21))


@pytest.mark.django_db
@time_machine.travel(TODAY, tick=False)
@pytest.mark.parametrize(
    ("period", "message"),
    [
        ("2027-01", b"can be billed from 27.12.2026"),
        ("2027-06", b"too far ahead"),
        ("2026-13", b"There is no month 13"),
        ("March", b"Enter the month as YYYY-MM"),
        ("2026-0\x001", b"Null characters are not allowed"),
        ("2" * 10_000, b"Ensure this value has at most 7 characters"),
        ("", b"This field is required"),
        ("1999-12", b"from 2000 on"),
    ],
)
def test_it_answers_a_month_finance_may_not_bill_at_the_field(client, finance_user, period, message):
    client.force_login(finance_user)
    response = client.post(reverse("billing:run-create"), {"period": period})
    assert response.status_code == 400
    assert message in response.content and b"invalid-feedback" in response.content
    assert not InvoicingRun.objects.exists()


# --- the preview -------------------------------------------------------------------------------


@pytest.mark.django_db
@time_machine.travel(TODAY, tick=False)
def test_it_previews_exactly_what_the_run_then_creates(client, finance_user):
    billable_month()
    client.force_login(finance_user)
    response = client.post(reverse("billing:run-create"), {"period": "2026-11"})
    run = InvoicingRun.objects.get()
    assert response["Location"] == reverse("billing:run-detail", args=[run.pk])
    assert run.state == InvoicingRun.State.PREVIEW and run.started_by == finance_user
    preview = run.preview
    page = client.get(reverse("billing:run-detail", args=[run.pk]))
    assert b"Preview: what this run will do" in page.content and b"Confirm and run" in page.content

    client.post(reverse("billing:run-confirm", args=[run.pk]), {"confirm": "on"})
    tasks.invoicing_run_task(run.pk, deliver=False)  # what the worker does
    run.refresh_from_db()
    invoices = Invoice.objects.filter(run=run)
    with_card = set(PaymentMethod.objects.values_list("customer_id", flat=True))
    assert run.state == InvoicingRun.State.DONE
    assert preview["invoices"] == invoices.count() == 4
    assert Decimal(preview["gross_total"]) == sum(i.gross_total for i in invoices)
    assert preview["charged_by_card"] == invoices.filter(customer_id__in=with_card).count() == 2
    assert preview["without_card"] == 2
    assert preview["lines"] == run.lines_created == 5
    assert Decimal(preview["gross_by_card"]) == sum(i.gross_total for i in invoices if i.customer_id in with_card)
    assert all(i.state == Invoice.State.ISSUED and i.number for i in invoices)


@pytest.mark.django_db
@time_machine.travel(TODAY, tick=False)
def test_it_neither_emails_nor_charges_nor_issues_anything_before_confirmation(
    client, finance_user, django_capture_on_commit_callbacks
):
    billable_month()
    client.force_login(finance_user)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        client.post(reverse("billing:run-create"), {"period": "2026-12"})
    run = InvoicingRun.objects.get()
    assert run.preview["invoices"] == 3 and not callbacks  # the contract that ended in November is not due
    # A worker handed the preview (a stray message) does nothing; the service refuses it.
    assert tasks.invoicing_run_task(run.pk) == 0
    with pytest.raises(services.BillingError, match="preview"):
        services.invoicing_run_execute(run=run)
    # The confirmation needs its box ticked.
    response = client.post(reverse("billing:run-confirm", args=[run.pk]), {})
    assert response.status_code == 400 and b"Tick the box" in response.content
    run.refresh_from_db()
    assert run.state == InvoicingRun.State.PREVIEW and run.confirmed_at is None
    assert mail.outbox == [] and not Payment.objects.exists() and not Invoice.objects.exists()


@pytest.mark.django_db
@time_machine.travel(TODAY, tick=False)
def test_it_refreshes_a_preview_and_reuses_the_open_preview_of_a_month(finance_user):
    ContractFactory()
    run = services.invoicing_run_preview_create(period_start=date(2026, 12, 1), user=finance_user)
    assert run.preview["invoices"] == 1
    ContractFactory()
    again = services.invoicing_run_preview_create(period_start=date(2026, 12, 15), user=finance_user)
    assert again.pk == run.pk and again.preview["invoices"] == 2
    ContractFactory()
    assert services.invoicing_run_preview_refresh(run=run).preview["invoices"] == 3


# --- confirmation ------------------------------------------------------------------------------


@pytest.mark.django_db
@time_machine.travel(TODAY, tick=False)
def test_it_confirms_a_run_once(client, finance_user, django_capture_on_commit_callbacks):
    ContractFactory()
    run = services.invoicing_run_preview_create(period_start=date(2026, 12, 1), user=finance_user)
    client.force_login(finance_user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post(reverse("billing:run-confirm", args=[run.pk]), {"confirm": "on"})
        response = client.post(reverse("billing:run-confirm", args=[run.pk]), {"confirm": "on"}, follow=True)
    assert len(callbacks) == 1  # queued once
    assert b"confirmed already" in response.content
    run.refresh_from_db()
    assert run.state == InvoicingRun.State.QUEUED and run.confirmed_by == finance_user and run.confirmed_at


@pytest.fixture
def eager_celery():
    from parkinghq.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.mark.django_db(transaction=True)
def test_it_runs_once_when_two_people_confirm_it_at_the_same_moment(finance_user, eager_celery):
    """Two confirmations race on PostgreSQL: the run row's lock lets one queue the run, the other is told."""
    ContractFactory(start_date=date(2000, 1, 1))
    run = services.invoicing_run_preview_create(period_start=date(2026, 11, 1), user=finance_user)
    confirmed, refused = [], []
    barrier = threading.Barrier(2)

    def confirm():
        try:
            barrier.wait(5)
            confirmed.append(services.invoicing_run_confirm(run=run, user=finance_user))
        except services.BillingError as exc:
            refused.append(str(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(confirmed) == 1 and len(refused) == 1 and "confirmed already" in refused[0]
    run.refresh_from_db()
    # The eager worker ran the queued run once (on commit): one invoice, not two runs' worth.
    assert run.state == InvoicingRun.State.DONE and run.invoices_created == 1
    assert Invoice.objects.count() == 1 and InvoicingRun.objects.count() == 1


@pytest.mark.django_db
def test_the_schedule_and_processes_make_runs_confirmed_by_the_system():
    run = services.invoicing_run_create(period_start=date(2026, 11, 5))
    assert run.state == InvoicingRun.State.QUEUED and run.confirmed_at and run.confirmed_by is None
    assert (run.period_start, run.period_end) == (date(2026, 11, 1), date(2026, 11, 30))


# --- cancellation ------------------------------------------------------------------------------


@pytest.mark.django_db
@time_machine.travel(TODAY, tick=False)
def test_a_run_cancelled_before_its_worker_starts_bills_emails_and_charges_nothing(
    client, finance_user, django_capture_on_commit_callbacks
):
    billable_month()
    run = services.invoicing_run_preview_create(period_start=date(2026, 12, 1), user=finance_user)
    client.force_login(finance_user)
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("billing:run-confirm", args=[run.pk]), {"confirm": "on"})
    response = client.post(reverse("billing:run-cancel", args=[run.pk]), follow=True)
    assert b"is cancelled" in response.content and b"Nothing was issued, emailed or charged" in response.content
    assert tasks.invoicing_run_task(run.pk) == 0  # the queued message arrives after all
    run.refresh_from_db()
    assert run.state == InvoicingRun.State.CANCELLED and run.cancelled_at
    assert mail.outbox == [] and not Invoice.objects.exists() and not Payment.objects.exists()


@pytest.mark.django_db
@time_machine.travel(TODAY, tick=False)
def test_a_preview_can_be_cancelled_and_a_finished_run_cannot(client, finance_user):
    ContractFactory()
    preview = services.invoicing_run_preview_create(period_start=date(2026, 12, 1), user=finance_user)
    services.invoicing_run_cancel(run=preview, user=finance_user)
    assert InvoicingRun.objects.get(pk=preview.pk).state == InvoicingRun.State.CANCELLED
    with pytest.raises(services.BillingError, match="cancelled already"):
        services.invoicing_run_cancel(run=preview, user=finance_user)

    done = services.invoicing_run_execute(
        run=services.invoicing_run_create(period_start=date(2026, 12, 1)), deliver=False
    )
    client.force_login(finance_user)
    page = client.get(reverse("billing:run-detail", args=[done.pk]))
    assert b"Cancel this run" not in page.content
    response = client.post(reverse("billing:run-cancel", args=[done.pk]), follow=True)
    assert b"can no longer be cancelled" in response.content
    assert InvoicingRun.objects.get(pk=done.pk).state == InvoicingRun.State.DONE


def _hold_row_lock(model, pk, release: threading.Event, held: threading.Event):
    try:
        with transaction.atomic():
            model.objects.select_for_update().get(pk=pk)
            held.set()
            release.wait(10)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_run_in_progress_stops_at_its_next_chunk_when_cancelled(finance_user):
    """The run waits for the number series between chunks; cancelled meanwhile, it bills nothing more."""
    for _ in range(3):
        ContractFactory(start_date=date(2000, 1, 1))
    run = services.invoicing_run_create(period_start=date(2026, 11, 1))
    NumberSeries.objects.get_or_create(key=f"INV{date.today().year}")
    result = {}

    def execute():
        try:
            result["run"] = services.invoicing_run_execute(run=run, chunk_size=1, deliver=False)
        finally:
            connection.close()

    with transaction.atomic():
        NumberSeries.objects.select_for_update().get(key=f"INV{date.today().year}")
        worker = threading.Thread(target=execute)
        worker.start()
        for _ in range(100):  # until the run has started and waits for the series
            if InvoicingRun.objects.get(pk=run.pk).state == InvoicingRun.State.RUNNING:
                break
            time.sleep(0.05)
        time.sleep(0.3)
        services.invoicing_run_cancel(run=run, user=finance_user)
    worker.join(10)
    assert result["run"].state == InvoicingRun.State.CANCELLED
    assert not Invoice.objects.exists() and mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_cancelling_an_interrupted_run_deletes_its_drafts_so_the_next_run_bills_everything(finance_user):
    """A run stopped after its first chunk (here: a contract row locked beyond the lock timeout) has made
    drafts only: nothing numbered, emailed or charged. Cancelled, its drafts go and the contracts are free."""
    first, second = ContractFactory(start_date=date(2000, 1, 1)), ContractFactory(start_date=date(2000, 1, 1))
    assert first.customer_id < second.customer_id
    run = services.invoicing_run_create(period_start=date(2026, 11, 1))
    release, held = threading.Event(), threading.Event()
    locker = threading.Thread(target=_hold_row_lock, args=(Contract, second.pk, release, held))
    locker.start()
    held.wait(5)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        with pytest.raises(Exception, match="lock timeout"):
            services.invoicing_run_execute(run=run, chunk_size=1)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
        release.set()
        locker.join(10)
    run.refresh_from_db()
    draft = Invoice.objects.get()
    assert run.state == InvoicingRun.State.FAILED
    assert draft.state == Invoice.State.DRAFT and draft.number is None and draft.customer_id == first.customer_id
    assert services.invoicing_run_cancellable(run)

    services.invoicing_run_cancel(run=run, user=finance_user)
    run.refresh_from_db()
    assert run.state == InvoicingRun.State.CANCELLED and run.preview["drafts_deleted"] == 1
    assert not Invoice.objects.exists() and mail.outbox == [] and not Payment.objects.exists()

    again = services.invoicing_run_execute(
        run=services.invoicing_run_create(period_start=date(2026, 11, 1)), deliver=False
    )
    assert again.invoices_created == 2 and Invoice.objects.filter(state=Invoice.State.ISSUED).count() == 2
