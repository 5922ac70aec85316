"""Finance's dunning overview: every open dunning (found through the payment.failed event's process),
its level, age and next step, filters, sorting, the CSV export and who may see it."""

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from accounts import roles
from billing import finance_views, services
from billing.models import Invoice, Payment
from billing.tests.factories import ContractFactory
from carparks.tests.factories import CustomerFactory
from parkinghq.csv_cells import csv_text

pytestmark = [
    pytest.mark.django_db,
]


def issued_invoice(name: str, price: str) -> Invoice:
    contract = ContractFactory(customer=CustomerFactory(name=name), monthly_price=Decimal(price))
    run = services.invoicing_run_create(period_start=date(2026, 11, 1))
    services.invoicing_run_execute(run=run, deliver=False)
    return Invoice.objects.get(customer=contract.customer)


def card_declined(invoice: Invoice):
    """What a declined off-session charge records (without Stripe): a failed payment, the invoice open,
    and payment.failed emitted, which starts the dunning workflow bound to it."""
    from workflows.testing import run_pending_system_steps

    attempt = invoice.payments.count() + 1
    payment = Payment.objects.create(
        invoice=invoice,
        amount=invoice.gross_total,
        attempt=attempt,
        status=Payment.Status.FAILED,
        idempotency_key=f"invoice-{invoice.pk}-charge-{attempt}",
        failure_code="card_declined",
        failure_message="Your card was declined.",
    )
    invoice.refresh_from_db()
    if invoice.state == Invoice.State.ISSUED:
        invoice.mark_open()
        invoice.save(update_fields=["state"])
    process = services.dunning_start(invoice=invoice, payment=payment)
    run_pending_system_steps()
    return process


@pytest.fixture
def dunnings():
    """Anna's invoice is at the second reminder since 2 November, Bernd's at the first since 1 December;
    the others have no open dunning (paid, cancelled, credited, never failed)."""
    from workflows.services import process_cancel
    from workflows.testing import fire_due_timers, run_pending_system_steps

    with time_machine.travel("2026-11-02 09:00 +01:00", tick=False):
        anna = issued_invoice("Anna Alt", "119.00")
        paid = issued_invoice("Paula Paid", "89.00")
        cancelled = issued_invoice("Carl Cancelled", "99.00")
        credited = issued_invoice("Credit Ltd", "59.00")
        fine = issued_invoice("Fiona Fine", "79.00")
        card_declined(anna)
        card_declined(paid)
        process_cancel(process=card_declined(cancelled), reason="Settled by phone")
        card_declined(credited)
    with time_machine.travel("2026-11-05 10:00 +01:00", tick=False):
        fire_due_timers()  # Anna's first wait is over: the card is retried (no card saved) and she is reminded again
        run_pending_system_steps()
        services.invoice_record_transfer(invoice=paid, reference="SEPA 1")
        services.payment_received(invoice=Invoice.objects.get(pk=paid.pk))
        services.credit_note_issue(invoice=credited, reason="Contract cancelled")
    with time_machine.travel("2026-12-01 09:00 +01:00", tick=False):
        bernd = issued_invoice("Bernd Neu", "49.50")
        card_declined(bernd)
    return {"anna": anna, "bernd": bernd, "fine": fine}


def rows(content: bytes) -> list[str]:
    import re

    return re.findall(rb'<tr data-invoice="(\d+)">', content)


@time_machine.travel("2026-12-04 10:00 +01:00", tick=False)
def test_it_lists_only_open_dunnings_with_their_level_age_and_next_step(client, finance_user, dunnings):
    client.force_login(finance_user)
    response = client.get(reverse("billing:dunning-list"))
    assert response.status_code == 200
    anna, bernd = dunnings["anna"], dunnings["bernd"]
    assert rows(response.content) == [str(anna.pk).encode(), str(bernd.pk).encode()]  # oldest first

    listed = {row.invoice.pk: row for row in response.context["rows"]}
    assert (listed[anna.pk].level, listed[anna.pk].reminders, listed[anna.pk].age_days) == ("2 reminders sent", 2, 32)
    assert (listed[bernd.pk].level, listed[bernd.pk].reminders, listed[bernd.pk].age_days) == ("1 reminder sent", 1, 3)
    assert listed[anna.pk].step_id == "wait_2" and listed[bernd.pk].step_id == "wait_1"
    # The next step is the wait's timer: 4 days after Anna's second reminder, 3 after Bernd's first.
    assert listed[anna.pk].next_at.date() == date(2026, 11, 9) and listed[bernd.pk].next_at.date() == date(2026, 12, 4)
    assert b"Anna Alt" in response.content and b"119.00" in response.content and b"2 reminders sent" in response.content
    assert b"Paula Paid" not in response.content and b"Carl Cancelled" not in response.content
    assert b"Credit Ltd" not in response.content and b"Fiona Fine" not in response.content


@time_machine.travel("2026-12-04 10:00 +01:00", tick=False)
@pytest.mark.parametrize(
    ("query", "who"),
    [
        ({"level": "r2"}, ["anna"]),
        ({"level": "r1"}, ["bernd"]),
        ({"age": "0-7"}, ["bernd"]),
        ({"age": "31-60"}, ["anna"]),
        ({"age": "61+"}, []),
        ({"amount_min": "100"}, ["anna"]),
        ({"amount_min": "49.50"}, ["anna", "bernd"]),
        ({"q": "bernd"}, ["bernd"]),
        ({"q": "nobody"}, []),
        ({"sort": "amount"}, ["bernd", "anna"]),
        ({"sort": "-amount"}, ["anna", "bernd"]),
        ({"sort": "age"}, ["bernd", "anna"]),
        ({"sort": "-level"}, ["anna", "bernd"]),
        ({"sort": "customer"}, ["anna", "bernd"]),
        ({"sort": "-customer"}, ["bernd", "anna"]),
    ],
)
def test_it_filters_and_sorts(client, finance_user, dunnings, query, who):
    client.force_login(finance_user)
    response = client.get(reverse("billing:dunning-list"), query)
    assert rows(response.content) == [str(dunnings[name].pk).encode() for name in who]
    if not who:
        assert b"No open dunnings match this filter" in response.content


