"""Object-level rules of the REST API: a client reads and changes only what it created and what belongs
to the car parks it is granted (``carparks.access.*_for_client``); everything else answers 404, like an
id that does not exist, and a refused write changes nothing."""

from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from accounts.roles import AGENT
from billing import services as billing_services
from billing.models import Invoice
from carparks import services
from carparks.api.authentication import api_client_create
from carparks.models import ApiClient, Case, Contract, ContractEvent, Credential, Customer
from carparks.tests.factories import CustomerFactory, ProductFactory, UserFactory
from workflows import services as wf
from workflows.models import Process
from workflows.testing import run_pending_system_steps

pytestmark = pytest.mark.django_db


def shop(name, carparks=()):
    """An API test client with every scope; ``.api_client`` is its ApiClient."""
    api_client, token = api_client_create(name=name, scopes=list(ApiClient.Scope.values), carparks=carparks)
    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    api.api_client = api_client
    return api


def review_approve(contract):
    """Approve an application the way the portal does (its review task, by an agent of the car park) and
    let the process activate it."""
    process = Process.objects.get(
        content_type=ContentType.objects.get_for_model(Contract), object_id=contract.pk, state="running"
    )
    agent = UserFactory(roles=[AGENT])
    assign_perm("carparks.responsible_carpark", agent, contract.product.carpark)
    task = process.tasks.get(state__in=["open", "claimed"])
    wf.task_complete(task=task, user=agent, outcome="approve", inputs={"note": "Fine"})
    run_pending_system_steps()
    return Contract.objects.get(pk=contract.pk)


def review_reject(contract):
    process = Process.objects.get(
        content_type=ContentType.objects.get_for_model(Contract), object_id=contract.pk, state="running"
    )
    agent = UserFactory(roles=[AGENT])
    assign_perm("carparks.responsible_carpark", agent, contract.product.carpark)
    wf.task_complete(task=process.tasks.get(state="open"), user=agent, outcome="reject", inputs={"note": "No"})
    run_pending_system_steps()


