"""DATEX II v2 and ParkAPI documents, written in their published formats, import over HTTP."""

from __future__ import annotations

from decimal import Decimal

import pytest

from carparks.models import CarPark
from connect import services
from connect.adapters import CpmsMalformed
from connect.adapters.datex2 import parse_document, parse_parking_table
from connect.models import CarParkLink, CpmsConnection

pytestmark = pytest.mark.django_db


@pytest.fixture
def datex(feed_server) -> CpmsConnection:
    return CpmsConnection.objects.create(
        name="Musterstadt NAP",
        code="msd",
        kind=CpmsConnection.Kind.DATEX2,
        base_url=feed_server,
        options={"table_path": "datex2-parking-table.xml", "status_path": "datex2-parking-status.xml"},
        timeout_seconds=5,
    )


@pytest.fixture
def parkapi(feed_server) -> CpmsConnection:
    return CpmsConnection.objects.create(
        name="ParkAPI Musterstadt",
        code="pa",
        kind=CpmsConnection.Kind.PARKAPI,
        base_url=feed_server,
        options={"city": "parkapi-musterstadt.json"},
        timeout_seconds=5,
    )


def test_a_datex2_parking_table_imports(datex):
    run = services.sync_static(connection=datex)

    assert (run.status, run.created) == ("succeeded", 3)
    altmarkt = CarPark.objects.get(cpms_reference="PH-ALTMARKT")
    # The feed names it in German and English: the car park's local language comes first.
    assert altmarkt.name == "Parkhaus Altmarkt"
    assert altmarkt.capacity == 420
    assert (altmarkt.street, altmarkt.postcode, altmarkt.city, altmarkt.country) == (
        "Wilsdruffer Straße 10",
        "01067",
        "Musterstadt",
        "DE",
    )
    assert altmarkt.operator == "Stadtwerke Musterstadt GmbH"
    assert (altmarkt.latitude, altmarkt.longitude) == (Decimal("51.049259"), Decimal("13.738144"))
    assert CarPark.objects.get(cpms_reference="PR-NORD").name == "P+R Musterstadt Nord"
    [tariff] = altmarkt.cpms_link.tariffs
    assert (tariff["id"], tariff["name"], tariff["currency"]) == ("PH-ALTMARKT-TAG", "Tagestarif", "EUR")
    assert [(line["value"], line["increment"]) for line in tariff["lines"]] == [(2.5, "PT3600S"), (18.0, "PT86400S")]
    assert CarPark.objects.get(cpms_reference="PR-NORD").cpms_link.tariffs == []

    assert services.sync_static(connection=datex).unchanged == 3


def test_a_datex2_parking_status_updates_occupancy(datex):
    services.sync_static(connection=datex)

    run = services.sync_occupancy(connection=datex)

    assert (run.status, run.updated) == ("succeeded", 3)
    occupancy = dict(CarPark.objects.values_list("cpms_reference", "occupancy"))
    # Occupied given; only vacant + override given; only a percentage + override given.
    assert occupancy == {"PH-ALTMARKT": 312, "TG-SCHLOSS": 185, "PR-NORD": 65}
    assert CarPark.objects.get(cpms_reference="TG-SCHLOSS").cpms_link.cpms_status == "full"


def test_a_parkapi_city_document_imports_with_occupancy(parkapi):
    static = services.sync_static(connection=parkapi)
    occupancy = services.sync_occupancy(connection=parkapi)

    assert static.created == 4
    lot = CarPark.objects.get(cpms_reference="musterstadtaltmarkt")
    # "region" groups lots within the city; it is not the city (the document names none).
    assert (lot.name, lot.capacity, lot.street, lot.city) == ("Altmarkt", 400, "Wilsdruffer Straße 10", "")
    assert (lot.latitude, lot.longitude) == (Decimal("51.050310"), Decimal("13.737540"))
    values = dict(CarPark.objects.values_list("cpms_reference", "occupancy"))
    assert values["musterstadtaltmarkt"] == 165
    assert values["musterstadtfrauenkircheneumarkt"] == 120
    assert values["musterstadthauptbahnhofnord"] is None  # "closed" is a status, not 0 cars
    assert values["musterstadtbautznerstrasse"] is None  # "nodata" tells nothing
    # The closed and the nodata lot keep no count but their status is stored: four links updated.
    assert (occupancy.updated, occupancy.unchanged) == (4, 0)
    statuses = dict(CarParkLink.objects.values_list("external_id", "cpms_status"))
    assert (statuses["musterstadthauptbahnhofnord"], statuses["musterstadtbautznerstrasse"]) == ("closed", "nodata")


def test_pull_only_feeds_refuse_credential_pushes(parkapi):
    assert not parkapi.supports_push
    with pytest.raises(Exception, match="pull-only"):
        parkapi.adapter().push_credential(None)


def test_xml_with_entity_expansion_is_refused():
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<d2LogicalModel xmlns="http://datex2.eu/schema/2/2_0">&lol2;</d2LogicalModel>"""
    with pytest.raises(CpmsMalformed, match="not a well-formed, safe XML document"):
        parse_document(bomb, "test")


def test_a_record_with_an_unreadable_capacity_is_refused_alone(datex):
    text = (services.__file__.rsplit("/", 1)[0] + "/tests/data/datex2-parking-table.xml").replace("\\", "/")
    with open(text, "rb") as handle:
        broken = handle.read().replace(b"<parkingNumberOfSpaces>185<", b"<parkingNumberOfSpaces>many<")

    records = parse_parking_table(parse_document(broken, "test"))

    assert [record.external_id for record in records] == ["PH-ALTMARKT", "PR-NORD"]
    [refused] = records.refused
    assert refused.external_id == "TG-SCHLOSS"
    assert "TG-SCHLOSS parkingNumberOfSpaces: expected a whole number, got 'many'" in refused.reason