@time_machine.travel("2026-12-04 10:00 +01:00", tick=False)
@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"amount_min": "lots"}, b"Enter a number."),
        ({"amount_min": "-5"}, b"greater than or equal to 0"),
        ({"level": "r99"}, b"Select a valid choice."),
        ({"age": "forever"}, b"Select a valid choice."),
        ({"q": "x" * 10_000}, b"at most 200 characters"),
    ],
)
def test_it_answers_wrong_filters_at_the_field_and_still_lists(client, finance_user, dunnings, query, error):
    client.force_login(finance_user)
    response = client.get(reverse("billing:dunning-list"), query)
    assert response.status_code == 200 and error in response.content
    assert len(rows(response.content)) == 2  # the wrong filter is left out


def test_a_nul_character_in_a_filter_is_refused_before_the_database(client, finance_user):
    client.force_login(finance_user)
    response = client.get(reverse("billing:dunning-list"), {"q": "Anna\x00"})
    assert response.status_code == 400 and b"NUL" in response.content  # the portal's guard, not a 500


@time_machine.travel("2026-12-04 10:00 +01:00", tick=False)
def test_it_pages_the_list(client, finance_user, dunnings, monkeypatch):
    monkeypatch.setattr(finance_views, "PAGE_SIZE", 1)
    client.force_login(finance_user)
    first = client.get(reverse("billing:dunning-list"))
    second = client.get(reverse("billing:dunning-list"), {"page": 2})
    assert rows(first.content) == [str(dunnings["anna"].pk).encode()] and b"Page 1 of 2" in first.content
    assert rows(second.content) == [str(dunnings["bernd"].pk).encode()]


@time_machine.travel("2026-12-04 10:00 +01:00", tick=False)
def test_it_exports_the_filtered_rows_as_csv_safe_for_spreadsheets(client, finance_user, dunnings):
    Invoice.objects.get(pk=dunnings["bernd"].pk).customer.__class__.objects.filter(
        pk=dunnings["bernd"].customer_id
    ).update(name='=HYPERLINK("http://evil.example","Bernd")', email="@bernd@example.com")
    client.force_login(finance_user)
    response = client.get(reverse("billing:dunning-export"))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    table = list(csv.DictReader(io.StringIO(text)))
    assert [row["Invoice"] for row in table] == [dunnings["anna"].display_number, dunnings["bernd"].display_number]
    anna, bernd = table
    assert (anna["Customer"], anna["Amount"], anna["Level"], anna["Reminders sent"], anna["Age (days)"]) == (
        "Anna Alt",
        "119.00",
        "2 reminders sent",
        "2",
        "32",
    )
    assert anna["Current step"] == "Wait for payment (second reminder)" and anna["Next due"].startswith("2026-11-09")
    assert bernd["Customer"] == '\'=HYPERLINK("http://evil.example","Bernd")'
    assert bernd["Customer email"] == "'@bernd@example.com"

    filtered = client.get(reverse("billing:dunning-export"), {"amount_min": "100"})
    table = list(csv.DictReader(io.StringIO(b"".join(filtered.streaming_content).decode("utf-8-sig"))))
    assert [row["Invoice"] for row in table] == [dunnings["anna"].display_number]


def test_csv_cells_that_a_spreadsheet_would_compute_are_quoted():
    assert [csv_text(v) for v in ("=1+1", "+49 89", "-2", "@SUM(A1)", "Anna", 12, None)] == [
        "'=1+1",
        "'+49 89",
        "'-2",
        "'@SUM(A1)",
        "Anna",
        "12",
        "",
    ]


def test_it_shows_an_empty_state(client, finance_user):
    client.force_login(finance_user)
    response = client.get(reverse("billing:dunning-list"))
    assert b"No open dunnings." in response.content and b"When a card payment fails" in response.content


def test_finance_supervisors_and_administrators_see_it_and_agents_get_403(
    client, make_user, login, finance_user, agent_user, admin_user_role
):
    urls = [reverse("billing:dunning-list"), reverse("billing:dunning-export")]
    supervisor = make_user("sup", roles.SUPERVISOR)
    for user in (finance_user, admin_user_role, supervisor):
        client.logout()
        login(client, user)
        assert [client.get(url).status_code for url in urls] == [200, 200], user
    client.logout()
    client.force_login(agent_user)
    assert [client.get(url).status_code for url in urls] == [403, 403]
    client.logout()
    assert client.get(urls[0]).status_code == 302  # to the login page


def test_the_demo_shows_two_open_dunnings_at_different_levels_and_a_run_in_preview(client, finance_user):
    from billing import demo
    from billing.models import InvoicingRun

    for _ in range(3):
        ContractFactory(start_date=date(2000, 1, 1))
    demo.load(io.StringIO())
    demo.load(io.StringIO())  # idempotent
    client.force_login(finance_user)
    response = client.get(reverse("billing:dunning-list"))
    levels = sorted(row.level for row in response.context["rows"])
    assert levels == ["1 reminder sent", "2 reminders sent"]
    assert InvoicingRun.objects.filter(state=InvoicingRun.State.PREVIEW).count() == 1
    run = InvoicingRun.objects.get(state=InvoicingRun.State.PREVIEW)
    assert run.preview["invoices"] == 3
    assert b"Preview: what this run will do" in client.get(reverse("billing:run-detail", args=[run.pk])).content
