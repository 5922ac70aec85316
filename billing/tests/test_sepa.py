"""SEPA Direct Debit: IBAN check, mandates, debits, returns. Real localstripe where it models the step (the
SEPA PaymentMethod, the SetupIntent, the debit's PaymentIntent going processing → succeeded or failed); the
steps it cannot model are posted, signed, to our webhook from recorded payloads (tests/data/stripe_events)."""

from __future__ import annotations

import itertools
import json
import re
import time
from datetime import UTC, date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from billing import payment_setup, selectors, sepa, services
from billing.iban import IbanField, iban_normalise
from billing.models import Invoice, InvoiceEvent, Payment, PaymentMethod
from billing.payment_options import PaymentOption
from billing.stripe_api import stripe_client
from billing.tests.factories import ContractFactory
from billing.tests.test_stripe import post_webhook, save_card, signed
from carparks.tests.factories import CustomerFactory

EVENTS = Path(__file__).resolve().parent / "data" / "stripe_events"
GOOD_IBAN = "DE89 3704 0044 0532 0130 00"
# localstripe: a debit from this IBAN fails about half a second after it was submitted.
FAILING_IBAN = "DE62370400440532013001"
_event_ids = itertools.count(1)


# --- the IBAN field ------------------------------------------------------------------------------


def test_an_iban_is_normalised_and_a_wrong_checksum_or_a_country_outside_sepa_is_refused():
    assert iban_normalise(" de89 3704 0044 0532 0130 00 ") == "DE89370400440532013000"
    assert iban_normalise("CH9300762011623852957") == "CH9300762011623852957"  # SEPA, not EU
    with pytest.raises(ValidationError) as wrong:
        iban_normalise("DE89 3704 0044 0532 0130 01")
    assert wrong.value.code == "iban_invalid" and "check digits" in wrong.value.messages[0]
    with pytest.raises(ValidationError) as foreign:
        iban_normalise("BR18 0036 0305 0000 1000 9795 493C 1")  # a valid Brazilian IBAN
    assert foreign.value.code == "iban_not_sepa" and "BR is not part of it" in foreign.value.messages[0]
    with pytest.raises(ValidationError):
        iban_normalise("   ")
    field = IbanField()
    assert field.clean("de89370400440532013000") == "DE89370400440532013000"
    with pytest.raises(ValidationError):
        field.clean("US64SVBKUS6S3300958879")


# --- helpers -------------------------------------------------------------------------------------


def accept_mandate(client, customer, iban: str = GOOD_IBAN, token: str | None = None) -> PaymentMethod:
    """What the customer does: open the link, read the mandate, enter holder and IBAN, accept."""
    token = token or sepa.sepa_mandate_token(customer=customer)
    url = reverse("billing:sepa-mandate", args=[token])
    page = client.get(url)
    assert page.status_code == 200
    assert page.context["reference"] in page.context["mandate_text"]
    done = client.post(
        url,
        {"account_holder": "Erika Mustermann", "iban": iban, "accept": "on"},
        HTTP_USER_AGENT="Mozilla/5.0 (test)",
    )
    assert done.status_code == 200, done.content.decode()[:2000]
    return PaymentMethod.objects.get(customer=customer, kind=PaymentMethod.Kind.SEPA_DEBIT, is_default=True)


def sepa_customer(client, iban: str = GOOD_IBAN, **kwargs):
    customer = CustomerFactory(language="en", **kwargs)
    ContractFactory(customer=customer, monthly_price=Decimal("119.00"), start_date=date(2026, 1, 1))
    method = accept_mandate(client, customer, iban)
    customer.refresh_from_db()
    return customer, method


def issue(customer) -> Invoice:
    run = services.invoicing_run_create(period_start=date(2026, 3, 1))
    services.invoicing_run_execute(run=run, deliver=False)
    return Invoice.objects.get(customer=customer, period_start=date(2026, 3, 1))


def settled_intent(intent_id: str, timeout: float = 10.0):
    """localstripe settles a SEPA debit about half a second after it was submitted."""
    deadline = time.monotonic() + timeout
    while True:
        intent = stripe_client().v1.payment_intents.retrieve(intent_id)
        if intent.status != "processing" or time.monotonic() > deadline:
            return intent
        time.sleep(0.2)


