"""A car-park manager tests the CPMS connection and refreshes live occupancy in a real browser."""

from __future__ import annotations

import pytest

from accounts import roles
from carparks.models import CarPark
from connect import services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_manager_tests_the_connection_and_refreshes_occupancy(
    page, live_server, make_user, browser_login, sim, connection
):
    services.sync_static(connection=connection)
    carpark = CarPark.objects.get(cpms_reference="SIM-0001")
    make_user("mia", roles.MANAGER, carparks=[carpark], password="s3cret-pass")
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            errors.append(f"{message.location['url']}: {message.text}")
            if message.type == "error" and "favicon" not in message.location["url"]
            else None
        ),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))

    browser_login(page, live_server, "mia", "s3cret-pass")
    page.goto(f"{live_server.url}/connect/")
    page.wait_for_function("() => window.htmx !== undefined")  # before that, the button posts the whole page
    page.get_by_role("button", name="Test connection").click()
    result = page.locator(f"#test-result-{connection.pk}")
    result.get_by_text("APDS 4 endpoint answered: 5 places published.").first.wait_for()
    assert page.url == f"{live_server.url}/connect/"  # answered in place by htmx, no reload

    sim.set_place("SIM-0001", occupied=123)
    page.goto(f"{live_server.url}/carparks/{carpark.pk}/")
    page.wait_for_function("() => window.htmx !== undefined")
    panel = page.locator(f"#cpms-carpark-{carpark.pk}")
    assert "No occupancy received yet" in panel.inner_text()
    panel.get_by_role("button", name="Refresh occupancy").click()
    panel.get_by_text(f"123 / {carpark.capacity}").first.wait_for()
    assert errors == []  # no CSP violation, no missing asset
