"""DATEX II adapter: parking tables and parking status, DATEX II version 2.3 (pull only).

Follows the DATEX II v2.3 XML schema (namespace ``http://datex2.eu/schema/2/2_0``,
``modelBaseVersion="2"``) for the two parking publications national access points publish:

- ``ParkingTablePublication`` — ``parkingTable`` → ``parkingRecord`` (``id``/``version``
  attributes, ``xsi:type`` UrbanParkingSite / InterUrbanParkingSite / …) with ``parkingName``
  (MultilingualString ``values/value[@lang]``), ``parkingNumberOfSpaces``, ``parkingLocation`` →
  ``pointByCoordinates/pointCoordinates/latitude|longitude``, ``parkingSiteAddress`` (ContactDetails:
  ``contactDetailsStreet``, ``contactDetailsHouseNumber``, ``contactDetailsPostcode``,
  ``contactDetailsCity``, ``country``), ``operator/contactOrganisationName`` and tariffs in
  ``tariffsAndPayment/chargeBand`` (``chargeCurrency``, ``chargeBandName``, ``charge`` with
  ``charge``, ``chargeInterval`` in seconds and ``chargeType``).
- ``ParkingStatusPublication`` — ``parkingRecordStatus`` (``ParkingSiteStatus``) with
  ``parkingRecordReference/@id``, ``parkingStatusOriginTime``, ``parkingOccupancy`` →
  ``parkingNumberOfSpacesOverride``, ``parkingNumberOfVacantSpaces``,
  ``parkingNumberOfOccupiedSpaces``, ``parkingOccupancy`` (percent), and ``parkingSiteStatus``.

Both may come directly as the ``payloadPublication`` (``xsi:type="ParkingTablePublication"``) or
wrapped in a ``GenericPublication``'s ``genericPublicationExtension`` (the form the German and
Dutch access points use). Documents are parsed with defusedxml: no DTDs, no entity expansion,
no network access. Options: ``table_path`` and ``status_path`` relative to the base URL.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from .base import (
    CarParkRecord,
    CpmsAdapter,
    CpmsMalformed,
    OccupancyRecord,
    TariffRecord,
    clean_coordinate,
    clean_id,
    clean_int,
    clean_text,
    parse_datetime,
)

NS = "http://datex2.eu/schema/2/2_0"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _path(*names: str) -> str:
    return "/".join(_q(name) for name in names)


def parse_document(data: bytes, what: str) -> Element:
    if len(data) > MAX_DOCUMENT_BYTES:
        raise CpmsMalformed(f"{what}: document larger than {MAX_DOCUMENT_BYTES // 1024 // 1024} MiB")
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise CpmsMalformed(f"{what}: not a well-formed, safe XML document ({exc})") from None
    if root.tag != _q("d2LogicalModel"):
        raise CpmsMalformed(f"{what}: root element is {root.tag!r}, expected DATEX II v2 d2LogicalModel")
    return root


def _publication(root: Element, name: str, what: str) -> Element:
    """The ``parkingTablePublication``/``parkingStatusPublication`` element, wrapped or not."""
    payload = root.find(_q("payloadPublication"))
    if payload is None:
        raise CpmsMalformed(f"{what}: no payloadPublication")
    xsi_type = payload.get(XSI_TYPE, "").split(":")[-1]
    if xsi_type == name[0].upper() + name[1:]:
        return payload
    extension = payload.find(_path("genericPublicationExtension", name))
    if extension is None:
        raise CpmsMalformed(f"{what}: payloadPublication is {xsi_type or 'untyped'} without a {name}")
    return extension


def _multilingual(element: Element | None) -> str:
    if element is None:
        return ""
    values = element.findall(_path("values", "value"))
    for preferred in ("en", "de"):
        for value in values:
            if value.get("lang") == preferred and (value.text or "").strip():
                return value.text.strip()
    for value in values:
        if (value.text or "").strip():
            return value.text.strip()
    return ""


def _text(element: Element, *names: str) -> str | None:
    found = element.find(_path(*names))
    if found is None or found.text is None:
        return None
    return found.text.strip()


class Datex2Adapter(CpmsAdapter):
    kind = "datex2"
    label = "DATEX II v2"
    spec_version = "DATEX II 2.3 (ParkingTablePublication, ParkingStatusPublication)"
    supports_tariffs = True

    def _document(self, option: str, default: str) -> Element:
        path = self.options.get(option) or default
        return parse_document(self.get_bytes(path), f"DATEX II {path}")

    def _table(self) -> Element:
        # The table carries car parks and tariffs; one sync reads it once.
        if getattr(self, "_table_cache", None) is None:
            self._table_cache = self._document("table_path", "parkingTable.xml")
        return self._table_cache

    def pull_carparks(self) -> list[CarParkRecord]:
        return parse_parking_table(self._table())

    def pull_tariffs(self) -> list[TariffRecord]:
        return parse_charge_bands(self._table())

    def pull_occupancy(self) -> list[OccupancyRecord]:
        return parse_parking_status(self._document("status_path", "parkingStatus.xml"))


def parse_parking_table(root: Element) -> list[CarParkRecord]:
    publication = _publication(root, "parkingTablePublication", "ParkingTablePublication")
    records: list[CarParkRecord] = []
    seen: set[str] = set()
    for record in publication.findall(_path("parkingTable", "parkingRecord")):
        record_id = clean_id(record.get("id"), "parkingRecord id")
        what = f"parkingRecord {record_id}"
        if record_id in seen:
            raise CpmsMalformed(f"{what} appears twice")
        seen.add(record_id)
        name = _multilingual(record.find(_q("parkingName")))
        if not name:
            raise CpmsMalformed(f"{what}: parkingName is missing")
        spaces = _text(record, "parkingNumberOfSpaces")
        point = record.find(_path("parkingLocation", "pointByCoordinates", "pointCoordinates"))
        latitude = longitude = None
        if point is not None:
            latitude = clean_coordinate(_text(point, "latitude"), f"{what} latitude", limit=90)
            longitude = clean_coordinate(_text(point, "longitude"), f"{what} longitude", limit=180)
        address = record.find(_q("parkingSiteAddress"))
        street = postcode = city = country = ""
        if address is not None:
            street = " ".join(
                part
                for part in (_text(address, "contactDetailsStreet"), _text(address, "contactDetailsHouseNumber"))
                if part
            )
            postcode = _text(address, "contactDetailsPostcode") or ""
            city = _multilingual(address.find(_q("contactDetailsCity")))
            country = _text(address, "country") or ""
        operator = _multilingual(record.find(_path("operator", "contactOrganisationName")))
        records.append(
            CarParkRecord(
                external_id=record_id,
                name=clean_text(name, f"{what} name", required=True),
                capacity=clean_int(spaces if spaces is not None else 0, f"{what} parkingNumberOfSpaces"),
                street=clean_text(street, f"{what} street"),
                postcode=clean_text(postcode, f"{what} postcode", max_length=20),
                city=clean_text(city, f"{what} city", max_length=100),
                country=clean_text(country, f"{what} country", max_length=2).upper(),
                latitude=latitude,
                longitude=longitude,
                operator=clean_text(operator, f"{what} operator"),
            )
        )
    return records


def parse_charge_bands(root: Element) -> list[TariffRecord]:
    publication = _publication(root, "parkingTablePublication", "ParkingTablePublication")
    tariffs: list[TariffRecord] = []
    for record in publication.findall(_path("parkingTable", "parkingRecord")):
        record_id = clean_id(record.get("id"), "parkingRecord id")
        for band in record.findall(_path("tariffsAndPayment", "chargeBand")):
            band_id = clean_id(band.get("id") or f"{record_id}-band", f"parkingRecord {record_id} chargeBand id")
            what = f"chargeBand {band_id}"
            lines = []
            for charge in band.findall(_q("charge")):
                amount = _text(charge, "charge")
                try:
                    value = float(Decimal(amount or ""))
                except (InvalidOperation, ValueError):
                    raise CpmsMalformed(f"{what}: charge {amount!r} is not an amount") from None
                interval = _text(charge, "chargeInterval")
                seconds = clean_int(float(interval), f"{what} chargeInterval", maximum=10**8) if interval else None
                lines.append(
                    {
                        "description": _text(charge, "chargeType") or "",
                        "type": _text(charge, "chargeType") or "",
                        "value": value,
                        "increment": f"PT{seconds}S" if seconds else "",
                        "max_value": None,
                    }
                )
            tariffs.append(
                TariffRecord(
                    external_id=band_id,
                    name=_multilingual(band.find(_q("chargeBandName"))) or band_id,
                    currency=clean_text(_text(band, "chargeCurrency"), f"{what} chargeCurrency", max_length=3).upper(),
                    lines=tuple(lines),
                    place_ids=(record_id,),
                )
            )
    return tariffs


def parse_parking_status(root: Element) -> list[OccupancyRecord]:
    publication = _publication(root, "parkingStatusPublication", "ParkingStatusPublication")
    records: list[OccupancyRecord] = []
    for status in publication.findall(_q("parkingRecordStatus")):
        reference = status.find(_q("parkingRecordReference"))
        if reference is None:
            raise CpmsMalformed("parkingRecordStatus without parkingRecordReference")
        record_id = clean_id(reference.get("id"), "parkingRecordReference id")
        what = f"parkingRecordStatus {record_id}"
        occupancy = status.find(_q("parkingOccupancy"))
        if occupancy is None:
            raise CpmsMalformed(f"{what}: no parkingOccupancy")
        values: dict[str, Any] = {
            key: _text(occupancy, key)
            for key in (
                "parkingNumberOfSpacesOverride",
                "parkingNumberOfVacantSpaces",
                "parkingNumberOfOccupiedSpaces",
                "parkingOccupancy",
            )
        }
        capacity = _optional_int(values["parkingNumberOfSpacesOverride"], f"{what} parkingNumberOfSpacesOverride")
        vacant = _optional_int(values["parkingNumberOfVacantSpaces"], f"{what} parkingNumberOfVacantSpaces")
        occupied = _optional_int(values["parkingNumberOfOccupiedSpaces"], f"{what} parkingNumberOfOccupiedSpaces")
        if occupied is None and capacity is not None and vacant is not None:
            occupied = max(capacity - vacant, 0)
        if occupied is None and capacity is not None and values["parkingOccupancy"] is not None:
            try:
                percent = float(values["parkingOccupancy"])
            except ValueError:
                raise CpmsMalformed(
                    f"{what}: parkingOccupancy {values['parkingOccupancy']!r} is not a number"
                ) from None
            if not 0 <= percent <= 100:
                raise CpmsMalformed(f"{what}: parkingOccupancy {percent} is not a percentage")
            occupied = round(capacity * percent / 100)
        if occupied is None and vacant is None:
            raise CpmsMalformed(f"{what}: neither occupied nor vacant spaces are given")
        records.append(
            OccupancyRecord(
                external_id=record_id,
                occupied=occupied,
                capacity=capacity,
                vacant=vacant,
                status=clean_text(_text(status, "parkingSiteStatus"), f"{what} parkingSiteStatus", max_length=30),
                observed_at=parse_datetime(_text(status, "parkingStatusOriginTime"), f"{what} parkingStatusOriginTime"),
            )
        )
    return records


def _optional_int(value: str | None, what: str) -> int | None:
    return None if value in (None, "") else clean_int(value, what)
