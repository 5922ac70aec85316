"""DATEX II adapter: parking tables and parking status, DATEX II version 2.3 (pull only).

Follows the DATEX II v2.3 XML schema (``DATEXIISchema_2_2_3.xsd``, namespace
``http://datex2.eu/schema/2/2_0``, ``modelBaseVersion="2"``) for the two parking publications
national access points (MDM/Mobilithek, NDW, …) publish. In 2.3 both are level-B extensions: a
``GenericPublication`` whose ``genericPublicationExtension`` holds the ``parkingTablePublication`` or
``parkingStatusPublication``; a ``payloadPublication`` typed directly as one of them is read too.

- ``ParkingTable`` → ``parkingRecord`` (abstract ``ParkingRecord``, ``id``/``version`` attributes):
  ``UrbanParkingSite`` / ``InterUrbanParkingSite`` / ``SpecialLocationParkingSite`` are car parks;
  ``GroupOfParkingSites`` (members as ``parkingSiteByReference`` or nested ``parkingSite``) is a
  group, never a car park of its own (its spaces are its members' spaces). Every field we read is
  optional in the schema except the id and ``parkingLocation``: ``parkingName`` /
  ``parkingAlias`` / ``parkingDescription`` (MultilingualString ``values/value[@lang]``),
  ``parkingNumberOfSpaces``, ``operator`` and ``parkingSiteAddress`` (ContactDetails),
  ``parkingLocation`` → ``pointByCoordinates/pointCoordinates`` (or ``locationForDisplay``),
  ``openingTimes`` (``available24hours``, ``validity/validityTimeSpecification/validPeriod`` with
  ``recurringDayWeekMonthPeriod/applicableDay`` and ``recurringTimePeriodOfDay`` start/end times).
- ``ParkingStatusPublication`` → ``parkingRecordStatus`` (``ParkingSiteStatus`` or
  ``GroupOfParkingSitesStatus``): ``parkingRecordReference/@id``, ``parkingStatusOriginTime`` and
  ``parkingOccupancy`` with any of ``parkingNumberOfSpacesOverride``,
  ``parkingNumberOfVacantSpaces``, ``parkingNumberOfOccupiedSpaces``, ``parkingNumberOfVehicles``,
  ``parkingOccupancy`` (a percentage), ``parkingNotAllowed``; ``parkingSiteStatus`` and
  ``parkingSiteOpeningStatus`` (``closed``/``closedAbnormal`` → status "closed", no count, so the
  last known occupancy stays).

Records are read one by one: a record with an unusable value is refused with its id and the reason,
the others are kept. Names come in the connection's language order (local language first), times
without an offset are local times of the connection's zone. Documents are parsed with defusedxml:
no DTDs, no entity expansion, no network access. Options: ``table_path`` and ``status_path``
relative to the base URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from .base import (
    DAYS,
    CarParkRecord,
    CpmsAdapter,
    CpmsMalformed,
    GroupRecord,
    OccupancyRecord,
    Records,
    TariffRecord,
    clean_coordinate,
    clean_id,
    clean_int,
    clean_text,
    collect,
    parse_datetime,
)

NS = "http://datex2.eu/schema/2/2_0"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
GROUP_TYPE = "GroupOfParkingSites"
GROUP_STATUS_TYPE = "GroupOfParkingSitesStatus"
# OpeningStatusEnum values that mean the site cannot be entered now.
CLOSED_OPENING_STATUSES = {"closed", "closedAbnormal"}
ALL_DAYS = list(DAYS.values())


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _path(*names: str) -> str:
    return "/".join(_q(name) for name in names)


def _xsi_type(element: Element) -> str:
    """The element's xsi:type without its namespace prefix ("d2:UrbanParkingSite" → "UrbanParkingSite")."""
    return element.get(XSI_TYPE, "").split(":")[-1]


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
    xsi_type = _xsi_type(payload)
    if xsi_type == name[0].upper() + name[1:]:
        return payload
    extension = payload.find(_path("genericPublicationExtension", name))
    if extension is None:
        raise CpmsMalformed(f"{what}: payloadPublication is {xsi_type or 'untyped'} without a {name}")
    return extension