def recorded(name: str, payment: Payment, customer) -> bytes:
    """A recorded payload (tests/data/stripe_events) filled in with this test's real localstripe objects."""
    method = payment.payment_method
    text = (EVENTS / f"{name}.json").read_text()
    cents = int(payment.amount * 100)
    for placeholder, value in {
        '"__AMOUNT__"': str(cents),
        '"__MINUS_AMOUNT__"': str(-cents),
        '"__CREATED__"': str(int(time.time())),
        "__EVENT_ID__": f"evt_recorded_{next(_event_ids)}_{time.time_ns()}",
        "__INTENT__": payment.stripe_payment_intent_id,
        "__CHARGE__": payment.stripe_charge_id,
        "__CUSTOMER__": customer.stripe_customer_id,
        "__PAYMENT_METHOD__": method.stripe_payment_method_id if method else "",
        "__INVOICE_ID__": str(payment.invoice_id),
        "__PAYMENT_ID__": str(payment.pk),
    }.items():
        text = text.replace(placeholder, value)
    return json.dumps(json.loads(text)).encode()


def event_of(kind: str, obj) -> bytes:
    """An event around a real localstripe object (what Stripe sends for it)."""
    return json.dumps(
        {
            "id": f"evt_live_{next(_event_ids)}_{time.time_ns()}",
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "data": {"object": obj.to_dict()},
        }
    ).encode()


def deliver(client, settings, payload: bytes):
    response = post_webhook(client, payload, signed(payload, settings.STRIPE_WEBHOOK_SECRET))
    assert response.status_code == 200, response.content
    return response.content.decode()


def processes(invoice, key: str):
    from workflows.models import Process

    return Process.objects.filter(definition__key=key, object_id=invoice.pk)


# --- the mandate ---------------------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db


@pytestmark_db
def test_the_customer_accepts_a_mandate_on_the_link_and_the_account_is_saved_with_it(client, stripe_settings):
    customer = CustomerFactory(language="en")
    ContractFactory(customer=customer)

    method = accept_mandate(client, customer)

    assert (method.kind, method.last4, method.country, method.bank_code) == ("sepa_debit", "3000", "DE", "37040044")
    assert re.fullmatch(rf"PHQ-{customer.pk}-1-[0-9A-F]{{8}}", method.mandate_reference)
    assert method.mandate_accepted_at is not None and method.is_chargeable
    assert method.mandate_acceptance["type"] == "online"
    assert method.mandate_acceptance["user_agent"] == "Mozilla/5.0 (test)" and method.mandate_acceptance["ip_address"]
    assert stripe_settings.BILLING_OPERATOR["sepa_creditor_id"] in method.mandate_text
    assert method.mandate_reference in method.mandate_text and "eight weeks" in method.mandate_text
    remote = stripe_client().v1.payment_methods.retrieve(method.stripe_payment_method_id)
    customer.refresh_from_db()
    assert remote.type == "sepa_debit" and remote.customer == customer.stripe_customer_id
    assert customer.payment_option == PaymentOption.SEPA_DEBIT  # debited from now on


@pytestmark_db
def test_the_mandate_page_is_in_the_customers_language(client, stripe_settings):
    customer = CustomerFactory(language="de")
    page = client.get(reverse("billing:sepa-mandate", args=[sepa.sepa_mandate_token(customer=customer)]))
    assert page.status_code == 200
    assert "SEPA-Lastschriftmandat" in page.context["mandate_text"]
    assert "acht Wochen" in page.context["mandate_text"]


@pytestmark_db
@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"account_holder": "E. M.", "iban": "DE89370400440532013001", "accept": "on"}, "iban", "check digits"),
        ({"account_holder": "E. M.", "iban": "BR1800360305000010009795493C1", "accept": "on"}, "iban", "SEPA area"),
        ({"account_holder": "E. M.", "iban": GOOD_IBAN}, "accept", "Accept the mandate"),
        ({"account_holder": "", "iban": GOOD_IBAN, "accept": "on"}, "account_holder", "required"),
    ],
)
def test_a_bad_iban_or_no_acceptance_is_refused_at_the_field_and_nothing_is_saved(
    client, stripe_settings, data, field, message
):
    customer = CustomerFactory(language="en")
    response = client.post(reverse("billing:sepa-mandate", args=[sepa.sepa_mandate_token(customer=customer)]), data)
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert not PaymentMethod.objects.filter(customer=customer).exists()
    customer.refresh_from_db()
    assert customer.stripe_customer_id == ""  # nothing was sent to Stripe
    assert customer.payment_option == PaymentOption.CARD


@pytestmark_db
def test_a_forged_mandate_link_is_refused(client):
    assert client.get(reverse("billing:sepa-mandate", args=["forged"])).status_code == 400


