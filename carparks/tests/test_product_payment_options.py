"""The payment options a product offers: the form (at least one), the service checks, the page and the API."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.roles import MANAGER
from carparks import product_services, services
from carparks.api.authentication import api_client_create
from carparks.models import Product
from carparks.tests.factories import CarParkFactory, ProductFactory
from carparks.tests.test_products import product_data
from carparks.tests.test_views import login

pytestmark = pytest.mark.django_db


def test_a_product_offers_card_and_sepa_unless_told_otherwise():
    product = product_services.product_create(carpark=CarParkFactory(), name="Season", monthly_price="90", quota=1)
    assert product.payment_options == ["card", "sepa_debit"]


def test_the_service_keeps_the_options_in_one_order_and_refuses_none_or_unknown_at_the_field():
    product = ProductFactory()
    product_services.product_update(product=product, payment_options=["bank_transfer", "card", "card"])
    assert Product.objects.get(pk=product.pk).payment_options == ["card", "bank_transfer"]
    for bad in ([], ["cash"], "card", None):
        with pytest.raises(services.CarparkError) as refused:
            product_services.product_update(product=product, payment_options=bad)
        assert refused.value.field == "payment_options"
    assert Product.objects.get(pk=product.pk).payment_options == ["card", "bank_transfer"]


def test_the_form_offers_the_options_as_checkboxes_and_refuses_none(client):
    carpark = CarParkFactory()
    login(client, MANAGER, carparks=[carpark])
    page = client.get(reverse("carparks:product-create", args=[carpark.pk])).content.decode()
    assert 'type="checkbox" name="payment_options" value="bank_transfer"' in page
    assert "Bank transfer on invoice" in page

    data = product_data()
    data.pop("payment_options")
    response = client.post(reverse("carparks:product-create", args=[carpark.pk]), data)
    assert response.status_code == 200
    assert response.context["form"].errors["payment_options"] == [
        "Choose at least one payment option the product offers."
    ]
    assert not Product.objects.exists()

    response = client.post(
        reverse("carparks:product-create", args=[carpark.pk]), product_data(payment_options=["bank_transfer"])
    )
    product = Product.objects.get(carpark=carpark)
    assert response.status_code == 302 and product.payment_options == ["bank_transfer"]

    data = product_data(payment_options=[])
    data.pop("monthly_price")
    response = client.post(reverse("carparks:product-edit", args=[product.pk]), data)
    assert response.status_code == 200 and response.context["form"].errors["payment_options"]
    assert Product.objects.get(pk=product.pk).payment_options == ["bank_transfer"]

    data = product_data(payment_options=["card", "bank_transfer"], is_active="on")
    data.pop("monthly_price")
    assert client.post(reverse("carparks:product-edit", args=[product.pk]), data).status_code == 302
    assert Product.objects.get(pk=product.pk).payment_options == ["card", "bank_transfer"]
    page = client.get(reverse("carparks:product-detail", args=[product.pk])).content.decode()
    assert '<dd class="col-7" id="payment-options">Card, Bank transfer on invoice</dd>' in page
    edit = client.get(reverse("carparks:product-edit", args=[product.pk])).content.decode()
    assert 'value="bank_transfer" id="id_payment_options_2" checked' in edit
    assert 'value="sepa_debit" id="id_payment_options_1">' in edit


def test_the_api_lists_the_options_a_product_offers():
    product = ProductFactory(payment_options=["card", "bank_transfer"])
    ProductFactory(carpark=product.carpark, name="Card only", payment_options=["card"])
    _, token = api_client_create(name="shop", scopes=["carparks:read"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    (carpark,) = api.get("/api/v1/carparks/").json()
    offered = {item["name"]: item["payment_options"] for item in carpark["products"]}
    assert offered == {product.name: ["card", "bank_transfer"], "Card only": ["card"]}
    one = api.get(f"/api/v1/carparks/{product.carpark_id}/").json()
    assert {item["name"]: item["payment_options"] for item in one["products"]} == offered