def _default_language(root: Element) -> str:
    """The publication's ``lang``: the language of every value that names none itself."""
    payload = root.find(_q("payloadPublication"))
    return (payload.get("lang") or "").strip().lower() if payload is not None else ""


def _text(element: Element | None, *names: str) -> str | None:
    if element is None:
        return None
    found = element.find(_path(*names))
    if found is None or found.text is None:
        return None
    return found.text.strip()


class _Reader:
    """What every record needs to be read: the language order, the default language and the time zone."""

    def __init__(
        self, *, languages: Iterable[str] = ("de", "en"), default_language: str = "", tz: tzinfo | None = None
    ):
        self.languages = tuple(str(code).lower() for code in languages)
        self.default_language = default_language
        self.tz = tz

    def names(self, element: Element | None) -> dict[str, str]:
        """A MultilingualString as {language: text}, the first text per language winning."""
        names: dict[str, str] = {}
        if element is None:
            return names
        for value in element.findall(_path("values", "value")):
            text = (value.text or "").strip()
            language = (value.get("lang") or self.default_language or "").strip().lower()
            if text and language not in names:
                names[language] = text
        return names

    def choose(self, names: dict[str, str]) -> str:
        """The name in the connection's language order; else the feed's first one."""
        for code in self.languages:
            if names.get(code):
                return names[code]
        return next(iter(names.values()), "")

    def time(self, value: str | None, what: str) -> Any:
        return parse_datetime(value, what, tz=self.tz)


def _record_id(record: Element, attribute_of: str = "parkingRecord") -> str:
    return clean_id(record.get("id"), f"{attribute_of} id")


def _safe_id(element: Element) -> str:
    """The id to report for a refused record, whatever it looks like (never raises)."""
    value = element.get("id")
    if value is None:
        reference = element.find(_q("parkingRecordReference"))
        value = reference.get("id") if reference is not None else None
    return str(value or "?").strip()[:100] or "?"


# --- parking table -------------------------------------------------------------------------
def _records_of(publication: Element) -> list[Element]:
    return publication.findall(_path("parkingTable", "parkingRecord"))


def parse_parking_table(root: Element, *, languages: Iterable[str] = ("de", "en"), tz: tzinfo | None = None) -> Records:
    """Car parks (the list) and groups of parking sites (``records.groups``), record by record."""
    publication = _publication(root, "parkingTablePublication", "ParkingTablePublication")
    reader = _Reader(languages=languages, default_language=_default_language(root), tz=tz)
    all_records = _records_of(publication)
    groups = [record for record in all_records if _xsi_type(record) == GROUP_TYPE]
    parents = _parents_of(groups)
    # A site nested in a group is a car park too; its parent is the group around it.
    sites: list[tuple[Element, str]] = [(record, "") for record in all_records if _xsi_type(record) != GROUP_TYPE]
    for group in groups:
        sites.extend((site, str(group.get("id") or "").strip()) for site in group.findall(_q("parkingSite")))
    seen: dict[str, str] = {}

    def parse_site(item: tuple[Element, str]) -> CarParkRecord:
        record, nested_in = item
        record_id = _unique(record, seen)
        return _parse_site(record, record_id, nested_in or parents.get(record_id, ""), reader)

    records = collect(sites, parse_site, lambda item: _safe_id(item[0]))
    group_records = collect(groups, lambda group: _parse_group(group, _unique(group, seen), reader), _safe_id)
    records.groups = list(group_records)
    records.refused.extend(group_records.refused)
    return records


def _parents_of(groups: list[Element]) -> dict[str, str]:
    """Site id → the id of the (first) group listing it by reference."""
    parents: dict[str, str] = {}
    for group in groups:
        group_id = str(group.get("id") or "").strip()
        for reference in group.findall(_q("parkingSiteByReference")):
            member = str(reference.get("id") or "").strip()
            if member and group_id:
                parents.setdefault(member, group_id)
    return parents


