"""Customers: New customer and Edit pages (fields, duplicate check, bad input at the field), merging two
customers, and API applications whose company number or email matches an existing customer."""

from __future__ import annotations

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from accounts.models import AuditEntry
from accounts.roles import AGENT, CARE, FINANCE, MANAGER, SUPERVISOR
from carparks import customer_services, services
from carparks.models import ApiClient, Case, Contract, Customer, Vehicle
from carparks.tests.factories import CorporateFactory, CustomerFactory, ProductFactory, UserFactory, approve_directly

pytestmark = pytest.mark.django_db


def login(client, *roles, carparks=()):
    from accounts.two_factor import needs_two_factor
    from conftest import verify_two_factor

    user = UserFactory(roles=list(roles))
    for carpark in carparks:
        assign_perm("carparks.responsible_carpark", user, carpark)
    client.force_login(user)
    if needs_two_factor(user):
        verify_two_factor(client, user)
    return user


def form_data(**overrides):
    data = {
        "channel": "phone",
        "kind": "private",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "phone": "+49 89 1234",
        "street": "Hauptstr. 1",
        "postcode": "80331",
        "city": "Munich",
        "country": "DE",
        "company_number": "",
        "vat_id": "",
        "billing_contact": "",
        "billing_email": "",
        "billing_street": "",
        "billing_postcode": "",
        "billing_city": "",
        "billing_country": "",
        "cost_centres": "",
        "language": "de",
    }
    data.update(overrides)
    return data


def running(product, plate="M AB 1", customer=None):
    contract = services.contract_apply(customer=customer or CustomerFactory(), product=product, vehicles=[plate])
    return services.contract_activate(contract=approve_directly(contract))


class TestNewCustomer:
    def test_it_creates_a_corporate_customer_with_billing_details_and_emits_customer_created(self, client):
        from workflows.models import BusinessEvent

        user = login(client, AGENT)
        page = client.get(reverse("carparks:customer-create")).content.decode()
        for label in ("Name", "Email", "Company number", "VAT id", "Billing contact", "Cost centres"):
            assert f">{label}" in page
        response = client.post(
            reverse("carparks:customer-create"),
            form_data(
                channel="counter",
                kind="corporate",
                name="Fleet AG",
                email="fleet@example.com",
                company_number="HRB 777",
                vat_id="DE123456789",
                billing_contact="Accounts payable",
                billing_email="ap@fleet.example",
                billing_street="Postfach 12",
                billing_postcode="80000",
                billing_city="Munich",
                billing_country="de",
                cost_centres="CC-100\n\n  CC-200  \nCC-100",
                language="en",
            ),
        )
        customer = Customer.objects.get(name="Fleet AG")
        assert response.status_code == 302 and response.url == reverse("carparks:customer-detail", args=[customer.pk])
        assert customer.kind == "corporate" and customer.company_number == "HRB 777"
        assert customer.cost_centres == ["CC-100", "CC-200"]
        assert (customer.billing_country, customer.language, customer.invoice_email) == (
            "DE",
            "en",
            "ap@fleet.example",
        )
        event = BusinessEvent.objects.get(name="customer.created", object_id=customer.pk)
        assert event.payload["channel"] == "counter" and event.payload["customer_kind"] == "corporate"
        page = client.get(response.url).content.decode()
        assert "Postfach 12" in page and "CC-100, CC-200" in page
        assert user

    def test_it_needs_a_role_that_takes_customers(self, client):
        login(client, FINANCE)
        assert client.get(reverse("carparks:customer-create")).status_code == 403
        login(client, MANAGER)
        assert client.post(reverse("carparks:customer-create"), form_data()).status_code == 403
        assert not Customer.objects.exists()

    def test_it_shows_possible_duplicates_before_saving_and_creates_anyway_on_confirmation(self, client):
        first = CustomerFactory(name="Ada Lovelace", email="ADA@example.com")
        login(client, CARE)
        url = reverse("carparks:customer-create")
        response = client.post(url, form_data(name="Ada King"))
        page = response.content.decode()
        assert response.status_code == 200 and "Possible duplicates" in page
        assert reverse("carparks:customer-detail", args=[first.pk]) in page and "same email" in page
        assert "Create anyway" in page
        assert Customer.objects.count() == 1
        assert f'name="confirm" value="{first.pk}"' in page
        response = client.post(url, form_data(name="Ada King", confirm=str(first.pk)))
        assert response.status_code == 302
        assert Customer.objects.filter(name="Ada King").exists()

    def test_it_finds_a_similar_name_at_the_same_postcode(self, client):
        near = CustomerFactory(name="Müller GmbH", postcode="80331", email="info@mueller.example")
        CustomerFactory(name="Müller GmbH", postcode="10115", email="berlin@mueller.example")
        found = customer_services.customer_duplicates_find(name="  mueller   gmbh ", postcode="80 331")
        assert [d.customer.pk for d in found] == [near.pk]
        assert found[0].reasons == ["similar name and same postcode"]
        assert customer_services.customer_duplicates_find(name="Schmidt GmbH", postcode="80331") == []

    def test_a_confirmation_covers_only_the_duplicates_shown(self, client):
        first = CustomerFactory(email="ada@example.com")
        second = CustomerFactory(name="Ada Lovelace", postcode="80331", email="other@example.com")
        login(client, AGENT)
        response = client.post(reverse("carparks:customer-create"), form_data(confirm=str(first.pk)))
        assert response.status_code == 200
        assert reverse("carparks:customer-detail", args=[second.pk]) in response.content.decode()
        assert Customer.objects.count() == 2

    def test_a_merged_customer_is_never_offered_as_a_duplicate(self):
        keep, gone = CustomerFactory(), CustomerFactory(email="same@example.com")
        customer_services.customers_merge(keep=keep, other=gone)
        assert customer_services.customer_duplicates_find(email="same@example.com") == []


