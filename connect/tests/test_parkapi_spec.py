"""ParkAPI v1 city documents written from its published schema sync right, lot by lot.

Every fixture in ``data/parkapi/`` is first validated against ParkAPI's own ``city_schema.json``
(vendored under ``schemas/parkapi/``), then served by a real local HTTP server and synced into
PostgreSQL with the connect services. The assertions are on what is stored (and on the records
the adapter returns, which say the same thing one step earlier).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

from carparks.models import CarPark
from connect import services
from connect.adapters.parkapi import parse_lot_occupancy, parse_lots, region_id
from connect.models import CarParkLink, CpmsConnection, CpmsGroup

from .conftest import DATA

pytestmark = pytest.mark.django_db

SCHEMA = json.loads((Path(__file__).resolve().parent / "schemas" / "parkapi" / "city_schema.json").read_text())
FIXTURES = sorted((DATA / "parkapi").glob("*.json"))
# The older document the feed tests use is a ParkAPI document too.
ALL_DOCUMENTS = [*FIXTURES, DATA / "parkapi-musterstadt.json"]


def validator() -> jsonschema.Draft7Validator:
    # The schema's "$schema" is ParkAPI's own URL, not a meta-schema: Draft 7 rules, stated here.
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    return jsonschema.Draft7Validator(SCHEMA)


def document(name: str) -> dict:
    return json.loads((DATA / "parkapi" / name).read_text())


def feed(feed_server: str, fixture: str, **options: object) -> CpmsConnection:
    return CpmsConnection.objects.create(
        name=f"ParkAPI {fixture}",
        code="pa",
        kind=CpmsConnection.Kind.PARKAPI,
        base_url=feed_server,
        options={"city": f"parkapi/{fixture}", **options},
        timeout_seconds=5,
    )


def occupancy_by_id() -> dict[str, int | None]:
    return dict(CarPark.objects.values_list("cpms_reference", "occupancy"))


def status_by_id() -> dict[str, str]:
    return dict(CarParkLink.objects.values_list("external_id", "cpms_status"))


# --- the fixtures are ParkAPI documents --------------------------------------------------------
@pytest.mark.parametrize("path", ALL_DOCUMENTS, ids=lambda path: path.name)
def test_every_fixture_is_a_valid_parkapi_city_document(path):
    errors = [error.message for error in validator().iter_errors(json.loads(path.read_text()))]

    assert errors == []


def test_the_schema_refuses_what_parkapi_v1_forbids():
    """The validation above really checks: lots the v1 schema forbids fail it."""
    lot = {"id": "x", "name": "X", "total": 10, "free": 3, "state": "open", "forecast": False}
    base = {"last_updated": "2026-03-02T07:45:00", "last_downloaded": "2026-03-02T07:46:12"}
    forbidden = [
        {**lot, "free": -1},
        {**lot, "state": "many"},  # a state of the pre-1.0 API
        {key: value for key, value in lot.items() if key != "forecast"},
        {**lot, "coords": {"lat": 91, "lng": 13.7}},
    ]
    for bad in forbidden:
        assert list(validator().iter_errors({**base, "lots": [bad]})), bad
    assert not list(validator().iter_errors({**base, "lots": [lot]}))


# --- a minimal document --------------------------------------------------------------------------
def test_lots_with_only_the_required_fields_import_with_their_counts(feed_server):
    connection = feed(feed_server, "minimal.json", city_name="Musterstadt")

    static = services.sync_static(connection=connection)
    occupancy = services.sync_occupancy(connection=connection)

    assert (static.status, static.created) == ("succeeded", 2)
    markt = CarPark.objects.get(cpms_reference="musterstadtammarkt")
    assert (markt.name, markt.capacity, markt.city, markt.street) == ("Am Markt", 180, "Musterstadt", "")
    assert (markt.latitude, markt.longitude) == (None, None)
    assert markt.cpms_link.names == {"de": "Am Markt"}
    assert occupancy.status == "succeeded"
    assert occupancy_by_id() == {"musterstadtammarkt": 138, "musterstadtbahnhofsued": None}
    assert status_by_id() == {"musterstadtammarkt": "open", "musterstadtbahnhofsued": "nodata"}


# --- lots without free -------------------------------------------------------------------------
def test_lots_without_free_are_not_full_their_occupancy_stays_unknown():
    records = parse_lot_occupancy(document("without-free.json"))

    assert [(r.external_id, r.occupied, r.vacant, r.status) for r in records] == [
        ("lotopen", None, None, "open"),
        ("lotunknown", None, None, "unknown"),
        ("lotnodata", None, None, "nodata"),
        ("lotnodatazero", None, None, "nodata"),  # free 0 with "nodata" is no count either
    ]
    assert records.refused == []


def test_a_sync_of_lots_without_free_leaves_the_stored_occupancy_as_it_was(feed_server):
    connection = feed(feed_server, "without-free.json")
    services.sync_static(connection=connection)
    CarPark.objects.update(occupancy=33)

    run = services.sync_occupancy(connection=connection)

    assert run.status == "succeeded"
    assert set(occupancy_by_id().values()) == {33}
    assert status_by_id() == {
        "lotopen": "open",
        "lotunknown": "unknown",
        "lotnodata": "nodata",
        "lotnodatazero": "nodata",
    }


# --- closed lots ---------------------------------------------------------------------------------
def test_a_closed_lot_is_closed_and_its_occupancy_untouched(feed_server):
    connection = feed(feed_server, "closed.json")
    services.sync_static(connection=connection)
    CarPark.objects.update(occupancy=7)

    run = services.sync_occupancy(connection=connection)

    assert run.status == "succeeded"
    assert occupancy_by_id() == {"closedallfree": 7, "closedzero": 7, "closednofree": 7, "openlot": 375}
    assert status_by_id() == {
        "closedallfree": "closed",
        "closedzero": "closed",
        "closednofree": "closed",
        "openlot": "open",
    }
    records = parse_lot_occupancy(document("closed.json"))
    assert [(r.external_id, r.occupied, r.status) for r in records if r.status == "closed"] == [
        ("closedallfree", None, "closed"),
        ("closedzero", None, "closed"),
        ("closednofree", None, "closed"),
    ]


# --- one impossible lot --------------------------------------------------------------------------
def test_a_lot_with_more_free_than_total_is_refused_and_the_others_are_stored(feed_server):
    connection = feed(feed_server, "invalid-lot.json")
    services.sync_static(connection=connection)
    CarPark.objects.filter(cpms_reference="toomanyfree").update(occupancy=44)

    run = services.sync_occupancy(connection=connection)

    assert occupancy_by_id() == {"good1": 150, "toomanyfree": 44, "good2": 0, "good3": 60}
    [refused] = run.refused
    assert refused["id"] == "toomanyfree"
    assert "free 130 is more than total 120" in refused["reason"]
    assert run.status == "partly"
    records = parse_lot_occupancy(document("invalid-lot.json"))
    assert [r.external_id for r in records] == ["good1", "good2", "good3"]
    assert [(r.external_id, "free 130 is more than total 120" in r.reason) for r in records.refused] == [
        ("toomanyfree", True)
    ]


def test_a_lot_id_listed_twice_is_refused_both_times_and_the_rest_imported(feed_server):
    connection = feed(feed_server, "duplicate-ids.json")

    run = services.sync_static(connection=connection)

    assert list(CarPark.objects.values_list("cpms_reference", flat=True)) == ["single"]
    assert [entry["id"] for entry in run.refused] == ["twin", "twin"]
    assert "appears more than once" in run.refused[0]["reason"]


# --- regions are groups, the city is the city --------------------------------------------------
def test_a_region_is_a_group_of_lots_not_the_city(feed_server):
    connection = feed(feed_server, "regions.json", city_name="Not used: the document names its city")

    run = services.sync_static(connection=connection)

    assert run.created == 5
    assert set(CarPark.objects.values_list("city", flat=True)) == {"Musterstadt"}
    groups = {
        group.external_id: (group.kind, group.name, sorted(group.links.values_list("external_id", flat=True)))
        for group in CpmsGroup.objects.filter(connection=connection)
    }
    assert groups == {
        "region:innere-altstadt": ("group", "Innere Altstadt", ["altmarkt", "frauenkirche"]),
        "region:südvorstadt": ("group", "Südvorstadt", ["hbfnord"]),
    }
    records = parse_lots(document("regions.json"))
    assert {r.external_id: (r.city, r.parent_id) for r in records} == {
        "altmarkt": ("Musterstadt", region_id("Innere Altstadt")),
        "frauenkirche": ("Musterstadt", "region:innere-altstadt"),
        "hbfnord": ("Musterstadt", "region:südvorstadt"),
        "messe": ("Musterstadt", ""),
        "bautzner": ("Musterstadt", ""),
    }
    assert [(g.external_id, g.kind, g.member_ids) for g in records.groups] == [
        ("region:innere-altstadt", "group", ("altmarkt", "frauenkirche")),
        ("region:südvorstadt", "group", ("hbfnord",)),
    ]


# --- every optional field ----------------------------------------------------------------------
def test_every_optional_field_is_read_and_nulls_leave_fields_empty(feed_server):
    connection = feed(feed_server, "every-field.json", city_name="Musterstadt")

    static = services.sync_static(connection=connection)
    occupancy = services.sync_occupancy(connection=connection)

    assert (static.created, occupancy.status) == (4, "succeeded")
    schloss = CarPark.objects.get(cpms_reference="schlossgarage")
    assert (schloss.street, schloss.postcode, schloss.city) == ("Schlossstraße 4", "01067", "Musterstadt")
    assert (schloss.latitude, schloss.longitude) == (Decimal("51.052580"), Decimal("13.741070"))
    assert schloss.opening_hours == "Mo-Sa 06:00-24:00; Su 08:00-22:00"
    post = CarPark.objects.get(cpms_reference="postplatz")
    assert (post.street, post.postcode, post.opening_hours) == ("Postplatz", "", "24/7")
    nulls = CarPark.objects.get(cpms_reference="nulls")
    assert (nulls.street, nulls.latitude, nulls.longitude, nulls.city) == ("", None, None, "Musterstadt")
    assert occupancy_by_id() == {"schlossgarage": 230, "postplatz": 0, "nulls": 48, "nocoordsatall": 0}
    # "forecast": true only says ParkAPI can forecast this lot elsewhere: nothing is made up.
    assert schloss.cpms_link.forecast == []
    observed = CarParkLink.objects.get(external_id="schlossgarage").occupancy_observed_at
    assert observed == datetime(2026, 3, 2, 7, 45, tzinfo=UTC)


# --- times and names ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "observed"),
    [
        ({}, datetime(2026, 3, 2, 7, 45, tzinfo=UTC)),  # ParkAPI: "Times are in UTC"
        ({"time_zone": "Europe/Berlin"}, datetime(2026, 3, 2, 6, 45, tzinfo=UTC)),  # a server writing local time
    ],
    ids=["spec-utc", "connection-zone"],
)
def test_naive_times_are_utc_as_parkapi_says_unless_the_connection_names_its_zone(feed_server, options, observed):
    connection = feed(feed_server, "minimal.json", **options)
    services.sync_static(connection=connection)

    services.sync_occupancy(connection=connection)

    assert CarParkLink.objects.get(external_id="musterstadtammarkt").occupancy_observed_at == observed
    assert connection.adapter().pull_occupancy()[0].observed_at == observed


def test_a_lot_name_is_kept_under_the_connections_first_language(feed_server):
    connection = feed(feed_server, "minimal.json", languages=["fr", "de"])

    services.sync_static(connection=connection)

    link = CarParkLink.objects.get(external_id="musterstadtbahnhofsued")
    assert link.names == {"fr": "Bahnhof Süd"}
    assert link.carpark.name == "Bahnhof Süd"


# --- lots the adapter refuses on their own -----------------------------------------------------
def test_lots_with_unreadable_fields_are_refused_one_by_one():
    base = {"last_updated": "2026-03-02T07:45:00", "last_downloaded": "2026-03-02T07:46:12"}
    good = {"id": "good", "name": "Gut", "total": 10, "free": 3, "state": "open", "forecast": False}
    body = {
        **base,
        "lots": [
            good,
            {**good, "id": "nototal", "total": None},
            {**good, "id": "badcoords", "coords": {"lat": 123.0, "lng": 13.7}},
            {**good, "id": "badstate", "state": "many"},
            "not a lot",
        ],
    }

    carparks = parse_lots(body)
    occupancy = parse_lot_occupancy(body)

    assert [r.external_id for r in carparks] == ["good", "badstate"]
    assert [(r.external_id, r.reason) for r in carparks.refused] == [
        ("nototal", "ParkAPI lot nototal: total is missing"),
        ("badcoords", "ParkAPI lot badcoords lat: 123.000000 is out of range"),
        ("?", "ParkAPI: a lot is not an object"),
    ]
    assert [r.external_id for r in occupancy] == ["good", "badcoords"]
    assert [r.external_id for r in occupancy.refused] == ["nototal", "badstate", "?"]
    assert "state 'many' is not one of open, closed, nodata, unknown" in occupancy.refused[1].reason