def _unique(record: Element, seen: dict[str, str]) -> str:
    """The record's id; a second record with the same id is refused (the first one is kept)."""
    record_id = _record_id(record)
    version = record.get("version") or "?"
    if record_id in seen:
        raise CpmsMalformed(
            f"parkingRecord {record_id} appears twice (versions {seen[record_id]} and {version}); the first is kept"
        )
    seen[record_id] = version
    return record_id


def _names_of(record: Element, record_id: str, reader: _Reader) -> tuple[str, dict[str, str]]:
    """The name to show and all names: ``parkingName``, else an alias, else the description, else the id.

    Every one of them is optional in DATEX II 2.3; a record without a name is still a car park.
    """
    for source in ("parkingName", "parkingAlias", "parkingDescription"):
        names = reader.names(record.find(_q(source)))
        if names:
            names = {code: text[:200] for code, text in names.items()}
            return reader.choose(names), names
    return record_id, {}


def _parse_site(record: Element, record_id: str, parent_id: str, reader: _Reader) -> CarParkRecord:
    what = f"parkingRecord {record_id}"
    name, names = _names_of(record, record_id, reader)
    spaces = _text(record, "parkingNumberOfSpaces")
    latitude, longitude = _coordinates(record, what)
    street, postcode, city, country = _address(record.find(_q("parkingSiteAddress")), reader)
    operator = reader.choose(reader.names(record.find(_path("operator", "contactOrganisationName"))))
    return CarParkRecord(
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
        names=names,
        opening_times=tuple(_opening_times(record.find(_q("openingTimes")), what)),
        parent_id=parent_id,
    )


def _coordinates(record: Element, what: str) -> tuple[Decimal | None, Decimal | None]:
    location = record.find(_q("parkingLocation"))
    if location is None:
        return None, None
    point = location.find(_path("pointByCoordinates", "pointCoordinates"))
    if point is None:
        point = location.find(_q("locationForDisplay"))
    if point is None:
        return None, None
    latitude = clean_coordinate(_text(point, "latitude"), f"{what} latitude", limit=90)
    longitude = clean_coordinate(_text(point, "longitude"), f"{what} longitude", limit=180)
    return latitude, longitude


def _address(address: Element | None, reader: _Reader) -> tuple[str, str, str, str]:
    """Street with house number(s), postcode, city and ISO country of a ContactDetails."""
    if address is None:
        return "", "", "", ""
    numbers = [(item.text or "").strip() for item in address.findall(_q("contactDetailsHouseNumber"))]
    house = "–".join(number for number in numbers if number)  # lower and upper number of a range
    street = " ".join(part for part in (_text(address, "contactDetailsStreet"), house) if part)
    if not street:
        street = reader.choose(reader.names(address.find(_q("contactDetailsAddress"))))
    city = reader.choose(reader.names(address.find(_q("contactDetailsCity"))))
    country = _text(address, "country") or ""
    return street, _text(address, "contactDetailsPostcode") or "", city, "" if country == "other" else country


def _opening_times(opening: Element | None, what: str) -> list[dict[str, Any]]:
    """OpeningTimes as rows {"days", "from", "to"} (exception periods as {"days", "closed": True})."""
    if opening is None:
        return []
    if (_text(opening, "available24hours") or "").lower() in ("true", "1"):
        return [{"days": ALL_DAYS, "from": "00:00", "to": "24:00"}]
    spec = opening.find(_path("validity", "validityTimeSpecification"))
    if spec is None:
        return []
    rows: list[dict[str, Any]] = []
    for kind in ("validPeriod", "exceptionPeriod"):
        for period in spec.findall(_q(kind)):
            rows.extend(_period_rows(period, closed=kind == "exceptionPeriod", what=what))
    return rows


def _period_rows(period: Element, *, closed: bool, what: str) -> list[dict[str, Any]]:
    days: list[str] = []
    for recurring in period.findall(_q("recurringDayWeekMonthPeriod")):
        for day in recurring.findall(_q("applicableDay")):
            code = DAYS.get((day.text or "").strip())
            if code is None:
                raise CpmsMalformed(f"{what} openingTimes: {day.text!r} is not a DayEnum value")
            if code not in days:
                days.append(code)
    days = days or ALL_DAYS
    if closed:
        return [{"days": days, "closed": True}]
    hours = [
        (_clock(_text(item, "startTimeOfPeriod"), what), _clock(_text(item, "endTimeOfPeriod"), what))
        for item in period.findall(_q("recurringTimePeriodOfDay"))
    ]
    return [{"days": days, "from": start, "to": end} for start, end in hours or [("00:00", "24:00")]]


