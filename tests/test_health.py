"""/health: database, broker and worker heartbeat, 200 when all are up, 503 naming the failing part."""

import socket

import pytest
import time_machine
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from accounts.tasks import worker_heartbeat


def closed_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db
def test_it_answers_200_when_database_broker_and_worker_are_up(client):
    worker_heartbeat()
    response = client.get(reverse("health"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "failing": [], "database": "ok", "broker": "ok", "worker": "ok"}


@pytest.mark.django_db
def test_it_reports_a_stopped_broker_with_503(client):
    worker_heartbeat()
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{closed_local_port()}/0"):
        response = client.get(reverse("health"))
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["broker"].startswith("down")
    assert body["database"] == "ok"


@pytest.mark.django_db
def test_it_reports_a_silent_worker_with_503(client):
    worker_heartbeat()
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=5)):
        response = client.get(reverse("health"))
    assert response.status_code == 503
    assert response.json()["failing"] == ["worker"]


@pytest.mark.django_db
def test_it_checks_the_embedded_filesystem_broker_folders(client, tmp_path):
    folders = {key: tmp_path / key for key in ("data_folder_in", "data_folder_out", "control_folder")}
    options = {key: str(path) for key, path in folders.items()}
    worker_heartbeat()
    with override_settings(CELERY_BROKER_URL="filesystem://", CELERY_BROKER_TRANSPORT_OPTIONS=options):
        assert client.get(reverse("health")).json()["failing"] == ["broker"]
        for path in folders.values():
            path.mkdir()
        assert client.get(reverse("health")).status_code == 200
