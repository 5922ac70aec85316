"""APDS 4 as specified: documents written from ``apiv4/apds4.yaml`` and its examples, synced over real HTTP.

Every fixture in ``data/apds/<case>/`` is first validated against the hand-written JSON Schema of the
APDS 4 components (``schemas/apds4.schema.json``), so each is a document a conforming CPMS may send.
A small threaded HTTP server then answers the adapter's paths with them (query ignored; 404 with an
APDS ResponseStatus for an endpoint the case does not offer), and the sync stores into PostgreSQL.

Cases: ``campus`` (a campus holding two places; counted, expected and percentage-only rows; German
first and English first names; opening periods; rate tables of 2025 and 2026, day and night),
``areas`` (the sandbox's P+R example: counts only on the areas; a Places-only server), ``levels``
(occupancyLevel only, capacity from the floors, rates answered 501).
"""

from __future__ import annotations

import copy
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from carparks.models import CarPark
from connect import services
from connect.adapters import ApdsAdapter, GroupRecord
from connect.models import CarParkLink, CpmsConnection, CpmsGroup

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "data" / "apds"
SCHEMA = json.loads((HERE / "schemas" / "apds4.schema.json").read_text())
# Which APDS component a fixture file is an answer of (file stem → components.schemas name).
COMPONENT = {"places": "HierarchyElementList", "rates": "RateTableList", "rights_specs": "RightSpecificationList"}
# Request path → fixture file stem.
ENDPOINTS = {"/places": "places", "/rates": "rates", "/rights/specs": "rights_specs"}
FIXTURE_FILES = sorted(FIXTURES.rglob("*.json"))


