"""Statements for the roles that read them: Supervisors and Finance (who see Statements in the menu)
preview the running day, week or month and build the last closed period on demand; the archive says
who built what and when; building is audited; roles without statements are refused."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry
from monitoring.builds import statement_build_run
from monitoring.models import Statement, StatementBuild

pytestmark = pytest.mark.django_db

STATEMENTS = reverse("monitoring:statements")
BUILD = reverse("monitoring:statement-build")
PREVIEW = reverse("monitoring:statement-preview")


@pytest.mark.parametrize("who", ["supervisor", "finance"])
def test_supervisors_and_finance_build_a_statement_and_the_archive_names_them(client, login, staff, who):
    user = login(client, staff[who])
    page = client.get(STATEMENTS).content.decode()
    assert "No statement has been built yet." in page
    assert f'action="{BUILD}"' in page and f"{PREVIEW}?frequency=weekly" in page
    response = client.post(BUILD, {"frequency": "weekly"})
    build = StatementBuild.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "monitoring:statement-build-detail", args=[build.pk]
    )
    statement_build_run(build=build)  # what the worker does with the queued build
    statement = Statement.objects.get(frequency="weekly")
    assert statement.built_by == user
    assert reverse("monitoring:statement-detail", args=[statement.pk]) in client.get(response["Location"]).text
    entry = AuditEntry.objects.get(action="statement.build")
    assert entry.actor == user and entry.target_id == str(statement.pk)
    assert entry.new["frequency"] == "weekly"
    archive = client.get(STATEMENTS).content.decode()
    assert "No statement has been built yet." not in archive
    assert f"· {user.get_full_name() or user.username}</td>" in archive


def test_a_scheduled_statement_is_listed_as_scheduled(client, login, staff):
    from monitoring.statements import period_for, statement_build

    day_from, day_to = period_for("daily", timezone.localdate())
    statement_build(frequency="daily", day_from=day_from, day_to=day_to)
    login(client, staff["finance"])
    assert "scheduled" in client.get(STATEMENTS).content.decode()


@pytest.mark.parametrize("frequency", ["daily", "weekly", "monthly"])
def test_the_running_period_can_be_previewed_without_storing_anything(client, login, staff, frequency):
    login(client, staff["supervisor"])
    response = client.get(PREVIEW, {"frequency": frequency})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Preview" in body and "Nothing is stored or sent" in body
    assert response.context["statement"].period_end == timezone.localdate()
    assert not Statement.objects.exists()


def test_a_wrong_frequency_is_told_and_roles_without_statements_are_refused(client, login, staff):
    login(client, staff["finance"])
    response = client.get(PREVIEW, {"frequency": "hourly"}, follow=True)
    assert "Choose daily, weekly or monthly." in response.content.decode()
    login(client, staff["agent"])
    assert client.get(PREVIEW, {"frequency": "daily"}).status_code == 403
    assert client.post(BUILD, {"frequency": "daily"}).status_code == 403
    login(client, staff["manager"])
    assert client.post(BUILD, {"frequency": "daily"}).status_code == 403
    assert not Statement.objects.exists()
