"""The adapter interface every CPMS speaks through, and the records adapters return.

An adapter turns one CPMS protocol into plain, validated records. It never touches the
database: services (``connect.services``) decide what to store. Every parse is complete
before anything is returned, so a broken answer raises before a single row changes.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests


class CpmsError(Exception):
    """Something went wrong talking to a CPMS; the message is meant for people."""

    retryable = False


class CpmsUnavailable(CpmsError):
    """Timeout, refused connection or a 5xx answer: worth trying again later."""

    retryable = True


class CpmsMalformed(CpmsError):
    """The CPMS answered, but not with a document we can read (or with invalid values).

    Retried too: a CPMS that sends a truncated body under load usually recovers.
    """

    retryable = True


class CpmsRejected(CpmsError):
    """The CPMS refused the request (4xx): retrying the same request will not help."""


class CpmsNotSupported(CpmsError):
    """The protocol has no such operation (for example pushing credentials to a pull-only feed)."""


@dataclass(frozen=True)
class CarParkRecord:
    external_id: str
    name: str
    capacity: int
    street: str = ""
    postcode: str = ""
    city: str = ""
    country: str = ""
    latitude: Decimal | None = None
    longitude: Decimal | None = None
    time_zone: str = ""
    operator: str = ""
    opening_hours: str = ""
    # Names per language code as the feed gives them ({"de": "Parkhaus Hauptbahnhof Süd", "en": …});
    # ``name`` is the one chosen by the adapter's language order.
    names: dict[str, str] = field(default_factory=dict)
    # Opening times as structured rows, e.g. {"days": ["Mo", …], "from": "06:00", "to": "22:00"}.
    opening_times: tuple[dict[str, Any], ...] = ()
    # The group (APDS campus, DATEX II group of sites) this car park belongs to, when the feed says.
    parent_id: str = ""


@dataclass(frozen=True)
class OccupancyRecord:
    """How full a car park is. ``occupied`` may be unknown when a feed only tells vacant spaces."""

    external_id: str
    occupied: int | None
    capacity: int | None = None
    vacant: int | None = None
    status: str = ""
    observed_at: datetime | None = None
    # Occupancy as a percentage only (no counts): services turn it into spaces with the car park's capacity.
    percent: float | None = None
    # Expected (forecast) rows, never the current occupancy: {"at": iso, "occupied"/"vacant"/"percent": …}.
    forecast: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class GroupRecord:
    """An APDS campus or a DATEX II group of parking sites: holds car parks, is never one itself."""

    external_id: str
    kind: str  # "campus" or "group" (CpmsGroup.Kind)
    name: str = ""
    names: dict[str, str] = field(default_factory=dict)
    member_ids: tuple[str, ...] = ()
    capacity: int | None = None
    occupied: int | None = None
    status: str = ""


@dataclass(frozen=True)
class TariffRecord:
    external_id: str
    name: str
    currency: str = ""
    lines: tuple[dict[str, Any], ...] = ()
    place_ids: tuple[str, ...] = ()
    # When the rate table applies (either end open); a 2025 and a 2026 table are two records.
    valid_from: datetime | None = None
    valid_until: datetime | None = None


@dataclass(frozen=True)
class CredentialEntry:
    """One credential as the CPMS whitelist holds it (an APDS assigned right with one credential)."""

    right_id: str
    place_id: str
    kind: str  # our Credential.Kind value: plate, rfid, qr
    identifier: str
    valid_from: date | None = None
    valid_until: date | None = None


@dataclass(frozen=True)
class RefusedRecord:
    """One record of a feed that could not be read: its id (as far as it is known) and why."""

    external_id: str
    reason: str


class Records(list):
    """What an adapter read: the usable records (the list itself) and the refused ones.

    One bad record never stops a sync: adapters parse record by record (see :func:`collect`),
    keep every valid one and list each refused one here; services store the valid ones and show
    the refused ones on the sync run. Only transport, authentication or a document that cannot be
    read at all raises.
    """

    def __init__(self, items: Iterable[Any] = (), refused: Iterable[RefusedRecord] = ()):
        super().__init__(items)
        self.refused: list[RefusedRecord] = list(refused)
        # Groups above the car parks (pull_carparks: their members; pull_occupancy: their own counts).
        self.groups: list[GroupRecord] = []

    def refuse(self, external_id: Any, reason: str) -> None:
        self.refused.append(RefusedRecord(str(external_id or "?")[:100], str(reason)[:500]))


def collect(items: Iterable[Any], parse: Callable[[Any], Any], id_of: Callable[[Any], Any]) -> Records:
    """Parse each item on its own: a :class:`CpmsMalformed` refuses that item only.

    ``parse`` returns a record, ``None`` (skip silently, e.g. not a car park) or a list of records.
    ``id_of`` gives the id to report for a refused item (it must not raise).
    """
    records = Records()
    for item in items:
        try:
            parsed = parse(item)
        except CpmsMalformed as exc:
            try:
                external_id = id_of(item)
            except Exception:  # noqa: BLE001 - the id is only for the report
                external_id = "?"
            records.refuse(external_id, str(exc))
            continue
        if parsed is None:
            continue
        if isinstance(parsed, list):
            records.extend(parsed)
        else:
            records.append(parsed)
    return records


@dataclass
class HealthResult:
    ok: bool
    message: str
    latency_ms: int = 0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PushResult:
    right_id: str
    outcome: str  # created, updated, unchanged, deleted, absent


class CpmsAdapter(abc.ABC):
    """One CPMS protocol. Subclasses cite the specification version they follow."""

    kind: str = ""
    label: str = ""
    spec_version: str = ""
    supports_push: bool = False
    supports_tariffs: bool = False

    def __init__(self, *, base_url: str, secret: str = "", timeout: float = 10.0, options: dict | None = None):
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.timeout = timeout
        self.options = options or {}
        # Naive times in a feed are local times of the connection's time zone (option ``time_zone``).
        self.time_zone: tzinfo = _zone(self.options.get("time_zone") or DEFAULT_TIME_ZONE)
        # Names in several languages: the car park's local language first (option ``languages``).
        languages = self.options.get("languages") or DEFAULT_LANGUAGES
        self.languages: tuple[str, ...] = tuple(str(code) for code in languages)
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "ParkingHQ-Connect/1.0"
        if secret:
            self.session.headers["Authorization"] = f"Bearer {secret}"

    # --- the interface -------------------------------------------------------------------
    @abc.abstractmethod
    def pull_carparks(self) -> list[CarParkRecord]: ...

    @abc.abstractmethod
    def pull_occupancy(self) -> list[OccupancyRecord]: ...

    def pull_tariffs(self) -> list[TariffRecord]:
        raise CpmsNotSupported(f"{self.label} does not publish tariffs")

    def push_credential(self, entry: CredentialEntry) -> PushResult:
        raise CpmsNotSupported(f"{self.label} is a pull-only feed: credentials cannot be pushed")

    def revoke_credential(self, right_id: str) -> PushResult:
        raise CpmsNotSupported(f"{self.label} is a pull-only feed: credentials cannot be revoked")

    def list_credentials(self, place_id: str) -> list[CredentialEntry]:
        raise CpmsNotSupported(f"{self.label} has no credential whitelist to read")

    def health_check(self) -> HealthResult:
        started = datetime.now()
        try:
            self.pull_carparks()
        except CpmsError as exc:
            return HealthResult(ok=False, message=str(exc), latency_ms=_ms_since(started))
        return HealthResult(
            ok=True, message="The feed answered with a readable document.", latency_ms=_ms_since(started)
        )

    # --- HTTP helpers ----------------------------------------------------------------------
    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One HTTP call with our timeout; transport errors and 5xx become CpmsUnavailable."""
        url = self.url(path)
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout:
            raise CpmsUnavailable(f"{method} {url} timed out after {self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            raise CpmsUnavailable(f"{method} {url}: could not connect ({_short(exc)})") from None
        except requests.RequestException as exc:
            raise CpmsUnavailable(f"{method} {url} failed: {_short(exc)}") from None
        if response.status_code >= 500:
            raise CpmsUnavailable(f"{method} {url} answered HTTP {response.status_code}")
        if response.status_code in (401, 403):
            raise CpmsRejected(f"{method} {url} refused our credentials (HTTP {response.status_code})")
        return response

    def get_json(self, path: str, **kwargs: Any) -> Any:
        response = self.request("GET", path, **kwargs)
        if response.status_code != 200:
            raise CpmsRejected(f"GET {self.url(path)} answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise CpmsMalformed(f"GET {self.url(path)} did not answer with JSON") from None

    def get_bytes(self, path: str, **kwargs: Any) -> bytes:
        response = self.request("GET", path, **kwargs)
        if response.status_code != 200:
            raise CpmsRejected(f"GET {self.url(path)} answered HTTP {response.status_code}")
        return response.content


# --- validation helpers shared by the adapters -------------------------------------------
DEFAULT_TIME_ZONE = "Europe/Berlin"
DEFAULT_LANGUAGES = ("de", "en")
MAX_CAPACITY = 100_000
_ID_RE = re.compile(r"^[\w.:\-+/]{1,100}$")


def clean_id(value: Any, what: str) -> str:
    text = str(value).strip() if value is not None else ""
    if not _ID_RE.match(text):
        raise CpmsMalformed(f"{what}: {value!r} is not a usable identifier")
    return text


def clean_int(value: Any, what: str, *, minimum: int = 0, maximum: int = MAX_CAPACITY) -> int:
    if isinstance(value, bool):
        raise CpmsMalformed(f"{what}: expected a whole number, got {value!r}")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        try:
            as_float = float(str(value).strip())
        except (TypeError, ValueError):
            raise CpmsMalformed(f"{what}: expected a whole number, got {value!r}") from None
        if not as_float.is_integer():
            raise CpmsMalformed(f"{what}: expected a whole number, got {value!r}") from None
        number = int(as_float)
    if number < minimum or number > maximum:
        raise CpmsMalformed(f"{what}: {number} is outside {minimum}–{maximum}")
    return number


def clean_text(value: Any, what: str, *, max_length: int = 200, required: bool = False) -> str:
    text = "" if value is None else str(value).strip()
    if required and not text:
        raise CpmsMalformed(f"{what} is missing")
    return text[:max_length]


def clean_coordinate(value: Any, what: str, *, limit: int) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value)).quantize(Decimal("0.000001"))
    except (InvalidOperation, ValueError):
        raise CpmsMalformed(f"{what}: {value!r} is not a coordinate") from None
    if abs(number) > limit:
        raise CpmsMalformed(f"{what}: {number} is out of range")
    return number


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise CpmsRejected(f"time zone {name!r} of the connection is unknown; use a name like Europe/Berlin") from None


def parse_datetime(value: Any, what: str, *, tz: tzinfo | None = None) -> datetime | None:
    """An ISO 8601 date-time; one without an offset is a local time in ``tz`` (UTC when not given)."""
    if value in (None, ""):
        return None
    text = str(value).strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise CpmsMalformed(f"{what}: {value!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=tz or UTC)
    return parsed


def _ms_since(started: datetime) -> int:
    return int((datetime.now() - started).total_seconds() * 1000)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 160 else text[:157] + "…"
