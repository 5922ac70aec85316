"""The whole journey end to end, across modules, with every peer real.

A season application arrives through the REST API with a real token → an agent logs in through the
login page in headless Chromium, claims the review in the basket and approves it → the system steps
activate the contract and push its credential to the CPMS simulator → the customer saves a card in
localstripe → the invoicing run emails the PDF invoice (with its Factur-X XML) to an SMTP sink →
the off-session charge pays it → the daily statement reports the process and the payment, and
finance reads it in the browser.
"""

from __future__ import annotations

import email
import email.policy
import io
import socket
import threading
from decimal import Decimal
from typing import Any

import facturx
import pytest
import requests
from aiosmtpd.controller import Controller
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from accounts import roles
from billing import services as billing_services
from billing import tasks as billing_tasks
from billing.models import Invoice, Payment
from billing.tests.test_stripe import save_card, stripe_charges
from carparks.api.authentication import api_client_create
from carparks.models import ApiClient, CarPark, Contract
from carparks.services import first_of_next_month
from carparks.tests.factories import ProductFactory
from connect import services as connect_services
from monitoring.models import StatementSubscription
from monitoring.statements import statement_build, statement_send
from workflows.models import Process, Task
from workflows.testing import run_pending_system_steps

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT = 60_000  # ms: generous for a loaded 2-core machine


class SmtpSink:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        with self.lock:
            return [m for m in self.messages if address in m["To"]]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_sink(settings):
    """A real SMTP server on a free port, and Django's SMTP backend pointed at it."""
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=_free_port(), ready_timeout=30)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 30
    try:
        yield sink
    finally:
        controller.stop()


def _pdf_attachments(message: email.message.EmailMessage) -> list[tuple[str, bytes]]:
    return [
        (part.get_filename(), part.get_content())
        for part in message.iter_attachments()
        if part.get_content_type() == "application/pdf"
    ]


