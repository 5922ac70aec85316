"""The bundled CPMS simulator: a real HTTP server speaking the APDS 4 subset connect uses.

It answers as the APDS 4.0 OpenAPI (``apiv4/apds4.yaml`` of ``parking-data-standards/apds-sandbox``)
says a CPMS answers, so connect is tested against the standard and not against itself; the
answers are checked against the JSON Schemas in ``connect/tests/schemas/`` by
``connect/tests/test_simulator_conformance.py``.

APDS endpoints (all need a bearer token, see *Login* below):

- ``GET /places[?expand=…]`` and ``GET /places/{id}`` — HierarchyElementList / HierarchyElement: the
  car parks as top-level (layer 0) ``place`` elements, occupancy that drifts with the wall clock
  (``expand=occupancy``), their RightSpecifications (``expand=rightSpecifications``).
- ``GET /rights/specs[?place=…&expand=rateEligibility]`` and ``GET /rights/specs/{id}`` — the
  RightSpecifications the CPMS publishes: ids the CPMS chose (``RS-1001`` …, never derived from the
  place), names in German and English (APDS has no ``name`` here: they are the ``description``
  MultilingualString), versions that do not start at 1. Every place has a "Dauerparken Standard"
  spec; every second place also a "Dauerparken Premium" one.
- ``GET /rates`` — RateTableList, tied to the places through the specs' ``rateEligibility``.
- ``GET /rights/assigned[?place=…&right_spec=…]``, ``GET|PUT|DELETE /rights/assigned/{id}``,
  ``POST /rights/assigned`` — the credential whitelist as AssignedRights. ``GET …/{id}?version=N``
  returns an earlier stored version.

Assigned rights are checked as a CPMS checks them (*strict*, the default): a PUT/POST is refused
with HTTP 400 and an APDS ResponseStatus whose ``ids`` name the reference when the RightSpecification
is not published here or names a version it never had (earlier versions are valid references: APDS lets
a VersionedReference name a version that is no longer the latest), and with
HTTP 409 when the right exists and the body's ``version`` is not higher than the stored one (APDS
VersionedIdentity: every change is a new version; read the right, send its version + 1). In
*lenient* mode (``/_sim/rights``, ``--lenient-rights``; for old demo data) the legacy references
``<place>-season`` are accepted too and versions are stored as sent.

Login (APDS securitySchemes ``oAuth``: OAuth2 client credentials, ``tokenUrl …/auth``, scopes
``po`` ``sp`` ``ep`` ``ad``): ``POST /auth`` (also ``/oauth/token``) with a form body
``grant_type=client_credentials`` and ``client_id``/``client_secret`` in the body or as HTTP Basic
answers ``{"access_token", "token_type": "Bearer", "expires_in", "scope"}``. APDS endpoints accept
tokens issued here until they expire (then 401 with ``WWW-Authenticate: Bearer error="invalid_token"``)
and the fixed bearer secret the simulator was started with (``token``). With neither a fixed secret
nor ``require`` set, any other bearer (or none) is accepted, as before OAuth existed. Writing assigned
rights needs the ``sp`` scope (403 otherwise).

Control endpoints under ``/_sim/`` (no token needed) make it misbehave for tests and demos:

- ``GET /_sim/state`` — counts, assigned right ids, published spec ids, current faults, auth settings.
- ``POST /_sim/reset`` ``{"carparks": N, "seed": S}`` — start over (auth settings and issued tokens stay).
- ``POST /_sim/faults`` ``{"mode": "slow"|"error"|"malformed"|"none", "delay": 2.5, "count": 3}`` —
  the next ``count`` APDS requests (all of them when ``count`` is null) answer slowly, with
  HTTP 500 or with a truncated JSON body.
- ``PUT /_sim/places/{id}`` ``{"name", "capacity", "occupied", "city", …}`` — add or change a place;
  ``DELETE /_sim/places/{id}`` removes it.
- ``PUT /_sim/specs/{id}`` ``{"de": …, "en": …, "places": [...], "credentials": [...]}`` — publish or change
  a RightSpecification (its version goes up by one); ``DELETE /_sim/specs/{id}`` withdraws it.
- ``POST /_sim/rights`` ``{"strict": true|false}`` — strict or lenient checks of assigned rights.
- ``GET /_sim/tokens``; ``POST /_sim/tokens`` ``{"expires_in": 2, "clients": {"id": "secret"}, "require": true,
  "revoke": true}`` — lifetime of tokens issued from now on, the accepted clients (none: any client),
  whether APDS endpoints need a valid token, and revoking every issued token.

Started by ``manage.py cpms_simulator``; tests start it in a thread with :func:`start_simulator`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math
import random
import secrets
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

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

# APDS securitySchemes.oAuth: clientCredentials flow, tokenUrl https://…/auth, these scopes.
TOKEN_PATHS = ("/auth", "/oauth/token")
SCOPES = ("po", "sp", "ep", "ad")
WRITE_SCOPE = "sp"  # PUT/POST/DELETE /rights/assigned are `security: oAuth: [sp]`
DEFAULT_TOKEN_LIFETIME = 3600
ISSUE_METHODS = {"electronic", "ticket", "permit"}  # APDS IssueMethodTypeEnum
FIRST_SPEC_NUMBER = 1001
FIRST_SPEC_VERSION = 3  # published specs have been revised before we ever see them
SPEC_KINDS = {
    "standard": {"de": "Dauerparken Standard", "en": "Season parking standard"},
    "premium": {"de": "Dauerparken Premium (reservierter Stellplatz)", "en": "Season parking premium (reserved space)"},
}
OPERATOR = {"id": "SIM-OPERATOR", "version": 1, "className": "ContactPoint"}
PUBLISHED_SINCE = "2024-01-01T00:00:00Z"
LEGACY_SPEC_SUFFIX = "-season"  # the reference connect invented before it read the published specs


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
class IssuedToken:
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float


@dataclass
class Auth:
    """OAuth2 client-credentials settings and the tokens issued so far."""

    lifetime: int = DEFAULT_TOKEN_LIFETIME
    clients: dict[str, str] = field(default_factory=dict)  # empty: any client id with a secret
    require: bool = False  # APDS endpoints need an issued (or the fixed) token
    issued: dict[str, IssuedToken] = field(default_factory=dict)

    def client_ok(self, client_id: str, secret: str) -> bool:
        if not client_id or not secret:
            return False
        if not self.clients:
            return True
        expected = self.clients.get(client_id)
        return expected is not None and secrets.compare_digest(expected, secret)

    def issue(self, client_id: str, scopes: tuple[str, ...]) -> tuple[str, IssuedToken]:
        token = secrets.token_urlsafe(24)
        issued = IssuedToken(client_id=client_id, scopes=scopes, expires_at=time.time() + self.lifetime)
        self.issued[token] = issued
        return token, issued


@dataclass
class SimulatorState:
    carparks: int = 20
    seed: int = 1
    token: str = ""
    page_size: int = DEFAULT_PAGE_SIZE
    strict_rights: bool = True
    places: dict[str, dict[str, Any]] = field(default_factory=dict)
    occupied_override: dict[str, int] = field(default_factory=dict)
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_spec_number: int = FIRST_SPEC_NUMBER
    rights: dict[str, dict[str, Any]] = field(default_factory=dict)
    right_history: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    auth: Auth = field(default_factory=Auth)
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
            self.specs = {}
            self.next_spec_number = FIRST_SPEC_NUMBER
            self.rights = {}
            self.right_history = {}
            self.faults = Faults()
            self.requests_served = 0
            self.publish_specs()

    # --- right specifications the CPMS publishes ------------------------------------------------
    def publish_specs(self) -> None:
        """Give every place without a published spec its standard one (and every second one a premium).

        Called on every APDS request, so places added later (``/_sim/places``, ``--from-database``)
        get specs too; specs of removed places lose them and disappear when no place is left.
        """
        with self.lock:
            for spec_id, spec in list(self.specs.items()):
                spec["places"] = [place_id for place_id in spec["places"] if place_id in self.places]
                if not spec["places"]:
                    del self.specs[spec_id]
            covered = {place_id for spec in self.specs.values() for place_id in spec["places"]}
            for index, place_id in enumerate(self.places):
                if place_id in covered:
                    continue
                self._add_spec("standard", [place_id])
                if index % 2 == 1:
                    self._add_spec("premium", [place_id])

    def _add_spec(self, kind: str, places: list[str]) -> dict[str, Any]:
        spec_id = f"RS-{self.next_spec_number}"
        self.next_spec_number += 1
        spec = {
            "id": spec_id,
            "version": FIRST_SPEC_VERSION,
            "kind": kind,
            "names": dict(SPEC_KINDS[kind]),
            "places": list(places),
            "credentials": ["licensePlate", "rfid", "qrCode"],
        }
        self.specs[spec_id] = spec
        return spec

    def specs_for_place(self, place_id: str) -> list[dict[str, Any]]:
        return [spec for spec in self.specs.values() if place_id in spec["places"]]

    def spec_places(self, spec_id: str) -> list[str]:
        """The places a RightSpecification reference covers (legacy ``<place>-season`` included)."""
        if spec_id in self.specs:
            return list(self.specs[spec_id]["places"])
        place_id = spec_id.removesuffix(LEGACY_SPEC_SUFFIX)
        if spec_id.endswith(LEGACY_SPEC_SUFFIX) and place_id in self.places:
            return [place_id]
        return []

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
        """A Place (APDS HierarchyElement + PlaceInformation) with the optional parts asked for."""
        element: dict[str, Any] = {
            "id": place["id"],
            "version": place["version"],
            "type": "place",
            "layer": 0,  # top of the hierarchy: these places belong to no campus
            "name": [{"language": "de", "string": place["name"]}],
            "hierarchyElementRecord": {"creationTime": _version_time(place["version"])},
            "timeZone": place["time_zone"] or "Europe/Berlin",
        }
        everything = "all" in expand
        if everything or "streetAddress" in expand:
            element["placeStreetAddress"] = {
                "countryCode": (place["country"] or "DE").lower(),
                "postCode": place["postcode"],
                "addressLines": [
                    {"order": 0, "type": "street", "text": [{"language": "de", "string": place["street"]}]}
                ],
            }
            if place["city"]:
                element["placeStreetAddress"]["city"] = [{"language": "de", "string": place["city"]}]
        if (everything or "pointLocation" in expand) and place.get("latitude") is not None:
            element["indicativePlacePointLocation"] = [
                {"type": "Point", "coordinates": [place["longitude"], place["latitude"]]}
            ]
        if everything or "characteristics" in expand:
            element["characteristics"] = {"spacesTotal": place["capacity"], "openToPublic": True}
        if everything or "rightSpecifications" in expand:
            element["rightSpecifications"] = [
                {"id": spec["id"], "version": spec["version"]} for spec in self.specs_for_place(place["id"])
            ]
        if everything or "occupancy" in expand:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
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

    def right_specification(self, spec: dict[str, Any], expand: set[str]) -> dict[str, Any]:
        """An APDS RightSpecification (required: issuer, transferable, hierarchyElements, validity)."""
        body: dict[str, Any] = {
            "id": spec["id"],
            "version": spec["version"],
            "type": "permitParking",
            "description": [{"language": language, "string": text} for language, text in spec["names"].items()],
            "transferable": False,
            "issuer": dict(OPERATOR),
            "hierarchyElements": [
                {"id": place_id, "version": self.places[place_id]["version"]} for place_id in spec["places"]
            ],
            "validity": {
                "validityStatus": "active",
                "validityTimeSpecification": {"overallStartTime": PUBLISHED_SINCE},
            },
            "credentials": list(spec["credentials"]),  # an expand option in APDS; always sent (it is small)
        }
        if "all" in expand or "rateEligibility" in expand:
            body["rateEligibility"] = [
                {
                    "id": f"{spec['id']}-E{number}",
                    "version": 1,
                    "priority": number,
                    "combinable": False,
                    "rateTable": {"id": _rate_id(place_id), "version": 1},
                }
                for number, place_id in enumerate(spec["places"], start=1)
            ]
        return body

    def rate_table(self, place: dict[str, Any]) -> dict[str, Any]:
        """An APDS RateTable: the place's hourly tariff in one collection with one incrementing line."""
        rate_id = _rate_id(place["id"])
        return {
            "id": rate_id,
            "version": 1,
            "rateTableName": [{"language": "de", "string": f"Tarif {place['name']}"}],
            "availability": "public",
            "rateType": "hourly",
            "validity": {
                "validityStatus": "active",
                "validityTimeSpecification": {"overallStartTime": PUBLISHED_SINCE},
            },
            "rateResponsibleParty": dict(OPERATOR),
            "rateLineCollections": [
                {
                    "id": f"{rate_id}-1",
                    "version": 1,
                    "collectionSequence": 1,
                    "applicableCurrency": "EUR",
                    "resetTime": "00:00",
                    "validStart": PUBLISHED_SINCE,
                    "relativeTimes": False,
                    "taxIncluded": True,
                    "taxRate": 19,
                    "rateLines": [
                        {
                            "id": f"{rate_id}-1-1",
                            "version": 1,
                            "sequence": 1,
                            "description": [{"language": "de", "string": "je angefangene Stunde"}],
                            "rateLineType": "incrementingRate",
                            "value": place["hourly"],
                            "incrementPeriod": "PT1H",
                            "maxValue": round(place["hourly"] * 8, 2),
                        }
                    ],
                }
            ],
        }

    def rights_for_place(self, place_id: str) -> list[dict[str, Any]]:
        return [
            right
            for right in self.rights.values()
            if place_id in self.spec_places(str((right.get("rightSpecification") or {}).get("id", "")))
        ]

    def store_right(self, right_id: str, body: dict[str, Any]) -> None:
        stored = copy.deepcopy(body)
        self.rights[right_id] = stored
        version = stored.get("version")
        if isinstance(version, int):
            self.right_history.setdefault(right_id, {})[version] = stored

    def delete_right(self, right_id: str) -> bool:
        self.right_history.pop(right_id, None)
        return self.rights.pop(right_id, None) is not None