def _clock(value: str | None, what: str) -> str:
    text = (value or "").strip()
    if len(text) < 5 or text[2] != ":" or not (text[:2] + text[3:5]).isdigit():
        raise CpmsMalformed(f"{what} openingTimes: {value!r} is not a time of day")
    return text[:5]


def _parse_group(group: Element, group_id: str, reader: _Reader) -> GroupRecord:
    what = f"parkingRecord {group_id}"
    name, names = _names_of(group, group_id, reader)
    members: list[str] = []
    for member in [*group.findall(_q("parkingSiteByReference")), *group.findall(_q("parkingSite"))]:
        member_id = clean_id(member.get("id"), f"{what} member id")
        if member_id not in members:
            members.append(member_id)
    spaces = _text(group, "parkingNumberOfSpaces")
    return GroupRecord(
        external_id=group_id,
        kind="group",
        name=clean_text(name, f"{what} name"),
        names=names,
        member_ids=tuple(members),
        capacity=None if spaces is None else clean_int(spaces, f"{what} parkingNumberOfSpaces"),
    )


# --- tariffs -------------------------------------------------------------------------------
def parse_charge_bands(root: Element, *, languages: Iterable[str] = ("de", "en"), tz: tzinfo | None = None) -> Records:
    """Each ``tariffsAndPayment/chargeBand`` of a site as a rate table; a band with a bad amount is refused."""
    publication = _publication(root, "parkingTablePublication", "ParkingTablePublication")
    reader = _Reader(languages=languages, default_language=_default_language(root), tz=tz)
    bands: list[tuple[Element, str]] = []
    for record in _records_of(publication):
        record_id = str(record.get("id") or "").strip()
        bands.extend((band, record_id) for band in record.findall(_path("tariffsAndPayment", "chargeBand")))
    return collect(bands, lambda item: _parse_band(*item, reader), lambda item: item[0].get("id") or item[1])


def _parse_band(band: Element, record_id: str, reader: _Reader) -> TariffRecord:
    place_id = clean_id(record_id, "parkingRecord id")
    band_id = clean_id(band.get("id") or f"{place_id}-band", f"parkingRecord {place_id} chargeBand id")
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
    return TariffRecord(
        external_id=band_id,
        name=reader.choose(reader.names(band.find(_q("chargeBandName")))) or band_id,
        currency=clean_text(_text(band, "chargeCurrency"), f"{what} chargeCurrency", max_length=3).upper(),
        lines=tuple(lines),
        place_ids=(place_id,),
    )


# --- parking status ------------------------------------------------------------------------
def parse_parking_status(
    root: Element, *, languages: Iterable[str] = ("de", "en"), tz: tzinfo | None = None
) -> Records:
    """Occupancy per site (the list) and per group of sites (``records.groups``), status by status."""
    publication = _publication(root, "parkingStatusPublication", "ParkingStatusPublication")
    reader = _Reader(languages=languages, default_language=_default_language(root), tz=tz)
    statuses = publication.findall(_q("parkingRecordStatus"))
    seen: set[str] = set()
    groups = [status for status in statuses if _xsi_type(status) == GROUP_STATUS_TYPE]
    sites = [status for status in statuses if _xsi_type(status) != GROUP_STATUS_TYPE]
    records = collect(sites, lambda status: _parse_site_status(status, seen, reader), _safe_id)
    group_records = collect(groups, lambda status: _parse_group_status(status, seen, reader), _safe_id)
    records.groups = list(group_records)
    records.refused.extend(group_records.refused)
    return records


