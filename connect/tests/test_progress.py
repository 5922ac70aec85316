"""Live progress of syncs: counts written now and then (not per record), visible to a poller while the
run's transaction is open, set by every sync kind that handles many records, and shown only to the roles
that may start syncs (the poll URLs check the same rule)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.roles import ADMINISTRATOR, AGENT, MANAGER, SUPERVISOR
from carparks.models import CarPark
from connect import services
from connect.models import SyncRun

from .conftest import make_contract


def _seen_by_another_connection(run: SyncRun) -> tuple[int | None, int, int]:
    """The run's progress as a poller (another database connection) reads it."""
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT progress_total, progress_done, failed FROM connect_syncrun WHERE id = %s", [run.pk])
            return cursor.fetchone()
    finally:
        other.close()


@pytest.fixture
def recorded(monkeypatch):
    """Every progress write as (total, done), in order."""
    writes: list[tuple[int | None, int]] = []
    original = services.SyncProgress._write

    def spy(self):
        writes.append((self.total, self.done))
        return original(self)

    monkeypatch.setattr(services.SyncProgress, "_write", spy)
    return writes


@pytest.mark.django_db(transaction=True)
def test_progress_is_visible_to_a_poller_while_the_runs_transaction_is_open(connection):
    run = services.sync_run_begin(connection=connection, kind=SyncRun.Kind.STATIC)
    progress = services.SyncProgress(run, every=2, seconds=3600)
    try:
        with transaction.atomic():  # as storing a feed does: the connection locked, the records written
            type(connection).objects.select_for_update().get(pk=connection.pk)
            CarPark.objects.create(name="Stored in the run's transaction", code="in-run")
            progress.start(10, failed=1)
            assert _seen_by_another_connection(run) == (10, 0, 1)
            for _ in range(5):
                progress.step(updated=1)
            assert _seen_by_another_connection(run) == (10, 4, 1)  # every 2 records, not per record
            progress.step(failed=1)
            assert _seen_by_another_connection(run) == (10, 6, 2)
    finally:
        progress.close()


@pytest.mark.django_db(transaction=True)
def test_a_locked_run_is_skipped_instead_of_blocking_the_sync(connection):
    run = services.sync_run_begin(connection=connection, kind=SyncRun.Kind.RECONCILE)
    progress = services.SyncProgress(run, every=1)
    try:
        with transaction.atomic():
            SyncRun.objects.select_for_update().get(pk=run.pk)  # the sync's own transaction holds the row
            progress.start(3)  # returns at once (SKIP LOCKED) instead of waiting for our own commit
            progress.step()
    finally:
        progress.close()
    assert _seen_by_another_connection(run) == (None, 0, 0)


def test_writes_are_batched_not_per_record():
    progress = services.SyncProgress(SyncRun(), every=200, seconds=3600)
    progress.start(1000)
    for _ in range(1000):
        progress.step()
    assert progress.writes == 0  # an unsaved run is counted, not written
    assert progress._written_done == 1000 and progress.run.progress_done == 1000

    writes: list[int] = []
    progress = services.SyncProgress(SyncRun(), every=200, seconds=3600)
    progress._write = lambda: writes.append(progress.done) or setattr(progress, "_written_done", progress.done)
    progress.start(1000)
    for _ in range(1000):
        progress.step()
    assert writes == [0, 200, 400, 600, 800, 1000]


