"""The REST API: tokens and scopes, validation, idempotency, self-service, and a schemathesis run."""

import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone
from rest_framework.test import APIClient

from carparks import services
from carparks.api.authentication import api_client_create
from carparks.models import ApiClient, Case, Contract, Customer, IdempotencyRecord
from carparks.tests.factories import CustomerFactory, ProductFactory

pytestmark = pytest.mark.django_db


def client_with(*scopes):
    """An API test client; ``.api_client`` is its ApiClient (grant it car parks to see their objects)."""
    api_client, token = api_client_create(name=f"shop-{'-'.join(scopes) or 'none'}", scopes=list(scopes))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    api.api_client = api_client
    return api


@pytest.fixture
def shop():
    return client_with(*ApiClient.Scope.values)


def application(product_obj, **overrides):
    body = {
        "product": product_obj.pk,
        "customer": {"name": "Erika Mustermann", "email": "erika@example.com"},
        "vehicles": [{"plate": "m-em 42"}],
    }
    body.update(overrides)
    return body


class TestTokens:
    def test_the_token_is_stored_only_as_a_hash(self):
        client, token = api_client_create(name="app", scopes=["carparks:read"])
        assert token not in (client.token_hash, client.token_prefix)
        assert not ApiClient.objects.filter(token_hash=token).exists()

    def test_it_needs_a_token(self):
        response = APIClient().get("/api/v1/carparks/")
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")

    def test_it_refuses_a_wrong_or_disabled_token(self, shop):
        assert APIClient(HTTP_AUTHORIZATION="Bearer phq_nope_nope").get("/api/v1/carparks/").status_code == 401
        ApiClient.objects.update(is_active=False)
        assert shop.get("/api/v1/carparks/").status_code == 401

    def test_a_token_without_the_scope_gets_403(self):
        product = ProductFactory()
        reader = client_with("carparks:read")
        assert reader.get("/api/v1/carparks/").status_code == 200
        response = reader.post("/api/v1/applications/", application(product), format="json")
        assert response.status_code == 403
        assert "contracts:write" in response.json()["detail"]
        assert not Contract.objects.exists()

    def test_it_throttles_per_client(self, settings):
        settings.CARPARKS_API_RATE = "3/minute"
        from django.core.cache import cache

        cache.clear()
        api = client_with("carparks:read")
        codes = [api.get("/api/v1/carparks/").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert client_with("carparks:read", "contracts:read").get("/api/v1/carparks/").status_code == 200


class TestCarParks:
    def test_it_lists_products_with_free_places(self, shop):
        product = ProductFactory(quota=2)
        services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["A1"])
        services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["A2"])
        services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["A3"])
        body = shop.get("/api/v1/carparks/").json()
        (listed,) = body
        assert listed["products"][0]["places_free"] == 0
        assert listed["products"][0]["waitlist_length"] == 1


class TestApplications:
    def test_it_creates_customer_and_contract(self, shop):
        product = ProductFactory(quota=1)
        response = shop.post("/api/v1/applications/", application(product), format="json")
        assert response.status_code == 201, response.json()
        contract = Contract.objects.get(pk=response.json()["contract_id"])
        assert response.json()["status"] == "applied"
        assert contract.customer.email == "erika@example.com"
        assert list(contract.vehicles.values_list("plate", flat=True)) == ["MEM42"]
        second = shop.post(
            "/api/v1/applications/",
            application(product, customer={"name": "Max", "email": "max@example.com"}),
            format="json",
        )
        assert second.json()["status"] == "waitlisted"
        assert second.json()["waitlist_position"] == 1

    def test_it_starts_next_month_when_asked(self, shop):
        response = shop.post("/api/v1/applications/", application(ProductFactory(), start="next_month"), format="json")
        contract = Contract.objects.get(pk=response.json()["contract_id"])
        assert contract.start_date == services.first_of_next_month()

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"vehicles": []}, "vehicles"),
            ({"vehicles": [{"plate": "!!"}]}, "vehicles"),
            ({"customer": {"name": "X", "email": "not-an-email"}}, "customer"),
            ({"customer": {"kind": "corporate", "name": "ACME", "email": "a@b.de"}}, "customer"),
            ({"product": 999999}, "product"),
            ({"start": "date"}, "start_date"),
            ({"start": "date", "start_date": "2000-01-01"}, "start_date"),
        ],
    )
    def test_invalid_payloads_get_400_naming_the_field(self, shop, change, field):
        response = shop.post("/api/v1/applications/", application(ProductFactory(), **change), format="json")
        assert response.status_code == 400
        assert field in response.json()
        assert not Contract.objects.exists()

    def test_nested_errors_name_the_inner_field(self, shop):
        body = application(ProductFactory(), vehicles=[{"plate": "OK1"}, {"plate": "%%%"}])
        errors = shop.post("/api/v1/applications/", body, format="json").json()
        assert "plate" in errors["vehicles"]["1"], errors
        corporate = application(ProductFactory(), customer={"kind": "corporate", "name": "ACME", "email": "a@b.de"})
        assert "company_number" in shop.post("/api/v1/applications/", corporate, format="json").json()["customer"]

    def test_a_malformed_body_is_400(self, shop):
        response = shop.generic("POST", "/api/v1/applications/", "{not json", content_type="application/json")
        assert response.status_code == 400


