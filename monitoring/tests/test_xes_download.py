"""The event log (XES) download of the analytics page: roles, car parks, people, streaming, gzip."""

from __future__ import annotations

import gzip

import pytest
from django.urls import reverse
from lxml import etree

from .conftest import at

pytestmark = pytest.mark.django_db

URL = reverse("monitoring:analytics-xes")
PERIOD = {"period": "custom", "day_from": "2026-03-02", "day_to": "2026-03-03", "workflow": "mon-review"}


@pytest.fixture
def history(story, carparks):
    """Three processes in Altstadt (one reworked), one rejected in Hauptbahnhof, one started the day after."""
    a, b = carparks
    processes = [
        story.full(at("2026-03-02", 9), a),
        story.full(at("2026-03-02", 11), a, rework=True),
        story.full(at("2026-03-03", 10), a),
    ]
    rejected = story.start(at("2026-03-03", 8), b)
    story.complete(rejected, at("2026-03-03", 9), "reject")
    story.full(at("2026-03-04", 9), a)
    return [*processes, rejected]


def download(client, **params):
    response = client.get(URL, {**PERIOD, **params})
    assert response.status_code == 200, response
    assert response.streaming is True
    body = b"".join(response.streaming_content)
    return response, body


def cases(body: bytes) -> list[str]:
    return [t.find("string[@key='concept:name']").get("value") for t in etree.fromstring(body).iter("trace")]


def resources(body: bytes) -> set[str]:
    return {e.get("value") for e in etree.fromstring(body).iter("string") if e.get("key") == "org:resource"}


def test_a_supervisor_downloads_the_period_as_a_streamed_xes_file_naming_people(client, login, staff, history):
    login(client, staff["supervisor"])
    response, body = download(client)
    assert response["Content-Type"] == "application/xml; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="mon-review_2026-03-02_2026-03-03.xes"'
    assert cases(body) == [str(p.pk) for p in history]  # not the one started on 4 March
    assert resources(body) == {"agent", "supervisor"}
    names = {e.get("value") for e in etree.fromstring(body).iter("string") if e.get("key") == "concept:name"}
    assert {"Review application", "Final check", "Monitoring review"} <= names


def test_a_manager_gets_the_own_car_parks_and_roles_instead_of_people(client, login, staff, history):
    login(client, staff["manager"])  # responsible for Altstadt only
    _, body = download(client)
    assert cases(body) == [str(p.pk) for p in history[:3]]
    assert resources(body) == {"Back-office agent", "Supervisor"}


def test_gzip_on_request(client, login, staff, history):
    login(client, staff["admin"])
    response, body = download(client, gzip="1")
    assert response["Content-Type"] == "application/gzip"
    assert response["Content-Disposition"] == 'attachment; filename="mon-review_2026-03-02_2026-03-03.xes.gz"'
    assert cases(gzip.decompress(body)) == [str(p.pk) for p in history]


def test_only_the_analytics_roles_download(client, login, staff, make_user):
    login(client, staff["agent"])
    assert client.get(URL, PERIOD).status_code == 403
    client.logout()
    assert client.get(URL, PERIOD).status_code == 302  # to the login


def test_bad_filters_send_back_to_analytics_where_the_error_shows(client, login, staff, history):
    login(client, staff["supervisor"])
    response = client.get(URL, {**PERIOD, "day_to": ""})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("monitoring:analytics") + "?")
    page = client.get(response["Location"])
    assert "Give both dates of a custom period." in page.content.decode()


def test_the_analytics_page_offers_the_download_of_its_selection(client, login, staff, history):
    login(client, staff["finance"])
    page = client.get(reverse("monitoring:analytics"), PERIOD).content.decode()
    assert 'id="xes-download"' in page
    assert f"{URL}?period=custom&amp;day_from=2026-03-02&amp;day_to=2026-03-03&amp;workflow=mon-review" in page