def apply(api, product, *, name, email, plate, **customer):
    response = api.post(
        "/api/v1/applications/",
        {"product": product.pk, "customer": {"name": name, "email": email, **customer}, "vehicles": [{"plate": plate}]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return Contract.objects.get(pk=response.json()["contract_id"])


def invoice_month():
    """Bill the current month (every running contract); the invoices are issued, not sent."""
    run = billing_services.invoicing_run_create(period_start=timezone.localdate().replace(day=1))
    billing_services.invoicing_run_execute(run=run, deliver=False)


def snapshot(contract):
    """What a refused write must leave as it was."""
    contract = Contract.objects.get(pk=contract.pk)
    return {
        "state": contract.state,
        "end_date": contract.end_date,
        "vehicles": sorted(contract.vehicles.values_list("plate", flat=True)),
        "credentials": sorted(Credential.objects.filter(contract=contract).values_list("identifier", "is_active")),
        "events": ContractEvent.objects.filter(contract=contract).count(),
        "change_requests": contract.change_requests.count(),
        "updated_at": contract.updated_at,
    }


@pytest.fixture
def two_shops():
    """Shop A and shop B, each with a running contract applied for through the API (no car park granted)."""
    a, b = shop("Shop A"), shop("Shop B")
    contract_a = review_approve(apply(a, ProductFactory(), name="Anna A", email="anna@a.example", plate="M AA 1"))
    contract_b = review_approve(apply(b, ProductFactory(), name="Bert B", email="bert@b.example", plate="M BB 1"))
    assert contract_a.state == contract_b.state == Contract.State.ACTIVE
    return a, b, contract_a, contract_b


def not_found_like_a_missing_id(api, method, url, missing_url, **kwargs):
    """The answer to another client's object is the answer to an id that does not exist."""
    refused = getattr(api, method)(url, **kwargs)
    missing = getattr(api, method)(missing_url, **kwargs)
    assert refused.status_code == missing.status_code == 404, refused.content
    assert refused.json().keys() == missing.json().keys() == {"detail"}
    return refused


class TestContracts:
    def test_another_clients_contract_is_404_and_its_rfid_never_shown(self, two_shops):
        a, b, contract_a, _ = two_shops
        refused = not_found_like_a_missing_id(
            b, "get", f"/api/v1/contracts/{contract_a.pk}/", "/api/v1/contracts/9999999/"
        )
        assert b"MAA1" not in refused.content and b"Anna" not in refused.content
        own = a.get(f"/api/v1/contracts/{contract_a.pk}/")
        assert own.status_code == 200
        assert own.json()["credentials"][0]["identifier"] == "MAA1"

    def test_another_client_cannot_change_the_plate(self, two_shops):
        a, b, contract_a, _ = two_shops
        before = snapshot(contract_a)
        body = {"old_plate": "M AA 1", "new_plate": "M XX 9"}
        not_found_like_a_missing_id(
            b, "post", f"/api/v1/contracts/{contract_a.pk}/plate/", "/api/v1/contracts/9999999/plate/",
            data=body, format="json",
        )  # fmt: skip
        assert snapshot(contract_a) == before
        assert a.post(f"/api/v1/contracts/{contract_a.pk}/plate/", body, format="json").status_code == 200
        assert "MXX9" in snapshot(contract_a)["vehicles"]

    def test_another_client_cannot_give_notice(self, two_shops):
        a, b, contract_a, _ = two_shops
        before = snapshot(contract_a)
        not_found_like_a_missing_id(
            b, "post", f"/api/v1/contracts/{contract_a.pk}/termination/", "/api/v1/contracts/9999999/termination/",
            data={"reason": "Not mine"}, format="json",
        )  # fmt: skip
        assert snapshot(contract_a) == before
        own = a.post(f"/api/v1/contracts/{contract_a.pk}/termination/", {"reason": "Moving"}, format="json")
        assert own.status_code == 200 and own.json()["end_date"]

    def test_another_client_cannot_accept_an_offer(self):
        a, b = shop("Shop A"), shop("Shop B")
        product = ProductFactory(quota=1)
        first = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["M FF 1"])
        waiting = apply(a, product, name="Anna A", email="anna@a.example", plate="M AA 2")
        assert waiting.state == Contract.State.WAITLISTED
        review_reject(first)
        assert Contract.objects.get(pk=waiting.pk).state == Contract.State.OFFERED
        before = snapshot(waiting)
        not_found_like_a_missing_id(
            b, "post", f"/api/v1/contracts/{waiting.pk}/accept-offer/", "/api/v1/contracts/9999999/accept-offer/"
        )
        assert snapshot(waiting) == before
        assert a.post(f"/api/v1/contracts/{waiting.pk}/accept-offer/").status_code == 200
        assert Contract.objects.get(pk=waiting.pk).state == Contract.State.APPLIED

    def test_a_client_granted_a_car_park_sees_the_portals_contracts_there(self):
        product = ProductFactory()
        portal = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["M PP 1"])
        assert portal.api_client is None
        granted = shop("Car park shop", carparks=[product.carpark])
        other = shop("Other shop", carparks=[ProductFactory().carpark])
        assert granted.get(f"/api/v1/contracts/{portal.pk}/").status_code == 200
        assert other.get(f"/api/v1/contracts/{portal.pk}/").status_code == 404
        before = snapshot(portal)
        assert other.post(f"/api/v1/contracts/{portal.pk}/termination/", {}, format="json").status_code == 404
        assert snapshot(portal) == before
        # Granted also means allowed to change: notice on an application is a conflict of its state, not a 404.
        assert granted.post(f"/api/v1/contracts/{portal.pk}/termination/", {}, format="json").status_code == 409

    def test_an_application_records_its_client(self, two_shops):
        a, _, contract_a, _ = two_shops
        assert contract_a.api_client == a.api_client
        assert contract_a.customer.api_client == a.api_client


