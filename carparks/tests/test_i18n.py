"""Season parking and customer care in German: staff pages in the reader's language, the customer's own
language on the customer form, page and API, and customer emails written in the customer's language."""

from __future__ import annotations

from datetime import date

import pytest
from django.urls import reverse
from django.utils import translation
from rest_framework.test import APIClient

from accounts.roles import AGENT
from carparks import services
from carparks.api.authentication import api_client_create
from carparks.models import ApiClient, Customer
from carparks.tests.factories import CustomerFactory, ProductFactory, approve_directly
from carparks.tests.test_customers import form_data, login

pytestmark = pytest.mark.django_db

GERMAN = {"HTTP_ACCEPT_LANGUAGE": "de"}


def waitlisted(customer, mailoutbox, capture):
    """Apply ``customer`` for a product without a free place: the customer is told they are waitlisted."""
    full = ProductFactory(quota=0, name="Dauerparken Innenstadt", carpark__name="Parkhaus am Dom")
    with capture(execute=True):
        contract = services.contract_apply(customer=customer, product=full, vehicles=["M AB 123"])
    assert len(mailoutbox) == 1
    return contract, mailoutbox[0]


class TestCustomerLanguage:
    def test_the_new_customer_form_saves_the_language(self, client):
        login(client, AGENT)
        page = client.get(reverse("carparks:customer-create")).content.decode()
        assert 'name="language"' in page
        response = client.post(
            reverse("carparks:customer-create"), form_data(name="Ada Lovelace", email="ada@example.com", language="en")
        )
        customer = Customer.objects.get(name="Ada Lovelace")
        assert response.status_code == 302
        assert customer.language == "en"

    def test_the_edit_form_changes_the_language_and_the_page_shows_it(self, client):
        product = ProductFactory()
        customer = CustomerFactory(name="Ada", email="ada@example.com", language="en")
        services.contract_activate(
            contract=approve_directly(services.contract_apply(customer=customer, product=product, vehicles=["M A 1"]))
        )
        login(client, AGENT, carparks=[product.carpark])
        edit = reverse("carparks:customer-edit", args=[customer.pk])
        assert 'value="en" selected' in client.get(edit).content.decode()
        response = client.post(edit, form_data(name="Ada", email="ada@example.com", language="de"))
        assert response.status_code == 302
        customer.refresh_from_db()
        assert customer.language == "de"
        page = client.get(reverse("carparks:customer-detail", args=[customer.pk]), **GERMAN).content.decode()
        assert '<dd class="col-sm-8" id="customer-language">Deutsch</dd>' in page
        english = client.get(reverse("carparks:customer-detail", args=[customer.pk])).content.decode()
        assert '<dd class="col-sm-8" id="customer-language">German</dd>' in english

    def test_an_unknown_language_is_refused_at_the_field(self, client):
        login(client, AGENT)
        response = client.post(reverse("carparks:customer-create"), form_data(name="Ada", language="fr"))
        assert response.status_code == 200
        assert "fr" in response.context["form"].errors["language"][0]
        assert not Customer.objects.filter(name="Ada").exists()

    def test_the_api_takes_and_shows_the_customer_language(self):
        product = ProductFactory()
        _, token = api_client_create(name="shop", scopes=list(ApiClient.Scope.values))
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        body = {
            "product": product.pk,
            "customer": {"name": "Jane Doe", "email": "jane@example.com", "language": "en"},
            "vehicles": [{"plate": "M JD 1"}],
        }
        created = api.post("/api/v1/applications/", body, format="json")
        assert created.status_code == 201, created.json()
        assert Customer.objects.get(email="jane@example.com").language == "en"
        contract = api.get(f"/api/v1/contracts/{created.json()['contract_id']}/").json()
        assert contract["customer_language"] == "en"
        body["customer"] = {"name": "Max", "email": "max@example.com", "language": "fr"}
        refused = api.post("/api/v1/applications/", body, format="json")
        assert refused.status_code == 400
        assert "language" in refused.json()["customer"]


class TestCustomerEmails:
    def test_a_german_customer_is_written_to_in_german(self, mailoutbox, django_capture_on_commit_callbacks):
        customer = CustomerFactory(name="Erika Mustermann", email="erika@example.com", language="de")
        contract, message = waitlisted(customer, mailoutbox, django_capture_on_commit_callbacks)
        assert message.subject == "Ihr Antrag für Dauerparken Innenstadt steht auf der Warteliste"
        assert message.body.startswith("Guten Tag Erika Mustermann,\n")
        assert f"Ihr Antrag (Vertrag {contract.pk}) steht auf Platz 1 der Warteliste" in message.body
        assert "Dear" not in message.body

    def test_an_english_customer_is_written_to_in_english_from_a_german_page(
        self, mailoutbox, django_capture_on_commit_callbacks
    ):
        customer = CustomerFactory(name="Jane Doe", email="jane@example.com", language="en")
        with translation.override("de"):  # the member of staff works in German
            _, message = waitlisted(customer, mailoutbox, django_capture_on_commit_callbacks)
        assert message.subject == "Your application for Dauerparken Innenstadt is on the waitlist"
        assert message.body.startswith("Dear Jane Doe,\n")

    def test_an_approval_names_the_date_and_price_in_the_customers_format(
        self, mailoutbox, django_capture_on_commit_callbacks
    ):
        product = ProductFactory(name="Dauerparken", carpark__name="Parkhaus am Dom")
        customer = CustomerFactory(name="Erika", email="erika@example.com", language="de")
        with django_capture_on_commit_callbacks(execute=True):
            contract = services.contract_apply(
                customer=customer, product=product, vehicles=["M AB 1"], start_date=date(2027, 3, 1)
            )
            approve_directly(contract)
        approved = [m for m in mailoutbox if "genehmigt" in m.subject]
        assert approved, [m.subject for m in mailoutbox]
        assert approved[0].subject == f"Ihr Dauerparkvertrag {contract.pk} ist genehmigt"
        assert "Er beginnt am 1. März 2027 und kostet 99,00\u00a0€ im Monat." in approved[0].body


class TestGermanPages:
    def test_a_german_member_of_staff_sees_the_contract_page_in_german(self, client):
        product = ProductFactory(monthly_price="1234.50")
        contract = services.contract_apply(
            customer=CustomerFactory(), product=product, vehicles=["M AB 1"], start_date=date(2027, 3, 1)
        )
        contract = services.contract_activate(contract=approve_directly(contract))
        login(client, AGENT, carparks=[product.carpark])
        url = reverse("carparks:contract-detail", args=[contract.pk])
        page = client.get(url, **GERMAN).content.decode()
        for label in ("Kunde", "Parkhaus", "Laufzeit", "Monatspreis", "Kaution", "Fahrzeuge", "Kündigen"):
            assert f">{label}<" in page, label
        assert "1.234,50\u00a0€" in page
        assert "01.03.2027 – unbefristet" in page
        assert ">Monthly price<" not in page
        english = client.get(url).content.decode()
        assert ">Monthly price<" in english and "€1,234.50" in english and "2027-03-01" in english