class TestBadInput:
    """Every wrong input is answered at its field, with nothing saved and no 500."""

    @pytest.mark.parametrize(
        "field,value,message",
        [
            ("name", "Ada\x00Lovelace", "Null characters are not allowed."),
            ("name", "A" * 10_000, "at most 200 characters"),
            ("email", "not-an-email", "Enter a valid email address."),
            ("language", "fr", "Select a valid choice."),
            ("kind", "alien", "Select a valid choice."),
            ("country", "Germany", "Enter a valid value."),
            ("cost_centres", "\x00", "Null characters are not allowed."),
        ],
    )
    def test_it_answers_bad_input_at_the_field(self, client, field, value, message):
        login(client, AGENT)
        response = client.post(reverse("carparks:customer-create"), form_data(**{field: value}))
        assert response.status_code == 200
        assert message in str(response.context["form"].errors[field])
        assert not Customer.objects.exists()

    def test_it_refuses_a_company_number_of_another_customer_naming_and_linking_it(self, client):
        owner = CorporateFactory(name="Fleet AG", company_number="HRB 12345")
        login(client, AGENT)
        response = client.post(
            reverse("carparks:customer-create"),
            form_data(kind="corporate", name="Fleet New", company_number="hrb12345", email="new@fleet.example"),
        )
        errors = response.context["form"].errors["company_number"]
        assert "already belongs to" in errors[0] and "Fleet AG" in errors[0]
        page = response.content.decode()
        assert f'href="{reverse("carparks:customer-detail", args=[owner.pk])}">Fleet AG</a>' in page
        assert Customer.objects.count() == 1

    def test_a_corporate_customer_needs_a_company_number(self, client):
        login(client, AGENT)
        response = client.post(reverse("carparks:customer-create"), form_data(kind="corporate"))
        assert "A corporate customer needs a company number." in response.context["form"].errors["company_number"]

    def test_the_edit_page_answers_at_the_field_too(self, client):
        CorporateFactory(company_number="HRB 1")
        customer = CorporateFactory(company_number="HRB 2")
        login(client, SUPERVISOR)
        url = reverse("carparks:customer-edit", args=[customer.pk])
        base = form_data(kind="corporate", name=customer.name, email=customer.email, company_number="HRB 2")
        for field, value in (("name", "x\x00"), ("name", "y" * 10_000), ("email", "@"), ("company_number", "HRB 1")):
            response = client.post(url, {**base, field: value})
            assert response.status_code == 200 and field in response.context["form"].errors
        customer.refresh_from_db()
        assert customer.company_number == "HRB 2"