def validator(component: str) -> Draft202012Validator:
    return Draft202012Validator(
        {**SCHEMA, "$ref": f"#/$defs/{component}"}, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def errors_of(document: Any, component: str) -> list[str]:
    return [f"{list(error.absolute_path)}: {error.message}" for error in validator(component).iter_errors(document)]


def fixture(case: str, stem: str) -> Any:
    return json.loads((FIXTURES / case / f"{stem}.json").read_text())


# --- 1. every fixture is a valid APDS 4 document -------------------------------------------------
def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert len(FIXTURE_FILES) >= 5


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_fixture_validates_against_the_apds4_schema(path: Path) -> None:
    assert errors_of(json.loads(path.read_text()), COMPONENT[path.stem]) == []


def _without(document: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key not in keys}


@pytest.mark.parametrize(
    ("component", "change", "reason"),
    [
        ("HierarchyElement", lambda places: _without(places["data"][1], "timeZone"), "a Place needs its timeZone"),
        ("HierarchyElement", lambda places: _without(places["data"][0], "layer"), "every element has a layer"),
        ("HierarchyElement", lambda places: {**places["data"][0], "type": "parkingSite"}, "type is an enum"),
        ("HierarchyElement", lambda places: {**places["data"][1], "name": []}, "a MultilingualString has an entry"),
        (
            "DemandType",
            lambda places: {"occupancyCalculation": "forecast", "count": 3, "recordDateTime": "2026-03-02T09:58:00Z"},
            "CalculationTypeEnum calls a forecast 'expected'",
        ),
        ("DemandType", lambda places: {"count": 3, "recordDateTime": "2026-03-02 09:58"}, "times carry a T and offset"),
        ("DemandType", lambda places: {"percentage": 101, "recordDateTime": "2026-03-02T09:58:00Z"}, "0–100 %"),
        ("PaginatedListMeta", lambda places: _without(places["meta"], "referenceInstant"), "meta is complete"),
        ("OccupancyLevel", lambda places: {"occupancyIndicator": {}}, "a code list entry has its value"),
    ],
)
def test_the_schema_refuses_what_the_spec_forbids(component: str, change: Callable, reason: str) -> None:
    """The schema is not vacuous: each of these spec violations is caught."""
    assert errors_of(change(copy.deepcopy(fixture("campus", "places"))), component), reason


def test_the_schema_refuses_a_rate_table_against_the_spec() -> None:
    table = copy.deepcopy(fixture("campus", "rates")["data"][0])
    assert errors_of(_without(table, "availability"), "RateTable")
    table["rateLineCollections"][0]["rateLines"][0]["rateLineType"] = "perHour"
    assert errors_of(table, "RateTable")


# --- a CPMS answering from the fixtures ------------------------------------------------------------
class ApdsServer:
    """A threaded HTTP server answering GET by path from a case's fixture files (the query is ignored)."""

    def __init__(
        self, case: str = "", *, statuses: dict[str, int] | None = None, documents: dict[str, Any] | None = None
    ):
        self.documents: dict[str, Any] = dict(documents or {})
        if case:
            for path, stem in ENDPOINTS.items():
                file = FIXTURES / case / f"{stem}.json"
                if file.exists():
                    self.documents.setdefault(path, json.loads(file.read_text()))
        self.statuses = dict(statuses or {})
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0].rstrip("/")
                server.requests.append(self.path)
                if path in server.statuses:
                    code = server.statuses[path]
                    self._answer(code, {"status": "error", "code": code, "message": "Not implemented."})
                elif path in server.documents:
                    self._answer(200, server.documents[path])
                else:
                    self._answer(404, {"status": "error", "code": 404, "message": "Not found."})

            def _answer(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def apds() -> Iterator[Callable[..., ApdsServer]]:
    started: list[ApdsServer] = []

    def start(case: str = "", **kwargs: Any) -> ApdsServer:
        started.append(ApdsServer(case, **kwargs))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def adapter_for(server: ApdsServer, **options: Any) -> ApdsAdapter:
    return ApdsAdapter(base_url=server.url, timeout=5.0, options=options)


def connection_for(server: ApdsServer, code: str = "apds", **options: Any) -> CpmsConnection:
    connection = CpmsConnection(
        name=f"APDS {code}", code=code, kind=CpmsConnection.Kind.APDS, base_url=server.url, options=options
    )
    connection.timeout_seconds = 5.0
    connection.set_secret("token")
    connection.save()
    return connection


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- 2a. what the adapter reads (independent of how services store it) -------------------------------
def test_a_campus_groups_its_places_and_is_not_a_car_park(apds) -> None:
    records = adapter_for(apds("campus")).pull_carparks()

    assert sorted(record.external_id for record in records) == ["P-NORD", "P-SUED"]
    assert records.refused == []
    assert records.groups == [
        GroupRecord(
            external_id="CAMPUS-HBF",
            kind="campus",
            name="Hauptbahnhof",
            names={"en": "Central Station", "de": "Hauptbahnhof"},
            member_ids=("P-NORD", "P-SUED"),
            capacity=600,
        )
    ]
    by_id = {record.external_id: record for record in records}
    # P-SUED names its campus with parentId; the campus lists P-NORD in childIds.
    assert by_id["P-SUED"].parent_id == by_id["P-NORD"].parent_id == "CAMPUS-HBF"


def test_places_read_names_location_capacity_and_opening_times_as_specified(apds) -> None:
    by_id = {record.external_id: record for record in adapter_for(apds("campus")).pull_carparks()}

    sued, nord = by_id["P-SUED"], by_id["P-NORD"]
    assert sued.name == "Parkhaus Hauptbahnhof Süd"  # German first in the feed
    assert nord.name == "Parkhaus Hauptbahnhof Nord"  # English first in the feed: the local language still wins
    assert nord.names == {"en": "Central Station North Car Park", "de": "Parkhaus Hauptbahnhof Nord"}
    assert (sued.latitude, sued.longitude) == (Decimal("50.106943"), Decimal("8.662512"))
    assert (sued.capacity, nord.capacity) == (420, 180)  # spacesTotal; supply where there is none
    assert (sued.street, sued.postcode, sued.city, sued.country) == (
        "Mannheimer Straße 12",
        "60329",
        "Frankfurt am Main",
        "DE",
    )
    assert sued.operator == "Stadtwerke Parken GmbH"
    assert sued.opening_times == (
        {"days": ["Mo", "Tu", "We", "Th", "Fr"], "from": "06:00", "to": "22:00", "name": "Werktags"},
        {"days": ["Sa"], "from": "08:00", "to": "20:00", "name": "Samstag"},
    )
    assert sued.opening_hours == "Mo-Fr 06:00-22:00; Sa 08:00-20:00"
    assert nord.opening_times == ({"days": ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"], "from": "00:00", "to": "24:00"},)
    assert nord.opening_hours == "Mo-Su 00:00-24:00"


def test_english_first_when_the_connection_says_so(apds) -> None:
    by_id = {r.external_id: r for r in adapter_for(apds("campus"), languages=["en", "de"]).pull_carparks()}

    assert by_id["P-SUED"].name == "Central Station South Car Park"


def test_counted_rows_are_current_and_expected_rows_are_forecasts(apds) -> None:
    records = adapter_for(apds("campus")).pull_occupancy()
    by_id = {record.external_id: record for record in records}

    sued = by_id["P-SUED"]
    # The expected row of 11:00 is newer than the counted one of 09:58, but it is a forecast.
    assert (sued.occupied, sued.capacity, sued.status) == (312, 420, "counted")
    assert sued.observed_at == at("2026-03-02T09:58:00+00:00")
    assert sued.forecast == (
        {"at": "2026-03-02T11:00:00+00:00", "occupied": 400},
        {"at": "2026-03-02T12:00:00+00:00", "percent": 98.5},
    )
    nord = by_id["P-NORD"]
    assert (nord.occupied, nord.percent, nord.capacity) == (None, 75.0, 180)
    [campus] = records.groups
    assert (campus.external_id, campus.kind, campus.capacity, campus.occupied) == ("CAMPUS-HBF", "campus", 600, 447)
    assert campus.member_ids == ("P-NORD", "P-SUED")


def test_a_place_with_areas_only_adds_up_their_supply_and_counts(apds) -> None:
    adapter = adapter_for(apds("areas"))

    [place] = adapter.pull_carparks()
    assert (place.external_id, place.name, place.capacity) == ("PR-ETOILE", "P+R Étoile", 615)
    assert (place.latitude, place.longitude) == (Decimal("46.186960"), Decimal("6.128170"))
    assert place.opening_times == () and place.opening_hours == ""  # openingTimesUnknown
    [occupancy] = adapter.pull_occupancy()
    assert (occupancy.occupied, occupancy.capacity, occupancy.status) == (566, 615, "counted")
    assert occupancy.observed_at == at("2026-01-26T17:01:23+00:00")


def test_occupancy_level_is_a_status_not_a_count(apds) -> None:
    adapter = adapter_for(apds("levels"))

    by_id = {record.external_id: record for record in adapter.pull_carparks()}
    assert by_id["TG-SCHLOSS"].capacity == 200  # the two floors' supply
    assert by_id["TG-SCHLOSS"].name == "Tiefgarage Schlossplatz"
    assert by_id["TG-SCHLOSS"].opening_times == (
        {"days": ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"], "from": "05:30", "to": "23:30"},
    )
    occupancy = {record.external_id: record for record in adapter.pull_occupancy()}
    assert (occupancy["TG-SCHLOSS"].occupied, occupancy["TG-SCHLOSS"].status) == (None, "full")
    assert (occupancy["P-MARKT"].occupied, occupancy["P-MARKT"].status) == (52, "limited")


def test_rate_tables_keep_their_validity_and_time_ranges(apds) -> None:
    tariffs = {tariff.external_id: tariff for tariff in adapter_for(apds("campus")).pull_tariffs()}

    assert sorted(tariffs) == ["T-NORD-2026", "T-SUED-2025", "T-SUED-2026-NACHT", "T-SUED-2026-TAG"]
    cet = timezone(timedelta(hours=1))
    old, day, night = tariffs["T-SUED-2025"], tariffs["T-SUED-2026-TAG"], tariffs["T-SUED-2026-NACHT"]
    assert (old.valid_from, old.valid_until) == (
        datetime(2025, 1, 1, tzinfo=cet),
        datetime(2025, 12, 31, 23, 59, 59, tzinfo=cet),
    )
    assert (day.valid_from, day.valid_until) == (datetime(2026, 1, 1, tzinfo=cet), None)
    assert old.place_ids == day.place_ids == night.place_ids == ("P-SUED",)
    assert tariffs["T-NORD-2026"].place_ids == ("P-NORD",)
    assert (day.name, night.name, day.currency) == ("Tagestarif 2026", "Nachttarif 2026", "EUR")
    assert [line["value"] for line in day.lines] == [2.5, 2.0]
    assert [line["value"] for line in old.lines] == [2.0, 1.5]
    assert day.lines[1]["max_value"] == 22.0 and day.lines[1]["duration_start"] == "01:00"
    assert day.lines[0]["times"] == [
        {"days": ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"], "from": "07:00", "to": "19:00", "name": "Tag"}
    ]
    assert night.lines[0]["times"][0]["from"] == "19:00" and night.lines[0]["times"][0]["to"] == "07:00"
    assert old.lines[0]["times"][0]["days"] == ["Mo", "Tu", "We", "Th", "Fr", "Sa"]


@pytest.mark.parametrize(("case", "status"), [("areas", 404), ("levels", 501)])
def test_a_places_only_server_offers_no_rates_and_that_is_no_failure(apds, case: str, status: int) -> None:
    server = apds(case, statuses={"/rates": status, "/rights/specs": status})
    adapter = adapter_for(server)

    tariffs = adapter.pull_tariffs()

    assert list(tariffs) == [] and tariffs.refused == []
    assert "rates" in adapter.not_offered and f"HTTP {status}" in adapter.not_offered["rates"]


def test_one_bad_place_is_refused_with_its_id_and_reason_the_others_are_read(apds) -> None:
    places = fixture("campus", "places")
    places["data"][2]["characteristics"] = {"spacesTotal": -5}  # not a valid document: only this place is refused
    places["data"].append(copy.deepcopy(places["data"][1]))  # P-SUED twice
    server = apds(documents={"/places": places})

    records = adapter_for(server).pull_carparks()

    assert [record.external_id for record in records] == ["P-SUED"]
    assert [(refused.external_id, refused.reason) for refused in records.refused] == [
        ("P-NORD", "place P-NORD spacesTotal: -5 is outside 0–100000"),
        ("P-SUED", "place P-SUED is listed twice; the first entry was used"),
    ]
    assert records.groups[0].member_ids == ("P-SUED",)


def test_naive_times_are_local_times_of_the_connection(apds) -> None:
    """Not spec-valid (DateTime has an offset), but real feeds send it: read in the connection's zone."""
    places = fixture("areas", "places")
    for area in places["data"][2:]:
        area["hierarchyElementReference"]["demandTable"][0]["demandType"][0]["recordDateTime"] = "2026-01-26T18:01:23"
    server = apds(documents={"/places": places})

    [occupancy] = adapter_for(server, time_zone="Europe/Zurich").pull_occupancy()

    assert occupancy.observed_at == datetime(2026, 1, 26, 17, 1, 23, tzinfo=UTC)


# --- 2b. synced into PostgreSQL: the stored values ---------------------------------------------------
@pytest.mark.django_db
def test_campus_case_stores_car_parks_group_occupancy_forecast_and_tariffs(apds) -> None:
    connection = connection_for(apds("campus"))

    static = services.sync_static(connection=connection)

    assert static.status == "succeeded", static.errors
    assert CarPark.objects.count() == 2  # the campus is no car park
    sued = CarPark.objects.get(cpms_reference="P-SUED")
    nord = CarPark.objects.get(cpms_reference="P-NORD")
    assert (sued.name, sued.capacity) == ("Parkhaus Hauptbahnhof Süd", 420)
    assert (nord.name, nord.capacity) == ("Parkhaus Hauptbahnhof Nord", 180)
    assert (sued.latitude, sued.longitude) == (Decimal("50.106943"), Decimal("8.662512"))
    assert sued.cpms_link.names == {"de": "Parkhaus Hauptbahnhof Süd", "en": "Central Station South Car Park"}
    assert sued.cpms_link.opening_times[0] == {
        "days": ["Mo", "Tu", "We", "Th", "Fr"],
        "from": "06:00",
        "to": "22:00",
        "name": "Werktags",
    }
    assert sued.opening_hours
    group = CpmsGroup.objects.get(connection=connection)
    assert (group.external_id, group.kind, group.name) == ("CAMPUS-HBF", "campus", "Hauptbahnhof")
    assert sorted(group.links.values_list("external_id", flat=True)) == ["P-NORD", "P-SUED"]
    tariffs = {tariff["id"]: tariff for tariff in sued.cpms_link.tariffs}
    assert sorted(tariffs) == ["T-SUED-2025", "T-SUED-2026-NACHT", "T-SUED-2026-TAG"]
    assert at(tariffs["T-SUED-2025"]["valid_from"]) == datetime(2024, 12, 31, 23, 0, tzinfo=UTC)
    assert at(tariffs["T-SUED-2025"]["valid_until"]) == datetime(2025, 12, 31, 22, 59, 59, tzinfo=UTC)
    assert tariffs["T-SUED-2026-TAG"]["valid_until"] is None
    assert tariffs["T-SUED-2026-NACHT"]["lines"][0]["times"][0]["from"] == "19:00"

    occupancy = services.sync_occupancy(connection=connection)

    assert occupancy.status == "succeeded", occupancy.errors
    sued.refresh_from_db()
    nord.refresh_from_db()
    assert sued.occupancy == 312  # not the newer expected 400
    assert sued.cpms_link.cpms_status == "counted"
    assert [row["occupied"] for row in sued.cpms_link.forecast if "occupied" in row] == [400]
    assert nord.occupancy == 135  # 75 % of 180
    group.refresh_from_db()
    assert (group.capacity, group.occupancy) == (600, 447)
    assert CarPark.objects.count() == 2


@pytest.mark.django_db
def test_areas_case_a_places_only_server_imports_with_summed_areas(apds) -> None:
    connection = connection_for(apds("areas"), code="pr")

    static = services.sync_static(connection=connection)
    occupancy = services.sync_occupancy(connection=connection)

    assert static.status == "succeeded", static.errors
    assert occupancy.status == "succeeded", occupancy.errors
    [carpark] = CarPark.objects.all()
    assert (carpark.cpms_reference, carpark.name, carpark.capacity, carpark.occupancy) == (
        "PR-ETOILE",
        "P+R Étoile",
        615,
        566,
    )
    assert carpark.cpms_link.tariffs == []
    assert CarParkLink.objects.count() == 1 and not CpmsGroup.objects.exists()


@pytest.mark.django_db
def test_rates_not_offered_are_shown_on_the_run_not_as_an_error(apds, client, make_user, login) -> None:
    connection = connection_for(apds("areas"), code="pr")

    static = services.sync_static(connection=connection)

    assert static.status == "succeeded" and static.errors == []
    assert "HTTP 404" in static.details["not_offered"]["rates"]
    login(client, make_user("cpms-admin", "Administrator"))
    page = client.get(f"/connect/runs/{static.pk}/").content.decode()
    assert "Not offered by this CPMS" in page and "HTTP 404" in page


@pytest.mark.django_db
def test_levels_case_stores_the_occupancy_level_as_status(apds) -> None:
    connection = connection_for(apds("levels", statuses={"/rates": 501, "/rights/specs": 501}), code="lv")

    static = services.sync_static(connection=connection)
    occupancy = services.sync_occupancy(connection=connection)

    assert static.status == "succeeded", static.errors
    assert occupancy.status == "succeeded", occupancy.errors
    schloss = CarPark.objects.get(cpms_reference="TG-SCHLOSS")
    markt = CarPark.objects.get(cpms_reference="P-MARKT")
    assert (schloss.name, schloss.capacity) == ("Tiefgarage Schlossplatz", 200)
    assert schloss.cpms_link.cpms_status == "full"
    assert schloss.occupancy is None  # unknown: left as it was, never a made-up count
    assert (markt.occupancy, markt.cpms_link.cpms_status) == (52, "limited")
