"""Bad answers on the wire: huge, slow-drip, redirecting, deeply nested, truncated, HTML and empty bodies.

A real HTTP server on a free port serves each bad case; APDS and ParkAPI connections point at it. Every
case must end the sync run as failed (never "running") with a reason that names the cause, leave the
stored car park exactly as it was, and "Test connection" must answer 200 with the failure, never 500.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.urls import reverse

from accounts.roles import ADMINISTRATOR
from carparks.models import CarPark
from connect import services
from connect.adapters import CpmsError
from connect.models import CarParkLink, CpmsConnection, SyncRun

pytestmark = pytest.mark.django_db

CAP = 100_000  # the connections' max_response_bytes in these tests
TIMEOUT = 1.0  # the connections' timeout_seconds: the deadline of a whole answer
GOOD_LOT = {"id": "altmarkt", "name": "Altmarkt", "total": 420, "free": 20, "state": "open"}


def _json(handler: http.server.BaseHTTPRequestHandler, body: bytes, *, length: int | None = None) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    handler.wfile.write(body)


def _endless(handler: http.server.BaseHTTPRequestHandler) -> None:
    """A 200 without Content-Length that never ends: only a cap on what we read stops the client."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.end_headers()
    handler.wfile.write(b'{"lots": [')
    lot = json.dumps(GOOD_LOT).encode() + b","
    for _ in range(1_000_000):
        handler.wfile.write(lot * 100)


