"""German staff see the CPMS connection pages in German: labels, states, dates and numbers."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts.roles import ADMINISTRATOR
from connect import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def imported(sim, connection):
    services.sync_static(connection=connection)
    services.sync_occupancy(connection=connection)
    return connection


def test_a_german_administrator_sees_the_connection_page_in_german(client, make_user, login, imported):
    login(client, make_user("admin", ADMINISTRATOR))
    run = imported.runs.order_by("started_at").first()

    response = client.get(reverse("connect:connection-detail", args=[imported.pk]), HTTP_ACCEPT_LANGUAGE="de")

    assert response.status_code == 200
    assert response.headers["Content-Language"] == "de"
    html = response.content.decode()
    for label in (
        "Verbindung testen",
        "Parkhäuser jetzt synchronisieren",
        "Verknüpfte Parkhäuser",
        "Einstellungen",
        "Synchronisierungsverlauf",
        "Protokoll",
        "Parkhausdaten",
        "Belegung",
        "Erfolgreich",
        "Bearbeiten",
    ):
        assert label in html, label
    for english in ("Test connection", "Linked car parks", "Sync history", "Succeeded"):
        assert english not in html, english
    # The run's start in German notation (24.12.2026 14:30), not ISO.
    assert re.search(r"\d{2}\.\d{2}\.\d{4} \d{2}:\d{2}", html)
    assert run.started_at.strftime("%Y-%m-%d") not in html


def test_the_connection_list_in_german_and_in_english(client, make_user, login, imported):
    login(client, make_user("admin", ADMINISTRATOR))

    german = client.get(reverse("connect:connection-list"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    english = client.get(reverse("connect:connection-list"), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "CPMS-Verbindungen" in german and "Funktioniert" in german and "Letzte Parkhaus-Synchronisierung" in german
    assert "CPMS connections" in english and "Working" in english and "Last car-park sync" in english
    assert "Funktioniert" not in english


def test_a_form_error_on_the_connection_form_is_german(client, make_user, login, imported):
    login(client, make_user("admin", ADMINISTRATOR))
    url = reverse("connect:connection-edit", args=[imported.pk])
    data = {
        "name": imported.name,
        "code": imported.code,
        "kind": imported.kind,
        "base_url": imported.base_url,
        "timeout_seconds": "500",
        "options": "{}",
    }

    response = client.post(url, data, HTTP_ACCEPT_LANGUAGE="de")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Wählen Sie ein Zeitlimit zwischen 0,1 und 120 Sekunden." in html
    assert "Zeitlimit (Sekunden)" in html and "Neue CPMS-Verbindung" not in html
    imported.refresh_from_db()
    assert imported.timeout_seconds == 5.0  # nothing saved
