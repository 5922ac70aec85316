"""Products and prices: create, edit, quota never below the places held, prices with validity; car-park edit."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry
from accounts.roles import ADMINISTRATOR, AGENT, FINANCE, MANAGER
from carparks import product_services, services
from carparks.models import CarPark, Contract, Product, ProductPrice
from carparks.tests.factories import CarParkFactory, CustomerFactory, ProductFactory
from carparks.tests.test_views import login

pytestmark = pytest.mark.django_db


def hold(product, count):
    for i in range(count):
        services.contract_apply(customer=CustomerFactory(), product=product, vehicles=[f"M HQ {i + 1}"])


def today():
    return timezone.localdate()


# --- services -----------------------------------------------------------------------------------


def test_it_refuses_a_quota_below_the_places_held_naming_the_number():
    product = ProductFactory(quota=20)
    hold(product, 12)
    with pytest.raises(services.CarparkError) as refused:
        product_services.product_update(product=product, quota=11)
    assert str(refused.value) == "12 places are held; the quota cannot be below 12."
    assert refused.value.field == "quota"
    assert Product.objects.get(pk=product.pk).quota == 20
    assert product_services.product_update(product=product, quota=12).quota == 12


def test_it_creates_a_product_with_its_first_price_and_audits_it():
    admin = login_user(ADMINISTRATOR)
    carpark = CarParkFactory()
    product = product_services.product_create(
        carpark=carpark,
        name="E-charging add-on",
        monthly_price="25.00",
        quota=5,
        audience=Product.Audience.CORPORATE,
        validity=Product.Validity.WEEKENDS,
        is_addon=True,
        vat_rate="19",
        user=admin,
    )
    assert (product.audience, product.validity, product.is_addon) == ("corporate", "weekends", True)
    assert list(product.prices.values_list("monthly_price", "valid_from", "valid_until")) == [
        (Decimal("25.00"), today(), None)
    ]
    assert AuditEntry.objects.filter(action="carparks.product_created", target_id=str(product.pk)).exists()
    with pytest.raises(services.CarparkError) as refused:
        product_services.product_create(carpark=carpark, name="e-charging ADD-ON", monthly_price="1", quota=1)
    assert refused.value.field == "name"


@pytest.mark.parametrize(
    ("field", "value"),
    [("vat_rate", "100.01"), ("vat_rate", "-1"), ("deposit", "-5"), ("vehicles_per_place", 0), ("name", "x\x00y")],
)
def test_it_refuses_bad_product_values_at_their_field(field, value):
    product = ProductFactory()
    with pytest.raises(services.CarparkError) as refused:
        product_services.product_update(product=product, **{field: value})
    assert refused.value.field == field


def test_it_ends_the_open_price_the_day_before_a_new_one_and_price_on_answers_each_day():
    product = ProductFactory(monthly_price=Decimal("90.00"))
    start = today() + timedelta(days=20)
    product_services.product_price_set(product=product, monthly_price="99.00", valid_from=start)
    rows = list(product.prices.order_by("valid_from").values_list("monthly_price", "valid_from", "valid_until"))
    assert rows == [
        (Decimal("90.00"), date(2000, 1, 1), start - timedelta(days=1)),
        (Decimal("99.00"), start, None),
    ]
    assert product_services.price_on(product, start - timedelta(days=1)) == Decimal("90.00")
    assert product_services.price_on(product, start) == Decimal("99.00")
    assert product_services.price_on(product, start + timedelta(days=400)) == Decimal("99.00")
    assert Product.objects.get(pk=product.pk).monthly_price == Decimal("90.00")  # not valid yet


def test_price_on_falls_back_to_the_products_price_without_price_rows():
    product = ProductFactory(monthly_price=Decimal("77.00"))
    assert not product.prices.exists()
    assert product_services.price_on(product, date(2026, 1, 1)) == Decimal("77.00")


def test_it_refuses_a_price_overlapping_a_planned_one_until_that_is_withdrawn():
    product = ProductFactory(monthly_price=Decimal("90.00"))
    planned = today() + timedelta(days=30)
    price = product_services.product_price_set(product=product, monthly_price="99.00", valid_from=planned)
    earlier = today() + timedelta(days=10)
    with pytest.raises(services.CarparkError) as refused:
        product_services.product_price_set(product=product, monthly_price="95.00", valid_from=earlier)
    assert refused.value.field == "valid_from"
    assert f"99.00 from {planned:%Y-%m-%d}" in str(refused.value)
    with pytest.raises(services.CarparkError):
        product_services.product_price_set(product=product, monthly_price="95.00", valid_from=planned)
    assert product.prices.count() == 2

    product_services.product_price_withdraw(price=price)
    assert list(product.prices.values_list("monthly_price", "valid_until")) == [(Decimal("90.00"), None)]
    product_services.product_price_set(product=product, monthly_price="95.00", valid_from=earlier)
    assert product_services.price_on(product, planned) == Decimal("95.00")


def test_it_refuses_a_price_starting_in_the_past():
    product = ProductFactory()
    with pytest.raises(services.CarparkError) as refused:
        product_services.product_price_set(
            product=product, monthly_price="99.00", valid_from=today() - timedelta(days=1)
        )
    assert refused.value.field == "valid_from"
    assert not product.prices.exists()


def test_a_price_from_today_is_the_products_price_at_once_and_prices_roll_moves_planned_ones_on():
    product = ProductFactory(monthly_price=Decimal("90.00"))
    product_services.product_price_set(product=product, monthly_price="92.00", valid_from=today())
    assert Product.objects.get(pk=product.pk).monthly_price == Decimal("92.00")
    product_services.product_price_set(product=product, monthly_price="99.00", valid_from=today() + timedelta(days=3))

    assert product_services.prices_roll() == 0
    with time_machine.travel(timezone.now() + timedelta(days=3)):
        assert product_services.prices_roll() == 1
        assert product_services.prices_roll() == 0
    assert Product.objects.get(pk=product.pk).monthly_price == Decimal("99.00")


def test_the_price_roll_is_in_the_beat_schedule():
    from django.conf import settings

    from carparks.tasks import prices_roll

    assert prices_roll.name == "carparks.prices_roll"
    assert "carparks.prices_roll" in {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}


def test_carpark_update_changes_the_fields_and_audits_them():
    carpark = CarParkFactory(capacity=100)
    services.carpark_update(carpark=carpark, capacity=120, opening_hours="Mo-Fr 06:00-22:00", time_zone="Europe/Vienna")
    carpark.refresh_from_db()
    assert (carpark.capacity, carpark.opening_hours, carpark.time_zone) == (120, "Mo-Fr 06:00-22:00", "Europe/Vienna")
    entry = AuditEntry.objects.get(action="carparks.carpark_updated", target_id=str(carpark.pk))
    assert entry.old["capacity"] == "100" and entry.new["capacity"] == "120"
    with pytest.raises(services.CarparkError) as refused:
        services.carpark_update(carpark=carpark, time_zone="Mars/Olympus")
    assert refused.value.field == "time_zone"


# --- pages --------------------------------------------------------------------------------------


def login_user(*roles):
    from carparks.tests.factories import UserFactory

    return UserFactory(roles=list(roles))


def product_data(**overrides):
    data = {
        "name": "Season 24/7",
        "audience": "any",
        "validity": "all_day",
        "vehicle_class": "car",
        "monthly_price": "95.00",
        "deposit": "25.00",
        "vat_rate": "19",
        "notice_period_days": "30",
        "vehicles_per_place": "1",
        "quota": "10",
        "payment_options": ["card", "sepa_debit"],
    }
    return {**data, **overrides}


def test_a_manager_adds_and_edits_a_product_of_their_car_park(client):
    carpark = CarParkFactory()
    login(client, MANAGER, carparks=[carpark])
    response = client.post(reverse("carparks:product-create", args=[carpark.pk]), product_data())
    product = Product.objects.get(carpark=carpark)
    assert response.status_code == 302 and response.url == reverse("carparks:product-detail", args=[product.pk])
    page = client.get(reverse("carparks:product-detail", args=[product.pk]))
    assert b"95.00" in page.content and b"New price from a date" in page.content

    data = product_data(name="Season 24/7 plus", quota="8")
    data.pop("monthly_price")
    response = client.post(reverse("carparks:product-edit", args=[product.pk]), data)
    assert response.status_code == 302
    product.refresh_from_db()
    assert (product.name, product.quota, product.is_active) == ("Season 24/7 plus", 8, False)


def test_the_edit_page_answers_a_quota_below_the_held_places_at_the_field(client):
    product = ProductFactory(quota=20)
    hold(product, 12)
    login(client, ADMINISTRATOR)
    data = product_data(name=product.name, quota="3", is_active="on")
    data.pop("monthly_price")
    response = client.post(reverse("carparks:product-edit", args=[product.pk]), data)
    assert response.status_code == 200
    assert response.context["form"].errors["quota"] == ["12 places are held; the quota cannot be below 12."]


def test_the_quota_field_of_the_car_park_page_refuses_below_held_places_with_a_message(client):
    product = ProductFactory(quota=5)
    hold(product, 2)
    login(client, ADMINISTRATOR)
    response = client.post(reverse("carparks:product-quota", args=[product.pk]), {"quota": "1"}, follow=True)
    assert "2 places are held; the quota cannot be below 2." in response.content.decode()
    assert Product.objects.get(pk=product.pk).quota == 5


@pytest.mark.parametrize("name", ["Season\x00night", "N" * 10_000])
def test_a_nul_byte_or_10000_character_name_is_refused_at_the_field(client, name):
    carpark = CarParkFactory()
    login(client, ADMINISTRATOR)
    response = client.post(reverse("carparks:product-create", args=[carpark.pk]), product_data(name=name))
    assert response.status_code == 200 and response.context["form"].errors["name"]
    assert not Product.objects.exists()
    response = client.post(
        reverse("carparks:carpark-edit", args=[carpark.pk]),
        {"name": name, "capacity": "10", "time_zone": "Europe/Berlin"},
    )
    assert response.status_code == 200 and response.context["form"].errors["name"]


def test_the_price_form_answers_past_dates_and_overlaps_at_the_field(client):
    product = ProductFactory(monthly_price=Decimal("90.00"))
    login(client, FINANCE)
    url = reverse("carparks:product-price-new", args=[product.pk])
    yesterday = today() - timedelta(days=1)
    response = client.post(url, {"monthly_price": "99.00", "valid_from": yesterday.isoformat()})
    assert response.status_code == 200
    assert "cannot start in the past" in response.context["price_form"].errors["valid_from"][0]

    planned = today() + timedelta(days=40)
    assert client.post(url, {"monthly_price": "99.00", "valid_from": planned.isoformat()}).status_code == 302
    response = client.post(url, {"monthly_price": "95.00", "valid_from": (today() + timedelta(days=5)).isoformat()})
    assert f"99.00 from {planned:%Y-%m-%d}" in response.context["price_form"].errors["valid_from"][0]
    response = client.post(url, {"monthly_price": "1e400", "valid_from": "31.02.2026"})
    assert set(response.context["price_form"].errors) == {"monthly_price", "valid_from"}
    page = client.get(reverse("carparks:product-detail", args=[product.pk])).content.decode()
    assert "planned" in page and "99.00" in page and "90.00" in page


def test_a_manager_of_another_car_park_gets_404_and_an_agent_403(client):
    product = ProductFactory()
    carpark = product.carpark
    login(client, MANAGER, carparks=[CarParkFactory()])
    data = product_data()
    for url in (
        reverse("carparks:carpark-edit", args=[carpark.pk]),
        reverse("carparks:product-create", args=[carpark.pk]),
        reverse("carparks:product-edit", args=[product.pk]),
        reverse("carparks:product-detail", args=[product.pk]),
        reverse("carparks:product-price-new", args=[product.pk]),
    ):
        assert client.post(url, data).status_code == 404, url
    client.logout()
    login(client, AGENT, carparks=[carpark])
    assert client.get(reverse("carparks:carpark-edit", args=[carpark.pk])).status_code == 403
    assert client.get(reverse("carparks:product-edit", args=[product.pk])).status_code == 403
    assert client.get(reverse("carparks:product-detail", args=[product.pk])).status_code == 200
    assert client.post(reverse("carparks:product-price-new", args=[product.pk]), {}).status_code == 403
    assert not ProductPrice.objects.exists() and Product.objects.count() == 1


def test_a_manager_edits_their_car_park_and_sees_the_cpms_link_read_only(client):
    from connect.models import CarParkLink, CpmsConnection

    carpark = CarParkFactory(capacity=100)
    connection = CpmsConnection.objects.create(name="Site CPMS", code="site", kind="parkapi")
    CarParkLink.objects.create(carpark=carpark, connection=connection, external_id="P-7")
    login(client, MANAGER, carparks=[carpark])
    url = reverse("carparks:carpark-edit", args=[carpark.pk])
    page = client.get(url)
    assert "connection" not in page.context["form"].fields and b"P-7" in page.content
    response = client.post(
        url,
        {
            "name": carpark.name,
            "street": "Marienplatz 1",
            "postcode": "80331",
            "city": "Munich",
            "capacity": "-3",
            "time_zone": "Europe/Berlin",
        },
    )
    assert response.context["form"].errors["capacity"]
    response = client.post(
        url,
        {
            "name": carpark.name,
            "street": "Marienplatz 1",
            "city": "Munich",
            "capacity": "150",
            "time_zone": "Europe/Berlin",
            "latitude": "48.137154",
            "longitude": "11.576124",
            "opening_hours": "Mo-Su 00:00-24:00",
            "cpms_reference": "P-7",
        },
    )
    assert response.status_code == 302
    carpark.refresh_from_db()
    assert (carpark.capacity, carpark.street, carpark.latitude) == (150, "Marienplatz 1", Decimal("48.137154"))
    assert CarParkLink.objects.get(carpark=carpark).connection == connection


def test_an_admin_links_the_car_park_to_a_cpms_connection(client):
    from connect.models import CarParkLink, CpmsConnection

    carpark = CarParkFactory()
    connection = CpmsConnection.objects.create(name="Site CPMS", code="site", kind="parkapi")
    login(client, ADMINISTRATOR)
    url = reverse("carparks:carpark-edit", args=[carpark.pk])
    base = {"name": carpark.name, "capacity": "100", "time_zone": "Europe/Berlin", "connection": connection.pk}
    response = client.post(url, base)
    assert response.context["form"].errors["cpms_reference"]
    assert client.post(url, {**base, "cpms_reference": "EXT-1"}).status_code == 302
    link = CarParkLink.objects.get(carpark=carpark)
    assert (link.connection, link.external_id) == (connection, "EXT-1")
    assert AuditEntry.objects.filter(action="carparks.carpark_cpms_linked").exists()
    assert CarPark.objects.get(pk=carpark.pk).cpms_reference == "EXT-1"


def test_demo_products_have_a_price_change_next_month():
    from io import StringIO

    from carparks import demo

    demo.load(StringIO())
    changed = ProductPrice.objects.filter(valid_from__gt=today())
    assert changed.exists()
    assert Contract.objects.filter(product__prices__in=changed, state=Contract.State.ACTIVE).exists()
