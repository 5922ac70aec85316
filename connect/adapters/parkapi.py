"""ParkAPI adapter: the ParkAPI/ParkenDD city JSON, API version 1.0 (pull only).

Follows the schema documented by offenesdresden/ParkAPI (``"api_version": "1.0"``):
``GET /{city_id}`` answers ``{"last_updated", "last_downloaded", "data_source", "lots": [...]}``
where each lot has ``id``, ``name``, ``total``, ``free``, ``state`` (open | closed | nodata),
``coords`` {``lat``, ``lng``}, ``forecast`` and the optional ``region``, ``address`` and
``lot_type``. Times are UTC. One document carries both the static data and the occupancy.
Options: ``city`` — the city id appended to the base URL (empty when the base URL is the
city document itself).
"""

from __future__ import annotations

from typing import Any

from .base import (
    CarParkRecord,
    CpmsAdapter,
    CpmsMalformed,
    OccupancyRecord,
    clean_coordinate,
    clean_id,
    clean_int,
    clean_text,
    parse_datetime,
)

STATES = {"open", "closed", "nodata", "unknown"}


class ParkApiAdapter(CpmsAdapter):
    kind = "parkapi"
    label = "ParkAPI"
    spec_version = "ParkAPI JSON api_version 1.0"

    def _document(self) -> dict[str, Any]:
        return validate_city_document(self.get_json(self.options.get("city") or ""))

    def pull_carparks(self) -> list[CarParkRecord]:
        return parse_lots(self._document())

    def pull_occupancy(self) -> list[OccupancyRecord]:
        return parse_lot_occupancy(self._document())


def validate_city_document(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("lots"), list):
        raise CpmsMalformed("ParkAPI: expected a city document with a 'lots' list")
    ids: set[str] = set()
    for lot in body["lots"]:
        if not isinstance(lot, dict):
            raise CpmsMalformed("ParkAPI: a lot is not an object")
        lot_id = clean_id(lot.get("id"), "ParkAPI lot id")
        if lot_id in ids:
            raise CpmsMalformed(f"ParkAPI lot {lot_id} appears twice")
        ids.add(lot_id)
    return body


def parse_lots(body: dict[str, Any]) -> list[CarParkRecord]:
    records = []
    for lot in body["lots"]:
        lot_id = clean_id(lot.get("id"), "ParkAPI lot id")
        what = f"ParkAPI lot {lot_id}"
        coords = lot.get("coords") or {}
        if not isinstance(coords, dict):
            raise CpmsMalformed(f"{what}: coords is not an object")
        records.append(
            CarParkRecord(
                external_id=lot_id,
                name=clean_text(lot.get("name"), f"{what} name", required=True),
                capacity=clean_int(lot.get("total", 0), f"{what} total"),
                street=clean_text(lot.get("address"), f"{what} address"),
                city=clean_text(lot.get("region"), f"{what} region", max_length=100),
                latitude=clean_coordinate(coords.get("lat"), f"{what} lat", limit=90),
                longitude=clean_coordinate(coords.get("lng"), f"{what} lng", limit=180),
            )
        )
    return records


def parse_lot_occupancy(body: dict[str, Any]) -> list[OccupancyRecord]:
    observed = parse_datetime(body.get("last_updated"), "ParkAPI last_updated")
    records = []
    for lot in body["lots"]:
        lot_id = clean_id(lot.get("id"), "ParkAPI lot id")
        what = f"ParkAPI lot {lot_id}"
        state = clean_text(lot.get("state", "unknown"), f"{what} state", max_length=30)
        if state not in STATES:
            raise CpmsMalformed(f"{what}: state {state!r} is not one of {', '.join(sorted(STATES))}")
        total = clean_int(lot.get("total", 0), f"{what} total")
        free = clean_int(lot.get("free", 0), f"{what} free", maximum=total)
        records.append(
            OccupancyRecord(
                external_id=lot_id,
                occupied=None if state == "nodata" else total - free,
                capacity=total,
                vacant=None if state == "nodata" else free,
                status=state,
                observed_at=observed,
            )
        )
    return records