@pytestmark_db
def test_a_mandate_without_acceptance_is_never_charged(client, stripe_settings):
    customer = CustomerFactory(language="en")
    ContractFactory(customer=customer)
    method = accept_mandate(client, customer)
    # The same account, but the mandate was never accepted (e.g. imported without its acceptance).
    PaymentMethod.objects.filter(pk=method.pk).update(mandate_accepted_at=None)
    invoice = issue(customer)
    assert invoice.payment_option == PaymentOption.SEPA_DEBIT

    result = services.invoice_charge(invoice=invoice, start_dunning=False)

    assert result.status == "no_payment_method"
    assert not Payment.objects.filter(invoice=invoice).exists()
    customer.refresh_from_db()
    assert list(stripe_client().v1.charges.list(params={"customer": customer.stripe_customer_id})) == []
    assert "SEPA account with an accepted mandate" in invoice.billingexception_set.get().message


@pytestmark_db
def test_staff_record_a_paper_mandate_with_its_signature_date(client, stripe_settings, finance_user):
    customer = CustomerFactory(language="en")
    ContractFactory(customer=customer)
    client.force_login(finance_user)
    url = reverse("billing:sepa-mandate-offline", args=[customer.pk])
    tomorrow = timezone.localdate() + timedelta(days=1)
    refused = client.post(url, {"account_holder": "Max", "iban": GOOD_IBAN, "signed_on": tomorrow.isoformat()})
    assert refused.status_code == 400 and not PaymentMethod.objects.filter(customer=customer).exists()

    response = client.post(url, {"account_holder": "Max", "iban": GOOD_IBAN, "signed_on": "2026-02-01"})

    assert response.status_code == 302
    method = PaymentMethod.objects.get(customer=customer)
    assert method.mandate_acceptance["type"] == "offline" and method.mandate_acceptance["signed_on"] == "2026-02-01"
    assert method.mandate_acceptance["recorded_by"] == finance_user.username
    assert method.mandate_accepted_at.date() == date(2026, 2, 1) and method.is_chargeable
    detail = client.get(reverse("billing:sepa-mandate-detail", args=[method.pk]))
    assert detail.status_code == 200 and method.mandate_reference in detail.content.decode()


@pytestmark_db
def test_the_option_must_be_offered_by_the_customers_products(client, finance_user):
    customer = CustomerFactory(language="en")
    contract = ContractFactory(customer=customer)
    contract.product.payment_options = [PaymentOption.CARD.value]
    contract.product.save(update_fields=["payment_options"])

    with pytest.raises(ValidationError) as refused:
        payment_setup.customer_payment_option_set(customer=customer, option="sepa_debit", user=finance_user)

    assert refused.value.code == "not_offered"
    customer.refresh_from_db()
    assert customer.payment_option == PaymentOption.CARD
    assert mail.outbox == []


@pytestmark_db
def test_an_agent_may_not_change_the_payment_option(client, agent_user):
    customer = CustomerFactory()
    client.force_login(agent_user)
    response = client.post(
        reverse("billing:payment-option-change", args=[customer.pk]), {"payment_option": "sepa_debit"}
    )
    assert response.status_code == 403


# --- the issue's Done-means: card → SEPA in the portal, the next invoice debited ------------------


def _sepa_debit_processing(intent: dict, form: dict) -> dict:
    """Stripe's answer to a confirmed SEPA debit: ``processing`` until the bank answers, days later
    (localstripe settles a debit from a good IBAN at once and sends payment_intent.succeeded later)."""
    if form.get("payment_method_types[0]") == "sepa_debit" and intent.get("status") == "succeeded":
        intent = {**intent, "status": "processing", "amount_received": 0}
    return intent


@pytest.fixture
def stripe_like_stripe(settings, localstripe_url):
    """localstripe behind the proxy, which answers a SEPA debit's creation as Stripe does."""
    from billing.tests.stripe_proxy import StripeProxy

    proxy = StripeProxy(localstripe_url)
    proxy.rewrite("POST", "/v1/payment_intents", _sepa_debit_processing)
    settings.STRIPE_API_BASE = proxy.start()
    settings.STRIPE_SECRET_KEY = "sk_test_parkinghq_tests"
    yield settings, proxy
    proxy.stop()


