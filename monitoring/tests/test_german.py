"""German staff see monitoring in German: the dashboard's labels, dates in German notation, amounts."""

from __future__ import annotations

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from accounts import roles
from accounts.models import Preference
from monitoring.alerts import alerts_evaluate
from monitoring.models import AlertRule

from .conftest import at

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(story, carparks):
    a, b = carparks
    story.full(at("2026-03-02", 9), a)
    story.start(at("2026-03-03", 9), b)
    return a, b


def test_a_german_supervisor_sees_the_dashboard_in_german(client, login, staff, history):
    login(client, staff["supervisor"])
    with time_machine.travel(at("2026-03-03", 12), tick=False):
        response = client.get(reverse("monitoring:dashboard"), {"period": "7"}, HTTP_ACCEPT_LANGUAGE="de")
    assert response.status_code == 200
    html = response.content.decode()
    for label in (
        "Übersicht",
        "Prozessanalyse",
        "Alarme",
        "Berichte",
        "Laufen gerade",
        "Überfällig",
        "Eskaliert",
        "Aktuell, je Workflow und Schritt",
        "Durchsatz: gestartet und abgeschlossen je Tag",
        "Auslastung der Aufgabenkörbe je Rolle",
        "Letzte 7 Tage",
        "Anwenden",
    ):
        assert label in html, label
    for english in ("Running now", "Now, per workflow and step", "Basket load per role", "Apply"):
        assert english not in html, english
    # The period in German notation, the day rows too.
    assert "Angezeigt: 25.02.2026 – 03.03.2026" in html
    assert "02.03.2026" in html and "2026-03-02</td>" not in html


def test_the_dashboard_stays_english_for_an_english_browser(client, login, staff, history):
    login(client, staff["supervisor"])
    with time_machine.travel(at("2026-03-03", 12), tick=False):
        html = client.get(reverse("monitoring:dashboard"), {"period": "7"}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Running now" in html and "Showing 2026-02-25 – 2026-03-03" in html
    assert "Laufen gerade" not in html


def test_a_german_date_typed_in_the_filter_is_understood(client, login, staff, history):
    login(client, staff["supervisor"])
    with time_machine.travel(at("2026-03-03", 12), tick=False):
        response = client.get(
            reverse("monitoring:dashboard"),
            {"period": "custom", "day_from": "02.03.2026", "day_to": "02.03.2026"},
            HTTP_ACCEPT_LANGUAGE="de",
        )
    html = response.content.decode()
    assert "Angezeigt: 02.03.2026 – 02.03.2026" in html
    assert "Stattdessen werden die Standardfilter angezeigt." not in html


def test_an_alert_goes_out_in_each_recipients_language(story, carparks, staff, django_capture_on_commit_callbacks):
    from notifications.models import Notification

    german, english = staff["supervisor"], staff["admin"]
    Preference.objects.update_or_create(user=german, defaults={"language": "de"})
    AlertRule.objects.create(
        name="Overdue", kind=AlertRule.Kind.OVERDUE_TASKS, role=roles.AGENT, threshold=0, notify_role=roles.SUPERVISOR
    )
    story.start(at("2026-03-02", 9), carparks[0])
    with time_machine.travel(at("2026-03-02", 11, 45), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate()["opened"] == 1
    german_mail = next(m for m in mail.outbox if german.email in m.to)
    english_mail = next(m for m in mail.outbox if english.email in m.to)
    assert german_mail.to == [german.email] and english_mail.to == [english.email]
    assert "ParkingHQ-Alarm" in german_mail.subject and "Ansehen und bestätigen:" in german_mail.body
    assert "Ausgelöst am 02.03.2026 11:45" in german_mail.body
    assert "ParkingHQ alert" in english_mail.subject and "See and acknowledge it:" in english_mail.body
    assert "Opened 2026-03-02 11:45" in english_mail.body
    assert Notification.objects.get(user=german).title == "Alarm: Overdue"
    assert Notification.objects.get(user=english).title == "Alert: Overdue"


def test_a_statement_reaches_each_subscriber_in_their_language_with_the_pdf_too(
    story, carparks, staff, django_capture_on_commit_callbacks
):
    import io
    from datetime import date

    from pypdf import PdfReader

    from monitoring.models import StatementSubscription
    from monitoring.statements import statement_build, statement_send

    def pdf_text(content: bytes) -> str:
        return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages).split())

    german, english = staff["supervisor"], staff["finance"]
    Preference.objects.update_or_create(user=german, defaults={"language": "de"})
    StatementSubscription.objects.create(user=german, frequency="weekly")
    StatementSubscription.objects.create(user=english, frequency="weekly")
    story.full(at("2026-03-03", 9), carparks[0])
    with time_machine.travel(at("2026-03-09", 7), tick=False):
        statement = statement_build(frequency="weekly", day_from=date(2026, 3, 2), day_to=date(2026, 3, 8))
        with django_capture_on_commit_callbacks(execute=True):
            assert statement_send(statement) == 2

    german_mail = next(m for m in mail.outbox if m.to == [german.email])
    english_mail = next(m for m in mail.outbox if m.to == [english.email])
    assert german_mail.subject == "ParkingHQ: Wochenbericht – 02.03.2026 – 08.03.2026"
    assert "Der vollständige Bericht ist als PDF angehängt" in german_mail.body
    assert english_mail.subject == "ParkingHQ: Weekly statement – 2026-03-02 – 2026-03-08"
    german_pdf = pdf_text(german_mail.attachments[0][1])
    assert "Wochenbericht" in german_pdf and "Zeitraum 02.03.2026 – 08.03.2026" in german_pdf
    assert "Workflow-Aktivität" in german_pdf and "Seite 1 von 1" in german_pdf
    # The English reader gets the archived PDF as it was built.
    assert english_mail.attachments[0][1] == bytes(statement.pdf)
    assert "Weekly statement" in pdf_text(bytes(statement.pdf))