class TestEdit:
    def test_it_saves_changes_and_audits_the_changed_fields(self, client):
        customer = CustomerFactory(name="Ada", email="ada@example.com", postcode="80331")
        product = ProductFactory()
        running(product, customer=customer)
        user = login(client, AGENT, carparks=[product.carpark])
        page = client.get(reverse("carparks:customer-edit", args=[customer.pk])).content.decode()
        assert 'value="ada@example.com"' in page
        data = form_data(name="Ada Lovelace", email="ada@example.com", postcode="80331", cost_centres="A\nB")
        response = client.post(reverse("carparks:customer-edit", args=[customer.pk]), data)
        assert response.status_code == 302
        customer.refresh_from_db()
        assert customer.name == "Ada Lovelace" and customer.cost_centres == ["A", "B"]
        entry = AuditEntry.objects.get(action="customer.changed", target_id=str(customer.pk))
        assert entry.actor == user
        assert entry.old["name"] == "Ada" and entry.new["name"] == "Ada Lovelace"
        assert "email" not in entry.new  # unchanged fields are not recorded

    def test_a_customer_of_another_car_park_cannot_be_edited(self, client):
        mine, other = ProductFactory(), ProductFactory()
        customer = running(other).customer
        login(client, AGENT, carparks=[mine.carpark])
        response = client.post(reverse("carparks:customer-edit", args=[customer.pk]), form_data())
        assert response.status_code == 404