def test_an_application_goes_from_the_api_to_a_paid_invoice_on_the_daily_statement(
    live_server,
    page,
    browser,
    browser_login,
    make_user,
    client,
    sim,
    connection,
    stripe_settings,
    smtp_sink,
    settings,
    tmp_path,
):
    page.set_default_timeout(WAIT)
    page.set_default_navigation_timeout(WAIT)
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ACCOUNTING_EXPORT_DIR = tmp_path / "accounting-export"
    call_command("workflow_sync", verbosity=0)
    connect_services.sync_static(connection=connection)
    carpark = CarPark.objects.get(cpms_reference="SIM-0001")  # linked to the simulator by the sync
    product = ProductFactory(carpark=carpark, monthly_price=Decimal("119.00"), deposit=Decimal("0.00"))
    make_user("agent", roles.AGENT, carparks=[carpark], password="agent-pass-1")
    finance = make_user("finance", roles.FINANCE, password="finance-pass-1", email="finance@parkinghq.example")
    StatementSubscription.objects.create(user=finance, frequency="daily")

    # 1. The eCommerce module submits an application over HTTP with its token.
    _, token = api_client_create(name="ecommerce", scopes=list(ApiClient.Scope.values))
    response = requests.post(
        f"{live_server.url}/api/v1/applications/",
        json={
            "product": product.pk,
            "customer": {
                "name": "Erika Mustermann",
                "email": "erika@example.com",
                "street": "Hauptstraße 1",
                "postcode": "10115",
                "city": "Berlin",
                "country": "DE",
            },
            "vehicles": [{"plate": "b-em 42"}],
            "start": "immediately",
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "applied"
    contract = Contract.objects.get(pk=response.json()["contract_id"])
    customer = contract.customer
    process = Process.objects.get(
        content_type=ContentType.objects.get_for_model(Contract),
        object_id=contract.pk,
        definition__key="season-contract",
    )
    review = Task.objects.get(process=process, state=Task.State.OPEN)

    # 2. An agent logs in, finds the review in the basket, claims it and approves.
    browser_login(page, live_server, "agent", "agent-pass-1")
    page.goto(f"{live_server.url}/basket/")
    expect(page.locator("#basket-results")).to_contain_text("Erika Mustermann", timeout=WAIT)
    page.get_by_role("button", name=f"Claim Review application #{review.pk}").click()
    page.wait_for_url(f"**/basket/tasks/{review.pk}/", timeout=WAIT)
    page.get_by_label("Note for the file").fill("Checked end to end")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{live_server.url}/basket/", timeout=WAIT)
    expect(page.locator("body")).to_contain_text("completed: approve", timeout=WAIT)
    review.refresh_from_db()
    assert (review.state, review.outcome) == (Task.State.COMPLETED, "approve")

    # 3. The system steps activate the contract and push its credential to the CPMS.
    run_pending_system_steps()
    contract = Contract.objects.get(pk=contract.pk)  # the FSM state is protected: reload, not refresh
    process.refresh_from_db()
    assert contract.state == Contract.State.ACTIVE
    assert process.state == "completed", process.variables
    credential = contract.credentials.get()
    right_id = f"phq-credential-{credential.pk}"
    assert sim.rights() == [right_id]
    assert sim.right(right_id)["rightHolder"]["credentials"][0]["identifier"]["id"] == "BEM42"

    # 4. The customer saves a card (SetupIntent confirmed as Stripe.js would).
    method = save_card(client, customer)
    assert method.is_default and method.last4 == "4242"

    # 5. The invoicing run bills the contract; delivery emails the PDF to the customer over SMTP.
    run = billing_services.invoicing_run_create(period_start=first_of_next_month())
    billing_services.invoicing_run_execute(run=run, deliver=False)
    invoice = Invoice.objects.get(customer=customer)
    assert invoice.gross_total > 0
    # 6. ... and charges the saved card off-session (the delivery job the run queues, run here).
    assert billing_tasks.invoice_deliver.apply(args=[invoice.pk]).get() == "succeeded"

    (invoice_mail,) = [m for m in smtp_sink.to("erika@example.com") if _pdf_attachments(m)]
    ((filename, pdf),) = _pdf_attachments(invoice_mail)
    invoice.refresh_from_db()
    assert filename == f"{invoice.display_number}.pdf" and pdf.startswith(b"%PDF")
    _, xml = facturx.get_facturx_xml_from_pdf(io.BytesIO(pdf), check_xsd=False)
    assert b"CrossIndustryInvoice" in xml and invoice.display_number.encode() in xml

    assert invoice.state == Invoice.State.PAID and invoice.emailed_at is not None
    payment = Payment.objects.get(invoice=invoice, kind="charge")
    assert payment.status == Payment.Status.SUCCEEDED
    cents = int(invoice.gross_total * 100)
    assert [(c.amount, c.status) for c in stripe_charges(customer)] == [(cents, "succeeded")]

    # 7. The daily statement of today reports the process and the paid invoice.
    today = timezone.localdate()
    statement = statement_build(frequency="daily", day_from=today, day_to=today)
    figures = statement.figures
    (season,) = [row for row in figures["workflows"] if row["key"] == "season-contract"]
    assert (season["started"], season["completed"], season["tasks_completed"]) == (1, 1, 1)
    assert figures["billing"]["invoices"] == 1
    assert figures["billing"]["payments_succeeded"] == 1
    assert Decimal(str(figures["billing"]["paid_amount"])) == invoice.gross_total
    assert statement_send(statement) == 1
    (sent,) = smtp_sink.to("finance@parkinghq.example")
    assert _pdf_attachments(sent)[0][1].startswith(b"%PDF")

    # Finance opens it from the statement archive in the browser.
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT)
    try:
        finance_page = context.new_page()
        browser_login(finance_page, live_server, "finance", "finance-pass-1")
        finance_page.goto(f"{live_server.url}/monitoring/statements/")
        expect(finance_page.locator("main")).to_contain_text(statement.period_label, timeout=WAIT)
        finance_page.get_by_role("link", name="Daily", exact=True).click()
        finance_page.wait_for_url(f"**/monitoring/statements/{statement.pk}/", timeout=WAIT)
        expect(finance_page.locator("main")).to_contain_text("Season parking contract", timeout=WAIT)
    finally:
        context.close()
