"""One bad record never stops a sync: every valid record is stored, each refused one is listed on the run.

Two kinds of feed, both served by a real local HTTP server and stored in PostgreSQL:

- the DATEX II 2.3 fixtures in tests/data/datex2 (written from the schema and validated against it in
  test_datex2_spec.py): a parking table with one record of 250,000 spaces;
- a small JSON feed read by ``RecordFeed``, an adapter registered for these tests only. It parses record
  by record with ``base.collect`` like the protocol adapters and fills every record field services store
  (names, opening times, parent groups, percentages, forecast rows, tariff validity), so the storing
  side is tested on its own, whatever stage each protocol adapter is at.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.roles import AGENT, SUPERVISOR
from carparks.models import CarPark
from connect import services
from connect.adapters import ADAPTERS, CpmsAdapter, CpmsError
from connect.adapters.base import (
    CarParkRecord,
    CpmsMalformed,
    GroupRecord,
    OccupancyRecord,
    Records,
    TariffRecord,
    clean_id,
    clean_int,
    clean_text,
    collect,
    parse_datetime,
)
from connect.models import CarParkLink, CpmsConnection, CpmsGroup, SyncRun
from workflows.models import BusinessEvent

pytestmark = pytest.mark.django_db


# --- a feed over real HTTP ------------------------------------------------------------------------
class Feed:
    """JSON documents by path, served by a real HTTP server; tests change them between syncs."""

    def __init__(self) -> None:
        self.documents: dict[str, Any] = {}
        self.url = ""


@pytest.fixture
def feed() -> Iterator[Feed]:
    served = Feed()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            document = served.documents.get(self.path.lstrip("/"))
            body = json.dumps(document).encode() if document is not None else b"{}"
            self.send_response(200 if document is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


class RecordFeed(CpmsAdapter):
    """For these tests only: {"places": [...], "groups": [...]} etc. read record by record."""

    kind = "recordfeed"
    label = "Record feed (tests)"
    supports_tariffs = True

    def pull_carparks(self) -> Records:
        document = self.get_json("carparks.json")
        records = collect(document["places"], self._place, lambda item: item.get("id"))
        records.groups = [
            GroupRecord(
                external_id=group["id"],
                kind=group.get("kind", "group"),
                name=group.get("name", ""),
                names=group.get("names", {}),
                member_ids=tuple(group.get("members", ())),
                capacity=group.get("capacity"),
            )
            for group in document.get("groups", [])
        ]
        return records

    def _place(self, item: dict[str, Any]) -> CarParkRecord:
        place_id = clean_id(item.get("id"), "place id")
        return CarParkRecord(
            external_id=place_id,
            name=clean_text(item.get("name"), f"place {place_id} name", required=True),
            capacity=clean_int(item.get("capacity"), f"place {place_id} capacity"),
            names=item.get("names", {}),
            opening_times=tuple(item.get("opening_times", ())),
            parent_id=item.get("parent", ""),
            time_zone=item.get("time_zone", ""),
        )

    def pull_occupancy(self) -> Records:
        document = self.get_json("occupancy.json")
        records = collect(document["places"], self._occupancy, lambda item: item.get("id"))
        records.groups = [
            GroupRecord(external_id=g["id"], kind="group", occupied=g.get("occupied"), status=g.get("status", ""))
            for g in document.get("groups", [])
        ]
        return records

    def _occupancy(self, item: dict[str, Any]) -> OccupancyRecord:
        place_id = clean_id(item.get("id"), "place id")
        occupied = item.get("occupied")
        return OccupancyRecord(
            external_id=place_id,
            occupied=None if occupied is None else clean_int(occupied, f"place {place_id} occupied"),
            percent=item.get("percent"),
            status=item.get("status", ""),
            forecast=tuple(item.get("forecast", ())),
        )

    def pull_tariffs(self) -> Records:
        document = self.get_json("tariffs.json")
        return collect(document.get("tables", []), self._tariff, lambda item: item.get("id"))

    def _tariff(self, item: dict[str, Any]) -> TariffRecord:
        table_id = clean_id(item.get("id"), "rate table id")
        if not item.get("places"):
            raise CpmsMalformed(f"rate table {table_id} applies to no place")
        return TariffRecord(
            external_id=table_id,
            name=item.get("name", ""),
            currency="EUR",
            lines=tuple(item.get("lines", ())),
            place_ids=tuple(item["places"]),
            valid_from=parse_datetime(item.get("valid_from"), "valid_from", tz=self.time_zone),
            valid_until=parse_datetime(item.get("valid_until"), "valid_until", tz=self.time_zone),
        )


@pytest.fixture
def records_connection(feed: Feed, monkeypatch: pytest.MonkeyPatch) -> CpmsConnection:
    monkeypatch.setitem(ADAPTERS, RecordFeed.kind, RecordFeed)
    feed.documents["tariffs.json"] = {"tables": []}
    return CpmsConnection.objects.create(
        name="Record feed", code="rf", kind=RecordFeed.kind, base_url=feed.url, timeout_seconds=5
    )


def place(place_id: str, capacity: Any = 200, **values: Any) -> dict[str, Any]:
    return {"id": place_id, "name": f"Parkhaus {place_id}", "capacity": capacity, **values}


def datex(feed_server: str, table: str, **fields: Any) -> CpmsConnection:
    return CpmsConnection.objects.create(
        name="Musterstadt NAP",
        code="nap",
        kind=CpmsConnection.Kind.DATEX2,
        base_url=feed_server,
        options={"table_path": f"datex2/{table}", "status_path": "datex2/status-closed.xml"},
        timeout_seconds=5,
        **fields,
    )


# --- a bad record is refused alone -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("alert_percent", "incident"),
    # One of the table's three records is refused: 33.3 %.
    [(10, True), (33, True), (34, False), (0, True), (100, False)],
)
def test_a_datex2_record_with_a_bad_capacity_is_refused_and_the_others_stored(
    feed_server, alert_percent, incident, django_capture_on_commit_callbacks
):
    connection = datex(feed_server, "table-invalid-record.xml", refused_alert_percent=alert_percent)
    received = []
    from connect.signals import sync_incident

    sync_incident.connect(lambda sender, run, **kw: received.append(run.pk), weak=False, dispatch_uid="t-inc")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run = services.sync_static(connection=connection)
    finally:
        sync_incident.disconnect(dispatch_uid="t-inc")

    stored = dict(CarPark.objects.values_list("cpms_reference", "capacity"))
    assert stored == {"PH-NORD": 300, "PH-SUED": 150}
    assert (run.status, run.get_status_display(), run.created, run.failed) == ("partly", "Partly succeeded", 2, 1)
    assert run.finished_at is not None
    [refused] = run.refused
    assert refused["id"] == "PH-RIESIG" and "250000" in refused["reason"]
    assert (run.details["refused_total"], run.details["refused_percent"]) == (1, 33.3)
    assert run.incident is incident
    events = BusinessEvent.objects.filter(name=services.CONNECTION_FAILING)
    assert [e.payload["sync_run_id"] for e in events] == ([run.pk] if incident else [])
    assert received == ([run.pk] if incident else [])
    connection.refresh_from_db()
    assert connection.status == ("failing" if incident else "ok")
    assert "1 record of the feed refused" in connection.status_message


def test_a_retried_job_with_the_same_key_returns_the_partly_run_unchanged(feed, records_connection):
    feed.documents["carparks.json"] = {"places": [place("A"), place("B", capacity=-5)]}
    first = services.sync_static(connection=records_connection, key="job-1")
    assert (first.status, first.created, first.refused) == (
        "partly",
        1,
        [{"id": "B", "reason": "place B capacity: -5 is outside 0–100000"}],
    )
    feed.documents["carparks.json"] = {"places": [place("A", name="Renamed"), place("B"), place("C")]}

    again = services.sync_static(connection=records_connection, key="job-1")

    assert again.pk == first.pk
    again.refresh_from_db()
    assert (again.status, again.attempts, again.created) == ("partly", 1, 1)
    assert list(CarPark.objects.values_list("cpms_reference", "name")) == [("A", "Parkhaus A")]
    assert SyncRun.objects.filter(connection=records_connection).count() == 1


def test_a_place_carpark_create_refuses_is_listed_and_the_rest_imported(feed, records_connection):
    feed.documents["carparks.json"] = {"places": [place("A"), place("B", time_zone="Mars/Olympus"), place("C")]}

    run = services.sync_static(connection=records_connection)

    assert sorted(CarPark.objects.values_list("cpms_reference", flat=True)) == ["A", "C"]
    assert (run.status, run.created) == ("partly", 2)
    assert run.refused == [
        {"id": "B", "reason": "Not imported: 'Mars/Olympus' is not a time zone (for example Europe/Berlin)."}
    ]


def test_occupancy_of_an_unknown_place_is_refused_and_the_known_ones_stored(feed, records_connection):
    feed.documents["carparks.json"] = {"places": [place("A"), place("B")]}
    services.sync_static(connection=records_connection)
    feed.documents["occupancy.json"] = {
        "places": [{"id": "A", "occupied": 20}, {"id": "B", "occupied": "lots"}, {"id": "NEW", "occupied": 3}]
    }

    run = services.sync_occupancy(connection=records_connection)

    assert dict(CarPark.objects.values_list("cpms_reference", "occupancy")) == {"A": 20, "B": None}
    assert (run.status, run.updated, run.failed) == ("partly", 1, 2)
    assert run.refused == [
        {"id": "B", "reason": "place B occupied: expected a whole number, got 'lots'"},
        {"id": "NEW", "reason": "Not linked to a car park here; run the car-park import first."},
    ]


def test_the_stored_list_is_capped_and_the_rest_counted(feed, records_connection):
    feed.documents["carparks.json"] = {"places": [place("GOOD")] + [place(f"BAD-{n}", -1) for n in range(1005)]}

    run = services.sync_static(connection=records_connection)

    assert (run.status, run.created, run.failed, len(run.refused)) == ("partly", 1, 1005, services.REFUSED_KEPT)
    assert (run.details["refused_total"], run.details["refused_not_listed"]) == (1005, 5)


# --- occupancy: status without a count, percentages, forecasts ---------------------------------------
def test_closed_keeps_the_occupancy_percent_becomes_spaces_and_forecasts_stay_apart(feed, records_connection):
    feed.documents["carparks.json"] = {"places": [place("A"), place("B", capacity=250), place("C")]}
    services.sync_static(connection=records_connection)
    forecast = [
        {"at": "2026-12-04T15:00:00+01:00", "occupied": 190},
        {"at": "2026-12-04T16:00:00+01:00", "percent": 50},
    ]
    feed.documents["occupancy.json"] = {
        "places": [
            {"id": "A", "occupied": 50, "status": "open"},
            {"id": "B", "percent": 40.2},
            {"id": "C", "occupied": 10, "forecast": forecast},
        ]
    }
    services.sync_occupancy(connection=records_connection)
    a = CarParkLink.objects.get(external_id="A")
    observed = a.occupancy_observed_at
    assert dict(CarPark.objects.values_list("cpms_reference", "occupancy")) == {"A": 50, "B": 101, "C": 10}
    assert CarParkLink.objects.get(external_id="C").forecast == forecast

    feed.documents["occupancy.json"] = {
        "places": [{"id": "A", "status": "closed"}, {"id": "C", "occupied": 12, "forecast": forecast[1:]}]
    }
    run = services.sync_occupancy(connection=records_connection)

    a.refresh_from_db()
    assert (a.carpark.occupancy, a.cpms_status, a.occupancy_observed_at) == (50, "closed", observed)
    c = CarParkLink.objects.get(external_id="C")
    assert (c.carpark.occupancy, c.forecast) == (12, forecast[1:])
    assert (run.status, run.updated) == ("succeeded", 2)


# --- groups, names, opening times, tariff validity ---------------------------------------------------
def test_groups_are_stored_with_their_members_and_never_as_car_parks(feed, records_connection):
    feed.documents["carparks.json"] = {
        "places": [place("A", parent="CAMPUS"), place("B", parent="CAMPUS"), place("C"), place("CAMPUS", 0)],
        "groups": [
            {"id": "CAMPUS", "kind": "campus", "name": "Klinikum", "names": {"de": "Klinikum"}, "capacity": 400},
            {"id": "CITY", "name": "Innenstadt", "members": ["C", "A"]},
        ],
    }

    run = services.sync_static(connection=records_connection)

    assert sorted(CarPark.objects.values_list("cpms_reference", flat=True)) == ["A", "B", "C"]
    assert run.refused == [
        {"id": "CAMPUS", "reason": "It is a group of car parks in the feed, so not imported as one."}
    ]
    campus = CpmsGroup.objects.get(connection=records_connection, external_id="CAMPUS")
    assert (campus.kind, campus.name, campus.names, campus.capacity) == ("campus", "Klinikum", {"de": "Klinikum"}, 400)
    assert sorted(campus.links.values_list("external_id", flat=True)) == ["A", "B"]
    city = CpmsGroup.objects.get(external_id="CITY")
    assert sorted(city.links.values_list("external_id", flat=True)) == ["A", "C"]

    feed.documents["occupancy.json"] = {
        "places": [{"id": "A", "occupied": 5}],
        "groups": [{"id": "CAMPUS", "occupied": 310, "status": "almostFull"}, {"id": "CITY", "status": "closed"}],
    }
    services.sync_occupancy(connection=records_connection)
    campus.refresh_from_db()
    assert (campus.occupancy, campus.status) == (310, "almostFull")
    assert CpmsGroup.objects.get(external_id="CITY").status == "closed"

    feed.documents["carparks.json"] = {"places": [place("A"), place("B"), place("C")], "groups": []}
    services.sync_static(connection=records_connection)
    assert not CpmsGroup.objects.filter(connection=records_connection).exists()
    assert CarPark.objects.count() == 3


def test_names_opening_times_and_tariff_validity_are_stored(feed, records_connection):
    times = [
        {"days": ["Mo", "Tu", "We", "Th", "Fr"], "from": "06:00", "to": "22:00"},
        {"days": ["Sa"], "from": "08:00", "to": "20:00"},
    ]
    names = {"de": "Parkhaus Hauptbahnhof Süd", "en": "Central Station South"}
    feed.documents["carparks.json"] = {
        "places": [place("A", name=names["de"], names=names, opening_times=times), place("B")]
    }
    feed.documents["tariffs.json"] = {
        "tables": [
            {
                "id": "DAY-2025",
                "name": "Tagestarif",
                "places": ["A"],
                "valid_from": "2025-01-01T00:00:00",
                "valid_until": "2025-12-31T23:59:59",
            },
            {"id": "DAY-2026", "name": "Tagestarif", "places": ["A"], "valid_from": "2026-01-01T00:00:00"},
            {"id": "NIGHT", "name": "Nachttarif", "places": []},
        ]
    }

    run = services.sync_static(connection=records_connection)

    link = CarParkLink.objects.get(external_id="A")
    assert (link.names, link.opening_times) == (names, times)
    assert link.carpark.opening_hours == "Mo–Fr 06:00–22:00; Sa 08:00–20:00"
    assert [(t["id"], t["valid_from"], t["valid_until"]) for t in link.tariffs] == [
        ("DAY-2025", "2025-01-01T00:00:00+01:00", "2025-12-31T23:59:59+01:00"),
        ("DAY-2026", "2026-01-01T00:00:00+01:00", None),
    ]
    assert run.refused == [{"id": "NIGHT", "reason": "rate table NIGHT applies to no place"}]
    # A feed without times leaves the car park's text as it is (the link follows the feed).
    feed.documents["carparks.json"] = {"places": [place("A", name=names["de"]), place("B")]}
    services.sync_static(connection=records_connection)
    link.refresh_from_db()
    assert (link.opening_times, link.carpark.opening_hours) == ([], "Mo–Fr 06:00–22:00; Sa 08:00–20:00")


def test_the_carpark_panel_shows_names_group_status_forecast_and_tariff_validity(
    feed, records_connection, client, make_user, login
):
    names = {"de": "Parkhaus Süd", "en": "South Car Park"}
    feed.documents["carparks.json"] = {
        "places": [place("A", name="Parkhaus Süd", names=names, parent="CAMPUS")],
        "groups": [{"id": "CAMPUS", "kind": "campus", "name": "Klinikum", "capacity": 400}],
    }
    feed.documents["tariffs.json"] = {
        "tables": [{"id": "DAY-2026", "name": "Tagestarif", "places": ["A"], "valid_from": "2026-01-01T00:00:00"}]
    }
    services.sync_static(connection=records_connection)
    feed.documents["occupancy.json"] = {
        "places": [
            {
                "id": "A",
                "occupied": 20,
                "status": "closed",
                "forecast": [{"at": "2026-12-04T15:00:00+01:00", "occupied": 190}],
            }
        ]
    }
    services.sync_occupancy(connection=records_connection)
    login(client, make_user("supervisor", SUPERVISOR))

    page = client.get(reverse("connect:carpark-cpms", args=[CarPark.objects.get().pk])).content.decode()

    assert '“South Car Park” <span class="text-muted">(EN)</span>' in page
    assert "campus “Klinikum” (400 spaces)" in page
    assert ">closed</span>" in page
    assert "2026-12-04 15:00: 190 occupied" in page  # dates in the language's format (English: ISO)
    assert 'Tagestarif <span class="text-muted">(valid from 2026-01-01)</span>' in page


# --- no run stays "running" ---------------------------------------------------------------------------
def test_an_adapter_that_crashes_fails_the_run_with_a_readable_error(feed, records_connection):
    feed.documents["carparks.json"] = {"lots": []}  # RecordFeed reads document["places"]: KeyError

    with pytest.raises(CpmsError, match="failed unexpectedly in pull_carparks: KeyError: 'places'"):
        services.sync_static(connection=records_connection)

    run = SyncRun.objects.get(connection=records_connection)
    assert (run.status, run.incident) == ("failed", True)
    assert run.finished_at is not None
    assert run.errors == ["Attempt 1: Reading the CPMS answer failed unexpectedly in pull_carparks: KeyError: 'places'"]


def test_a_storing_failure_fails_the_run_and_stores_nothing(feed, records_connection):
    long_id = "G" * 150  # longer than a group id column holds
    feed.documents["carparks.json"] = {"places": [place("A", parent=long_id)]}

    with pytest.raises(services.SyncCrashed, match="Storing the answer failed: DataError"):
        services.sync_static(connection=records_connection)

    run = SyncRun.objects.get(connection=records_connection)
    assert (run.status, run.finished_at is not None) == ("failed", True)
    assert not CarPark.objects.exists() and not CarParkLink.objects.exists()


def test_a_run_a_dead_worker_left_running_is_failed_by_the_next_one(feed, records_connection):
    stale = SyncRun.objects.create(
        connection=records_connection, kind="static", started_at=timezone.now() - timedelta(hours=2)
    )
    feed.documents["carparks.json"] = {"places": [place("A")]}

    run = services.sync_static(connection=records_connection)

    stale.refresh_from_db()
    assert (stale.status, stale.finished_at is not None) == ("failed", True)
    assert "Abandoned" in stale.errors[-1]
    assert run.status == "succeeded"


# --- the run page ---------------------------------------------------------------------------------
@pytest.fixture
def partly_run(feed, records_connection) -> SyncRun:
    feed.documents["carparks.json"] = {"places": [place("A")] + [place(f"BAD-{n:03}", -1) for n in range(120)]}
    return services.sync_static(connection=records_connection)


def test_the_run_page_lists_refused_records_fifty_a_page(partly_run, client, make_user, login):
    login(client, make_user("supervisor", SUPERVISOR))
    url = reverse("connect:run-detail", args=[partly_run.pk])

    first = client.get(url).content.decode()
    last = client.get(url, {"refused": 3}).content.decode()

    assert "Partly succeeded" in first and "run-partly" in first
    assert first.count("<td><code>BAD-") == 50 and "<code>BAD-049</code>" in first and "BAD-050<" not in first
    assert "Page 1 of 3" in first and "?refused=2#refused" in first
    assert last.count("<td><code>BAD-") == 20 and "<code>BAD-119</code>" in last
    assert "place BAD-119 capacity: -1 is outside 0–100000" in last
    detail = client.get(reverse("connect:connection-detail", args=[partly_run.connection_id])).content.decode()
    assert "120 refused</a>" in detail


def test_a_run_without_refused_records_says_so(feed, records_connection, client, make_user, login):
    feed.documents["carparks.json"] = {"places": [place("A")]}
    run = services.sync_static(connection=records_connection)
    login(client, make_user("supervisor", SUPERVISOR))

    page = client.get(reverse("connect:run-detail", args=[run.pk])).content.decode()

    assert "No record was refused." in page and "refused-table" not in page


def test_the_run_page_is_closed_to_other_roles_and_to_anonymous_visitors(partly_run, client, make_user, login):
    url = reverse("connect:run-detail", args=[partly_run.pk])

    anonymous = client.get(url)
    login(client, make_user("agent", AGENT))
    agent = client.get(url)

    assert anonymous.status_code == 302 and "login" in anonymous["Location"]
    assert agent.status_code == 403 and b"BAD-000" not in agent.content


# --- a partly succeeded sync is a sync that happened ---------------------------------------------------
def test_a_partly_run_counts_as_the_last_sync_and_alerts_only_above_the_threshold(
    feed, records_connection, make_user, django_capture_on_commit_callbacks
):
    from accounts.roles import ADMINISTRATOR
    from connect.selectors import connections_for
    from monitoring.alerts import alerts_evaluate
    from monitoring.models import AlertEvent, AlertRule

    AlertRule.objects.create(name="CPMS", kind=AlertRule.Kind.CPMS_SYNC_FAILED)
    feed.documents["carparks.json"] = {"places": [place("A"), place("B"), place("C", -1)]}
    records_connection.refused_alert_percent = 50
    records_connection.save()

    below = services.sync_static(connection=records_connection)
    listed = connections_for(make_user("admin", ADMINISTRATOR)).get(pk=records_connection.pk)
    with django_capture_on_commit_callbacks(execute=True):
        alerts_evaluate()

    assert (below.status, below.incident) == ("partly", False)
    assert listed.last_static == below.finished_at
    assert not AlertEvent.objects.exists()

    records_connection.refused_alert_percent = 10
    records_connection.save()
    above = services.sync_static(connection=records_connection)
    with django_capture_on_commit_callbacks(execute=True):
        alerts_evaluate()

    assert (above.status, above.incident) == ("partly", True)
    assert AlertEvent.objects.get().text.startswith(
        "The car-park data sync with Record feed refused 1 record of the feed at"
    )