@pytestmark_db
def test_a_customer_switches_from_card_to_sepa_in_the_portal_and_the_next_invoice_is_debited(
    client, stripe_like_stripe, finance_user, django_capture_on_commit_callbacks
):
    settings, proxy = stripe_like_stripe
    customer = CustomerFactory(language="en")
    ContractFactory(customer=customer, monthly_price=Decimal("119.00"), start_date=date(2026, 1, 1))
    save_card(client, customer)
    client.force_login(finance_user)

    # Finance switches the customer to SEPA on the customer page: the mandate link goes out, card stays.
    page = client.get(reverse("carparks:customer-detail", args=[customer.pk]))
    assert "Change payment option" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("billing:payment-option-change", args=[customer.pk]), {"payment_option": "sepa_debit"}, follow=True
        )
    assert "until the customer accepts the mandate" in response.content.decode()
    customer.refresh_from_db()
    assert customer.payment_option == PaymentOption.CARD
    assert [m.subject for m in mail.outbox] == ["Set up SEPA Direct Debit for your season parking"]
    link = re.search(r"https?://\S+/billing/sepa/\S+/", mail.outbox[0].body).group(0)
    token = link.rstrip("/").rsplit("/", 1)[1]

    # The customer accepts the mandate from the email.
    client.logout()
    method = accept_mandate(client, customer, token=token)
    customer.refresh_from_db()
    assert customer.payment_option == PaymentOption.SEPA_DEBIT

    # The next monthly invoice: its email pre-notifies the debit, then the debit is sent and processes.
    invoice = issue(customer)
    assert invoice.payment_option == PaymentOption.SEPA_DEBIT
    services.invoice_send(invoice=invoice)
    body = mail.outbox[-1].body
    assert "by SEPA Direct Debit on" in body and "ending in 3000" in body
    assert method.mandate_reference in body and settings.BILLING_OPERATOR["sepa_creditor_id"] in body
    result = services.invoice_charge(invoice=invoice)
    assert result.status == "processing"
    payment = Payment.objects.get(invoice=invoice, kind=Payment.Kind.CHARGE)
    assert (payment.status, payment.method, payment.payment_method_id) == ("processing", "sepa_debit", method.pk)
    invoice.refresh_from_db()
    assert invoice.state == Invoice.State.ISSUED
    (sent,) = proxy.seen("POST", "/v1/payment_intents")
    assert sent.form["payment_method_types[0]"] == "sepa_debit" and sent.form["off_session"] == "true"
    assert sent.form["payment_method"] == method.stripe_payment_method_id

    # A retry while the bank has not answered sends no second debit.
    assert services.invoice_charge(invoice=invoice).status == "processing"
    # Stripe's payment_intent.processing (recorded payload): nothing changes, however often it comes.
    processing = recorded("payment_intent.processing.sepa_debit", payment, customer)
    assert deliver(client, settings, processing) == "already processing"
    assert deliver(client, settings, processing) == "duplicate"

    # Days later the bank pays: payment_intent.succeeded, delivered twice (as two events).
    intent = settled_intent(payment.stripe_payment_intent_id)
    assert intent.status == "succeeded"
    with django_capture_on_commit_callbacks(execute=False):
        assert deliver(client, settings, event_of("payment_intent.succeeded", intent)) == (
            f"invoice {invoice.display_number} paid"
        )
        assert deliver(client, settings, event_of("payment_intent.succeeded", intent)) == "already recorded"

    invoice.refresh_from_db()
    assert invoice.state == Invoice.State.PAID and invoice.amount_paid == invoice.gross_total
    assert Payment.objects.filter(invoice=invoice).count() == 1  # one ledger row
    assert Payment.objects.get(invoice=invoice).status == Payment.Status.SUCCEEDED
    assert InvoiceEvent.objects.filter(invoice=invoice, to_state="paid").count() == 1
    charges = list(stripe_client().v1.charges.list(params={"customer": customer.stripe_customer_id, "limit": 100}))
    assert [c.amount for c in charges if c.payment_intent == payment.stripe_payment_intent_id] == [11900]


# --- debits that fail and debits that come back ---------------------------------------------------


@pytestmark_db
def test_a_failed_debit_opens_the_invoice_and_starts_the_returned_debit_workflow_not_the_card_one(
    client, stripe_settings
):
    settings = stripe_settings
    customer, method = sepa_customer(client, FAILING_IBAN)
    invoice = issue(customer)
    assert services.invoice_charge(invoice=invoice).status == "processing"
    payment = Payment.objects.get(invoice=invoice)

    intent = settled_intent(payment.stripe_payment_intent_id)  # localstripe fails this IBAN's debit
    assert intent.status == "requires_payment_method"
    assert deliver(client, settings, event_of("payment_intent.payment_failed", intent)) == (
        f"invoice {invoice.display_number} payment failed"
    )

    payment.refresh_from_db()
    invoice.refresh_from_db()
    assert payment.status == Payment.Status.FAILED and invoice.state == Invoice.State.OPEN
    assert processes(invoice, "returned-direct-debit").count() == 1
    assert not processes(invoice, "failed-payment").exists()
    from workflows.models import BusinessEvent

    event = BusinessEvent.objects.get(name="payment.failed", object_id=invoice.pk)
    assert event.payload["method"] == "sepa_debit"


