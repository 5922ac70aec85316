"""A real Celery worker (a subprocess against Redis, settings from env) runs a system step."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from parkinghq.celery import app
from workflows import services
from workflows.models import Process, SystemJob
from workflows.testing import install_definition

from . import worker_tasks  # noqa: F401  (registers tests.worker_pid in this process too)

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_celery_worker_runs_a_system_step(settings, season_spec, agent, tmp_path):
    settings.WORKFLOWS_DISPATCH = True
    spec = copy.deepcopy(season_spec)
    spec["key"] = "test-worker"
    next(s for s in spec["steps"] if s["id"] == "activate")["task"] = "tests.worker_pid"
    install_definition(spec)
    app.control.purge()

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "parkinghq.settings.test",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": django_settings.CELERY_BROKER_URL,
    }
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "parkinghq", "worker", "--pool=solo", "--concurrency=1",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO",
         "--include=workflows.tests.worker_tasks"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        process = services.process_start(definition_key="test-worker", variables={"deposit": 10})
        review = process.tasks.get()
        services.task_complete(task=review, user=agent, outcome="approve", inputs={"deposit_ok": True})
        deadline = time.monotonic() + 120  # a busy CI machine starts a worker slowly
        while time.monotonic() < deadline:
            process = Process.objects.get(pk=process.pk)
            if process.current_step != "activate" or worker.poll() is not None:
                break
            time.sleep(0.2)
        job = SystemJob.objects.get(process=process)
        assert process.current_step == "confirm", log.read_text()[-3000:]
        assert job.state == "succeeded" and job.attempts == 1
        assert process.variables["worker_pid"] == worker.pid
        assert process.variables["worker_key"] == job.idempotency_key
        assert process.events.filter(kind="system_attempt", data__ok=True).count() == 1
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