class TestMerge:
    def test_it_moves_everything_and_deduplicates_vehicles(self, client):
        product = ProductFactory(quota=10)
        keep = CustomerFactory(name="Ada Lovelace", email="ada@example.com", cost_centres=["A"])
        gone = CustomerFactory(name="Ada  Lovelace", email="ada@example.com", cost_centres=["B"])
        kept_contract = running(product, "M AB 1", customer=keep)
        moved_contract = running(product, "M XY 9", customer=gone)
        moved_contract.vehicles.add(Vehicle.objects.create(customer=gone, plate="M-AB-1"))  # on both customers
        case = services.case_open(customer=gone, kind="question", subject="Hello")
        user = login(client, SUPERVISOR)

        url = reverse("carparks:customer-merge", args=[keep.pk])
        page = client.post(url, {"other": gone.pk, "keep": "this"}).content.decode()
        assert "What moves to Ada Lovelace" in page and "Merge customers" in page
        assert Contract.objects.filter(customer=gone).count() == 1  # nothing moved yet
        response = client.post(url, {"other": gone.pk, "keep": "this", "confirm": "1"})
        assert response.status_code == 302

        gone.refresh_from_db()
        keep.refresh_from_db()
        assert gone.merged_into == keep
        assert set(Contract.objects.filter(customer=keep)) == {kept_contract, moved_contract}
        assert Case.objects.get(pk=case.pk).customer == keep
        plates = sorted(Vehicle.objects.filter(customer=keep).values_list("plate", flat=True))
        assert plates == ["MAB1", "MXY9"]
        assert sorted(moved_contract.vehicles.values_list("plate", flat=True)) == ["MAB1", "MXY9"]
        assert not Vehicle.objects.filter(customer=gone).exists()
        assert keep.cost_centres == ["A", "B"]
        entry = AuditEntry.objects.get(action="customer.merged")
        assert entry.actor == user and entry.old["merged"] == gone.pk
        assert entry.new["moved"]["contracts"] == 1 and entry.new["moved"]["vehicles joined with the same plate"] == 1

        listing = client.get(reverse("carparks:customer-list")).content.decode()
        assert reverse("carparks:customer-detail", args=[keep.pk]) in listing
        assert reverse("carparks:customer-detail", args=[gone.pk]) not in listing
        search = client.get(reverse("carparks:search"), {"q": "ada@example.com"}).content.decode()
        assert reverse("carparks:customer-detail", args=[gone.pk]) not in search
        response = client.get(reverse("carparks:customer-detail", args=[gone.pk]))
        assert response.status_code == 302 and response.url == reverse("carparks:customer-detail", args=[keep.pk])

    def test_it_moves_invoices_and_payment_methods(self):
        from billing.models import Invoice, PaymentMethod

        keep, gone = CustomerFactory(), CustomerFactory()
        fields = {f.name for f in Invoice._meta.get_fields()}
        assert "customer" in fields
        PaymentMethod.objects.create(customer=keep, stripe_customer_id="", stripe_payment_method_id="pm_1")
        PaymentMethod.objects.create(customer=gone, stripe_customer_id="", stripe_payment_method_id="pm_2")
        preview = customer_services.customers_merge_preview(keep=keep, other=gone)
        assert preview["counts"]["payment methods"] == 1 and not preview["refused"]
        counts = customer_services.customers_merge(keep=keep, other=gone)
        assert counts["payment methods"] == 1
        assert PaymentMethod.objects.filter(customer=keep).count() == 2
        assert PaymentMethod.objects.filter(customer=keep, is_default=True).count() == 1

    def test_it_refuses_two_different_stripe_customers(self, client):
        keep = CustomerFactory(stripe_customer_id="cus_A")
        gone = CustomerFactory(stripe_customer_id="cus_B")
        login(client, SUPERVISOR)
        url = reverse("carparks:customer-merge", args=[keep.pk])
        page = client.post(url, {"other": gone.pk, "keep": "this", "confirm": "1"}).content.decode()
        assert "Both customers have their own Stripe customer" in page
        gone.refresh_from_db()
        assert gone.merged_into is None
        with pytest.raises(services.CarparkError):
            customer_services.customers_merge(keep=keep, other=gone)

    def test_only_supervisors_and_administrators_merge(self, client):
        keep, gone = CustomerFactory(), CustomerFactory()
        login(client, AGENT)
        url = reverse("carparks:customer-merge", args=[keep.pk])
        assert client.post(url, {"other": gone.pk, "keep": "this", "confirm": "1"}).status_code == 403
        assert Customer.objects.get(pk=gone.pk).merged_into is None

    def test_an_unknown_other_customer_is_answered_at_the_field(self, client):
        keep = CustomerFactory()
        login(client, SUPERVISOR)
        url = reverse("carparks:customer-merge", args=[keep.pk])
        for other in ("999999", str(keep.pk), "abc", "1\x00"):
            response = client.post(url, {"other": other, "keep": "this"})
            assert response.status_code == 200 and "other" in response.context["form"].errors