def _announced_huge(handler: http.server.BaseHTTPRequestHandler) -> None:
    """Content-Length of 50 MB, then silence: the client must refuse on the header, not wait for a body."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "50000000")
    handler.end_headers()
    handler.wfile.flush()
    time.sleep(5)


def _drip(handler: http.server.BaseHTTPRequestHandler) -> None:
    """One byte every 0.3 s: each read is quick, the whole answer would take minutes."""
    body = json.dumps({"lots": [GOOD_LOT] * 50}).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    for byte in body:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(0.3)


def _redirect(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.send_response(302)
    handler.send_header("Location", "http://moved.example/feeds/v2/")
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def _html(handler: http.server.BaseHTTPRequestHandler) -> None:
    body = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please sign in</body></html>"
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html; charset=utf-8")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _broken_off(handler: http.server.BaseHTTPRequestHandler) -> None:
    """The connection closes after 300 of the 1,000 bytes the header promised."""
    _json(handler, json.dumps({"lots": [GOOD_LOT] * 20}).encode()[:300], length=1000)


def _gzip(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
    packed = gzip.compress(body)
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Encoding", "gzip")
    handler.send_header("Content-Length", str(len(packed)))
    handler.end_headers()
    handler.wfile.write(packed)


GOOD_DOCUMENT = json.dumps({"last_updated": "2026-12-04T10:00:00", "lots": [GOOD_LOT]}).encode()
# 20 kB on the wire, 20 MB once unpacked: the cap counts what we would have to hold, not what travels.
GZIP_BOMB = b'{"lots": [' + b" " * 20_000_000 + b"]}"

ROUTES: dict[str, Callable[[http.server.BaseHTTPRequestHandler], None]] = {
    "huge": _endless,
    "announced": _announced_huge,
    "drip": _drip,
    "redirect": _redirect,
    "recursion": lambda h: _json(h, b"[" * 100_000),
    "deep": lambda h: _json(h, b'{"lots": ' + b"[" * 500 + b"]" * 500 + b"}"),
    "truncated": lambda h: _json(h, json.dumps({"lots": [GOOD_LOT] * 3}).encode()[:-25]),
    "broken": _broken_off,
    "html": _html,
    "empty": lambda h: _json(h, b""),
    "bomb": lambda h: _gzip(h, GZIP_BOMB),
    "good": lambda h: _json(h, GOOD_DOCUMENT),
    "gzip": lambda h: _gzip(h, GOOD_DOCUMENT),
}


class _BadHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``/<case>`` (ParkAPI city document) and ``/<case>/places`` (APDS) with the case's answer."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        case = self.path.split("?")[0].strip("/").split("/")[0]
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up, as it should
            ROUTES[case](self)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def bad_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BadHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _connection(bad_server: str, kind: str, case: str, suffix: str = "", **options: Any) -> CpmsConnection:
    """A connection of ``kind`` whose answers come from ``case``, with a linked car park to keep intact."""
    options = {"max_response_bytes": CAP, **options}
    if kind == "parkapi":
        base_url, options = bad_server, {"city": case, **options}
    else:
        base_url = f"{bad_server}/{case}"
    connection = CpmsConnection(
        name=f"Bad {kind} {case}", code=f"bad-{kind}{suffix}", kind=kind, base_url=base_url, options=options
    )
    connection.timeout_seconds = TIMEOUT
    connection.set_secret("token")
    connection.save()
    carpark = CarPark.objects.create(
        name="Altmarkt (as stored)", code=f"altmarkt{suffix}", capacity=400, occupancy=111, cpms_reference="altmarkt"
    )
    CarParkLink.objects.create(connection=connection, carpark=carpark, external_id="altmarkt")
    return connection


def _stored() -> list[tuple[Any, ...]]:
    return list(CarPark.objects.order_by("pk").values_list("code", "name", "capacity", "occupancy"))


# case → what the run's error (and the test result) must say
CAUSES = {
    "huge": "larger than the 100 kB cap",
    "bomb": "larger than the 100 kB cap",
    "announced": "larger than the 100 kB cap (Content-Length 50000000)",
    "drip": f"no complete answer within the {TIMEOUT:g} s deadline",
    "redirect": "HTTP 302, a redirect to http://moved.example/feeds/v2/",
    "recursion": "nested deeper than 200 levels",
    "deep": "nested deeper than 200 levels",
    "truncated": "JSON that ends early",
    "broken": "the answer broke off after 300 bytes",
    "html": "HTML page instead of JSON (Content-Type text/html",
    "empty": "empty body",
}
SYNCS = {"static": services.sync_static, "occupancy": services.sync_occupancy}


@pytest.mark.parametrize("sync", sorted(SYNCS))
@pytest.mark.parametrize("kind", ["parkapi", "apds"])
@pytest.mark.parametrize("case", sorted(CAUSES))
def test_a_bad_answer_fails_the_run_with_its_cause_and_changes_nothing(bad_server, case, kind, sync):
    connection = _connection(bad_server, kind, case)
    before = _stored()
    started = time.monotonic()

    with pytest.raises(CpmsError) as raised:
        SYNCS[sync](connection=connection)

    elapsed = time.monotonic() - started
    run = SyncRun.objects.get(connection=connection, kind=sync)
    assert run.status == SyncRun.Status.FAILED
    assert run.finished_at is not None
    assert CAUSES[case] in run.errors[-1], run.errors
    assert CAUSES[case] in str(raised.value)
    assert _stored() == before
    connection.refresh_from_db()
    assert connection.status == CpmsConnection.Status.FAILING
    assert CAUSES[case] in connection.status_message
    # Nothing waits for a body it refuses or keeps reading past the deadline.
    assert elapsed < 2.5, f"{case} took {elapsed:.1f} s"


def test_a_slow_drip_fails_at_the_deadline_not_per_read(bad_server):
    connection = _connection(bad_server, "parkapi", "drip")
    started = time.monotonic()

    with pytest.raises(CpmsError):
        services.sync_occupancy(connection=connection)

    # 1 s deadline; a per-read timeout would wait 0.3 s × ~2,000 bytes.
    assert TIMEOUT <= time.monotonic() - started < 2.5


def test_an_answer_over_the_cap_is_not_retried_a_slow_one_is(bad_server):
    huge = _connection(bad_server, "parkapi", "huge")

    with pytest.raises(CpmsError):
        services.sync_static(connection=huge, final=False)

    # Too large now is too large on the next attempt: the run fails for good at once.
    assert SyncRun.objects.get(connection=huge).status == SyncRun.Status.FAILED
    slow = _connection(bad_server, "parkapi", "drip", suffix="-slow")

    with pytest.raises(CpmsError):
        services.sync_static(connection=slow, final=False)

    assert SyncRun.objects.get(connection=slow).status == SyncRun.Status.RETRYING


def test_the_size_cap_defaults_to_the_setting(bad_server, settings):
    settings.CONNECT_MAX_RESPONSE_BYTES = 2_000
    connection = _connection(bad_server, "parkapi", "drip")
    connection.options = {"city": "huge"}
    connection.save()

    with pytest.raises(CpmsError, match=r"larger than the 2 kB cap"):
        services.sync_static(connection=connection)


@pytest.mark.parametrize("case", ["good", "gzip"])
def test_under_the_limits_the_same_server_answers_and_the_sync_succeeds(bad_server, case):
    connection = _connection(bad_server, "parkapi", case)

    run = services.sync_occupancy(connection=connection)

    assert run.status == SyncRun.Status.SUCCEEDED
    assert CarPark.objects.get(code="altmarkt").occupancy == 400


@pytest.fixture
def admin_client(client, make_user, login):
    login(client, make_user("admin", ADMINISTRATOR))
    return client


@pytest.mark.parametrize("kind", ["parkapi", "apds"])
@pytest.mark.parametrize("case", sorted(CAUSES))
def test_test_connection_answers_200_with_the_cause(bad_server, admin_client, case, kind):
    connection = _connection(bad_server, kind, case)

    response = admin_client.post(reverse("connect:connection-test", args=[connection.pk]), HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert CAUSES[case] in response.content.decode()
    run = SyncRun.objects.get(connection=connection, kind=SyncRun.Kind.TEST)
    assert (run.status, run.details["ok"]) == (SyncRun.Status.FAILED, False)


def test_test_connection_answers_200_when_the_adapter_itself_breaks(bad_server, admin_client):
    # Options that are not an object break the adapter with a plain Python error, not a CpmsError.
    connection = _connection(bad_server, "parkapi", "good")
    CpmsConnection.objects.filter(pk=connection.pk).update(options=["not", "an", "object"])

    response = admin_client.post(reverse("connect:connection-test", args=[connection.pk]), follow=True)

    assert response.status_code == 200
    assert "Connection test: The test failed unexpectedly" in response.content.decode()
    run = SyncRun.objects.get(connection=connection, kind=SyncRun.Kind.TEST)
    assert run.status == SyncRun.Status.FAILED
    assert run.finished_at is not None


def test_a_sync_whose_adapter_breaks_unexpectedly_does_not_stay_running(bad_server):
    connection = _connection(bad_server, "parkapi", "good")
    CpmsConnection.objects.filter(pk=connection.pk).update(options=["not", "an", "object"])
    connection.refresh_from_db()

    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the error, the run must end
        services.sync_static(connection=connection)

    run = SyncRun.objects.get(connection=connection)
    assert run.status == SyncRun.Status.FAILED
    assert run.finished_at is not None
    assert "failed unexpectedly" in run.errors[-1]
