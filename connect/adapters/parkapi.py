"""ParkAPI adapter: the ParkAPI/ParkenDD city document, API version 1.0 (pull only).

Follows ParkAPI v1's JSON schema (``schema/city_schema.json`` of offenesdresden/ParkAPI, vendored
under ``connect/tests/schemas/parkapi/``) and its README. ``GET /{city_id}`` answers
``{"last_updated", "last_downloaded", "lots": [...]}`` (both times required; servers add
``data_source``). Each lot has the required ``id``, ``name``, ``total`` (integer ≥ 0), ``state``
(``open`` | ``closed`` | ``nodata`` | ``unknown``) and ``forecast`` (boolean), and the optional
``free`` (integer ≥ 0), ``address``, ``coords`` {``lat``, ``lng``}, ``lot_type`` and ``region``
(each may be null), ``opening_hours`` and ``fee_hours`` (OpenStreetMap syntax) and ``url``.
One document carries both the static data and the occupancy.

What becomes of each field, lot by lot (one bad lot is refused with its id, the others are used):

- ``free`` is optional: the public ParkAPI server leaves it out (state ``nodata``) for lots it has
  no live count of. Without ``free``, or with state ``nodata`` or ``closed``, the occupancy is
  unknown and the stored one stays as it is; the state is kept as the lot's status.
- ``free > total`` cannot be true: that lot is refused, the others are stored.
- ``region`` is not the city: the reference scrapers fill it with the district or category the
  city's own page groups its lots by (Dresden: "Innere Altstadt", "Ring West"). It is kept as a
  group of lots (``Records.groups``, kind ``group``) so the grouping is not lost and nothing is
  counted twice (a group is never a car park). The city comes from the document's top-level
  ``city`` (a name, or an object with ``name``; not in the v1 schema, but allowed by its
  ``additionalProperties``), else the connection's option ``city_name`` (v1 names the city only
  in its meta document ``GET /``), and a lot whose ``address`` ends in "…, 01067 Dresden" gives
  its own postcode and city.
- ``name`` is in one language (the city's): it is kept under the connection's first language.
- ``opening_hours`` (OSM syntax) becomes the car park's opening hours. ``forecast`` only says a
  forecast can be fetched elsewhere: no forecast row is made up from it. ``lot_type``, ``url`` and
  ``fee_hours`` have no field here and are not stored.
- Times: the ParkAPI README says "Times are in UTC" and the reference scraper converts the city's
  local time to naive UTC (``util.convert_date``), so a time without offset is UTC — unless the
  connection sets the option ``time_zone`` (a server that writes local times).

Options: ``city`` — the city id appended to the base URL (empty when the base URL is the city
document itself); ``city_name``; ``time_zone``; ``languages``.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, tzinfo
from typing import Any

from .base import (
    CarParkRecord,
    CpmsAdapter,
    CpmsMalformed,
    GroupRecord,
    OccupancyRecord,
    Records,
    clean_coordinate,
    clean_id,
    clean_int,
    clean_text,
    collect,
    parse_datetime,
)

STATES = ("open", "closed", "nodata", "unknown")
# States whose ``free`` is a live count; for "closed" and "nodata" the count tells nothing.
COUNTING_STATES = {"open", "unknown"}
# "Wilsdruffer Straße 10, 01067 Dresden" or the same over two lines: street, postcode, city.
_ADDRESS_WITH_CITY = re.compile(r"^(?P<street>.+?)\s*[,\n]\s*(?P<postcode>\d{4,5})\s+(?P<city>[^\d,\n][^,\n]*?)\s*$")
OPENING_HOURS_MAX = 200


class ParkApiAdapter(CpmsAdapter):
    kind = "parkapi"
    label = "ParkAPI"
    spec_version = "ParkAPI JSON api_version 1.0"

    def _document(self) -> dict[str, Any]:
        return city_document(self.get_json(self.options.get("city") or ""))

    def pull_carparks(self) -> Records:
        return parse_lots(
            self._document(), language=self.languages[0], city_name=str(self.options.get("city_name") or "")
        )

    def pull_occupancy(self) -> Records:
        return parse_lot_occupancy(self._document(), tz=self.feed_time_zone)

    @property
    def feed_time_zone(self) -> tzinfo:
        """UTC, as ParkAPI v1 specifies, unless the connection names the zone its server writes in."""
        return self.time_zone if self.options.get("time_zone") else UTC


def city_document(body: Any) -> dict[str, Any]:
    """The document itself must be a city document; its lots are checked one by one later."""
    if not isinstance(body, dict) or not isinstance(body.get("lots"), list):
        raise CpmsMalformed("ParkAPI: expected a city document (an object with a 'lots' list)")
    return body


# --- static data -------------------------------------------------------------------------------
def parse_lots(body: dict[str, Any], *, language: str = "de", city_name: str = "") -> Records:
    """Car parks from the lots, each on its own; regions become groups of the accepted lots."""
    city = _document_city(body) or city_name.strip()[:100]
    twice = _repeated_ids(body["lots"])
    records = collect(body["lots"], lambda lot: _carpark(lot, twice, city, language), _lot_id)
    records.groups = _regions(records, body["lots"], language)
    return records


def _carpark(lot: Any, twice: set[str], city: str, language: str) -> CarParkRecord:
    lot_id, what = _identify(lot, twice)
    name = _text(lot, "name", what, required=True)
    street, postcode, address_city = _address(_text(lot, "address", what))
    latitude, longitude = _coords(lot.get("coords"), what)
    opening_hours = _text(lot, "opening_hours", what, max_length=10_000)
    region = _text(lot, "region", what)
    return CarParkRecord(
        external_id=lot_id,
        name=name[:200],
        capacity=_count(lot, "total", what, required=True),
        street=street,
        postcode=postcode,
        city=address_city or city,
        latitude=latitude,
        longitude=longitude,
        # An OSM string cut short would state wrong hours: one too long for the field is left out.
        opening_hours=opening_hours if len(opening_hours) <= OPENING_HOURS_MAX else "",
        names={language: name[:200]},
        parent_id=region_id(region) if region else "",
    )


def region_id(region: str) -> str:
    """A stable group id for a region name (regions have no id of their own in ParkAPI)."""
    slug = re.sub(r"[^\w]+", "-", region.casefold()).strip("-")[:90]
    return f"region:{slug or 'unnamed'}"


def _regions(records: Records, lots: list[Any], language: str) -> list[GroupRecord]:
    names: dict[str, str] = {}
    for lot in lots:
        region = lot.get("region") if isinstance(lot, dict) else None
        if isinstance(region, str) and region.strip():
            names.setdefault(region_id(region.strip()), region.strip()[:200])
    members: dict[str, list[str]] = {}
    for record in records:
        if record.parent_id:
            members.setdefault(record.parent_id, []).append(record.external_id)
    return [
        GroupRecord(
            external_id=group_id,
            kind="group",
            name=names[group_id],
            names={language: names[group_id]},
            member_ids=tuple(ids),
        )
        for group_id, ids in members.items()
    ]


def _document_city(body: dict[str, Any]) -> str:
    city = body.get("city")
    if isinstance(city, dict):
        city = city.get("name")
    return city.strip()[:100] if isinstance(city, str) else ""


def _address(address: str) -> tuple[str, str, str]:
    """Street, postcode and city of an address; only the street when no "postcode city" ends it."""
    match = _ADDRESS_WITH_CITY.match(address)
    if not match:
        return address[:200], "", ""
    return match["street"][:200], match["postcode"], match["city"][:100]


def _coords(coords: Any, what: str) -> tuple[Any, Any]:
    if coords is None:
        return None, None
    if not isinstance(coords, dict):
        raise CpmsMalformed(f"{what}: coords is not an object with lat and lng")
    latitude = clean_coordinate(coords.get("lat"), f"{what} lat", limit=90)
    longitude = clean_coordinate(coords.get("lng"), f"{what} lng", limit=180)
    if (latitude is None) != (longitude is None):
        raise CpmsMalformed(f"{what}: coords has only one of lat and lng")
    return latitude, longitude


# --- occupancy ---------------------------------------------------------------------------------
def parse_lot_occupancy(body: dict[str, Any], *, tz: tzinfo = UTC) -> Records:
    """How full each lot is; a lot whose numbers cannot be true is refused, the others are used."""
    observed = _observed_at(body, tz)
    twice = _repeated_ids(body["lots"])
    return collect(body["lots"], lambda lot: _occupancy(lot, twice, observed), _lot_id)


def _occupancy(lot: Any, twice: set[str], observed: datetime | None) -> OccupancyRecord:
    lot_id, what = _identify(lot, twice)
    state = lot.get("state")
    if state not in STATES:
        raise CpmsMalformed(f"{what}: state {state!r} is not one of {', '.join(STATES)}")
    total = _count(lot, "total", what, required=True)
    free = _count(lot, "free", what)
    if free is not None and free > total:
        raise CpmsMalformed(
            f"{what}: free {free} is more than total {total}; its occupancy is left as it was until the feed is fixed"
        )
    counted = free is not None and state in COUNTING_STATES
    return OccupancyRecord(
        external_id=lot_id,
        occupied=total - free if counted else None,
        capacity=total,
        vacant=free if counted else None,
        status=state,
        observed_at=observed,
    )


def _observed_at(body: dict[str, Any], tz: tzinfo) -> datetime | None:
    """When the city last updated its numbers (``last_updated``), else when ParkAPI fetched them."""
    for key in ("last_updated", "last_downloaded"):
        if body.get(key) not in (None, ""):
            return parse_datetime(body[key], f"ParkAPI {key}", tz=tz)
    return None


# --- shared field readers ----------------------------------------------------------------------
def _lot_id(lot: Any) -> str:
    return str(lot.get("id")) if isinstance(lot, dict) else "?"


def _repeated_ids(lots: list[Any]) -> set[str]:
    counts = Counter(str(lot.get("id")) for lot in lots if isinstance(lot, dict))
    return {lot_id for lot_id, count in counts.items() if count > 1}


def _identify(lot: Any, twice: set[str]) -> tuple[str, str]:
    """The lot's id and how messages name it; a lot that is not an object or shares its id is refused."""
    if not isinstance(lot, dict):
        raise CpmsMalformed("ParkAPI: a lot is not an object")
    if not isinstance(lot.get("id"), str):
        raise CpmsMalformed(f"ParkAPI lot id {lot.get('id')!r} is not a string")
    lot_id = clean_id(lot["id"], "ParkAPI lot id")
    if lot_id in twice:
        raise CpmsMalformed(f"ParkAPI lot {lot_id} appears more than once; none of its entries is used")
    return lot_id, f"ParkAPI lot {lot_id}"


def _text(lot: dict[str, Any], key: str, what: str, *, required: bool = False, max_length: int = 200) -> str:
    value = lot.get(key)
    if value is not None and not isinstance(value, str):
        raise CpmsMalformed(f"{what}: {key} is not a string ({value!r})")
    return clean_text(value, f"{what} {key}", required=required, max_length=max_length)


def _count(lot: dict[str, Any], key: str, what: str, *, required: bool = False) -> int | None:
    value = lot.get(key)
    if value is None:
        if required:
            raise CpmsMalformed(f"{what}: {key} is missing")
        return None
    # The schema says integer; scrapers that pass the page's text ("42") are read too.
    return clean_int(value, f"{what} {key}")