class _Counts:
    """The numbers of one ``parkingOccupancy``, each checked on its own."""

    def __init__(self, occupancy: Element | None, what: str):
        self.capacity = _count(occupancy, "parkingNumberOfSpacesOverride", what)
        self.vacant = _count(occupancy, "parkingNumberOfVacantSpaces", what)
        occupied = _count(occupancy, "parkingNumberOfOccupiedSpaces", what)
        vehicles = _count(occupancy, "parkingNumberOfVehicles", what)
        # Occupied spaces when given; else the vehicles on the site (what MDM and NDW feeds publish).
        self.occupied = occupied if occupied is not None else vehicles
        self.percent = _percent(_text(occupancy, "parkingOccupancy"), what)
        self.not_allowed = (_text(occupancy, "parkingNotAllowed") or "").lower() in ("true", "1")
        if self.occupied is None and self.capacity is not None:
            if self.vacant is not None:
                self.occupied = max(self.capacity - self.vacant, 0)
            elif self.percent is not None:
                self.occupied = round(self.capacity * self.percent / 100)

    @property
    def empty(self) -> bool:
        return self.occupied is None and self.vacant is None and self.percent is None


def _count(occupancy: Element | None, name: str, what: str) -> int | None:
    value = _text(occupancy, name)
    return None if value in (None, "") else clean_int(value, f"{what} {name}")


def _percent(value: str | None, what: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        percent = float(value)
    except ValueError:
        raise CpmsMalformed(f"{what}: parkingOccupancy {value!r} is not a number") from None
    if not 0 <= percent <= 100:
        raise CpmsMalformed(f"{what}: parkingOccupancy {percent:g} is not a percentage (0–100)")
    return percent


def _reference_id(status: Element, seen: set[str]) -> str:
    reference = status.find(_q("parkingRecordReference"))
    if reference is None:
        raise CpmsMalformed("parkingRecordStatus without parkingRecordReference")
    record_id = clean_id(reference.get("id"), "parkingRecordReference id")
    if record_id in seen:
        raise CpmsMalformed(f"parkingRecordStatus {record_id} appears twice; the first is kept")
    seen.add(record_id)
    return record_id


def _parse_site_status(status: Element, seen: set[str], reader: _Reader) -> OccupancyRecord:
    record_id = _reference_id(status, seen)
    what = f"parkingRecordStatus {record_id}"
    counts = _Counts(status.find(_q("parkingOccupancy")), what)
    observed = reader.time(_text(status, "parkingStatusOriginTime"), f"{what} parkingStatusOriginTime")
    opening = _text(status, "parkingSiteOpeningStatus") or ""
    if opening in CLOSED_OPENING_STATUSES or counts.not_allowed:
        # Closed is a status, not an empty car park: no count, so the last known occupancy stays.
        return OccupancyRecord(external_id=record_id, occupied=None, status="closed", observed_at=observed)
    site_status = clean_text(_text(status, "parkingSiteStatus"), f"{what} parkingSiteStatus", max_length=30)
    if counts.empty and not site_status:
        raise CpmsMalformed(f"{what}: neither occupied spaces, vehicles, vacant spaces, a percentage nor a status")
    return OccupancyRecord(
        external_id=record_id,
        occupied=counts.occupied,
        capacity=counts.capacity,
        vacant=counts.vacant,
        status=site_status,
        observed_at=observed,
        percent=counts.percent,
    )


def _parse_group_status(status: Element, seen: set[str], reader: _Reader) -> GroupRecord:
    record_id = _reference_id(status, seen)
    what = f"parkingRecordStatus {record_id}"
    counts = _Counts(status.find(_q("parkingOccupancy")), what)
    group_status = clean_text(
        _text(status, "groupOfParkingSitesStatus"), f"{what} groupOfParkingSitesStatus", max_length=30
    )
    return GroupRecord(
        external_id=record_id,
        kind="group",
        capacity=counts.capacity,
        occupied=counts.occupied,
        status=group_status,
    )


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

    def pull_carparks(self) -> Records:
        return parse_parking_table(self._table(), languages=self.languages, tz=self.time_zone)

    def pull_tariffs(self) -> Records:
        return parse_charge_bands(self._table(), languages=self.languages, tz=self.time_zone)

    def pull_occupancy(self) -> Records:
        document = self._document("status_path", "parkingStatus.xml")
        return parse_parking_status(document, languages=self.languages, tz=self.time_zone)