class TestIdempotency:
    def test_a_replayed_key_returns_the_first_response_and_creates_nothing(self, shop):
        product = ProductFactory()
        first = shop.post("/api/v1/applications/", application(product), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
        replay = shop.post("/api/v1/applications/", application(product), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
        assert first.status_code == replay.status_code == 201
        assert replay.json() == first.json()
        assert replay["Idempotent-Replayed"] == "true"
        assert Contract.objects.count() == 1
        assert Customer.objects.count() == 1

    def test_the_same_key_with_another_body_is_refused(self, shop):
        product = ProductFactory()
        shop.post("/api/v1/applications/", application(product), format="json", HTTP_IDEMPOTENCY_KEY="k-2")
        other = application(product, vehicles=[{"plate": "B 1"}])
        response = shop.post("/api/v1/applications/", other, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
        assert response.status_code == 422
        assert Contract.objects.count() == 1

    def test_a_failed_request_does_not_use_up_the_key(self, shop):
        product = ProductFactory()
        bad = shop.post(
            "/api/v1/applications/", application(product, vehicles=[]), format="json", HTTP_IDEMPOTENCY_KEY="k-3"
        )
        assert bad.status_code == 400
        assert not IdempotencyRecord.objects.exists()

    def test_keys_belong_to_one_client(self, shop):
        product = ProductFactory(quota=5)
        other = client_with("contracts:write")
        shop.post("/api/v1/applications/", application(product), format="json", HTTP_IDEMPOTENCY_KEY="same")
        other.post("/api/v1/applications/", application(product), format="json", HTTP_IDEMPOTENCY_KEY="same")
        assert Contract.objects.count() == 2

    def test_cases_honour_the_key(self, shop):
        customer = CustomerFactory(api_client=shop.api_client)
        body = {"customer": customer.pk, "kind": "question", "subject": "Opening hours?"}
        for _ in range(3):
            assert shop.post("/api/v1/cases/", body, format="json", HTTP_IDEMPOTENCY_KEY="c-1").status_code == 201
        assert Case.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_replays_of_one_key_create_one_contract():
    product = ProductFactory(quota=50)
    _, token = api_client_create(name="racer", scopes=["contracts:write"])
    barrier = threading.Barrier(8)
    codes: list[int] = []

    def send() -> None:
        try:
            api = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
            barrier.wait()
            codes.append(
                api.post(
                    "/api/v1/applications/", application(product), format="json", HTTP_IDEMPOTENCY_KEY="race"
                ).status_code
            )
        finally:
            close_old_connections()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [201] * 8
    assert Contract.objects.count() == 1


class TestSelfService:
    @pytest.fixture(autouse=True)
    def _granted(self, shop):
        """The shop sells the season tickets of the car park these contracts are in."""
        self.product = ProductFactory()
        shop.api_client.carparks.add(self.product.carpark)

    def running(self):
        """An application approved by its review task (approving by hand waits for that task) and activated."""
        from carparks.tests.test_api_object_access import review_approve

        contract = services.contract_apply(customer=CustomerFactory(), product=self.product, vehicles=["M AB 1"])
        return review_approve(contract)

    def test_contract_status(self, shop):
        contract = self.running()
        body = shop.get(f"/api/v1/contracts/{contract.pk}/").json()
        assert body["status"] == "active"
        assert body["credentials"][0]["identifier"] == "MAB1"
        assert [e["to_state"] for e in body["history"]] == ["applied", "approved", "active"]
        assert shop.get("/api/v1/contracts/999999/").status_code == 404

    def test_change_plate(self, shop):
        contract = self.running()
        response = shop.post(
            f"/api/v1/contracts/{contract.pk}/plate/", {"old_plate": "M-AB-1", "new_plate": "m cd 2"}, format="json"
        )
        assert response.status_code == 200, response.json()
        assert [c["identifier"] for c in response.json()["credentials"] if c["is_active"]] == ["MCD2"]
        wrong = shop.post(
            f"/api/v1/contracts/{contract.pk}/plate/", {"old_plate": "XX1", "new_plate": "m cd 3"}, format="json"
        )
        assert wrong.status_code == 400
        assert "old_plate" in wrong.json()

    def test_request_termination_respects_the_notice(self, shop):
        contract = self.running()
        too_early = shop.post(
            f"/api/v1/contracts/{contract.pk}/termination/", {"end_date": str(timezone.localdate())}, format="json"
        )
        assert too_early.status_code == 400
        assert "end_date" in too_early.json()
        ok = shop.post(f"/api/v1/contracts/{contract.pk}/termination/", {"reason": "Moving"}, format="json")
        assert ok.status_code == 200
        assert ok.json()["end_date"] == str(timezone.localdate() + timedelta(days=30))

    def test_terminating_an_application_is_a_conflict(self, shop):
        contract = services.contract_apply(customer=CustomerFactory(), product=self.product, vehicles=["A1"])
        response = shop.post(f"/api/v1/contracts/{contract.pk}/termination/", {}, format="json")
        assert response.status_code == 409

    def test_open_a_case_for_a_contract(self, shop):
        contract = self.running()
        response = shop.post(
            "/api/v1/cases/",
            {"contract": contract.pk, "kind": "card_replacement", "subject": "Lost my card"},
            format="json",
        )
        assert response.status_code == 201, response.json()
        case = Case.objects.get(pk=response.json()["id"])
        assert case.customer == contract.customer
        assert case.priority == "high"
        assert case.channel == "api"
        missing = shop.post("/api/v1/cases/", {"kind": "question", "subject": "?"}, format="json")
        assert missing.status_code == 400
        assert "customer" in missing.json()

    def test_processes_for_an_unknown_object_is_404(self, shop):
        assert shop.get("/api/v1/processes/?object_type=contract&object_id=99999").status_code == 404
        assert shop.get("/api/v1/processes/?object_type=nope&object_id=1").status_code == 400


class TestDocs:
    def test_the_schema_and_the_docs_are_served_without_external_assets(self, client):
        schema = client.get("/api/schema/")
        assert schema.status_code == 200
        assert b"/api/v1/applications/" in schema.content
        docs = client.get("/api/docs/")
        assert docs.status_code == 200
        page = docs.content.decode()
        assert "cdn" not in page.lower()
        assert "<script>" not in page  # the init script is its own request (strict script-src)
        assert "swagger-ui-bundle.js" in page
        script = client.get("/api/docs/?script=")
        assert script.status_code == 200
        assert b"SwaggerUIBundle" in script.content


class TestProcesses:
    def test_an_application_reports_its_process_and_open_task(self, shop):
        created = shop.post("/api/v1/applications/", application(ProductFactory()), format="json").json()
        assert created["process_id"]
        rows = shop.get(f"/api/v1/processes/?object_type=contract&object_id={created['contract_id']}").json()
        (row,) = rows
        assert row["id"] == created["process_id"]
        assert (row["definition"], row["state"], row["current_step"]) == ("season-contract", "running", "review")
        assert row["open_tasks"][0]["name"] == "Review application"
        one = shop.get(f"/api/v1/processes/{row['id']}/").json()
        assert one["business_object"] == {"type": "contract", "id": created["contract_id"]}

    def test_it_needs_the_processes_scope(self):
        reader = client_with("contracts:read")
        assert reader.get("/api/v1/processes/?object_type=contract&object_id=1").status_code == 403


def test_an_admin_creates_an_api_client_and_sees_the_token_once(client, admin_user):
    from accounts.models import AuditEntry
    from conftest import verify_two_factor

    client.force_login(admin_user)
    verify_two_factor(client, admin_user)
    response = client.post(
        "/django-admin/carparks/apiclient/add/",
        {"name": "Web shop", "scopes": ["carparks:read"], "is_active": "on"},
        follow=True,
    )
    assert response.status_code == 200
    client = ApiClient.objects.get(name="Web shop")
    token = next(str(m) for m in response.context["messages"] if "phq_" in str(m)).split(": ")[-1]
    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/v1/carparks/").status_code == 200
    assert client.token_hash != token
    assert AuditEntry.objects.filter(action="api_client.created").exists()
