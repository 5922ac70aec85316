"""Each person is told in their own language: the in-app notification and the email."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from accounts import roles
from accounts.models import Preference
from notifications.models import Notification
from workflows.models import Task
from workflows.testing import fire_due_timers
from workflows.tests.basket_support import CarParkFactory, install, person, start_review

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def test_an_overdue_task_is_told_in_german_to_a_german_user_and_in_english_to_the_others(
    django_capture_on_commit_callbacks,
):
    install()
    carpark = CarParkFactory()
    agent = person("agent", roles.AGENT, carparks=[carpark])
    supervisor = person("supervisor", roles.SUPERVISOR)
    Preference.objects.update_or_create(user=agent, defaults={"language": "de"})
    with time_machine.travel(START, tick=False):
        task = start_review(carpark)
        Task.objects.filter(pk=task.pk).update(state=Task.State.CLAIMED, assignee=agent)
    with time_machine.travel(task.due_at, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert fire_due_timers() == 1

    german = next(m for m in mail.outbox if m.to == [agent.email])
    assert german.subject == f"[ParkingHQ] Überfällig: {task.name}"
    assert german.body.startswith("Hallo ")
    assert f"„{task.name}“ hat die Frist überschritten und ging an" in german.body
    assert f"Aufgabe: {task.name}" in german.body
    assert "Fällig: 03.11.2026 10:00" in german.body  # German notation, in the portal's time zone
    assert "Welche Benachrichtigungen Sie per E-Mail erhalten" in german.body
    assert "Hello" not in german.body and "Due:" not in german.body

    english = next(m for m in mail.outbox if m.to == [supervisor.email])
    assert english.subject.startswith("[ParkingHQ] Escalated to Supervisor")
    assert english.body.startswith("Hello ") and "Due: 2026-11-03 10:00" in english.body

    assert Notification.objects.get(user=agent).title == f"Überfällig: {task.name}"
    assert Notification.objects.get(user=supervisor).title.startswith("Escalated to Supervisor")


def test_the_notification_list_in_german(client, login):
    user = person("agent", roles.AGENT)
    Preference.objects.update_or_create(user=user, defaults={"language": "de"})
    login(client, user)
    html = client.get(reverse("notifications:list"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Benachrichtigungen" in html and "Noch keine Benachrichtigungen." in html and "E-Mail-Einstellungen" in html
    assert "No notifications yet." not in html