@pytestmark_db
def test_a_chargeback_reopens_the_invoice_books_it_once_and_starts_the_returned_debit_workflow(
    client, stripe_settings, django_capture_on_commit_callbacks
):
    from workflows.testing import run_pending_system_steps

    settings = stripe_settings
    customer, method = sepa_customer(client)
    invoice = issue(customer)
    services.invoice_charge(invoice=invoice)
    payment = Payment.objects.get(invoice=invoice)
    intent = settled_intent(payment.stripe_payment_intent_id)
    with django_capture_on_commit_callbacks(execute=False):
        deliver(client, settings, event_of("payment_intent.succeeded", intent))
    payment.refresh_from_db()
    invoice.refresh_from_db()
    assert invoice.state == Invoice.State.PAID and payment.stripe_charge_id

    # Weeks later the customer's bank takes the money back: Stripe reports a dispute (recorded payload).
    result = deliver(client, settings, recorded("charge.dispute.created.sepa_debit", payment, customer))
    assert result.startswith("dispute recorded")
    deliver(client, settings, recorded("charge.dispute.funds_withdrawn.sepa_debit", payment, customer))

    invoice.refresh_from_db()
    assert invoice.state == Invoice.State.OPEN and invoice.amount_paid == Decimal("0.00")
    chargebacks = Payment.objects.filter(invoice=invoice, kind=Payment.Kind.CHARGEBACK)
    assert [(c.amount, c.method) for c in chargebacks] == [(Decimal("119.00"), "sepa_debit")]
    assert processes(invoice, "returned-direct-debit").count() == 1
    assert not processes(invoice, "failed-payment").exists()
    assert "Direct debit returned by the bank" in invoice.events.last().note

    # The workflow tells the customer, with the bank's reason, then waits for Finance.
    mail.outbox.clear()
    run_pending_system_steps()
    assert [m.subject for m in mail.outbox] == [f"Your direct debit for invoice {invoice.display_number} was returned"]
    assert "insufficient_funds" in mail.outbox[0].body
    process = processes(invoice, "returned-direct-debit").get()
    assert process.tasks.get().name == "Returned direct debit: contact the customer"
    # Stripe closes the dispute as lost (every returned debit is): no second Finance task, nothing booked again.
    deliver(client, settings, recorded("charge.dispute.closed.sepa_debit", payment, customer))
    assert not invoice.billingexception_set.filter(kind="dispute").exists()
    assert Payment.objects.filter(invoice=invoice, kind=Payment.Kind.CHARGEBACK).count() == 1
    # The charge is returned: kept in the ledger, no longer the invoice's live charge, nothing to refund.
    payment.refresh_from_db()
    assert payment.status == Payment.Status.RETURNED
    assert selectors.live_charge(invoice) is None and selectors.invoice_refundable(invoice) == Decimal("0.00")
    # The nightly reconciliation still expects its charge at Stripe, and the dispute's withdrawal.
    from billing import reconciliation

    created = int(payment.created_at.timestamp())
    charge = {"id": "txn_c", "type": "charge", "source": payment.stripe_charge_id, "amount": 11900}
    withdrawal = {"id": "txn_d", "type": "adjustment", "reporting_category": "dispute", "amount": -11900}
    withdrawal["source"] = "du_sepa_returned_1"
    day = payment.created_at.astimezone(UTC).date()
    both = [{**txn, "currency": "eur", "created": created} for txn in (charge, withdrawal)]
    assert reconciliation.differences(day=day, transactions=both) == []
    (missing,) = reconciliation.differences(day=day, transactions=both[1:])
    assert payment.stripe_charge_id in missing.message and "no balance transaction" in missing.message


def charge_back(client, settings, payment: Payment, customer) -> None:
    """The customer's bank takes a succeeded debit back: Stripe's dispute events (recorded payloads)."""
    assert deliver(client, settings, recorded("charge.dispute.created.sepa_debit", payment, customer)).startswith(
        "dispute recorded"
    )
    deliver(client, settings, recorded("charge.dispute.funds_withdrawn.sepa_debit", payment, customer))


