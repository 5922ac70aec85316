"""Pages: who sees which connections, the test button, the car-park CPMS panel, masked secrets."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.roles import ADMINISTRATOR, AGENT, MANAGER, SUPERVISOR
from carparks.models import CarPark
from connect import services
from connect.models import CpmsConnection, SyncRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_user(client, make_user, login):
    """Create a user with one role (and car parks), log the test client in as them."""

    def make(role: str, username: str, carparks=()):
        return login(client, make_user(username, role, carparks=carparks))

    return make


@pytest.fixture
def imported(sim, connection) -> CpmsConnection:
    services.sync_static(connection=connection)
    services.sync_occupancy(connection=connection)
    return connection


@pytest.fixture
def other_connection() -> CpmsConnection:
    other = CpmsConnection.objects.create(name="Far away CPMS", code="far", base_url="http://127.0.0.1:9/")
    carpark = CarPark.objects.create(name="Elsewhere", code="elsewhere")
    other.links.create(carpark=carpark, external_id="X1")
    return other


def test_it_lists_connections_with_status_for_administrators(as_user, client, imported, other_connection):
    as_user(ADMINISTRATOR, "admin")

    response = client.get(reverse("connect:connection-list"))

    assert response.status_code == 200
    assert b"Simulator" in response.content and b"Far away CPMS" in response.content
    assert b"Working" in response.content
    assert b"Test connection" in response.content


def test_a_manager_sees_only_connections_of_their_carparks(as_user, client, imported, other_connection):
    mine = CarPark.objects.get(cpms_reference="SIM-0001")
    as_user(MANAGER, "manager", carparks=[mine])

    listing = client.get(reverse("connect:connection-list"))
    detail = client.get(reverse("connect:connection-detail", args=[imported.pk]))
    hidden = client.get(reverse("connect:connection-detail", args=[other_connection.pk]))

    assert b"Simulator" in listing.content and b"Far away CPMS" not in listing.content
    assert detail.status_code == 200 and hidden.status_code == 404
    assert mine.name.encode() in detail.content
    other = CarPark.objects.get(cpms_reference="SIM-0002")
    assert other.name.encode() not in detail.content


def test_agents_may_not_see_connections(as_user, client, imported):
    as_user(AGENT, "agent")
    assert client.get(reverse("connect:connection-list")).status_code == 403


def test_the_test_button_shows_the_result(as_user, client, imported):
    as_user(SUPERVISOR, "supervisor")

    response = client.post(reverse("connect:connection-test", args=[imported.pk]), HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert b"APDS 4 endpoint answered: 5 places published." in response.content
    assert SyncRun.objects.filter(kind="test", status="succeeded").count() == 1


def test_a_failing_test_says_why(as_user, client, other_connection):
    as_user(ADMINISTRATOR, "admin")

    response = client.post(reverse("connect:connection-test", args=[other_connection.pk]), follow=True)

    assert b"Connection test: GET http://127.0.0.1:9/places" in response.content
    other_connection.refresh_from_db()
    assert other_connection.status == "failing"


def test_the_test_button_needs_post(as_user, client, imported):
    as_user(ADMINISTRATOR, "admin")
    assert client.get(reverse("connect:connection-test", args=[imported.pk])).status_code == 405


def test_the_secret_is_encrypted_at_rest_and_masked_in_pages(as_user, client, imported):
    imported.set_secret("sk-live-very-secret-1234")
    imported.save()
    stored = CpmsConnection.objects.values_list("secret_encrypted", flat=True).get(pk=imported.pk)
    as_user(ADMINISTRATOR, "admin")

    detail = client.get(reverse("connect:connection-detail", args=[imported.pk]))
    form = client.get(reverse("connect:connection-edit", args=[imported.pk]))

    assert "very-secret" not in stored
    assert CpmsConnection.objects.get(pk=imported.pk).get_secret() == "sk-live-very-secret-1234"
    for page in (detail, form):
        assert b"very-secret" not in page.content
        assert "••••••••1234".encode() in page.content


def test_a_secret_can_be_an_environment_reference(imported, monkeypatch):
    imported.set_secret("env:CPMS_TEST_TOKEN")
    imported.save()
    monkeypatch.setenv("CPMS_TEST_TOKEN", "from-the-environment")

    assert imported.secret_encrypted == "" and imported.masked_secret == "env:CPMS_TEST_TOKEN"
    assert imported.get_secret() == "from-the-environment"


def test_an_administrator_edits_a_connection_and_keeps_the_secret(as_user, client, imported):
    imported.set_secret("keep-me-please")
    imported.save()
    as_user(ADMINISTRATOR, "admin")

    response = client.post(
        reverse("connect:connection-edit", args=[imported.pk]),
        {
            "name": "Simulator renamed",
            "code": "sim",
            "kind": "apds",
            "base_url": imported.base_url,
            "timeout_seconds": "2.5",
            "options": "{}",
            "is_active": "on",
            "secret": "",
        },
    )

    assert response.status_code == 302
    imported.refresh_from_db()
    assert (imported.name, imported.timeout_seconds) == ("Simulator renamed", 2.5)
    assert imported.get_secret() == "keep-me-please"


def test_the_carpark_panel_shows_live_occupancy(as_user, client, sim, imported):
    carpark = CarPark.objects.get(cpms_reference="SIM-0001")
    as_user(MANAGER, "manager", carparks=[carpark])
    sim.set_place("SIM-0001", occupied=77)

    refreshed = client.post(reverse("connect:carpark-cpms-refresh", args=[carpark.pk]), HTTP_HX_REQUEST="true")
    polled = client.get(reverse("connect:carpark-cpms", args=[carpark.pk]))
    foreign = client.get(reverse("connect:carpark-cpms", args=[CarPark.objects.get(cpms_reference="SIM-0002").pk]))

    assert f"77 / {carpark.capacity}".encode() in refreshed.content
    assert b'hx-trigger="every 60s"' in polled.content and b"77 / " in polled.content
    assert foreign.status_code == 404


def test_the_carpark_panel_has_an_empty_state(as_user, client):
    carpark = CarPark.objects.create(name="Unconnected", code="unconnected")
    as_user(ADMINISTRATOR, "admin")
    response = client.get(reverse("connect:carpark-cpms", args=[carpark.pk]))
    assert b"not connected to a CPMS" in response.content


def test_a_reconciliation_run_page_lists_the_differences(as_user, client, sim, imported):
    from .conftest import make_contract

    make_contract(CarPark.objects.get(cpms_reference="SIM-0001"), plates=("HH-NO 1",))
    run = services.reconcile(connection=imported, start_review=False)
    as_user(ADMINISTRATOR, "admin")

    response = client.get(reverse("connect:run-detail", args=[run.pk]))

    assert b"Missing in the CPMS" in response.content and b"HHNO1" in response.content


def test_the_carpark_detail_page_includes_the_cpms_panel(as_user, client, sim, imported):
    carpark = CarPark.objects.get(cpms_reference="SIM-0004")
    as_user(MANAGER, "manager", carparks=[carpark])

    response = client.get(reverse("carparks:carpark-detail", args=[carpark.pk]))

    assert response.status_code == 200
    assert f'id="cpms-carpark-{carpark.pk}"'.encode() in response.content
    assert f"{carpark.occupancy} / {carpark.capacity}".encode() in response.content


def test_the_connection_list_does_not_grow_queries_with_rows(as_user, client):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(db) as captured:
            assert client.get(reverse("connect:connection-list")).status_code == 200
        return len(captured)

    as_user(ADMINISTRATOR, "admin")
    CpmsConnection.objects.create(name="One", code="one", base_url="http://127.0.0.1:9/")
    few = queries()
    for number in range(2, 8):
        CpmsConnection.objects.create(name=f"C{number}", code=f"c{number}", base_url="http://127.0.0.1:9/")
    assert queries() == few


def test_a_new_connection_with_a_bad_secret_reference_is_refused_with_a_clear_message(as_user, client):
    as_user(ADMINISTRATOR, "admin")
    data = {
        "name": "Garage Nord",
        "code": "nord",
        "kind": "datex2",
        "base_url": "https://nap.example/parking",
        "timeout_seconds": "10",
        "options": '{"table_path": "table.xml"}',
        "is_active": "on",
    }

    refused = client.post(reverse("connect:connection-create"), {**data, "secret": "env:not a name"})
    created = client.post(reverse("connect:connection-create"), {**data, "secret": "env:NORD_TOKEN"})

    assert refused.status_code == 200
    assert b"Write the reference as env:VARIABLE_NAME" in refused.content
    connection = CpmsConnection.objects.get(code="nord")
    assert created.status_code == 302 and connection.secret_reference == "env:NORD_TOKEN"
    assert connection.options == {"table_path": "table.xml"}
