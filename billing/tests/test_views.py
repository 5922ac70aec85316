from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from billing import services, tasks
from billing.models import AccountingExport, BillingException, CreditNote, Invoice, InvoicingRun
from billing.tests.factories import ContractFactory
from carparks.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice():
    with time_machine.travel("2026-03-01 06:00 +01:00", tick=False):
        ContractFactory(customer=CustomerFactory(name="Erika Mustermann"), monthly_price=Decimal("119.00"))
        services.invoicing_run_execute(run=services.invoicing_run_create(period_start=date(2026, 3, 1)), deliver=False)
    return Invoice.objects.get()


def finance_pages(invoice):
    return [
        reverse("billing:invoice-list"),
        reverse("billing:invoice-detail", args=[invoice.pk]),
        reverse("billing:invoice-pdf", args=[invoice.pk]),
        reverse("billing:invoice-xml", args=[invoice.pk]),
        reverse("billing:payment-list"),
        reverse("billing:credit-note-list"),
        reverse("billing:exception-list"),
        reverse("billing:export-list"),
    ]


def test_finance_sees_every_billing_page(client, finance_user, invoice):
    client.force_login(finance_user)
    for url in finance_pages(invoice):
        response = client.get(url)
        assert response.status_code == 200, url
    listing = client.get(reverse("billing:invoice-list"))
    assert invoice.display_number.encode() in listing.content and b"Erika Mustermann" in listing.content
    assert client.get(reverse("billing:invoice-pdf", args=[invoice.pk]))["Content-Type"] == "application/pdf"
    assert b"CrossIndustryInvoice" in client.get(reverse("billing:invoice-xml", args=[invoice.pk])).content


def test_administrators_see_billing_too(client, admin_user_role, invoice):
    client.force_login(admin_user_role)
    assert client.get(reverse("billing:invoice-detail", args=[invoice.pk])).status_code in (200, 302)


def test_other_roles_get_403_and_see_no_billing_link(client, agent_user, finance_user, invoice):
    client.force_login(finance_user)
    assert reverse("billing:invoice-list").encode() in client.get(reverse("portal-home")).content
    client.force_login(agent_user)
    assert reverse("billing:invoice-list").encode() not in client.get(reverse("portal-home")).content
    for url in finance_pages(invoice):
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("billing:credit-note-create", args=[invoice.pk]), {"reason": "x"}).status_code == 403
    assert not CreditNote.objects.exists()


def test_finance_runs_invoicing_now_and_watches_its_progress(client, finance_user, django_capture_on_commit_callbacks):
    ContractFactory()
    client.force_login(finance_user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("billing:run-create"), {"period": "2026-03"})
    run = InvoicingRun.objects.get()
    assert response["Location"] == reverse("billing:run-detail", args=[run.pk])
    assert run.state == InvoicingRun.State.PREVIEW and not callbacks  # a preview: nothing queued yet
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post(reverse("billing:run-confirm", args=[run.pk]), {"confirm": "on"})
    assert len(callbacks) == 1
    page = client.get(response["Location"], HTTP_HX_REQUEST="true")
    assert b'hx-trigger="every 2s"' in page.content  # queued: the page keeps polling

    tasks.invoicing_run_task(run.pk, deliver=False)  # what the worker does

    page = client.get(response["Location"], HTTP_HX_REQUEST="true")
    assert b"hx-trigger" not in page.content and b"1 invoice \xc2\xb7" in page.content
    assert Invoice.objects.get().period_start == date(2026, 3, 1)


def test_finance_reverses_an_invoice_and_resolves_an_exception(client, finance_user, invoice):
    client.force_login(finance_user)
    client.post(reverse("billing:credit-note-create", args=[invoice.pk]), {"reason": "Moved out"})
    assert CreditNote.objects.get().invoice == invoice
    exception = BillingException.objects.get(kind="missing_payment_method")
    client.post(reverse("billing:exception-resolve", args=[exception.pk]), {"resolution": "Pays by transfer"})
    exception.refresh_from_db()
    assert exception.resolved_by == finance_user and exception.resolution == "Pays by transfer"


def test_finance_exports_a_month_and_downloads_it(client, finance_user, invoice):
    client.force_login(finance_user)
    client.post(reverse("billing:export-create"), {"period": "2026-03", "format": "datev"})
    export = AccountingExport.objects.get()
    response = client.get(reverse("billing:export-download", args=[export.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b'"EXTF";700;21')
    client.post(reverse("billing:export-create"), {"period": "2026-03", "format": "datev"})
    assert AccountingExport.objects.count() == 1


def test_list_pages_make_the_same_number_of_queries_for_more_rows(client, finance_user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(finance_user)

    def queries(url):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    def bill(count, month):
        for _ in range(count):
            ContractFactory()
        services.invoicing_run_execute(run=services.invoicing_run_create(period_start=month), deliver=False)

    bill(2, date(2026, 3, 1))
    urls = [reverse(name) for name in ("billing:invoice-list", "billing:payment-list", "billing:exception-list")]
    few = [queries(url) for url in urls]
    bill(12, date(2026, 4, 1))
    assert [queries(url) for url in urls] == few


def test_a_nul_in_a_reason_reference_or_resolution_is_refused_with_a_message(client, finance_user, invoice):
    """Forms read without a Django form field used to hand the NUL to PostgreSQL, which answered with a 500."""
    client.force_login(finance_user)
    client.raise_request_exception = False
    exception = BillingException.objects.get(kind="missing_payment_method")
    state = invoice.state
    posts = [
        (reverse("billing:credit-note-create", args=[invoice.pk]), {"reason": "Moved\x00out"}, "The reason"),
        (reverse("billing:invoice-transfer", args=[invoice.pk]), {"reference": "SEPA\x004711"}, "The bank reference"),
        (reverse("billing:exception-resolve", args=[exception.pk]), {"resolution": "ok\x00"}, "The resolution"),
    ]
    for url, data, label in posts:
        response = client.post(url, data, follow=True)
        assert response.status_code == 200, url
        assert f"{label} must not contain NUL characters." in response.content.decode(), url
    invoice.refresh_from_db()
    exception.refresh_from_db()
    assert not CreditNote.objects.exists() and not invoice.payments.exists()
    assert invoice.state == state and exception.resolved_at is None
