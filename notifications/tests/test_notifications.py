"""Notifications: overdue escalation at the due time (emails the target once), the unread list and badge,
marking read, preferences."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from accounts import roles
from notifications.models import Notification, NotificationPreference
from notifications.services import notification_send
from workflows.models import Task
from workflows.testing import fire_due_timers
from workflows.tests.basket_support import CarParkFactory, install, person, start_review

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def test_overdue_escalation_fires_once_at_the_due_time_and_emails_the_target(django_capture_on_commit_callbacks):
    install()
    carpark = CarParkFactory()
    agent = person("agent", roles.AGENT, carparks=[carpark])
    supervisor = person("supervisor", roles.SUPERVISOR)
    person("other_agent", roles.AGENT)  # holds the role but not the car park: not told
    with time_machine.travel(START, tick=False):
        task = start_review(carpark)
        Task.objects.filter(pk=task.pk).update(state=Task.State.CLAIMED, assignee=agent)
    assert task.due_at == START + dt.timedelta(days=1)
    with (
        time_machine.travel(task.due_at - dt.timedelta(seconds=1), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert fire_due_timers() == 0
    assert mail.outbox == [] and not Notification.objects.exists()
    with time_machine.travel(task.due_at, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert fire_due_timers() == 1
    task.refresh_from_db()
    assert task.state == Task.State.ESCALATED
    escalated = Task.objects.get(escalated_from=task)
    assert escalated.role == roles.SUPERVISOR
    to = sorted(address for message in mail.outbox for address in message.to)
    assert to == sorted([supervisor.email, agent.email])  # the target, and the agent who held it (overdue)
    supervisor_mail = next(m for m in mail.outbox if m.to == [supervisor.email])
    assert "Escalated to Supervisor" in supervisor_mail.subject and "overdue" in supervisor_mail.body
    assert reverse("workflows:task-detail", args=[escalated.pk]) in supervisor_mail.body
    assert Notification.objects.get(user=agent).kind == Notification.Kind.OVERDUE
    # Running the tick again (or later) changes nothing until the next level is due.
    with (
        time_machine.travel(task.due_at + dt.timedelta(hours=1), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert fire_due_timers() == 0
    assert len(mail.outbox) == 2
    assert Notification.objects.filter(user=supervisor).count() == 1


def test_the_list_shows_unread_and_marks_them_read(client, login):
    user = person("agent", roles.AGENT)
    login(client, user)
    notification_send(users=[user], kind=Notification.Kind.INFO, title="Hello there", url="/basket/")
    notification_send(users=[user], kind=Notification.Kind.INFO, title="Second")
    assert client.get(reverse("notifications:unread")).content.decode().endswith("</span>2</span>")
    body = client.get(reverse("notifications:list")).content.decode()
    assert "Hello there" in body and "2 unread" in body
    first = Notification.objects.get(title="Hello there")
    response = client.post(reverse("notifications:open", args=[first.pk]))
    assert response["Location"] == "/basket/"
    assert client.get(reverse("notifications:unread")).content.decode().endswith("</span>1</span>")
    client.post(reverse("notifications:mark-read"))
    assert client.get(reverse("notifications:unread")).content == b""  # empty, so the badge hides
    page = client.get(reverse("portal-home")).content.decode()
    assert 'hx-get="/notifications/unread/"' in page


def test_nobody_opens_someone_elses_notification(client, login):
    owner, other = person("owner", roles.AGENT), person("other", roles.AGENT)
    (notification,) = notification_send(users=[owner], kind=Notification.Kind.INFO, title="Private")
    login(client, other)
    assert client.post(reverse("notifications:open", args=[notification.pk])).status_code == 404
    assert "Private" not in client.get(reverse("notifications:list")).content.decode()


def test_preferences_switch_emails_off(client, login, django_capture_on_commit_callbacks):
    user = person("agent", roles.AGENT)
    login(client, user)
    response = client.post(reverse("notifications:preferences"), {"email_assignment": "on", "email_overdue": "on"})
    assert response.status_code == 302
    preference = NotificationPreference.objects.get(user=user)
    assert preference.email_assignment and not preference.email_escalation
    with django_capture_on_commit_callbacks(execute=True):
        notification_send(users=[user], kind=Notification.Kind.ESCALATION, title="Escalated")
        notification_send(users=[user], kind=Notification.Kind.ASSIGNMENT, title="Assigned")
    assert [m.subject for m in mail.outbox] == ["[ParkingHQ] Assigned"]
    assert Notification.objects.filter(user=user).count() == 2


def test_claiming_a_task_yourself_notifies_nobody(client, login, django_capture_on_commit_callbacks):
    install()
    carpark = CarParkFactory()
    agent = person("agent", roles.AGENT, carparks=[carpark])
    task = start_review(carpark)
    login(client, agent)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("workflows:task-claim", args=[task.pk]))
    assert not Notification.objects.exists() and mail.outbox == []
