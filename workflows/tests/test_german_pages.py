"""The workflow pages in German: the browser's language or the user's own choice, German labels, enum
labels and dates (24.12.2026 14:30); English stays ISO. Workflow content (step names) is not translated."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts import roles
from accounts.models import Preference
from workflows.tests.basket_support import CarParkFactory, install, person, start_review

pytestmark = pytest.mark.django_db

GERMAN_DATETIME = re.compile(r"\b\d{2}\.\d{2}\.\d{4} \d{2}:\d{2}\b")
ISO_DATETIME = re.compile(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}\b")


@pytest.fixture
def task():
    install()
    return start_review(CarParkFactory(name="Altstadt"), customer_name="Erika Mustermann")


def test_the_basket_speaks_the_browsers_german(client, login, task):
    login(client, person("agent", roles.AGENT, carparks=[task.process.business_object.product.carpark]))
    body = client.get(reverse("workflows:basket"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    for text in ("Aufgabenkorb", "Offene Aufgaben", "Meine Aufgaben", "Parkhaus", "Fällig", "Nicht übernommen", "Hoch"):
        assert text in body, text
    assert "Review application" in body  # the step's name is the workflow's own word
    assert GERMAN_DATETIME.search(body) and not ISO_DATETIME.search(body)

    english = client.get(reverse("workflows:basket"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Queue" in english and "Aufgabenkorb" not in english
    assert ISO_DATETIME.search(english) and not GERMAN_DATETIME.search(english)


def test_the_users_own_language_wins_over_the_browser(client, login, task):
    admin = person("admin", roles.ADMINISTRATOR)
    Preference.objects.create(user=admin, language="de")
    login(client, admin)  # the preference is taken into the session at login
    body = client.get(reverse("workflows:process-detail", args=[task.process_id]), HTTP_ACCEPT_LANGUAGE="en")
    text = body.content.decode()
    assert body.headers["Content-Language"] == "de"
    for german in ("Prozess gestartet", "Aufgabe erstellt", "Läuft", "Überblick", "Verlauf", "Anhalten"):
        assert german in text, german
    assert re.search(r"\b\d{2}\.\d{2}\.\d{4} \d{2}:\d{2}:\d{2}\b", text)  # the history's moments


def test_a_german_date_filters_the_processes_list(client, login, task):
    login(client, person("admin", roles.ADMINISTRATOR))
    started = task.process.started_at.date()
    url = reverse("workflows:process-list")
    found = client.get(url, {"started_from": started.strftime("%d.%m.%Y")}, HTTP_ACCEPT_LANGUAGE="de")
    assert f"#{task.process_id}" in found.content.decode() and "TT.MM.JJJJ" in found.content.decode()
    wrong = client.get(url, {"started_from": "31.02.2026"}, HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "„31.02.2026“ ist kein Datum (verwenden Sie TT.MM.JJJJ)." in wrong
