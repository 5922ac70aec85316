"""The adapter interface every CPMS speaks through, and the records adapters return.

An adapter turns one CPMS protocol into plain, validated records. It never touches the
database: services (``connect.services``) decide what to store. Every parse is complete
before anything is returned, so a broken answer raises before a single row changes.
"""

from __future__ import annotations

import abc
import contextlib
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
import urllib3
from django.utils.translation import gettext


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


class CpmsTooLarge(CpmsMalformed):
    """The answer passed the size cap. Not retried: a feed that is too large now will be too large again."""

    retryable = False


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
    # The RightSpecification the CPMS published for the contract's product (connection's mapping page).
    right_specification_id: str = ""
    right_specification_version: int = 1


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
    # Templates read class attributes (spec_version) off ``connection.adapter_class``: never instantiate it.
    do_not_call_in_templates = True

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
            ok=True, message=gettext("The feed answered with a readable document."), latency_ms=_ms_since(started)
        )

    # --- HTTP helpers ----------------------------------------------------------------------
    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One HTTP call, its body read in full within the limits a CPMS answer must keep.

        ``timeout_seconds`` is a deadline for the whole answer (connect, headers and body), not per
        read: a server that drips a byte at a time fails at the deadline. Redirects are refused (an
        admin fixes the base URL), bodies over the size cap are refused as soon as the cap is passed.
        Transport errors and 5xx become CpmsUnavailable; callers see a response whose body is read.
        """
        url = self.url(path)
        what = f"{method} {url}"
        deadline = time.monotonic() + self.timeout
        try:
            response = self.session.request(
                method, url, timeout=(self.timeout, self.timeout), stream=True, allow_redirects=False, **kwargs
            )
        except requests.Timeout:
            raise CpmsUnavailable(f"{what} timed out after {self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            raise CpmsUnavailable(f"{what}: could not connect ({_short(exc)})") from None
        except requests.RequestException as exc:
            raise CpmsUnavailable(f"{what} failed: {_short(exc)}") from None
        try:
            _check_status(response, what)
            response._content = self._read_body(response, what, deadline)  # noqa: SLF001 - requests' body slot
            response._content_consumed = True  # noqa: SLF001
        finally:
            # Releases the connection (back to the pool after a complete body, closed otherwise).
            response.close()
        return response

    @property
    def max_response_bytes(self) -> int:
        """The size cap: option ``max_response_bytes`` of the connection, else CONNECT_MAX_RESPONSE_BYTES."""
        return response_size_cap(self.options)

    def _read_body(self, response: requests.Response, what: str, deadline: float) -> bytes:
        """Read the body chunk by chunk, refusing it past the size cap or the deadline."""
        cap = self.max_response_bytes
        announced = response.headers.get("Content-Length", "")
        if announced.strip().isdigit() and int(announced) > cap:
            raise CpmsTooLarge(f"{what}: the answer is larger than the {_size(cap)} cap (Content-Length {announced})")
        body = bytearray()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._deadline_passed(what, len(body))
            _narrow_read_timeout(response, remaining)
            try:
                chunk = response.raw.read1(READ_CHUNK_BYTES, decode_content=True)
            except (urllib3.exceptions.TimeoutError, TimeoutError):
                raise self._deadline_passed(what, len(body)) from None
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                if time.monotonic() >= deadline:
                    raise self._deadline_passed(what, len(body)) from None
                raise CpmsMalformed(f"{what}: the answer broke off after {len(body)} bytes ({_short(exc)})") from None
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > cap:
                raise CpmsTooLarge(f"{what}: the answer is larger than the {_size(cap)} cap")

    def _deadline_passed(self, what: str, received: int) -> CpmsUnavailable:
        return CpmsUnavailable(
            f"{what}: no complete answer within the {self.timeout:g} s deadline ({received} bytes received)"
        )

    def get_json(self, path: str, **kwargs: Any) -> Any:
        response = self.request("GET", path, **kwargs)
        if response.status_code != 200:
            raise CpmsRejected(f"GET {self.url(path)} answered HTTP {response.status_code}")
        return parse_json(response.content, f"GET {self.url(path)}", response.headers.get("Content-Type", ""))

    def get_bytes(self, path: str, **kwargs: Any) -> bytes:
        response = self.request("GET", path, **kwargs)
        if response.status_code != 200:
            raise CpmsRejected(f"GET {self.url(path)} answered HTTP {response.status_code}")
        if not response.content:
            raise CpmsMalformed(f"GET {self.url(path)} answered HTTP 200 with an empty body")
        return response.content


# --- reading answers safely ----------------------------------------------------------------
DEFAULT_MAX_RESPONSE_BYTES = 20_000_000
READ_CHUNK_BYTES = 64 * 1024
# Deeper than any feed we read (APDS nests about ten levels); deeper documents are refused.
MAX_JSON_DEPTH = 200


def response_size_cap(options: dict[str, Any]) -> int:
    """Option ``max_response_bytes`` when set (a positive whole number), else the setting (default 20 MB)."""
    value = options.get("max_response_bytes")
    if value not in (None, ""):
        try:
            cap = int(value)
        except (TypeError, ValueError):
            raise CpmsRejected(f"option max_response_bytes {value!r} is not a whole number of bytes") from None
        if cap <= 0:
            raise CpmsRejected(f"option max_response_bytes must be positive, not {cap}")
        return cap
    try:
        from django.conf import settings

        return int(getattr(settings, "CONNECT_MAX_RESPONSE_BYTES", DEFAULT_MAX_RESPONSE_BYTES))
    except ImportError:  # pragma: no cover - adapters used without Django
        return DEFAULT_MAX_RESPONSE_BYTES


def _check_status(response: requests.Response, what: str) -> None:
    """Refuse the answers whose body we do not read: redirects, 5xx and refused credentials."""
    status = response.status_code
    if 300 <= status < 400:
        location = response.headers.get("Location", "") or "no Location header"
        raise CpmsRejected(
            f"{what} answered HTTP {status}, a redirect to {location[:300]}; redirects are not followed, "
            "so correct the connection's base URL"
        )
    if status >= 500:
        raise CpmsUnavailable(f"{what} answered HTTP {status}")
    if status in (401, 403):
        raise CpmsRejected(f"{what} refused our credentials (HTTP {status})")


def _narrow_read_timeout(response: requests.Response, remaining: float) -> None:
    """Let no single read wait past the deadline (best effort: the socket is urllib3's own)."""
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.settimeout(max(remaining, 0.001))


def parse_json(data: bytes, what: str, content_type: str = "") -> Any:
    """A JSON document, or CpmsMalformed saying in a few words why it is not one."""
    if not data.strip():
        raise CpmsMalformed(f"{what} answered with an empty body instead of JSON")
    try:
        document = json.loads(data)
    except RecursionError:
        raise CpmsMalformed(f"{what}: the JSON is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise CpmsMalformed(f"{what} {_why_not_json(data, exc, content_type)}") from None
    if _depth_exceeds(document, MAX_JSON_DEPTH):
        raise CpmsMalformed(f"{what}: the JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    return document


def _why_not_json(data: bytes, exc: ValueError, content_type: str) -> str:
    """The reason a person can act on: an HTML page (wrong URL, login page), a cut-off body, or garbage."""
    head = data[:300].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or "html" in content_type.lower():
        return (
            f"answered with an HTML page instead of JSON (Content-Type {content_type or 'not given'}); "
            "check the connection's base URL"
        )
    if isinstance(exc, json.JSONDecodeError):
        at_end = exc.pos >= len(exc.doc.rstrip()) - 1 or exc.msg.startswith("Unterminated string")
        if at_end:
            return f"answered with JSON that ends early (truncated after {len(data)} bytes)"
        return f"did not answer with JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    return f"did not answer with readable JSON ({_short(exc)})"


def _depth_exceeds(document: Any, limit: int) -> bool:
    """Whether lists/objects nest deeper than ``limit`` (iterative: no recursion on hostile input)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _size(number: int) -> str:
    if number >= 1_000_000:
        return f"{number / 1_000_000:g} MB"
    if number >= 1_000:
        return f"{number / 1_000:g} kB"
    return f"{number} bytes"


# --- validation helpers shared by the adapters -------------------------------------------
DEFAULT_TIME_ZONE = "Europe/Berlin"
DEFAULT_LANGUAGES = ("de", "en")
# Day names as APDS (DayEnum) and DATEX II (DayEnum) write them → opening-hours abbreviations.
DAYS = {
    "monday": "Mo",
    "tuesday": "Tu",
    "wednesday": "We",
    "thursday": "Th",
    "friday": "Fr",
    "saturday": "Sa",
    "sunday": "Su",
}
MAX_CAPACITY = 100_000
MAX_ID_LENGTH = 100
# Control characters and line/paragraph separators never belong in an id (they break logs, CSV
# exports and admin lists); everything printable does: real DATEX II feeds put names in their ids,
# e.g. "2041[P+R Bad Soden Bahnhof]", and APDS ids are free strings.
_ID_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean_id(value: Any, what: str) -> str:
    """An id as the feed gives it (trimmed): printable, not empty, at most MAX_ID_LENGTH characters."""
    text = str(value).strip() if value is not None else ""
    if not text or len(text) > MAX_ID_LENGTH or _ID_FORBIDDEN.search(text):
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