@pytestmark_db
def test_a_charged_back_debit_is_returned_and_the_workflows_retry_debits_the_invoice_again(
    client, stripe_like_stripe, finance_user, django_capture_on_commit_callbacks
):
    from billing import tasks
    from workflows import engine
    from workflows.models import SystemJob, Timer
    from workflows.services import task_complete
    from workflows.testing import fire_due_timers, run_pending_system_steps

    settings, proxy = stripe_like_stripe
    customer, method = sepa_customer(client)
    invoice = issue(customer)
    assert services.invoice_charge(invoice=invoice).status == "processing"
    first = Payment.objects.get(invoice=invoice)
    first_intent = settled_intent(first.stripe_payment_intent_id)
    with django_capture_on_commit_callbacks(execute=False):
        deliver(client, settings, event_of("payment_intent.succeeded", first_intent))
    invoice.refresh_from_db()
    assert invoice.state == Invoice.State.PAID

    # Weeks later the bank takes the money back; Stripe's events come twice, one also as a second event.
    created = recorded("charge.dispute.created.sepa_debit", first, customer)
    assert deliver(client, settings, created).startswith("dispute recorded")
    assert deliver(client, settings, created) == "duplicate"
    assert deliver(client, settings, recorded("charge.dispute.created.sepa_debit", first, customer)).startswith(
        "dispute known"
    )
    deliver(client, settings, recorded("charge.dispute.funds_withdrawn.sepa_debit", first, customer))
    # A late copy of the old debit's success does not make it live again.
    assert deliver(client, settings, event_of("payment_intent.succeeded", first_intent)) == "already recorded"

    first.refresh_from_db()
    invoice.refresh_from_db()
    assert first.status == Payment.Status.RETURNED
    assert invoice.state == Invoice.State.OPEN and invoice.amount_paid == Decimal("0.00")
    assert selectors.live_charge(invoice) is None

    # The returned-debit workflow tells the customer; Finance chooses to debit once more.
    run_pending_system_steps()
    process = processes(invoice, "returned-direct-debit").get()
    task_complete(task=process.tasks.get(), user=finance_user, outcome="retry", inputs={})
    run_pending_system_steps()
    process.refresh_from_db()
    assert process.current_step == "wait_retry"
    assert Payment.objects.filter(invoice=invoice, kind=Payment.Kind.CHARGE).count() == 1  # not before five days

    # Five days later the retry debits again by the normal path: a new attempt, processing at the bank.
    wait = Timer.objects.get(process=process, step_id="wait_retry", state=Timer.State.PENDING)
    assert wait.due_at - timezone.now() > timedelta(days=4, hours=23)
    Timer.objects.filter(pk=wait.pk).update(due_at=timezone.now())
    assert fire_due_timers() == 1
    run_pending_system_steps()
    process.refresh_from_db()
    assert process.current_step == "wait_debit" and process.variables["charge_status"] == "processing"
    second = Payment.objects.get(invoice=invoice, kind=Payment.Kind.CHARGE, status=Payment.Status.PROCESSING)
    assert (second.attempt, second.method, second.payment_method_id) == (2, "sepa_debit", method.pk)
    assert second.stripe_payment_intent_id not in ("", first.stripe_payment_intent_id)
    assert len(proxy.seen("POST", "/v1/payment_intents")) == 2

    # The retry job run again, and another charge job meanwhile: no second debit.
    retry_job = SystemJob.objects.get(process=process, step_id="retry_debit")
    assert engine.execute_job(retry_job.pk) in ("skipped", "stale")
    assert services.invoice_charge(invoice=invoice).status == "processing"
    assert Payment.objects.filter(invoice=invoice, kind=Payment.Kind.CHARGE).count() == 2

    # Days later the bank pays (delivered twice): the invoice is paid and the workflow ends paid.
    second_intent = settled_intent(second.stripe_payment_intent_id)
    with django_capture_on_commit_callbacks(execute=False):
        assert deliver(client, settings, event_of("payment_intent.succeeded", second_intent)) == (
            f"invoice {invoice.display_number} paid"
        )
        assert deliver(client, settings, event_of("payment_intent.succeeded", second_intent)) == "already recorded"
    tasks.payment_received(invoice.pk)
    run_pending_system_steps()

    invoice.refresh_from_db()
    process.refresh_from_db()
    assert invoice.state == Invoice.State.PAID and invoice.amount_paid == invoice.gross_total
    assert (process.state, process.current_step) == ("completed", "paid")
    ledger = sorted(Payment.objects.filter(invoice=invoice).values_list("kind", "status", "amount"))
    assert ledger == [
        ("charge", "returned", Decimal("119.00")),
        ("charge", "succeeded", Decimal("119.00")),
        ("chargeback", "succeeded", Decimal("119.00")),
    ]
    charges = list(stripe_client().v1.charges.list(params={"customer": customer.stripe_customer_id, "limit": 100}))
    assert sorted(c.payment_intent for c in charges) == sorted(
        [first.stripe_payment_intent_id, second.stripe_payment_intent_id]
    )


