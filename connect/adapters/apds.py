"""APDS adapter: the Alliance for Parking Data Standards API, version 4.0.

Follows the APDS OpenAPI specification "APDS API Specification" version 4.0 (openapi 3.1.0,
``apiv4/apds4.yaml`` of the APDS sandbox) and the APDS 4 occupancy and inventory examples.
The subset we use, over HTTP with JSON and an OAuth bearer token:

- ``GET /places?page=N&expand=…`` → ``HierarchyElementList`` (``meta`` = PaginatedListMeta with
  ``referenceInstant``, ``offset``, ``pageSize``, ``total``; ``data`` = HierarchyElements). A car park
  is a top-level element (``layer`` 1, no ``parent``) of type ``place``/``parkingPlace``; its name is a
  MultilingualString, its address ``placeStreetAddress``, its position ``indicativePointLocation``
  (GeoJSON, longitude first), its capacity ``characteristics.spacesTotal``.
- Occupancy: ``expand=occupancy`` adds ``hierarchyElementReference.supply[].supplyQuantity`` and
  ``demandTable[].demandType[]`` with ``count`` and ``recordDateTime``.
- Tariffs: ``GET /rates?expand=rateLineCollections.rateLines`` (RateTable) tied to places through
  ``GET /rights/specs?expand=rateEligibility`` (RightSpecification.hierarchyElements).
- Credentials: an AssignedRight per credential — ``PUT /rights/assigned/{id}`` (create or update,
  so pushing twice leaves one entry), ``DELETE /rights/assigned/{id}``, and
  ``GET /rights/assigned?place=…`` for the whitelist. ``rightHolder.credentials[]`` carry
  ``type`` (CredentialTypeEnum: licensePlate, rfid, qrCode) and ``identifier`` {id, className}.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .apds_rights import ApdsRightsMixin
from .base import (
    CarParkRecord,
    CpmsAdapter,
    CpmsError,
    CpmsMalformed,
    HealthResult,
    OccupancyRecord,
    TariffRecord,
    clean_coordinate,
    clean_id,
    clean_int,
    clean_text,
    parse_datetime,
)

SPEC = "APDS API Specification 4.0"
MAX_PAGES = 1000
PLACE_TYPES = {"place", "parkingPlace", "campus"}


def multilingual(value: Any, what: str, *, required: bool = False, prefer: tuple[str, ...] = ("en", "de")) -> str:
    """First string of an APDS MultilingualString, preferring the given languages."""
    if value in (None, []):
        if required:
            raise CpmsMalformed(f"{what} is missing")
        return ""
    if isinstance(value, str):
        return clean_text(value, what, required=required)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise CpmsMalformed(f"{what} is not a MultilingualString")
    by_language = {str(item.get("language", "")): item.get("string") for item in value}
    for language in prefer:
        if by_language.get(language):
            return clean_text(by_language[language], what, required=required)
    return clean_text(value[0].get("string"), what, required=required)


class ApdsAdapter(ApdsRightsMixin, CpmsAdapter):
    kind = "apds"
    label = "APDS 4"
    spec_version = SPEC
    supports_push = True
    supports_tariffs = True

    # --- paging --------------------------------------------------------------------------
    def _list(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            body = self.get_json(path, params={**params, "page": page})
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise CpmsMalformed(f"GET {path}: expected a paginated list with 'meta' and 'data'")
            meta = body.get("meta")
            if not isinstance(meta, dict):
                raise CpmsMalformed(f"GET {path}: the paginated list has no 'meta'")
            total = clean_int(meta.get("total"), f"{path} meta.total", maximum=10_000_000)
            offset = clean_int(meta.get("offset", 0), f"{path} meta.offset", maximum=10_000_000)
            for item in body["data"]:
                if not isinstance(item, dict):
                    raise CpmsMalformed(f"GET {path}: list item is not an object")
                items.append(item)
            if not body["data"] or offset + len(body["data"]) >= total:
                return items
        raise CpmsMalformed(f"GET {path}: more than {MAX_PAGES} pages")

    def _car_park_elements(self, expand: str) -> list[dict[str, Any]]:
        elements = self._list("places", {"expand": expand})
        return [
            element
            for element in elements
            if element.get("type", "place") in PLACE_TYPES
            and not element.get("parent")
            and element.get("layer", 1) <= 1
        ]

    # --- pull ----------------------------------------------------------------------------
    def pull_carparks(self) -> list[CarParkRecord]:
        records = []
        seen: set[str] = set()
        for element in self._car_park_elements("streetAddress,pointLocation,characteristics,contacts"):
            records.append(self._place(element))
            if records[-1].external_id in seen:
                raise CpmsMalformed(f"place {records[-1].external_id} is listed twice")
            seen.add(records[-1].external_id)
        return records

    def _place(self, element: dict[str, Any]) -> CarParkRecord:
        place_id = clean_id(element.get("id"), "place id")
        what = f"place {place_id}"
        address = element.get("placeStreetAddress") or {}
        if not isinstance(address, dict):
            raise CpmsMalformed(f"{what}: placeStreetAddress is not an object")
        lines = address.get("addressLines") or []
        if not isinstance(lines, list):
            raise CpmsMalformed(f"{what}: addressLines is not a list")
        street = ""
        for line in sorted((ln for ln in lines if isinstance(ln, dict)), key=lambda ln: ln.get("order", 0)):
            if line.get("type", "street") == "street":
                street = multilingual(line.get("text"), f"{what} street")
                break
        latitude = longitude = None
        point = element.get("indicativePointLocation")
        if point:
            geometry = point.get("geometry", point) if isinstance(point, dict) else None
            coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
            if not isinstance(coordinates, list) or len(coordinates) != 2:
                raise CpmsMalformed(f"{what}: indicativePointLocation has no [longitude, latitude] pair")
            longitude = clean_coordinate(coordinates[0], f"{what} longitude", limit=180)
            latitude = clean_coordinate(coordinates[1], f"{what} latitude", limit=90)
        characteristics = element.get("characteristics") or {}
        if not isinstance(characteristics, dict):
            raise CpmsMalformed(f"{what}: characteristics is not an object")
        capacity = characteristics.get("spacesTotal")
        if capacity is None:
            capacity = _supply(element, what)
        operator = ""
        for assignment in element.get("responsibilityRoleAssignments") or []:
            if isinstance(assignment, dict) and assignment.get("type") == "operator":
                contacts = assignment.get("contactPoints") or [{}]
                operator = multilingual(contacts[0].get("organisationName"), f"{what} operator")
        return CarParkRecord(
            external_id=place_id,
            name=multilingual(element.get("name"), f"{what} name", required=True),
            capacity=clean_int(capacity if capacity is not None else 0, f"{what} capacity"),
            street=street,
            postcode=clean_text(address.get("postCode"), f"{what} postCode", max_length=20),
            city=multilingual(address.get("city"), f"{what} city")[:100],
            country=clean_text(address.get("countryCode"), f"{what} countryCode", max_length=2).upper(),
            latitude=latitude,
            longitude=longitude,
            time_zone=clean_text(element.get("timeZone"), f"{what} timeZone", max_length=64),
            operator=operator,
        )

    def pull_occupancy(self) -> list[OccupancyRecord]:
        records = []
        for element in self._car_park_elements("occupancy"):
            place_id = clean_id(element.get("id"), "place id")
            what = f"place {place_id}"
            reference = element.get("hierarchyElementReference")
            if not isinstance(reference, dict):
                raise CpmsMalformed(f"{what}: no hierarchyElementReference with occupancy")
            tables = reference.get("demandTable")
            if not isinstance(tables, list) or not tables:
                raise CpmsMalformed(f"{what}: no demandTable")
            latest = None
            for table in tables:
                if not isinstance(table, dict) or not isinstance(table.get("demandType"), list):
                    raise CpmsMalformed(f"{what}: demandTable entry has no demandType list")
                for demand in table["demandType"]:
                    if not isinstance(demand, dict) or "count" not in demand:
                        raise CpmsMalformed(f"{what}: demandType without a count")
                    observed = parse_datetime(demand.get("recordDateTime") or table.get("timestamp"), f"{what} time")
                    if latest is None or (observed and (latest[1] is None or observed > latest[1])):
                        latest = (demand, observed)
            if latest is None:
                raise CpmsMalformed(f"{what}: demandTable holds no observation")
            supply = _supply(element, what)
            records.append(
                OccupancyRecord(
                    external_id=place_id,
                    occupied=clean_int(latest[0]["count"], f"{what} count"),
                    capacity=clean_int(supply, f"{what} supplyQuantity") if supply is not None else None,
                    status=clean_text(latest[0].get("occupancyCalculation"), f"{what} status", max_length=30),
                    observed_at=latest[1],
                )
            )
        return records

    def pull_tariffs(self) -> list[TariffRecord]:
        specs = self._list("rights/specs", {"expand": "rateEligibility"})
        places_by_rate: dict[str, set[str]] = {}
        for spec in specs:
            places = [clean_id(ref.get("id"), "hierarchyElement id") for ref in spec.get("hierarchyElements") or []]
            for eligibility in spec.get("rateEligibility") or []:
                rate = (eligibility or {}).get("rateTable") or {}
                if rate.get("id"):
                    places_by_rate.setdefault(str(rate["id"]), set()).update(places)
        records = []
        for table in self._list("rates", {"expand": "rateLineCollections.rateLines"}):
            rate_id = clean_id(table.get("id"), "rate table id")
            collections = table.get("rateLineCollections") or []
            if not isinstance(collections, list):
                raise CpmsMalformed(f"rate table {rate_id}: rateLineCollections is not a list")
            lines: list[dict[str, Any]] = []
            currency = ""
            for collection in collections:
                currency = currency or clean_text(collection.get("applicableCurrency"), "currency", max_length=3)
                for line in collection.get("rateLines") or []:
                    lines.append(
                        {
                            "description": multilingual(line.get("description"), f"rate {rate_id} line"),
                            "type": clean_text(line.get("rateLineType"), "rateLineType", max_length=40),
                            "value": float(line.get("value", 0)),
                            "increment": clean_text(line.get("incrementPeriod"), "incrementPeriod", max_length=20),
                            "max_value": line.get("maxValue"),
                        }
                    )
            records.append(
                TariffRecord(
                    external_id=rate_id,
                    name=multilingual(table.get("rateTableName"), f"rate table {rate_id} name"),
                    currency=currency,
                    lines=tuple(lines),
                    place_ids=tuple(sorted(places_by_rate.get(rate_id, ()))),
                )
            )
        return records

    def health_check(self) -> HealthResult:
        started = datetime.now()
        try:
            body = self.get_json("places", params={"page": 1, "expand": "none"})
            if not isinstance(body, dict) or "meta" not in body or not isinstance(body.get("data"), list):
                raise CpmsMalformed("GET places did not answer with an APDS paginated list")
        except CpmsError as exc:
            return HealthResult(ok=False, message=str(exc), latency_ms=_elapsed(started))
        total = body["meta"].get("total")
        return HealthResult(
            ok=True,
            message=f"APDS 4 endpoint answered: {total} places published.",
            latency_ms=_elapsed(started),
            details={"places": total},
        )


def _supply(element: dict[str, Any], what: str) -> int | None:
    reference = element.get("hierarchyElementReference")
    if not isinstance(reference, dict):
        return None
    supply = reference.get("supply")
    if not supply:
        return None
    if not isinstance(supply, list) or not isinstance(supply[0], dict):
        raise CpmsMalformed(f"{what}: supply is not a list of objects")
    return clean_int(sum(clean_int(item.get("supplyQuantity", 0), f"{what} supplyQuantity") for item in supply), what)


def _elapsed(started: datetime) -> int:
    return int((datetime.now() - started).total_seconds() * 1000)
