"""The bundled CPMS simulator: a real HTTP server speaking the APDS 4 subset connect uses.

It holds car parks (APDS places), occupancy that drifts with the wall clock, tariffs (rate
tables tied to places by right specifications) and a credential whitelist (assigned rights).
Control endpoints under ``/_sim/`` make it misbehave for tests and demos:

- ``GET /_sim/state`` — counts, assigned right ids, current faults.
- ``POST /_sim/reset`` ``{"carparks": N, "seed": S}`` — start over.
- ``POST /_sim/faults`` ``{"mode": "slow"|"error"|"malformed"|"none", "delay": 2.5, "count": 3}`` —
  the next ``count`` APDS requests (all of them when ``count`` is null) answer slowly, with
  HTTP 500 or with a truncated JSON body.
- ``PUT /_sim/places/{id}`` ``{"name", "capacity", "occupied", "city", …}`` — add or change a place;
  ``DELETE /_sim/places/{id}`` removes it.

Started by ``manage.py cpms_simulator``; tests start it in a thread with :func:`start_simulator`.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

CITIES = [
    ("Berlin", "10117"),
    ("Hamburg", "20095"),
    ("München", "80331"),
    ("Köln", "50667"),
    ("Frankfurt am Main", "60311"),
    ("Stuttgart", "70173"),
    ("Düsseldorf", "40213"),
    ("Leipzig", "04109"),
    ("Dresden", "01067"),
    ("Hannover", "30159"),
]
STREETS = ["Bahnhofstraße", "Marktplatz", "Hauptstraße", "Schillerstraße", "Goethestraße", "Am Stadtpark", "Ringstraße"]
KINDS = ["Parkhaus", "Tiefgarage", "P+R", "Parkplatz"]
DEFAULT_PAGE_SIZE = 250
FAULT_MODES = {"none", "slow", "error", "malformed"}


@dataclass
class Faults:
    mode: str = "none"
    delay: float = 0.0
    remaining: int | None = None  # None: every request until cleared

    def take(self) -> tuple[str, float]:
        """The fault for this request, counting it down."""
        if self.mode == "none":
            return "none", 0.0
        mode, delay = self.mode, self.delay
        if self.remaining is not None:
            self.remaining -= 1
            if self.remaining <= 0:
                self.mode, self.delay, self.remaining = "none", 0.0, None
        return mode, delay


@dataclass
class SimulatorState:
    carparks: int = 20
    seed: int = 1
    token: str = ""
    page_size: int = DEFAULT_PAGE_SIZE
    places: dict[str, dict[str, Any]] = field(default_factory=dict)
    occupied_override: dict[str, int] = field(default_factory=dict)
    rights: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    requests_served: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.reset(self.carparks, self.seed)

    def reset(self, carparks: int, seed: int) -> None:
        with self.lock:
            self.carparks, self.seed = carparks, seed
            rng = random.Random(seed)
            self.places = {}
            for number in range(1, carparks + 1):
                city, postcode = rng.choice(CITIES)
                street = rng.choice(STREETS)
                place_id = f"SIM-{number:04d}"
                self.places[place_id] = {
                    "id": place_id,
                    "name": f"{rng.choice(KINDS)} {street} {city}",
                    "capacity": rng.randrange(50, 1500, 10),
                    "street": f"{street} {rng.randint(1, 120)}",
                    "postcode": postcode,
                    "city": city,
                    "country": "DE",
                    "latitude": round(47.5 + rng.random() * 6, 6),
                    "longitude": round(6.5 + rng.random() * 8, 6),
                    "time_zone": "Europe/Berlin",
                    "hourly": round(1.0 + rng.random() * 3, 2),
                    "version": 1,
                }
            self.occupied_override = {}
            self.rights = {}
            self.faults = Faults()
            self.requests_served = 0

    # --- occupancy drifting with the clock -------------------------------------------------
    def occupied(self, place: dict[str, Any], now: float | None = None) -> int:
        if place["id"] in self.occupied_override:
            return min(self.occupied_override[place["id"]], place["capacity"])
        minute = int((now if now is not None else time.time()) // 60)
        phase = (zlib.crc32(f"{self.seed}:{place['id']}".encode()) % 1000) / 1000 * 2 * math.pi
        share = 0.5 + 0.4 * math.sin(minute / 90 * 2 * math.pi + phase)
        return max(0, min(place["capacity"], round(place["capacity"] * share)))

    # --- APDS renderings --------------------------------------------------------------------
    def hierarchy_element(self, place: dict[str, Any], expand: set[str]) -> dict[str, Any]:
        element: dict[str, Any] = {
            "id": place["id"],
            "version": place["version"],
            "type": "place",
            "layer": 1,
            "name": [{"language": "de", "string": place["name"]}],
            "timeZone": place["time_zone"],
        }
        everything = "all" in expand
        if everything or "streetAddress" in expand:
            element["placeStreetAddress"] = {
                "countryCode": place["country"].lower(),
                "postCode": place["postcode"],
                "city": [{"language": "de", "string": place["city"]}],
                "addressLines": [
                    {"order": 0, "type": "street", "text": [{"language": "de", "string": place["street"]}]}
                ],
            }
        if (everything or "pointLocation" in expand) and place.get("latitude") is not None:
            element["indicativePointLocation"] = {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [place["longitude"], place["latitude"]]},
                "properties": {"name": place["name"]},
            }
        if everything or "characteristics" in expand:
            element["characteristics"] = {"spacesTotal": place["capacity"], "openToPublic": True}
        if everything or "rightSpecifications" in expand:
            element["rightSpecifications"] = [{"id": f"{place['id']}-season", "version": 1}]
        if everything or "occupancy" in expand:
            now = datetime.now(UTC)
            stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
            element["hierarchyElementReference"] = {
                "elementId": {"id": place["id"], "version": place["version"]},
                "supply": [{"supplyViewType": "spaceView", "supplyQuantity": place["capacity"]}],
                "demandTable": [
                    {
                        "frequency": "PT1M",
                        "timestamp": stamp,
                        "demandType": [
                            {"occupancyCalculation": "counted", "count": self.occupied(place), "recordDateTime": stamp}
                        ],
                    }
                ],
            }
        return element

    def right_specification(self, place: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"{place['id']}-season",
            "version": 1,
            "type": "permitParking",
            "hierarchyElements": [{"id": place["id"], "version": place["version"]}],
            "rateEligibility": [
                {
                    "id": f"{place['id']}-season-0",
                    "version": 1,
                    "rateTable": {"id": f"{place['id']}-rate", "version": 1},
                }
            ],
            "credentials": ["licensePlate", "rfid", "qrCode"],
        }

    def rate_table(self, place: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"{place['id']}-rate",
            "version": 1,
            "rateTableName": [{"language": "de", "string": f"Tarif {place['name']}"}],
            "availability": "public",
            "rateLineCollections": [
                {
                    "id": f"{place['id']}-rate-0",
                    "version": 1,
                    "collectionSequence": 0,
                    "applicableCurrency": "EUR",
                    "rateLines": [
                        {
                            "id": f"{place['id']}-rate-0-0",
                            "version": 1,
                            "sequence": 0,
                            "description": [{"language": "de", "string": "je angefangene Stunde"}],
                            "rateLineType": "flatRateTier",
                            "value": place["hourly"],
                            "incrementPeriod": "PT1H",
                            "maxValue": round(place["hourly"] * 8, 2),
                        }
                    ],
                }
            ],
        }

    def rights_for_place(self, place_id: str) -> list[dict[str, Any]]:
        spec = f"{place_id}-season"
        return [right for right in self.rights.values() if right.get("rightSpecification", {}).get("id") == spec]


def _page(items: list[Any], page: int, page_size: int) -> dict[str, Any]:
    offset = (page - 1) * page_size
    return {
        "meta": {"referenceInstant": int(time.time()), "offset": offset, "pageSize": page_size, "total": len(items)},
        "data": items[offset : offset + page_size],
    }


def _status(code: int, message: str) -> dict[str, Any]:
    return {"status": "ok" if code < 400 else "error", "code": code, "message": message}


def validate_assigned_right(body: Any, right_id: str) -> str | None:
    """A reason the body is not an AssignedRight we accept, or None."""
    if not isinstance(body, dict):
        return "body is not an object"
    if body.get("id") != right_id:
        return "id in the body does not match the URL"
    holder = body.get("rightHolder")
    if not isinstance(holder, dict) or not isinstance(holder.get("credentials"), list) or not holder["credentials"]:
        return "rightHolder.credentials is missing"
    for credential in holder["credentials"]:
        if not isinstance(credential, dict) or not (credential.get("identifier") or {}).get("id"):
            return "a credential has no identifier.id"
    if not isinstance(body.get("rightSpecification"), dict) or not body["rightSpecification"].get("id"):
        return "rightSpecification is missing"
    return None


class SimulatorHandler(BaseHTTPRequestHandler):
    server_version = "ParkingHQ-CPMS-Simulator/1.0"
    protocol_version = "HTTP/1.1"

    @property
    def state(self) -> SimulatorState:
        return self.server.state  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    # --- plumbing ----------------------------------------------------------------------------
    def _send(self, code: int, body: Any, *, raw: bytes | None = None) -> None:
        payload = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        try:
            return json.loads(self.rfile.read(length))
        except ValueError:
            return ValueError

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path).rstrip("/") or "/"
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        body = self._body() if method in ("POST", "PUT") else None
        if body is ValueError:
            self._send(400, _status(400, "The request body is not JSON."))
            return
        if path.startswith("/_sim"):
            self._control(method, path, body)
            return
        with self.state.lock:
            self.state.requests_served += 1
            mode, delay = self.state.faults.take()
        if self.state.token and self.headers.get("Authorization") != f"Bearer {self.state.token}":
            self._send(401, _status(401, "Missing or wrong bearer token."))
            return
        if mode == "slow":
            time.sleep(delay)
        elif mode == "error":
            self._send(500, _status(500, "internal server error"))
            return
        code, answer = self._apds(method, path, query, body)
        if mode == "malformed":
            text = json.dumps(answer).encode()
            self._send(200, None, raw=text[: max(1, len(text) // 2)])
            return
        self._send(code, answer)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    # --- the APDS subset ----------------------------------------------------------------------
    def _apds(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        state = self.state
        segments = path.strip("/").split("/")
        try:
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            return 400, _status(400, "page must be a positive integer")
        expand = set(filter(None, query.get("expand", "").split(",")))
        with state.lock:
            places = list(state.places.values())
            if segments == ["places"] and method == "GET":
                return 200, _page([state.hierarchy_element(p, expand) for p in places], page, state.page_size)
            if len(segments) == 2 and segments[0] == "places" and method == "GET":
                place = state.places.get(segments[1])
                if place is None:
                    return 404, _status(404, "Place not found.")
                return 200, state.hierarchy_element(place, expand or {"all"})
            if segments == ["rights", "specs"] and method == "GET":
                return 200, _page([state.right_specification(p) for p in places], page, state.page_size)
            if segments == ["rates"] and method == "GET":
                return 200, _page([state.rate_table(p) for p in places], page, state.page_size)
            if segments == ["rights", "assigned"]:
                if method == "GET":
                    wanted = set(filter(None, query.get("place", "").split(",")))
                    rights = (
                        [r for place_id in sorted(wanted) for r in state.rights_for_place(place_id)]
                        if wanted
                        else list(state.rights.values())
                    )
                    return 200, _page(sorted(rights, key=lambda r: r["id"]), page, state.page_size)
                if method == "POST":
                    right_id = body.get("id") if isinstance(body, dict) else None
                    if not right_id:
                        return 400, _status(
                            400, "Assigned right can not be created due to missing required attributes."
                        )
                    if right_id in state.rights:
                        return 409, _status(409, "Assigned right can not be created due to conflicting data.")
                    return self._store_right(right_id, body, created=True)
            if len(segments) == 3 and segments[:2] == ["rights", "assigned"]:
                right_id = segments[2]
                if method == "GET":
                    right = state.rights.get(right_id)
                    return (200, right) if right else (404, _status(404, "Assigned right not found."))
                if method == "PUT":
                    return self._store_right(right_id, body, created=right_id not in state.rights)
                if method == "DELETE":
                    if state.rights.pop(right_id, None) is None:
                        return 404, _status(404, "Assigned right can not be deleted as it has not been found.")
                    return 200, _status(200, "Assigned right deleted successfully.")
        return 404, _status(404, f"No APDS resource {method} {path} here.")

    def _store_right(self, right_id: str, body: Any, *, created: bool) -> tuple[int, Any]:
        problem = validate_assigned_right(body, right_id)
        if problem:
            return 400, _status(400, f"Assigned right can not be stored: {problem}.")
        spec_id = body["rightSpecification"]["id"]
        if not any(f"{place_id}-season" == spec_id for place_id in self.state.places):
            return 409, _status(409, f"Right specification {spec_id} is not known here.")
        self.state.rights[right_id] = body
        if created:
            return 201, _status(201, "Assigned right created successfully.")
        return 200, _status(200, "Assigned right updated successfully.")

    # --- control -------------------------------------------------------------------------------
    def _control(self, method: str, path: str, body: Any) -> None:
        state = self.state
        body = body if isinstance(body, dict) else {}
        with state.lock:
            if path == "/_sim/state" and method == "GET":
                self._send(
                    200,
                    {
                        "places": len(state.places),
                        "rights": sorted(state.rights),
                        "faults": {
                            "mode": state.faults.mode,
                            "delay": state.faults.delay,
                            "remaining": state.faults.remaining,
                        },
                        "requests_served": state.requests_served,
                    },
                )
                return
            if path == "/_sim/reset" and method == "POST":
                state.reset(int(body.get("carparks", state.carparks)), int(body.get("seed", state.seed)))
                self._send(200, {"status": "ok", "places": len(state.places)})
                return
            if path == "/_sim/faults" and method == "POST":
                mode = str(body.get("mode", "none"))
                if mode not in FAULT_MODES:
                    self._send(400, _status(400, f"mode must be one of {sorted(FAULT_MODES)}"))
                    return
                count = body.get("count")
                state.faults = Faults(mode=mode, delay=float(body.get("delay", 0) or 0), remaining=count)
                self._send(200, {"status": "ok", "mode": mode})
                return
            if path.startswith("/_sim/places/"):
                place_id = path.removeprefix("/_sim/places/")
                if method == "DELETE":
                    state.places.pop(place_id, None)
                    state.occupied_override.pop(place_id, None)
                    self._send(200, {"status": "ok"})
                    return
                if method == "PUT":
                    place = state.places.get(place_id)
                    if place is None:
                        place = {
                            "id": place_id,
                            "name": place_id,
                            "capacity": 100,
                            "street": "",
                            "postcode": "",
                            "city": "",
                            "country": "DE",
                            "latitude": 52.52,
                            "longitude": 13.405,
                            "time_zone": "Europe/Berlin",
                            "hourly": 2.0,
                            "version": 0,
                        }
                    for key in ("name", "capacity", "street", "postcode", "city", "country", "latitude", "longitude"):
                        if key in body:
                            place[key] = body[key]
                    place["version"] += 1
                    state.places[place_id] = place
                    if "occupied" in body:
                        if body["occupied"] is None:
                            state.occupied_override.pop(place_id, None)
                        else:
                            state.occupied_override[place_id] = int(body["occupied"])
                    self._send(200, {"status": "ok", "place": place})
                    return
        self._send(404, _status(404, f"No control endpoint {method} {path}."))


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: SimulatorState, *, verbose: bool = False):
        super().__init__(address, SimulatorHandler)
        self.state = state
        self.verbose = verbose

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


@dataclass
class RunningSimulator:
    server: SimulatorServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def state(self) -> SimulatorState:
        return self.server.state

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_simulator(
    *, carparks: int = 20, seed: int = 1, host: str = "127.0.0.1", port: int = 0, token: str = ""
) -> RunningSimulator:
    """Serve a simulator in a background thread (port 0 picks a free port)."""
    server = SimulatorServer((host, port), SimulatorState(carparks=carparks, seed=seed, token=token))
    thread = threading.Thread(target=server.serve_forever, name="cpms-simulator", daemon=True)
    thread.start()
    return RunningSimulator(server=server, thread=thread)
