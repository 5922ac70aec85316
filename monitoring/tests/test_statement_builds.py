"""Statement builds as jobs: "Build" queues a build and returns at once; the job runs in steps whose
progress a poller sees as it goes; a second click for the same period while one is under way reuses it;
errors fail the build with the step and the reason; only the roles that build statements see and poll."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry
from monitoring import builds, statements
from monitoring.models import AggregatedDay, Statement, StatementBuild

BUILD = reverse("monitoring:statement-build")


def _row_seen_by_another_connection(build_id: int) -> tuple[str, int, int, str]:
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT state, steps_done, steps_total, step_label FROM monitoring_statementbuild WHERE id = %s",
                [build_id],
            )
            return cursor.fetchone()
    finally:
        other.close()


@pytest.mark.django_db
def test_a_second_request_while_one_is_under_way_reuses_it(staff, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        first, created = builds.statement_build_request(frequency="weekly", user=staff["finance"])
    assert created and first.state == StatementBuild.State.QUEUED and len(queued) == 1
    assert first.requested_by == staff["finance"]
    assert (first.period_start, first.period_end) == statements.period_for("weekly", timezone.localdate())

    with django_capture_on_commit_callbacks() as queued:
        again, created = builds.statement_build_request(frequency="weekly", user=staff["supervisor"])
    assert again == first and not created and queued == []  # queued: reused, nothing sent twice
    StatementBuild.objects.filter(pk=first.pk).update(state=StatementBuild.State.RUNNING)
    assert builds.statement_build_request(frequency="weekly", user=staff["supervisor"]) == (first, False)

    other, created = builds.statement_build_request(frequency="daily", user=staff["finance"])
    assert created and other != first  # another period is another build

    StatementBuild.objects.filter(pk=first.pk).update(state=StatementBuild.State.DONE)
    rebuilt, created = builds.statement_build_request(frequency="weekly", user=staff["finance"])
    assert created and rebuilt != first  # after it finished, building again is a new build


@pytest.mark.django_db
def test_an_abandoned_build_is_failed_and_replaced(staff):
    stale, _ = builds.statement_build_request(frequency="monthly", user=staff["finance"])
    StatementBuild.objects.filter(pk=stale.pk).update(
        state=StatementBuild.State.RUNNING, created_at=timezone.now() - timedelta(hours=1)
    )
    fresh, created = builds.statement_build_request(frequency="monthly", user=staff["finance"])
    stale.refresh_from_db()
    assert created and fresh != stale
    assert stale.state == StatementBuild.State.FAILED and "30 minutes" in stale.error


@pytest.mark.django_db(transaction=True)
def test_simultaneous_clicks_make_one_build(staff):
    start = threading.Barrier(4)
    made: list[int] = []

    def click() -> None:
        try:
            start.wait()
            build, _ = builds.statement_build_request(frequency="weekly", user=staff["finance"])
            made.append(build.pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(made) == 4 and len(set(made)) == 1
    assert StatementBuild.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_build_runs_in_steps_a_poller_sees(staff, monkeypatch):
    day_from, day_to = statements.period_for("weekly", timezone.localdate())
    AggregatedDay.objects.create(day=day_from)  # one day is stored already: six are added up
    build, _ = builds.statement_build_request(frequency="weekly", user=staff["supervisor"])
    seen: list[tuple[str, int, int, str]] = []
    original = statements.aggregate_day

    def watched(day):
        seen.append(_row_seen_by_another_connection(build.pk))
        return original(day)

    monkeypatch.setattr(statements, "aggregate_day", watched)
    pdf = statements.render_pdf

    def watched_pdf(html):
        seen.append(_row_seen_by_another_connection(build.pk))
        return pdf(html)

    monkeypatch.setattr(statements, "render_pdf", watched_pdf)

    build = builds.statement_build_run(build=build)

    total = 6 + len(statements.FIXED_STEPS)
    assert [row[:3] for row in seen[:6]] == [("running", done, total) for done in range(6)]
    assert seen[0][3] == statements.STEP_AGGREGATE
    assert seen[-1] == ("running", 9, total, statements.STEP_PDF)
    assert build.state == StatementBuild.State.DONE and build.steps_done == build.steps_total == total
    statement = Statement.objects.get(frequency="weekly", period_start=day_from)
    assert build.statement == statement and statement.built_by == staff["supervisor"]
    entry = AuditEntry.objects.get(action="statement.build")
    assert entry.actor == staff["supervisor"] and entry.target_id == str(statement.pk)

    calls = []
    monkeypatch.setattr(builds, "statement_build", lambda **kwargs: calls.append(kwargs))
    assert builds.statement_build_run(build=build).state == StatementBuild.State.DONE
    assert calls == []  # a second delivery of the job builds nothing


@pytest.mark.django_db
def test_an_error_fails_the_build_with_the_step_and_the_reason(client, login, staff, monkeypatch):
    build, _ = builds.statement_build_request(frequency="daily", user=staff["finance"])

    def broken(html):
        raise OSError("No fonts are installed for the PDF")

    monkeypatch.setattr(statements, "render_pdf", broken)
    build = builds.statement_build_run(build=build)
    assert build.state == StatementBuild.State.FAILED and build.finished_at
    assert build.step_label == statements.STEP_PDF and build.error == "No fonts are installed for the PDF"
    assert not Statement.objects.exists() and not AuditEntry.objects.filter(action="statement.build").exists()

    login(client, staff["finance"])
    page = client.get(reverse("monitoring:statement-build-progress", args=[build.pk])).content.decode()
    assert "The build stopped at “Rendering the PDF”: No fonts are installed for the PDF" in page
    assert "hx-trigger" not in page


# --- pages ------------------------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("who", ["supervisor", "finance", "admin"])
def test_build_returns_at_once_and_the_build_page_polls(client, login, staff, who, django_capture_on_commit_callbacks):
    login(client, staff[who])
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(BUILD, {"frequency": "weekly"})
    build = StatementBuild.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("monitoring:statement-build-detail", args=[build.pk])
    assert len(queued) == 1 and not Statement.objects.exists()  # built by the job, not in the request

    page = client.get(response["Location"]).content.decode()
    poll = reverse("monitoring:statement-build-progress", args=[build.pk])
    assert "The statement is being built" in page and f'hx-get="{poll}"' in page and 'hx-trigger="every 2s"' in page
    assert "Waiting for a worker" in page

    StatementBuild.objects.filter(pk=build.pk).update(
        state="running", started_at=timezone.now() - timedelta(seconds=10), steps_total=8, steps_done=2,
        step_label=statements.STEP_BILLING,
    )  # fmt: skip
    page = client.get(poll).content.decode()
    assert f'id="build-bar-{build.pk}" value="2" max="8"' in page and "Collecting the billing figures…" in page
    assert "Less than a minute left" in page and 'hx-trigger="every 2s"' in page

    again = client.post(BUILD, {"frequency": "weekly"}, follow=True)
    assert "already being built" in again.content.decode() and StatementBuild.objects.count() == 1

    builds.statement_build_run(build=StatementBuild.objects.create(frequency="daily", period_start=build.period_start,
                                                                   period_end=build.period_end))  # fmt: skip
    done = StatementBuild.objects.get(frequency="daily")
    page = client.get(reverse("monitoring:statement-build-progress", args=[done.pk])).content.decode()
    assert "hx-trigger" not in page and reverse("monitoring:statement-detail", args=[done.statement_id]) in page


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["agent", "manager"])
def test_roles_that_do_not_build_statements_neither_see_nor_poll_builds(client, login, staff, who):
    build, _ = builds.statement_build_request(frequency="weekly", user=staff["finance"])
    login(client, staff[who])
    assert client.get(reverse("monitoring:statement-build-detail", args=[build.pk])).status_code == 403
    assert client.get(reverse("monitoring:statement-build-progress", args=[build.pk])).status_code == 403
    assert client.post(BUILD, {"frequency": "weekly"}).status_code == 403
    assert StatementBuild.objects.count() == 1


@pytest.mark.django_db
def test_a_wrong_frequency_is_told_and_queues_nothing(client, login, staff):
    login(client, staff["finance"])
    response = client.post(BUILD, {"frequency": "hourly"}, follow=True)
    assert "Choose daily, weekly or monthly." in response.content.decode()
    assert not StatementBuild.objects.exists()