def _rate_id(place_id: str) -> str:
    return f"{place_id}-rate"


def _version_time(version: int) -> str:
    """When a version of a record was created: versions are a day apart from the publication date."""
    stamp = datetime(2024, 1, 1, tzinfo=UTC).timestamp() + 86400 * (version - 1)
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _page(items: list[Any], page: int, page_size: int) -> dict[str, Any]:
    """An APDS PaginatedList (meta = PaginatedListMeta)."""
    offset = (page - 1) * page_size
    return {
        "meta": {"referenceInstant": int(time.time()), "offset": offset, "pageSize": page_size, "total": len(items)},
        "data": items[offset : offset + page_size],
    }


def _status(code: int, message: str, ids: list[str] | None = None) -> dict[str, Any]:
    """An APDS ResponseStatus; ``ids`` lists the conflicting or missing ids."""
    body: dict[str, Any] = {"status": "ok" if code < 400 else "error", "code": code, "message": message}
    if ids:
        body["ids"] = ids
    return body


def _csv(value: str | None) -> set[str]:
    return set(filter(None, (value or "").split(",")))


def validate_assigned_right(body: Any, right_id: str, *, strict: bool = False) -> str | None:
    """A reason the body is not an AssignedRight we accept (missing or malformed attributes), or None."""
    if not isinstance(body, dict):
        return "body is not an object"
    if body.get("id") != right_id:
        return "id in the body does not match the URL"
    version = body.get("version")
    if (strict or version is not None) and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        return "version must be a positive integer"
    holder = body.get("rightHolder")
    if not isinstance(holder, dict) or not isinstance(holder.get("credentials"), list) or not holder["credentials"]:
        return "rightHolder.credentials is missing"
    for credential in holder["credentials"]:
        if not isinstance(credential, dict) or not (credential.get("identifier") or {}).get("id"):
            return "a credential has no identifier.id"
    reference = body.get("rightSpecification")
    if not isinstance(reference, dict) or not reference.get("id"):
        return "rightSpecification is missing"
    if strict and (not isinstance(reference.get("version"), int) or reference["version"] < 1):
        return "rightSpecification.version must be a positive integer"
    if body.get("issueMethod") is not None and body["issueMethod"] not in ISSUE_METHODS:
        return f"issueMethod {body['issueMethod']!r} is not an APDS IssueMethodTypeEnum value"
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
    def _send(self, code: int, body: Any, *, raw: bytes | None = None, headers: dict[str, str] | None = None) -> None:
        payload = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _raw_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _body(self) -> Any:
        raw = self._raw_body()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return ValueError

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path).rstrip("/") or "/"
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        if path in TOKEN_PATHS:
            self._token(method)
            return
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
        refusal = self._authorise(method, path)
        if refusal is not None:
            code, answer, headers = refusal
            self._send(code, answer, headers=headers)
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

    # --- OAuth2 client credentials (RFC 6749 section 4.4, APDS securitySchemes.oAuth) ------------
    def _token(self, method: str) -> None:
        no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if method != "POST":
            self._send(405, {"error": "invalid_request", "error_description": "Use POST."}, headers={"Allow": "POST"})
            return
        form = {key: values[-1] for key, values in parse_qs(self._raw_body().decode("utf-8", "replace")).items()}
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = self._basic_credentials()
        if basic is not None:
            client_id, secret = basic
        if form.get("grant_type") != "client_credentials":
            error = "invalid_request" if not form.get("grant_type") else "unsupported_grant_type"
            self._send(400, {"error": error, "error_description": "grant_type must be client_credentials."})
            return
        auth = self.state.auth
        with self.state.lock:
            if not auth.client_ok(client_id, secret):
                self._send(
                    401,
                    {"error": "invalid_client", "error_description": "Unknown client or wrong secret."},
                    headers={"WWW-Authenticate": 'Basic realm="apds"', **no_store},
                )
                return
            wanted = tuple((form.get("scope") or " ".join(SCOPES)).split())
            unknown = [scope for scope in wanted if scope not in SCOPES]
            if unknown:
                self._send(400, {"error": "invalid_scope", "error_description": f"Unknown scope {unknown[0]!r}."})
                return
            token, issued = auth.issue(client_id, wanted)
            answer = {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": auth.lifetime,
                "scope": " ".join(issued.scopes),
            }
        self._send(200, answer, headers=no_store)

    def _basic_credentials(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization") or ""
        if not header.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        client_id, _, secret = decoded.partition(":")
        return unquote_plus(client_id), unquote_plus(secret)

    def _authorise(self, method: str, path: str) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """None when the request may go on, else the 401/403 answer (RFC 6750 error codes)."""
        state = self.state
        header = self.headers.get("Authorization") or ""
        bearer = header[7:].strip() if header.lower().startswith("bearer ") else ""
        with state.lock:
            issued = state.auth.issued.get(bearer) if bearer else None
            if issued is not None:
                if time.time() >= issued.expires_at:
                    return _unauthorised("invalid_token", "The access token expired; request a new one.")
                writing = method != "GET" and path.startswith("/rights/assigned")
                if writing and WRITE_SCOPE not in issued.scopes:
                    return (
                        403,
                        _status(403, f"The token lacks the scope '{WRITE_SCOPE}' needed to change assigned rights."),
                        {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{WRITE_SCOPE}"'},
                    )
                return None
            if state.token and header == f"Bearer {state.token}":
                return None
            if state.token or state.auth.require:
                if not bearer:
                    return _unauthorised("", "Missing bearer token.")
                return _unauthorised("invalid_token", "Missing or wrong bearer token.")
        return None

    # --- the APDS subset ----------------------------------------------------------------------
    def _apds(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        state = self.state
        segments = path.strip("/").split("/")
        try:
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            return 400, _status(400, "page must be a positive integer")
        expand = _csv(query.get("expand"))
        with state.lock:
            state.publish_specs()
            places = list(state.places.values())
            if segments == ["places"] and method == "GET":
                return 200, _page([state.hierarchy_element(p, expand) for p in places], page, state.page_size)
            if len(segments) == 2 and segments[0] == "places" and method == "GET":
                place = state.places.get(segments[1])
                if place is None:
                    return 404, _status(404, "Place not found.", [segments[1]])
                return 200, state.hierarchy_element(place, expand or {"all"})
            if segments == ["rights", "specs"] and method == "GET":
                wanted = _csv(query.get("place"))
                specs = [
                    state.right_specification(spec, expand)
                    for spec in state.specs.values()
                    if not wanted or wanted & set(spec["places"])
                ]
                return 200, _page(specs, page, state.page_size)
            if len(segments) == 3 and segments[:2] == ["rights", "specs"] and method == "GET":
                spec = state.specs.get(segments[2])
                if spec is None:
                    return 404, _status(404, "RightSpecification not found.", [segments[2]])
                return 200, state.right_specification(spec, expand or {"all"})
            if segments == ["rates"] and method == "GET":
                return 200, _page([state.rate_table(p) for p in places], page, state.page_size)
            if segments == ["rights", "assigned"]:
                if method == "GET":
                    return 200, _page(self._rights_list(query), page, state.page_size)
                if method == "POST":
                    right_id = body.get("id") if isinstance(body, dict) else None
                    if not right_id:
                        return 400, _status(
                            400, "Assigned right can not be created due to missing required attributes."
                        )
                    if right_id in state.rights:
                        return 409, _status(
                            409, "Assigned right can not be created due to conflicting data.", [str(right_id)]
                        )
                    return self._store_right(str(right_id), body)
            if len(segments) == 3 and segments[:2] == ["rights", "assigned"]:
                return self._assigned_right(method, segments[2], query, body)
        return 404, _status(404, f"No APDS resource {method} {path} here.")

    def _rights_list(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """Assigned rights filtered as APDS ``place``, ``right_spec`` and ``credential_id`` say."""
        state = self.state
        places, specs, credentials = (
            _csv(query.get("place")),
            _csv(query.get("right_spec")),
            _csv(query.get("credential_id")),
        )
        rights = (
            {r["id"]: r for place_id in sorted(places) for r in state.rights_for_place(place_id)}.values()
            if places
            else state.rights.values()
        )
        chosen = []
        for right in rights:
            if specs and (right.get("rightSpecification") or {}).get("id") not in specs:
                continue
            held = {(c.get("identifier") or {}).get("id") for c in right["rightHolder"]["credentials"]}
            if credentials and not credentials & held:
                continue
            chosen.append(right)
        return sorted(chosen, key=lambda r: r["id"])

    def _assigned_right(self, method: str, right_id: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        state = self.state
        if method == "GET":
            right = state.rights.get(right_id)
            if right is None:
                return 404, _status(404, "Assigned right not found.", [right_id])
            if "version" in query:
                older = state.right_history.get(right_id, {}).get(_int(query["version"]))
                if older is None:
                    return 404, _status(
                        404, f"Assigned right {right_id} has no version {query['version']}.", [right_id]
                    )
                return 200, older
            return 200, right
        if method == "PUT":
            return self._store_right(right_id, body)
        if method == "DELETE":
            if not state.delete_right(right_id):
                return 404, _status(404, "Assigned right can not be deleted as it has not been found.", [right_id])
            return 200, _status(200, "Assigned right deleted successfully.")
        return 404, _status(404, f"No APDS resource {method} /rights/assigned/{right_id} here.")

    def _store_right(self, right_id: str, body: Any) -> tuple[int, Any]:
        state = self.state
        strict = state.strict_rights
        problem = validate_assigned_right(body, right_id, strict=strict)
        if problem:
            return 400, _status(400, f"Assigned right {right_id} can not be stored: {problem}.")
        refusal = self._reference_refusal(right_id, body)
        if refusal is not None:
            return refusal
        existing = state.rights.get(right_id)
        if strict and existing is not None and body["version"] <= int(existing.get("version") or 0):
            current = int(existing.get("version") or 0)
            return 409, _status(
                409,
                f"Assigned right {right_id} can not be updated due to conflicting data: version {body['version']} "
                f"is not newer than the stored version {current}; read it and send version {current + 1}.",
                [right_id],
            )
        state.store_right(right_id, body)
        if existing is None:
            return 201, _status(201, "Assigned right created successfully.")
        return 200, _status(200, "Assigned right updated successfully.")

    def _reference_refusal(self, right_id: str, body: dict[str, Any]) -> tuple[int, Any] | None:
        """400 naming the RightSpecification reference when it is not one this CPMS publishes."""
        state = self.state
        reference = body["rightSpecification"]
        spec_id = str(reference["id"])
        spec = state.specs.get(spec_id)
        if spec is None:
            if not state.strict_rights and state.spec_places(spec_id):
                return None  # lenient: the legacy <place>-season reference
            return 400, _status(
                400,
                f"Assigned right {right_id} can not be stored: RightSpecification {spec_id!r} is not published "
                f"here (published: {', '.join(sorted(state.specs)) or 'none'}).",
                [spec_id],
            )
        if not state.strict_rights:
            return None
        if reference["version"] > spec["version"]:
            return 400, _status(
                400,
                f"Assigned right {right_id} can not be stored: it refers to version {reference['version']} of "
                f"RightSpecification {spec_id}, which has no such version (the current one is {spec['version']}).",
                [spec_id],
            )
        return None

    # --- control -------------------------------------------------------------------------------
    def _control(self, method: str, path: str, body: Any) -> None:
        state = self.state
        body = body if isinstance(body, dict) else {}
        with state.lock:
            if path == "/_sim/state" and method == "GET":
                self._send(200, self._state_summary())
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
            if path == "/_sim/rights" and method == "POST":
                state.strict_rights = bool(body.get("strict", state.strict_rights))
                self._send(200, {"status": "ok", "strict": state.strict_rights})
                return
            if path == "/_sim/tokens":
                self._control_tokens(method, body)
                return
            if path.startswith("/_sim/places/"):
                self._control_place(method, path.removeprefix("/_sim/places/"), body)
                return
            if path.startswith("/_sim/specs/"):
                self._control_spec(method, path.removeprefix("/_sim/specs/"), body)
                return
        self._send(404, _status(404, f"No control endpoint {method} {path}."))

    def _state_summary(self) -> dict[str, Any]:
        state = self.state
        state.publish_specs()
        return {
            "places": len(state.places),
            "rights": sorted(state.rights),
            "specs": {spec_id: spec["places"] for spec_id, spec in state.specs.items()},
            "strict_rights": state.strict_rights,
            "faults": {"mode": state.faults.mode, "delay": state.faults.delay, "remaining": state.faults.remaining},
            "tokens": self._token_settings(),
            "requests_served": state.requests_served,
        }

    def _token_settings(self) -> dict[str, Any]:
        auth = self.state.auth
        now = time.time()
        return {
            "expires_in": auth.lifetime,
            "clients": sorted(auth.clients),
            "require": auth.require,
            "issued": len(auth.issued),
            "valid": sum(1 for issued in auth.issued.values() if issued.expires_at > now),
        }

    def _control_tokens(self, method: str, body: dict[str, Any]) -> None:
        auth = self.state.auth
        if method == "POST":
            if "expires_in" in body:
                auth.lifetime = max(0, int(body["expires_in"]))
            if "clients" in body:
                auth.clients = {str(key): str(value) for key, value in (body["clients"] or {}).items()}
            if "require" in body:
                auth.require = bool(body["require"])
            if body.get("revoke"):
                auth.issued.clear()
        self._send(200, {"status": "ok", **self._token_settings()})

    def _control_place(self, method: str, place_id: str, body: dict[str, Any]) -> None:
        state = self.state
        if method == "DELETE":
            state.places.pop(place_id, None)
            state.occupied_override.pop(place_id, None)
            state.publish_specs()
            self._send(200, {"status": "ok"})
            return
        if method != "PUT":
            self._send(404, _status(404, f"No control endpoint {method} /_sim/places/{place_id}."))
            return
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
        state.publish_specs()
        self._send(200, {"status": "ok", "place": place})

    def _control_spec(self, method: str, spec_id: str, body: dict[str, Any]) -> None:
        state = self.state
        if method == "DELETE":
            state.specs.pop(spec_id, None)
            self._send(200, {"status": "ok"})
            return
        if method != "PUT":
            self._send(404, _status(404, f"No control endpoint {method} /_sim/specs/{spec_id}."))
            return
        places = [str(place_id) for place_id in body.get("places") or []]
        unknown = [place_id for place_id in places if place_id not in state.places]
        if unknown:
            self._send(400, _status(400, f"No such place: {', '.join(unknown)}.", unknown))
            return
        spec = state.specs.get(spec_id)
        if spec is None:
            if not places:
                self._send(400, _status(400, "A new RightSpecification needs at least one place."))
                return
            spec = {
                "id": spec_id,
                "version": FIRST_SPEC_VERSION - 1,
                "kind": "custom",
                "names": dict(SPEC_KINDS["standard"]),
                "places": places,
                "credentials": ["licensePlate", "rfid", "qrCode"],
            }
            state.specs[spec_id] = spec
        if places:
            spec["places"] = places
        for language in ("de", "en"):
            if body.get(language):
                spec["names"][language] = str(body[language])
        if body.get("credentials"):
            spec["credentials"] = [str(kind) for kind in body["credentials"]]
        spec["version"] += 1
        self._send(200, {"status": "ok", "id": spec_id, "version": spec["version"]})


def _unauthorised(error: str, message: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    challenge = (
        f'Bearer realm="apds", error="{error}", error_description="{message}"' if error else 'Bearer realm="apds"'
    )
    return 401, _status(401, message), {"WWW-Authenticate": challenge}


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return -1


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
    *,
    carparks: int = 20,
    seed: int = 1,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str = "",
    clients: dict[str, str] | None = None,
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
    require_token: bool = False,
    strict_rights: bool = True,
) -> RunningSimulator:
    """Serve a simulator in a background thread (port 0 picks a free port)."""
    state = SimulatorState(carparks=carparks, seed=seed, token=token, strict_rights=strict_rights)
    state.auth = Auth(lifetime=token_lifetime, clients=dict(clients or {}), require=require_token)
    server = SimulatorServer((host, port), state)
    thread = threading.Thread(target=server.serve_forever, name="cpms-simulator", daemon=True)
    thread.start()
    return RunningSimulator(server=server, thread=thread)