class TestApiApplications:
    def _apply(self, client, customer):
        from carparks.api.authentication import api_client_create

        product = ProductFactory(quota=5)
        name = f"Shop {ApiClient.objects.count()}"
        _, token = api_client_create(name=name, scopes=[ApiClient.Scope.CONTRACTS_WRITE])
        response = client.post(
            "/api/v1/applications/",
            {"product": product.pk, "customer": customer, "vehicles": [{"plate": "M QQ 1"}]},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert response.status_code == 201, response.content
        return Contract.objects.get(pk=response.json()["contract_id"])

    def test_a_company_number_of_an_existing_customer_creates_a_new_one_for_review(self, client):
        existing = CorporateFactory(name="Fleet AG", company_number="HRB 555", email="fleet@example.com")
        contract = self._apply(
            client,
            {"kind": "corporate", "name": "Fleet Munich", "email": "munich@fleet.example", "company_number": "HRB555"},
        )
        assert contract.customer != existing
        assert contract.customer.name == "Fleet Munich" and contract.customer.kind == "corporate"
        assert contract.customer.possible_duplicate_of == existing

    def test_a_private_email_under_another_name_is_flagged_and_the_same_person_is_found(self, client):
        existing = CustomerFactory(name="Ada Lovelace", email="ada@example.com")
        same = self._apply(client, {"kind": "private", "name": "ada  lovelace", "email": "ADA@example.com"})
        assert same.customer == existing
        other = self._apply(client, {"kind": "private", "name": "Bob Lovelace", "email": "ada@example.com"})
        assert other.customer != existing and other.customer.possible_duplicate_of == existing

    def test_the_review_banner_merges_or_marks_as_different(self, client):
        existing = CorporateFactory(name="Fleet AG", company_number="HRB 555")
        contract = self._apply(
            client,
            {"kind": "corporate", "name": "Fleet Munich", "email": "m@fleet.example", "company_number": "HRB 555"},
        )
        new = contract.customer
        user = login(client, AGENT, carparks=[contract.product.carpark])
        page = client.get(reverse("carparks:customer-detail", args=[new.pk])).content.decode()
        assert "May be the same company as" in page and "Fleet AG" in page
        assert "Mark as different" in page and "A supervisor can merge them." in page
        contract_page = client.get(reverse("carparks:contract-detail", args=[contract.pk])).content.decode()
        assert "Fleet Munich may be the same company as Fleet AG" in contract_page
        response = client.post(reverse("carparks:customer-not-duplicate", args=[new.pk]))
        assert response.status_code == 302
        new.refresh_from_db()
        assert new.possible_duplicate_of is None
        entry = AuditEntry.objects.get(action="customer.duplicate_dismissed")
        assert entry.actor == user and entry.old["possible_duplicate_of"] == existing.pk
        assert (
            "May be the same company"
            not in client.get(reverse("carparks:customer-detail", args=[new.pk])).content.decode()
        )

    def test_the_review_task_of_the_application_shows_the_possible_duplicate(self, client):
        from workflows.models import Task

        CorporateFactory(name="Fleet AG", company_number="HRB 555")
        contract = self._apply(
            client,
            {"kind": "corporate", "name": "Fleet Munich", "email": "m@fleet.example", "company_number": "HRB 555"},
        )
        task = Task.objects.get(process__object_id=contract.pk, state="open")
        login(client, AGENT, carparks=[contract.product.carpark])
        page = client.get(reverse("workflows:task-detail", args=[task.pk])).content.decode()
        assert "May be the same company as Fleet AG" in page
        assert reverse("carparks:customer-detail", args=[contract.customer_id]) in page

    def test_a_supervisor_merges_from_the_banner(self, client):
        existing = CorporateFactory(name="Fleet AG", company_number="HRB 555")
        contract = self._apply(
            client,
            {"kind": "corporate", "name": "Fleet Munich", "email": "m@fleet.example", "company_number": "HRB 555"},
        )
        login(client, SUPERVISOR)
        page = client.get(reverse("carparks:customer-detail", args=[contract.customer_id])).content.decode()
        merge_url = reverse("carparks:customer-merge", args=[contract.customer_id])
        assert f"{merge_url}?other={existing.pk}&amp;keep=other" in page
        preview = client.get(merge_url, {"other": existing.pk, "keep": "other"}).content.decode()
        assert "Merge Fleet Munich into Fleet AG" in preview
        client.post(merge_url, {"other": existing.pk, "keep": "other", "confirm": "1"})
        assert Contract.objects.get(pk=contract.pk).customer == existing


def test_it_loads_demo_companies_with_billing_details_and_a_possible_duplicate_to_review(client):
    import io

    from carparks import demo

    demo.load(io.StringIO())
    billed = Customer.objects.filter(kind="corporate").exclude(billing_street="")
    assert billed.count() >= 2 and all(c.cost_centres for c in billed)
    flagged = Customer.objects.get(possible_duplicate_of__isnull=False)
    assert flagged.company_number == flagged.possible_duplicate_of.company_number
    login(client, SUPERVISOR)
    page = client.get(reverse("carparks:customer-detail", args=[flagged.pk])).content.decode()
    assert "May be the same company as" in page