class TestCases:
    def test_another_clients_case_is_404(self, two_shops):
        a, b, contract_a, _ = two_shops
        created = a.post(
            "/api/v1/cases/", {"contract": contract_a.pk, "kind": "question", "subject": "Invoice?"}, format="json"
        )
        assert created.status_code == 201, created.json()
        case = Case.objects.get(pk=created.json()["id"])
        assert case.api_client == a.api_client
        not_found_like_a_missing_id(b, "get", f"/api/v1/cases/{case.pk}/", "/api/v1/cases/9999999/")
        assert a.get(f"/api/v1/cases/{case.pk}/").status_code == 200

    def test_a_portal_case_about_a_clients_contract_is_the_clients(self, two_shops):
        a, b, contract_a, _ = two_shops
        case = services.case_open(customer=contract_a.customer, contract=contract_a, kind="complaint", subject="Gate")
        assert a.get(f"/api/v1/cases/{case.pk}/").status_code == 200
        assert b.get(f"/api/v1/cases/{case.pk}/").status_code == 404

    def test_a_case_cannot_be_attached_to_another_clients_contract_or_customer(self, two_shops):
        _, b, contract_a, contract_b = two_shops
        for body, field in (
            ({"contract": contract_a.pk, "kind": "question", "subject": "?"}, "contract"),
            ({"customer": contract_a.customer_id, "kind": "question", "subject": "?"}, "customer"),
        ):
            response = b.post("/api/v1/cases/", body, format="json")
            assert response.status_code == 400, response.json()
            assert field in response.json()
        # Said like an id that does not exist: nothing to learn by trying ids.
        missing = b.post("/api/v1/cases/", {"contract": 9999999, "kind": "question", "subject": "?"}, format="json")
        refused = b.post(
            "/api/v1/cases/", {"contract": contract_a.pk, "kind": "question", "subject": "?"}, format="json"
        )
        assert missing.json()["contract"][0].replace("9999999", "ID") == refused.json()["contract"][0].replace(
            str(contract_a.pk), "ID"
        )
        assert not Case.objects.exists()
        own = b.post("/api/v1/cases/", {"contract": contract_b.pk, "kind": "question", "subject": "?"}, format="json")
        assert own.status_code == 201

    def test_a_refund_case_cannot_name_another_customers_invoice(self, two_shops):
        _, b, contract_a, contract_b = two_shops
        invoice_month()
        invoice_a = Invoice.objects.get(customer=contract_a.customer)
        invoice_b = Invoice.objects.get(customer=contract_b.customer)
        body = {"contract": contract_b.pk, "kind": "refund", "subject": "Refund", "invoice_id": invoice_a.pk}
        response = b.post("/api/v1/cases/", body, format="json")
        assert response.status_code == 400 and "invoice_id" in response.json()
        assert not Case.objects.exists()
        body["invoice_id"] = invoice_b.pk
        assert b.post("/api/v1/cases/", body, format="json").status_code == 201


class TestProcesses:
    def test_another_clients_processes_are_404(self, two_shops):
        a, b, contract_a, _ = two_shops
        process = Process.objects.get(content_type=ContentType.objects.get_for_model(Contract), object_id=contract_a.pk)
        not_found_like_a_missing_id(b, "get", f"/api/v1/processes/{process.pk}/", "/api/v1/processes/9999999/")
        not_found_like_a_missing_id(
            b,
            "get",
            f"/api/v1/processes/?object_type=contract&object_id={contract_a.pk}",
            "/api/v1/processes/?object_type=contract&object_id=9999999",
        )
        carpark = contract_a.product.carpark_id
        assert b.get(f"/api/v1/processes/?object_type=carpark&object_id={carpark}").status_code == 404
        assert a.get(f"/api/v1/processes/{process.pk}/").status_code == 200
        (row,) = a.get(f"/api/v1/processes/?object_type=contract&object_id={contract_a.pk}").json()
        assert row["id"] == process.pk

    def test_a_process_about_no_business_object_is_nobodys(self, two_shops):
        a, _, contract_a, _ = two_shops
        process = Process.objects.get(content_type=ContentType.objects.get_for_model(Contract), object_id=contract_a.pk)
        Process.objects.filter(pk=process.pk).update(content_type=None, object_id=None)
        assert a.get(f"/api/v1/processes/{process.pk}/").status_code == 404


class TestInvoices:
    def test_another_clients_invoices_and_pdfs_are_404(self, two_shops):
        a, b, contract_a, _ = two_shops
        invoice_month()
        invoice_a = Invoice.objects.get(customer=contract_a.customer)
        not_found_like_a_missing_id(
            b, "get", f"/api/v1/contracts/{contract_a.pk}/invoices/", "/api/v1/contracts/9999999/invoices/"
        )
        not_found_like_a_missing_id(b, "get", f"/api/v1/invoices/{invoice_a.pk}/pdf/", "/api/v1/invoices/9999999/pdf/")
        (listed,) = a.get(f"/api/v1/contracts/{contract_a.pk}/invoices/").json()
        assert listed["id"] == invoice_a.pk
        pdf = a.get(f"/api/v1/invoices/{invoice_a.pk}/pdf/")
        assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"

    def test_a_client_granted_a_car_park_reads_the_invoices_of_its_contracts(self, two_shops):
        _, b, contract_a, _ = two_shops
        invoice_month()
        invoice_a = Invoice.objects.get(customer=contract_a.customer)
        assert b.get(f"/api/v1/invoices/{invoice_a.pk}/pdf/").status_code == 404
        b.api_client.carparks.add(contract_a.product.carpark)
        assert b.get(f"/api/v1/invoices/{invoice_a.pk}/pdf/").status_code == 200
        assert b.get(f"/api/v1/contracts/{contract_a.pk}/invoices/").json()[0]["id"] == invoice_a.pk