@pytest.mark.django_db(transaction=True)
def test_parallel_charge_jobs_after_a_chargeback_debit_once_more(client, stripe_settings):
    import threading

    from django.db import close_old_connections, connection

    settings = stripe_settings
    customer, method = sepa_customer(client)
    invoice = issue(customer)
    services.invoice_charge(invoice=invoice)
    first = Payment.objects.get(invoice=invoice)
    settled_intent(first.stripe_payment_intent_id)
    first.refresh_from_db()
    assert first.status == Payment.Status.SUCCEEDED  # localstripe settles a good IBAN's debit at once
    charge_back(client, settings, first, customer)
    barrier = threading.Barrier(3)
    results = []

    def job():
        try:
            barrier.wait()
            results.append(services.invoice_charge(invoice=invoice, start_dunning=False).status)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=job) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == ["succeeded"] * 3
    charges = Payment.objects.filter(invoice=invoice, kind=Payment.Kind.CHARGE).order_by("pk")
    assert [(c.attempt, c.status) for c in charges] == [(1, "returned"), (2, "succeeded")]
    customer.refresh_from_db()
    assert len(list(stripe_client().v1.charges.list(params={"customer": customer.stripe_customer_id}))) == 2
    invoice.refresh_from_db()
    assert invoice.state == Invoice.State.PAID


@pytestmark_db
def test_the_ledger_holds_one_live_charge_per_invoice_besides_its_returned_ones():
    from django.db import IntegrityError, transaction

    invoice = Invoice.objects.create(
        customer=CustomerFactory(), period_start=date(2026, 3, 1), period_end=date(2026, 3, 31), state="open",
        series="TEST", number=1, issue_date=date(2026, 3, 3), gross_total=Decimal("119.00"),
    )  # fmt: skip

    def charge(attempt: int, status: str) -> Payment:
        return Payment.objects.create(
            invoice=invoice, amount=Decimal("119.00"), attempt=attempt, status=status,
            idempotency_key=f"invoice-{invoice.pk}-charge-{attempt}",
        )  # fmt: skip

    charge(1, Payment.Status.RETURNED)
    charge(2, Payment.Status.RETURNED)
    live = charge(3, Payment.Status.PROCESSING)
    for status in (Payment.Status.PENDING, Payment.Status.PROCESSING, Payment.Status.SUCCEEDED):
        with pytest.raises(IntegrityError), transaction.atomic():
            charge(4, status)
    assert selectors.live_charge(invoice) == live


@pytestmark_db
def test_debits_charged_back_before_the_returned_status_become_returned_and_can_be_debited_again():
    """The migration that introduced ``returned``: a SEPA charge with a dispute (every one is a returned debit)
    becomes returned; a disputed card payment is left as it is; going back restores them."""
    import importlib

    from django.apps import apps

    from billing.models import Dispute

    migration = importlib.import_module("billing.migrations.0008_payment_status_returned")
    customer = CustomerFactory()
    rows = {}
    for number, method in enumerate(("sepa_debit", "card", "sepa_debit"), start=1):
        invoice = Invoice.objects.create(
            customer=customer, period_start=date(2026, 3, 1), period_end=date(2026, 3, 31), series="TEST",
            number=number, issue_date=date(2026, 3, 3), gross_total=Decimal("119.00"),
            state="disputed" if method == "card" else "open",
        )  # fmt: skip
        rows[number] = Payment.objects.create(
            invoice=invoice, amount=Decimal("119.00"), status="succeeded", method=method,
            idempotency_key=f"invoice-{invoice.pk}-charge-1",
        )  # fmt: skip
        if number < 3:  # the third debit was never disputed
            Dispute.objects.create(
                stripe_dispute_id=f"du_{number}", invoice=invoice, payment=rows[number], amount=Decimal("119.00"),
                status="lost",
            )  # fmt: skip

    migration.charged_back_debits_returned(apps, None)

    assert [Payment.objects.get(pk=rows[n].pk).status for n in (1, 2, 3)] == ["returned", "succeeded", "succeeded"]
    assert selectors.live_charge(rows[1].invoice) is None
    migration.returned_debits_succeeded(apps, None)
    assert Payment.objects.get(pk=rows[1].pk).status == "succeeded"


@pytestmark_db
def test_a_card_decline_still_starts_the_card_failed_payment_workflow(client, stripe_settings):
    from billing.tests.test_stripe import DECLINED_ON_CHARGE

    customer = CustomerFactory(language="en")
    ContractFactory(customer=customer, monthly_price=Decimal("119.00"), start_date=date(2026, 1, 1))
    save_card(client, customer, DECLINED_ON_CHARGE)
    invoice = issue(customer)

    assert services.invoice_charge(invoice=invoice).status == "failed"

    assert processes(invoice, "failed-payment").count() == 1
    assert not processes(invoice, "returned-direct-debit").exists()


# --- the API -------------------------------------------------------------------------------------