def test_small_runs_write_every_half_second(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(services, "_monotonic", lambda: now[0])
    writes: list[int] = []
    progress = services.SyncProgress(SyncRun(), every=200)
    progress._write = lambda: (
        writes.append(progress.done),
        setattr(progress, "_written_done", progress.done),
        setattr(progress, "_written_at", now[0]),
    )
    progress.start(10)
    for _ in range(10):
        now[0] += 0.2
        progress.step()
    assert writes == [0, 3, 6, 9]


@pytest.mark.django_db(transaction=True)
def test_static_and_occupancy_syncs_count_their_records(connection, recorded, monkeypatch):
    monkeypatch.setattr(services, "PROGRESS_EVERY", 2)
    run = services.sync_static(connection=connection)
    assert (run.progress_total, run.progress_done) == (5, 5)
    assert recorded[0] == (5, 0) and (5, 2) in recorded and (5, 4) in recorded
    assert _seen_by_another_connection(run)[:2] == (5, 5)

    recorded.clear()
    run = services.sync_occupancy(connection=connection)
    assert (run.progress_total, run.progress_done) == (5, 5)
    assert recorded[0] == (5, 0) and (5, 2) in recorded


@pytest.mark.django_db(transaction=True)
def test_reconcile_and_credential_push_count_as_they_go(sim, connection, recorded, monkeypatch):
    services.sync_static(connection=connection)
    monkeypatch.setattr(services, "PROGRESS_EVERY", 1)
    recorded.clear()
    run = services.reconcile(connection=connection, start_review=False)
    assert (run.progress_total, run.progress_done) == (5, 5)
    assert recorded == [(5, 0), (5, 1), (5, 2), (5, 3), (5, 4), (5, 5)]

    contract = make_contract(CarPark.objects.get(cpms_reference="SIM-0001"), plates=("M-AB 1", "M-AB 2", "M-AB 3"))
    recorded.clear()
    run = services.credentials_push(contract=contract)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert (run.progress_total, run.progress_done, run.created) == (3, 3, 3)
    assert recorded[0] == (3, 0) and (3, 1) in recorded


@pytest.mark.django_db(transaction=True)
def test_a_retried_attempt_counts_again_from_the_start(sim, connection):
    sim.faults("error", count=1)
    with pytest.raises(services.CpmsError):
        services.sync_static(connection=connection, key="job-1", final=False)
    SyncRun.objects.filter(key="job-1").update(progress_total=5, progress_done=3)
    run = services.sync_run_begin(connection=connection, kind=SyncRun.Kind.STATIC, key="job-1")
    assert (run.attempts, run.progress_total, run.progress_done) == (2, None, 0)


# --- pages ----------------------------------------------------------------------------------------
@pytest.fixture
def as_user(client, make_user, login):
    def make(role: str, username: str, carparks=()):
        return login(client, make_user(username, role, carparks=carparks))

    return make


@pytest.fixture
def running(connection) -> SyncRun:
    carpark = CarPark.objects.create(name="Mine", code="mine")
    connection.links.create(carpark=carpark, external_id="SIM-0001")
    return SyncRun.objects.create(
        connection=connection,
        kind=SyncRun.Kind.RECONCILE,
        started_at=timezone.now() - timedelta(seconds=30),
        progress_total=40,
        progress_done=10,
        failed=2,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("role", [ADMINISTRATOR, SUPERVISOR])
def test_the_roles_that_sync_watch_a_running_sync(as_user, client, running, role):
    as_user(role, "syncer")
    response = client.get(reverse("connect:run-progress", args=[running.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert 'hx-trigger="every 2s"' in page
    assert f'id="sync-bar-{running.pk}" value="10" max="40"' in page
    assert "10 of 40 records handled" in page and "2 records failed so far" in page
    assert "About 2 minutes left" in page

    detail = client.get(reverse("connect:run-detail", args=[running.pk])).content.decode()
    assert reverse("connect:run-progress", args=[running.pk]) in detail
    panel = client.get(reverse("connect:connection-detail", args=[running.connection_id])).content.decode()
    assert f'id="sync-bar-{running.pk}"' in panel and 'hx-trigger="every 2s"' in panel


@pytest.mark.django_db
def test_polling_stops_when_the_run_has_finished(as_user, client, running):
    as_user(SUPERVISOR, "sue")
    running.status, running.finished_at, running.progress_done = SyncRun.Status.SUCCEEDED, timezone.now(), 40
    running.save()
    page = client.get(reverse("connect:run-progress", args=[running.pk])).content.decode()
    assert "hx-trigger" not in page and "40 of 40 records handled" in page and 'data-progress="eta"' not in page
    panel = client.get(reverse("connect:connection-progress", args=[running.connection_id])).content.decode()
    assert "hx-trigger" not in panel and "sync-bar" not in panel


@pytest.mark.django_db
@pytest.mark.parametrize("role", [MANAGER, AGENT])
def test_other_roles_do_not_see_or_poll_the_progress(as_user, client, running, role):
    as_user(role, "other", carparks=CarPark.objects.filter(code="mine"))
    assert client.get(reverse("connect:run-progress", args=[running.pk])).status_code == 403
    assert client.get(reverse("connect:connection-progress", args=[running.connection_id])).status_code == 403
    if role == MANAGER:  # they see the run and the connection, without the progress or its poll URL
        detail = client.get(reverse("connect:run-detail", args=[running.pk]))
        assert detail.status_code == 200 and b"sync-bar" not in detail.content and b"/progress/" not in detail.content
        panel = client.get(reverse("connect:connection-detail", args=[running.connection_id]))
        assert panel.status_code == 200 and b"sync-bar" not in panel.content and b"/progress/" not in panel.content


@pytest.mark.django_db
def test_starting_a_sync_returns_at_once_and_waits_for_the_worker(as_user, client, connection, monkeypatch):
    queued = []
    monkeypatch.setattr(transaction, "on_commit", lambda callback, **kwargs: queued.append(callback))
    as_user(SUPERVISOR, "sue")
    response = client.post(reverse("connect:connection-sync", args=[connection.pk, "reconcile"]))
    assert response.status_code == 302 and "?since=" in response["Location"]
    assert len(queued) == 1 and not SyncRun.objects.exists()  # the job is queued for Celery, not run here

    page = client.get(response["Location"]).content.decode()
    assert 'data-progress="queued"' in page and 'hx-trigger="every 2s"' in page
    since = response["Location"].split("?since=")[1]
    poll = client.get(reverse("connect:connection-progress", args=[connection.pk]), {"since": since})
    assert 'data-progress="queued"' in poll.content.decode()

    run = services.sync_run_begin(connection=connection, kind=SyncRun.Kind.RECONCILE)  # the worker starts it
    SyncRun.objects.filter(pk=run.pk).update(progress_total=5)  # what its first progress write stores
    poll = client.get(reverse("connect:connection-progress", args=[connection.pk]), {"since": since}).content.decode()
    assert 'data-progress="queued"' not in poll and f'id="sync-bar-{run.pk}" value="0" max="5"' in poll
    # Bad or stale ``since`` values are ignored, not errors.
    for value in ("soon", "nan", "1e30", "1000"):
        assert (
            client.get(reverse("connect:connection-progress", args=[connection.pk]), {"since": value}).status_code
            == 200
        )