class TestCompanyNumberFromTheApi:
    """Finding: an application with an existing company number attached itself to that company."""

    @pytest.mark.parametrize("company_number", ["HRB 4711", "hrb4711"])
    def test_it_never_attaches_to_the_company_nor_reaches_its_invoices(self, company_number):
        product = ProductFactory(quota=5)
        victim = services.customer_create(
            kind=Customer.Kind.CORPORATE,
            name="Victim Logistics GmbH",
            email="ap@victim.example",
            company_number="HRB 4711",
        )
        victim_contract = review_approve(services.contract_apply(customer=victim, product=product, vehicles=["M VV 1"]))
        invoice_month()
        victim_invoices = list(Invoice.objects.filter(customer=victim).values_list("pk", "gross_total"))
        assert len(victim_invoices) == 1
        attacker = shop("Other shop")

        contract = apply(
            attacker,
            product,
            kind="corporate",
            name="Mallory Trading",
            email="mallory@evil.example",
            company_number=company_number,
            plate="M MM 1",
        )

        assert contract.customer_id != victim.pk
        new = contract.customer
        assert (new.name, new.email, new.company_number) == ("Mallory Trading", "mallory@evil.example", company_number)
        assert new.possible_duplicate_of_id == victim.pk and new.api_client == attacker.api_client
        victim.refresh_from_db()
        assert (victim.name, victim.email, victim.company_number) == (
            "Victim Logistics GmbH",
            "ap@victim.example",
            "HRB 4711",
        )
        assert list(victim.contracts.values_list("pk", flat=True)) == [victim_contract.pk]
        assert list(Invoice.objects.filter(customer=victim).values_list("pk", "gross_total")) == victim_invoices
        # Neither the company's contract nor its invoice is the shop's to read.
        assert attacker.get(f"/api/v1/contracts/{victim_contract.pk}/").status_code == 404
        assert attacker.get(f"/api/v1/invoices/{victim_invoices[0][0]}/pdf/").status_code == 404
        case = attacker.post(
            "/api/v1/cases/", {"customer": victim.pk, "kind": "question", "subject": "?"}, format="json"
        )
        assert case.status_code == 400 and "customer" in case.json()
        # Once approved, the new contract bills the new customer, never the company.
        review_approve(contract)
        next_month = timezone.localdate().replace(day=1) + timedelta(days=32)
        run = billing_services.invoicing_run_create(period_start=next_month)
        billing_services.invoicing_run_execute(run=run, deliver=False)
        billed = Invoice.objects.filter(lines__contract=contract).values_list("customer_id", flat=True).distinct()
        assert list(billed) == [new.pk]
        assert not Invoice.objects.filter(customer=victim, lines__contract=contract).exists()


class TestGranting:
    def test_an_admin_grants_a_car_park_audited_and_the_client_then_sees_its_contracts(self, client, admin_user):
        from accounts.models import AuditEntry
        from conftest import verify_two_factor

        product = ProductFactory()
        portal = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["M GG 1"])
        api = shop("Web shop")
        assert api.get(f"/api/v1/contracts/{portal.pk}/").status_code == 404
        client.force_login(admin_user)
        verify_two_factor(client, admin_user)
        response = client.post(
            f"/django-admin/carparks/apiclient/{api.api_client.pk}/change/",
            {
                "name": "Web shop",
                "scopes": list(ApiClient.Scope.values),
                "carparks": [product.carpark_id],
                "is_active": "on",
            },
        )
        assert response.status_code == 302, response.content
        assert api.get(f"/api/v1/contracts/{portal.pk}/").status_code == 200
        entry = AuditEntry.objects.filter(action="api_client.updated").get()
        assert entry.old["carparks"] == [] and entry.new["carparks"] == [product.carpark_id]

    def test_the_command_grants_car_parks_by_code_and_refuses_an_unknown_one(self):
        from django.core.management import CommandError, call_command

        product = ProductFactory()
        call_command("api_client_create", "Kiosk", "--scope", "contracts:read", "--carpark", product.carpark.code)
        assert list(ApiClient.objects.get(name="Kiosk").carparks.all()) == [product.carpark]
        with pytest.raises(CommandError, match="nope"):
            call_command("api_client_create", "Kiosk 2", "--carpark", "nope")
        assert not ApiClient.objects.filter(name="Kiosk 2").exists()
