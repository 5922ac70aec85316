"""`/api/schema/` under concurrent first requests, against the portal served by gunicorn with threads.

drf-spectacular builds the schema lazily and its first run is not thread-safe (extension classes are
loaded into shared state while another thread reads them): several integrators opening the API docs
at once after a deploy got 500s. The server is a fresh process, so these are its very first hits."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.error
import urllib.request

from tests.faults.harness import ROOT, VENV_BIN, free_port, port_open, wait_for

THREADS = 8


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - our own test server
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_concurrent_first_requests_all_get_the_same_schema(tmp_path):
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "parkinghq.settings.test", "PARKINGHQ_VAR_DIR": str(tmp_path)}
    args = [str(VENV_BIN / "gunicorn"), "parkinghq.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"]
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [*args, "--threads", str(THREADS), "-t", "120"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        wait_for(lambda: port_open(port), timeout=60, what="gunicorn")
        barrier = threading.Barrier(THREADS)
        answers: list[tuple[int, bytes]] = []

        def fetch() -> None:
            barrier.wait()
            answers.append(_get(f"http://127.0.0.1:{port}/api/schema/?format=json"))

        threads = [threading.Thread(target=fetch) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] * THREADS, (tmp_path / "gunicorn.log").read_text()[-3000:]
    schemas = {body for _, body in answers}
    assert len(schemas) == 1
    assert "/api/v1/contracts/{id}/" in json.loads(schemas.pop())["paths"]
