"""DATEX II 2.3 parking publications written from the schema sync as the standard means them.

Every fixture in tests/data/datex2 is first validated against the DATEX II 2.3 schema subset in
tests/schemas/datex2 (written by hand from DATEXIISchema_2_2_3.xsd, see its README), then served by
a real local HTTP server and synced into PostgreSQL through connect.services. The assertions read
what was stored: names in the local language, capacity, coordinates, opening times, groups of sites
kept as groups with their members, occupancy from vehicles/percentages, closed as a status, times
in the connection's zone, and a bad record refused alone with its id and reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from carparks.models import CarPark
from connect import services
from connect.adapters import CpmsMalformed
from connect.adapters.base import clean_id
from connect.adapters.datex2 import parse_document, parse_parking_status, parse_parking_table
from connect.models import CpmsConnection, CpmsGroup, SyncRun

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "data" / "datex2"
SCHEMA_FILE = HERE / "schemas" / "datex2" / "DATEXIISchema_2_3_parking_subset.xsd"
ODD_ID = "2041[P+R Bad Soden Bahnhof]"
# No fixture is deliberately schema-invalid: the bad records carry business errors in valid documents.
ALL_FIXTURES = sorted(FIXTURES.glob("*.xml"))


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_FILE)))


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- (1) the fixtures are DATEX II 2.3 documents ------------------------------------------------
def test_there_is_a_fixture_for_every_case():
    assert {path.name for path in ALL_FIXTURES} >= {
        "table-full.xml",
        "table-minimal.xml",
        "table-no-name.xml",
        "table-group.xml",
        "table-invalid-record.xml",
        "status-vehicles-percentage.xml",
        "status-percentage-only.xml",
        "status-closed.xml",
        "status-group.xml",
        "status-invalid-record.xml",
    }


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda path: path.name)
def test_every_fixture_validates_against_the_datex2_schema(schema, path):
    document = etree.parse(str(path))

    assert schema.validate(document), schema.error_log.last_error


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (("<parkingNumberOfSpaces>300<", "<parkingNumberOfSpaces>-3<"), "NonNegativeInteger"),
        (('<parkingLocation xsi:type="Point">', '<parkingLocation xsi:type="GroupOfLocations">'), "abstract"),
        (('modelBaseVersion="2"', 'modelBaseVersion="3"'), "fixed"),
        (("<urbanParkingSiteType>offStreetParking<", "<urbanParkingSiteType>parkAndRideSite<"), "enumeration"),
    ],
)
def test_the_schema_refuses_what_datex2_refuses(schema, change, why):
    """The subset is strict where the standard is: a schema that accepted anything would prove nothing."""
    text = _fixture("table-invalid-record.xml").decode()
    assert change[0] in text
    document = etree.fromstring(text.replace(change[0], change[1], 1).encode())

    assert not schema.validate(document)
    assert why in str(schema.error_log.last_error)


# --- (2) the adapter reads every valid document record by record --------------------------------
def test_a_group_of_sites_is_a_group_with_members_not_a_car_park():
    records = parse_parking_table(parse_document(_fixture("table-group.xml"), "test"))

    assert {record.external_id for record in records} == {"PH-MARKT", ODD_ID, "TG RATHAUS", "P-SCHLOSSHOF"}
    [group] = records.groups
    assert (group.external_id, group.kind, group.name, group.capacity) == (
        "G-INNENSTADT",
        "group",
        "Parkleitsystem Innenstadt",
        650,
    )
    assert group.member_ids == ("PH-MARKT", "TG RATHAUS", "P-SCHLOSSHOF")
    parents = {record.external_id: record.parent_id for record in records}
    assert parents == {
        "PH-MARKT": "G-INNENSTADT",
        ODD_ID: "",
        "TG RATHAUS": "G-INNENSTADT",
        "P-SCHLOSSHOF": "G-INNENSTADT",
    }
    assert records.refused == []


def test_status_as_vehicles_and_percentage_and_percentage_only_are_read():
    berlin = ZoneInfo("Europe/Berlin")
    both = parse_parking_status(parse_document(_fixture("status-vehicles-percentage.xml"), "test"), tz=berlin)
    only = parse_parking_status(parse_document(_fixture("status-percentage-only.xml"), "test"), tz=berlin)

    assert [(r.external_id, r.occupied, r.percent) for r in both] == [("PH-MARKT", 300, 76.5), (ODD_ID, 30, 25.8)]
    [record] = only
    assert (record.external_id, record.occupied, record.percent) == ("TG RATHAUS", None, 40.0)
    assert record.observed_at == datetime(2026, 11, 25, 10, 15, tzinfo=berlin)


def test_a_closed_site_is_a_status_without_a_count():
    records = parse_parking_status(parse_document(_fixture("status-closed.xml"), "test"))

    closed = {record.external_id: record for record in records}["TG RATHAUS"]
    assert (closed.status, closed.occupied, closed.vacant, closed.percent) == ("closed", None, None, None)


@pytest.mark.parametrize("value", [ODD_ID, "TG RATHAUS", "P+R/Nord:3", "Parkhaus Süd (Ebene -1)", "a" * 100])
def test_ids_as_real_feeds_write_them_are_usable(value):
    assert clean_id(f"  {value} ", "id") == value


@pytest.mark.parametrize("value", [None, "", "   ", "a" * 101, "PH\nMARKT", "PH\x00", "PH\tMARKT", "PH\u2028MARKT"])
def test_empty_over_long_and_control_character_ids_are_refused(value):
    with pytest.raises(CpmsMalformed, match="not a usable identifier"):
        clean_id(value, "parkingRecord id")


# --- (3) synced over HTTP into PostgreSQL -------------------------------------------------------
pytestmark_db = pytest.mark.django_db


def _connection(feed_server: str, table: str, status: str = "", **options: object) -> CpmsConnection:
    return CpmsConnection.objects.create(
        name="Musterstadt NAP",
        code="nap",
        kind=CpmsConnection.Kind.DATEX2,
        base_url=feed_server,
        options={"table_path": f"datex2/{table}", "status_path": f"datex2/{status}", **options},
        timeout_seconds=5,
    )


@pytestmark_db
def test_a_full_table_stores_local_names_address_coordinates_capacity_and_opening_times(feed_server):
    connection = _connection(feed_server, "table-full.xml")

    run = services.sync_static(connection=connection)

    assert (run.status, run.created, run.refused) == (SyncRun.Status.SUCCEEDED, 2, [])
    altstadt = CarPark.objects.get(cpms_reference="PH-ALTSTADT")
    # English is listed first in the feed; the car park's local language wins.
    assert altstadt.name == "Parkhaus Altstadt"
    assert altstadt.cpms_link.names == {"en": "Old Town multi-storey car park", "de": "Parkhaus Altstadt"}
    assert altstadt.capacity == 420
    assert (altstadt.latitude, altstadt.longitude) == (Decimal("51.049259"), Decimal("13.738144"))
    assert (altstadt.street, altstadt.postcode, altstadt.city, altstadt.country) == (
        "Wilsdruffer Straße 10–12",
        "01067",
        "Musterstadt",
        "DE",
    )
    assert altstadt.operator == "Stadtwerke Musterstadt GmbH"
    assert altstadt.cpms_link.opening_times == [
        {"days": ["Mo", "Tu", "We", "Th", "Fr"], "from": "06:00", "to": "22:00"},
        {"days": ["Sa"], "from": "08:00", "to": "20:00"},
        {"days": ["Su"], "closed": True},
    ]
    assert altstadt.opening_hours == "Mo–Fr 06:00–22:00; Sa 08:00–20:00; Su closed"
    rastplatz = CarPark.objects.get(cpms_reference="P-A4-RASTPLATZ")
    assert (rastplatz.name, rastplatz.capacity, rastplatz.opening_hours) == ("Rastplatz Am Wald", 60, "daily 24 hours")


@pytestmark_db
def test_the_connection_s_language_order_chooses_the_name(feed_server):
    connection = _connection(feed_server, "table-full.xml", languages=["en", "de"])

    services.sync_static(connection=connection)

    altstadt = CarPark.objects.get(cpms_reference="PH-ALTSTADT")
    assert (altstadt.name, altstadt.operator, altstadt.city) == (
        "Old Town multi-storey car park",
        "Musterstadt Public Utilities",
        "Sample Town",
    )


@pytestmark_db
def test_a_table_of_only_mandatory_fields_imports(feed_server):
    run = services.sync_static(connection=_connection(feed_server, "table-minimal.xml"))

    assert (run.status, run.created) == (SyncRun.Status.SUCCEEDED, 1)
    carpark = CarPark.objects.get(cpms_reference="P-MIN-1")
    assert (carpark.name, carpark.capacity, carpark.latitude, carpark.longitude) == ("P-MIN-1", 0, None, None)


@pytestmark_db
def test_records_without_a_parking_name_are_named_from_other_fields(feed_server):
    run = services.sync_static(connection=_connection(feed_server, "table-no-name.xml"))

    assert (run.status, run.created, run.refused) == (SyncRun.Status.SUCCEEDED, 4, [])
    names = dict(CarPark.objects.values_list("cpms_reference", "name"))
    assert names == {
        "P-MIT-NAME": "Parkplatz Schützenplatz",
        "P-OHNE-NAME": "Parkplatz hinter dem Bahnhof, Zufahrt Bahnhofstraße",
        "P-NUR-ID": "P-NUR-ID",
        "P-STANDARDSPRACHE": "Parkplatz Elbufer",
    }
    # A value without lang is in the publication's language (payloadPublication lang="de").
    assert CarPark.objects.get(cpms_reference="P-STANDARDSPRACHE").cpms_link.names == {"de": "Parkplatz Elbufer"}


@pytestmark_db
def test_a_group_of_sites_is_stored_as_a_group_and_odd_ids_are_car_parks(feed_server):
    run = services.sync_static(connection=_connection(feed_server, "table-group.xml"))

    assert (run.status, run.refused) == (SyncRun.Status.SUCCEEDED, [])
    assert set(CarPark.objects.values_list("cpms_reference", flat=True)) == {
        "PH-MARKT",
        ODD_ID,
        "TG RATHAUS",
        "P-SCHLOSSHOF",
    }
    assert not CarPark.objects.filter(cpms_reference="G-INNENSTADT").exists()
    group = CpmsGroup.objects.get(external_id="G-INNENSTADT")
    assert (group.kind, group.name, group.capacity) == ("group", "Parkleitsystem Innenstadt", 650)
    assert set(group.links.values_list("external_id", flat=True)) == {"PH-MARKT", "TG RATHAUS", "P-SCHLOSSHOF"}
    assert CarPark.objects.get(cpms_reference=ODD_ID).name == "P+R Bad Soden Bahnhof"


@pytestmark_db
def test_a_record_with_a_business_error_is_refused_alone(feed_server):
    run = services.sync_static(connection=_connection(feed_server, "table-invalid-record.xml"))

    assert (run.status, run.created) == (SyncRun.Status.PARTLY, 2)
    assert set(CarPark.objects.values_list("cpms_reference", flat=True)) == {"PH-NORD", "PH-SUED"}
    [refused] = run.refused
    assert refused["id"] == "PH-RIESIG"
    assert "parkingNumberOfSpaces: 250000 is outside 0–100000" in refused["reason"]


def _imported(feed_server: str, status: str, **options: object) -> CpmsConnection:
    connection = _connection(feed_server, "table-group.xml", status, **options)
    assert services.sync_static(connection=connection).status == SyncRun.Status.SUCCEEDED
    return connection


def _occupancy() -> dict[str, int | None]:
    return dict(CarPark.objects.values_list("cpms_reference", "occupancy"))


@pytestmark_db
def test_status_as_vehicles_and_percentage_updates_occupancy(feed_server):
    connection = _imported(feed_server, "status-vehicles-percentage.xml")

    run = services.sync_occupancy(connection=connection)

    assert (run.status, run.updated, run.refused) == (SyncRun.Status.SUCCEEDED, 2, [])
    # The vehicles counted, not the rounded percentage (76.5 % of 400 would be 306, 25.8 % of 120 would be 31).
    assert _occupancy()["PH-MARKT"] == 300
    assert _occupancy()[ODD_ID] == 30
    link = CarPark.objects.get(cpms_reference=ODD_ID).cpms_link
    assert (link.cpms_status, link.occupancy_observed_at) == (
        "spacesAvailable",
        datetime(2026, 11, 25, 9, 14, 30, tzinfo=UTC),
    )


@pytestmark_db
@pytest.mark.parametrize(
    ("options", "observed"),
    [
        ({}, datetime(2026, 11, 25, 9, 15, tzinfo=UTC)),  # Europe/Berlin, the default zone
        ({"time_zone": "America/New_York"}, datetime(2026, 11, 25, 15, 15, tzinfo=UTC)),
    ],
)
def test_a_percentage_only_with_a_naive_time_is_read_in_the_connection_s_zone(feed_server, options, observed):
    connection = _imported(feed_server, "status-percentage-only.xml", **options)

    run = services.sync_occupancy(connection=connection)

    assert (run.status, run.refused) == (SyncRun.Status.SUCCEEDED, [])
    rathaus = CarPark.objects.get(cpms_reference="TG RATHAUS")
    assert rathaus.occupancy == 80  # 40 % of 200 spaces
    assert rathaus.cpms_link.occupancy_observed_at == observed


@pytestmark_db
def test_a_closed_site_keeps_its_last_occupancy_and_shows_closed(feed_server):
    connection = _imported(feed_server, "status-group.xml")
    services.sync_occupancy(connection=connection)
    assert _occupancy()["TG RATHAUS"] == 190
    connection.options = {**connection.options, "status_path": "datex2/status-closed.xml"}
    connection.save()

    run = services.sync_occupancy(connection=connection)

    assert run.status == SyncRun.Status.SUCCEEDED
    rathaus = CarPark.objects.get(cpms_reference="TG RATHAUS")
    assert (rathaus.occupancy, rathaus.cpms_link.cpms_status) == (190, "closed")
    assert _occupancy()["PH-MARKT"] == 250  # 400 spaces, 150 vacant


@pytestmark_db
def test_a_group_status_is_stored_on_the_group(feed_server):
    connection = _imported(feed_server, "status-group.xml")

    run = services.sync_occupancy(connection=connection)

    assert (run.status, run.refused) == (SyncRun.Status.SUCCEEDED, [])
    group = CpmsGroup.objects.get(external_id="G-INNENSTADT")
    assert (group.occupancy, group.status) == (520, "enoughSpacesAvailable")
    assert (_occupancy()["PH-MARKT"], _occupancy()["TG RATHAUS"]) == (310, 190)
    assert CarPark.objects.get(cpms_reference="TG RATHAUS").cpms_link.cpms_status == "almostFull"


@pytestmark_db
def test_a_status_with_a_business_error_is_refused_alone(feed_server):
    connection = _imported(feed_server, "status-invalid-record.xml")

    run = services.sync_occupancy(connection=connection)

    assert run.status == SyncRun.Status.PARTLY
    [refused] = run.refused
    assert refused["id"] == "PH-MARKT"
    assert "parkingNumberOfOccupiedSpaces: 5000000 is outside 0–100000" in refused["reason"]
    occupancy = _occupancy()
    assert (occupancy["PH-MARKT"], occupancy["TG RATHAUS"], occupancy[ODD_ID]) == (None, 150, 100)