@pytestmark_db
def test_the_api_reads_and_changes_the_payment_option_through_the_same_service(django_capture_on_commit_callbacks):
    from carparks.models import ApiClient
    from carparks.tests.test_api import client_with

    api = client_with(ApiClient.Scope.CONTRACTS_READ, ApiClient.Scope.CONTRACTS_WRITE)
    customer = CustomerFactory(language="en", api_client=api.api_client)
    contract = ContractFactory(customer=customer)
    url = f"/api/v1/customers/{customer.pk}/payment-option/"

    read = api.get(url)
    assert read.status_code == 200
    assert read.json() == {
        "customer": customer.pk,
        "payment_option": "card",
        "options_offered": ["card", "sepa_debit"],
        "sepa_mandate": None,
    }
    with django_capture_on_commit_callbacks(execute=True):
        switched = api.put(url, {"payment_option": "sepa_debit"}, format="json")
    assert switched.status_code == 200
    assert (switched.json()["outcome"], switched.json()["payment_option"]) == ("mandate_requested", "card")
    assert [m.subject for m in mail.outbox] == ["Set up SEPA Direct Debit for your season parking"]

    refused = api.put(url, {"payment_option": "bank_transfer"}, format="json")  # the product does not offer it
    assert refused.status_code == 400 and "do not offer" in refused.json()["payment_option"][0]
    assert api.put(url, {"payment_option": "cash"}, format="json").status_code == 400
    customer.refresh_from_db()
    assert customer.payment_option == "card" and contract.product.payment_options == ["card", "sepa_debit"]

    other = client_with(ApiClient.Scope.CONTRACTS_READ, ApiClient.Scope.CONTRACTS_WRITE, ApiClient.Scope.CASES_WRITE)
    assert other.get(url).status_code == 404  # not its customer
    reader = client_with(ApiClient.Scope.CONTRACTS_READ)
    assert reader.put(url, {"payment_option": "card"}, format="json").status_code == 403


@pytestmark_db
def test_finance_has_a_returned_debit_collected_by_transfer_and_it_is_sent_again_with_the_transfer_details(
    client, stripe_settings, finance_user
):
    from carparks.models import Product
    from workflows.services import task_complete
    from workflows.testing import run_pending_system_steps

    settings = stripe_settings
    customer, method = sepa_customer(client, FAILING_IBAN)
    Product.objects.filter(contracts__customer=customer).update(payment_options=PaymentOption.values)
    invoice = issue(customer)
    services.invoice_charge(invoice=invoice)
    payment = Payment.objects.get(invoice=invoice)
    deliver(
        client, settings, event_of("payment_intent.payment_failed", settled_intent(payment.stripe_payment_intent_id))
    )
    run_pending_system_steps()  # the customer is told
    process = processes(invoice, "returned-direct-debit").get()
    mail.outbox.clear()

    task_complete(task=process.tasks.get(), user=finance_user, outcome="transfer", inputs={})
    run_pending_system_steps()

    customer.refresh_from_db()
    invoice.refresh_from_db()
    assert customer.payment_option == PaymentOption.BANK_TRANSFER
    assert invoice.payment_option == PaymentOption.BANK_TRANSFER and invoice.payment_reference.startswith("RF")
    assert invoice.state == Invoice.State.OPEN and invoice.gross_total == Decimal("119.00")
    assert [m.subject for m in mail.outbox] == [f"Your invoice {invoice.display_number} for season parking March 2026"]
    assert settings.BILLING_OPERATOR["iban"][-4:] in mail.outbox[0].body.replace(" ", "")
    process.refresh_from_db()
    assert process.current_step == "wait_transfer"


@pytestmark_db
def test_a_debit_whose_answer_was_lost_is_found_again_and_not_sent_twice(client, stripe_like_stripe):
    settings, proxy = stripe_like_stripe
    customer, method = sepa_customer(client)
    invoice = issue(customer)
    proxy.drop("POST", "/v1/payment_intents", times=3)  # Stripe debits; no answer arrives, nor to 2 retries

    with pytest.raises(services.ChargeOutcomeUnknown):
        services.invoice_charge(invoice=invoice)
    assert Payment.objects.get(invoice=invoice).status == Payment.Status.PENDING

    proxy.forget_keys()  # even after Stripe's 24-hour key window
    result = services.invoice_charge(invoice=invoice)  # the retry finds the debit through its metadata

    assert result.status in ("processing", "succeeded")
    assert Payment.objects.filter(invoice=invoice).count() == 1
    sent = [r for r in proxy.seen("POST", "/v1/payment_intents") if not r.replayed]
    assert len(sent) == 1  # one debit reached Stripe; the client's retries got the stored answer
    charges = list(stripe_client().v1.charges.list(params={"customer": customer.stripe_customer_id, "limit": 100}))
    assert len(charges) == 1
